//! Files against history: the state of every migration (`silo info`), what
//! is wrong (`silo validate`) and what is pending (`silo migrate`).

use std::collections::HashMap;

use serde::Serialize;

use crate::file::{Kind, Migration};
use crate::history::{HistoryKind, HistoryRow, Progress};
use crate::version::Version;

/// The state of one migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Applied,
    Pending,
    Failed,
    /// Applied, but its file is gone.
    Missing,
    /// Applied, newer than any file (applied by a newer checkout).
    Future,
    /// Pending, but older than the newest applied version.
    OutOfOrder,
    /// Applied, and its file changed since.
    ChecksumMismatch,
    /// At or below the baseline: never runs.
    Baselined,
    /// Applied and later undone.
    Undone,
    /// Ran outside a transaction and stopped part way (cancelled, failed,
    /// or silo was killed): some of its statements are applied. For a
    /// version, also when its U file stopped part way. `migrate` refuses to
    /// run it again from the start; `--resume` goes on from the first
    /// statement not done.
    Partial,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Failed => "failed",
            State::Missing => "missing",
            State::Future => "future",
            State::OutOfOrder => "out-of-order",
            State::ChecksumMismatch => "checksum-mismatch",
            State::Baselined => "baselined",
            State::Undone => "undone",
            State::Partial => "partial",
        }
    }
}

/// One line of `silo info`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub version: Option<String>,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: HistoryKind,
    pub script: String,
    pub state: State,
    /// Whether a `U` file exists for this version.
    pub undo: bool,
    pub installed_on: Option<String>,
    pub execution_time_ms: Option<i32>,
    /// The checksum in the history, when it differs from the file's.
    pub recorded_checksum: Option<String>,
    pub file_checksum: Option<String>,
    /// How far it got, when it is [`State::Partial`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
}

/// A file that ran outside a transaction and stopped part way.
#[derive(Debug, Clone, Serialize)]
pub struct Partial {
    /// The file that stopped: the entry's own file, or (for a version) its
    /// U file.
    pub script: String,
    /// `versioned`, `undo` or `repeatable`.
    #[serde(rename = "type")]
    pub kind: HistoryKind,
    /// Its history row (not successful until it finishes).
    pub installed_rank: i32,
    #[serde(flatten)]
    pub progress: Progress,
}

impl Partial {
    fn of(row: &HistoryRow) -> Option<Self> {
        Some(Partial {
            script: row.script.clone(),
            kind: row.kind,
            installed_rank: row.installed_rank,
            progress: row.progress.clone()?,
        })
    }

    /// `3 of 5 statements` (and what is unknown).
    pub fn summary(&self) -> String {
        let p = &self.progress;
        let mut text = format!("{} of {} statements", p.done, p.statements);
        if crate::history::is_running_elsewhere(&p.started_by) {
            text.push_str(&format!(", running now: {}", p.started_by));
        } else if let Some(n) = p.running {
            text.push_str(&format!(", statement {n} may have run"));
        }
        if self.kind == HistoryKind::Undo {
            text = format!("undo {}: {text}", self.script);
        }
        text
    }
}

/// The effect of the history, replayed in rank order.
#[derive(Debug, Default)]
pub struct Replay<'h> {
    /// Applied versioned migrations by canonical version.
    pub applied: HashMap<String, &'h HistoryRow>,
    /// Versions undone after being applied.
    pub undone: HashMap<String, &'h HistoryRow>,
    /// The latest failed row per script.
    pub failed: Vec<&'h HistoryRow>,
    /// Latest successful row per repeatable script.
    pub repeatables: HashMap<String, &'h HistoryRow>,
    pub baseline: Option<Version>,
}

/// Replays the history.
pub fn replay(history: &[HistoryRow]) -> Replay<'_> {
    let mut r = Replay::default();
    for row in history {
        let version = row.version.as_deref().and_then(|v| Version::parse(v).ok());
        let key = version.as_ref().map(Version::canonical);
        if !row.success {
            r.failed.retain(|f| f.script != row.script);
            r.failed.push(row);
            continue;
        }
        r.failed.retain(|f| f.script != row.script);
        match (row.kind, key) {
            (HistoryKind::Versioned, Some(k)) => {
                r.undone.remove(&k);
                r.applied.insert(k, row);
            }
            (HistoryKind::Undo, Some(k)) => {
                if let Some(prev) = r.applied.remove(&k) {
                    r.undone.insert(k, prev);
                }
            }
            (HistoryKind::Baseline, Some(_)) => r.baseline = version,
            (HistoryKind::Repeatable, _) => {
                r.repeatables.insert(row.script.clone(), row);
            }
            // A versioned, undo or baseline row without a readable version.
            (HistoryKind::Versioned | HistoryKind::Undo | HistoryKind::Baseline, None) => {}
        }
    }
    r
}

impl Replay<'_> {
    /// The newest applied version.
    pub fn newest(&self) -> Option<Version> {
        self.applied
            .values()
            .filter_map(|r| r.version.as_deref().and_then(|v| Version::parse(v).ok()))
            .chain(self.baseline.clone())
            .max()
    }
}

/// Every migration's state, in order: versioned by version, then
/// repeatables, then history rows whose files are gone.
pub fn entries(migrations: &[Migration], history: &[HistoryRow]) -> Vec<Entry> {
    let r = replay(history);
    let newest_applied = r.newest();
    let newest_file = migrations
        .iter()
        .filter(|m| m.kind == Kind::Versioned)
        .filter_map(|m| m.version.clone())
        .max();
    let undo_versions: Vec<String> = migrations
        .iter()
        .filter(|m| m.kind == Kind::Undo)
        .filter_map(|m| m.version.as_ref().map(Version::canonical))
        .collect();
    let mut out = Vec::new();

    for m in migrations.iter().filter(|m| m.kind == Kind::Versioned) {
        let v = m.version.as_ref().expect("versioned files have versions");
        let key = v.canonical();
        let failed = r.failed.iter().find(|f| f.script == m.script);
        // Its own file, or its U file, stopped part way.
        let partial = failed.and_then(|f| Partial::of(f)).or_else(|| {
            r.failed
                .iter()
                .filter(|f| f.kind == HistoryKind::Undo)
                .filter(|f| {
                    f.version
                        .as_deref()
                        .and_then(|v| Version::parse(v).ok())
                        .is_some_and(|fv| fv.canonical() == key)
                })
                .find_map(|f| Partial::of(f))
        });
        let (state, row) = if let Some(p) = &partial {
            let row = r
                .failed
                .iter()
                .find(|f| f.installed_rank == p.installed_rank)
                .copied();
            (State::Partial, row)
        } else if let Some(row) = r.applied.get(&key) {
            if row.checksum.as_deref().is_some_and(|c| c != m.checksum) {
                (State::ChecksumMismatch, Some(*row))
            } else {
                (State::Applied, Some(*row))
            }
        } else if let Some(f) = failed {
            (State::Failed, Some(*f))
        } else if r.baseline.as_ref().is_some_and(|b| v <= b) {
            (State::Baselined, None)
        } else if let Some(row) = r.undone.get(&key) {
            let _ = row;
            (State::Pending, None)
        } else if newest_applied.as_ref().is_some_and(|n| v < n) {
            (State::OutOfOrder, None)
        } else {
            (State::Pending, None)
        };
        let mut e = entry(m, state, row, undo_versions.contains(&key));
        e.partial = partial;
        out.push(e);
    }

    for m in migrations.iter().filter(|m| m.kind == Kind::Repeatable) {
        let row = r.repeatables.get(&m.script).copied();
        let failed = r.failed.iter().find(|f| f.script == m.script).copied();
        let partial = failed.and_then(Partial::of);
        let (state, row) = match (row, failed) {
            (_, Some(f)) if partial.is_some() => (State::Partial, Some(f)),
            (_, Some(f)) => (State::Failed, Some(f)),
            (Some(row), None) if row.checksum.as_deref() == Some(m.checksum.as_str()) => {
                (State::Applied, Some(row))
            }
            (Some(row), None) => (State::Pending, Some(row)),
            (None, None) => (State::Pending, None),
        };
        let mut e = entry(m, state, row, false);
        if state == State::Pending {
            e.recorded_checksum = None;
        }
        e.partial = partial;
        out.push(e);
    }

    // Applied rows without a file.
    let file_versions: Vec<String> = migrations
        .iter()
        .filter(|m| m.kind == Kind::Versioned)
        .filter_map(|m| m.version.as_ref().map(Version::canonical))
        .collect();
    let mut orphans: Vec<&&HistoryRow> = r
        .applied
        .iter()
        .filter(|(k, _)| !file_versions.contains(k))
        .map(|(_, row)| row)
        .collect();
    orphans.sort_by_key(|row| row.installed_rank);
    for row in orphans {
        let v = row.version.as_deref().and_then(|v| Version::parse(v).ok());
        let future = match (&v, &newest_file) {
            (Some(v), Some(newest)) => v > newest,
            (Some(_), None) => true,
            _ => false,
        };
        out.push(Entry {
            version: row.version.clone(),
            description: row.description.clone(),
            kind: HistoryKind::Versioned,
            script: row.script.clone(),
            state: if future {
                State::Future
            } else {
                State::Missing
            },
            undo: false,
            installed_on: Some(row.installed_on.clone()),
            execution_time_ms: Some(row.execution_time_ms),
            recorded_checksum: row.checksum.clone(),
            file_checksum: None,
            partial: None,
        });
    }
    for f in &r.failed {
        let has_file = migrations.iter().any(|m| m.script == f.script);
        if !has_file {
            out.push(Entry {
                version: f.version.clone(),
                description: f.description.clone(),
                kind: HistoryKind::Versioned,
                script: f.script.clone(),
                state: State::Failed,
                undo: false,
                installed_on: Some(f.installed_on.clone()),
                execution_time_ms: Some(f.execution_time_ms),
                recorded_checksum: f.checksum.clone(),
                file_checksum: None,
                partial: Partial::of(f),
            });
        }
    }
    out
}

fn entry(m: &Migration, state: State, row: Option<&HistoryRow>, undo: bool) -> Entry {
    let recorded = row
        .and_then(|r| r.checksum.clone())
        .filter(|c| *c != m.checksum);
    Entry {
        version: m.version.as_ref().map(|v| v.to_string()),
        description: m.description.clone(),
        kind: m.kind.into(),
        script: m.script.clone(),
        state,
        undo,
        installed_on: row.map(|r| r.installed_on.clone()),
        execution_time_ms: row.map(|r| r.execution_time_ms),
        recorded_checksum: recorded,
        file_checksum: Some(m.checksum.clone()),
        partial: None,
    }
}

/// One thing `validate` objects to: a migration changed after it was
/// applied, applied with its file gone, or failed. Its [`State`] says
/// which; it reads (and serializes) as a sentence.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'e> {
    pub entry: &'e Entry,
}

impl Problem<'_> {
    /// [`State::ChecksumMismatch`], [`State::Missing`] or [`State::Failed`].
    pub fn state(&self) -> State {
        self.entry.state
    }
}

impl std::fmt::Display for Problem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.entry;
        match e.state {
            State::ChecksumMismatch => write!(
                f,
                "{} changed after it was applied: recorded checksum {}, file checksum {}",
                e.script,
                e.recorded_checksum.as_deref().unwrap_or("?"),
                e.file_checksum.as_deref().unwrap_or("?")
            ),
            State::Missing => write!(
                f,
                "{} was applied but its file is gone (version {})",
                e.script,
                e.version.as_deref().unwrap_or("?")
            ),
            State::Partial => match &e.partial {
                Some(p) => write!(
                    f,
                    "{} ran outside a transaction and stopped part way ({}); `silo migrate` says what to do",
                    p.script,
                    p.summary()
                ),
                None => write!(
                    f,
                    "{} ran outside a transaction and stopped part way",
                    e.script
                ),
            },
            _ => write!(
                f,
                "{} failed and left a failed row in the history",
                e.script
            ),
        }
    }
}

impl Serialize for Problem<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What `validate` objects to: changed, vanished or failed migrations.
pub fn problems(entries: &[Entry]) -> Vec<Problem<'_>> {
    entries
        .iter()
        .filter(|e| {
            matches!(
                e.state,
                State::ChecksumMismatch | State::Missing | State::Failed | State::Partial
            )
        })
        .map(|entry| Problem { entry })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, checksum: &str) -> Migration {
        let parsed = crate::file::parse_file_name(name).unwrap().unwrap();
        Migration {
            kind: parsed.kind,
            version: parsed.version,
            description: parsed.description,
            script: name.into(),
            path: name.into(),
            sql: String::new(),
            checksum: checksum.into(),
        }
    }

    fn row(rank: i32, kind: HistoryKind, version: Option<&str>, script: &str) -> HistoryRow {
        HistoryRow {
            installed_rank: rank,
            version: version.map(str::to_string),
            description: "x".into(),
            kind,
            script: script.into(),
            checksum: Some("c".into()),
            installed_by: "svc".into(),
            installed_on: "2024-01-01".into(),
            execution_time_ms: 1,
            success: true,
            progress: None,
        }
    }

    /// Each problem carries its state; its sentence (and JSON) stay as
    /// `validate` always printed them.
    #[test]
    fn problems_are_typed_by_state() {
        let files = [file("V1__a.sql", "changed"), file("V3__c.sql", "c")];
        let history = [
            row(1, HistoryKind::Versioned, Some("1"), "V1__a.sql"),
            row(2, HistoryKind::Versioned, Some("2"), "V2__gone.sql"),
            HistoryRow {
                success: false,
                ..row(3, HistoryKind::Versioned, Some("3"), "V3__c.sql")
            },
        ];
        let entries = entries(&files, &history);
        let problems = problems(&entries);
        let states: Vec<State> = problems.iter().map(|p| p.state()).collect();
        assert_eq!(
            states,
            [State::ChecksumMismatch, State::Failed, State::Missing]
        );
        assert_eq!(
            serde_json::to_value(&problems).unwrap(),
            serde_json::json!([
                "V1__a.sql changed after it was applied: recorded checksum c, file checksum changed",
                "V3__c.sql failed and left a failed row in the history",
                "V2__gone.sql was applied but its file is gone (version 2)",
            ])
        );
    }

    /// The replay reads each row by its kind: an undo row takes its
    /// version back, a baseline row covers the versions below it.
    #[test]
    fn replay_follows_the_kinds() {
        let files = [
            file("V1__a.sql", "c"),
            file("V2__b.sql", "c"),
            file("V3__c.sql", "c"),
        ];
        let history = [
            row(1, HistoryKind::Baseline, Some("1"), "<< silo baseline >>"),
            row(2, HistoryKind::Versioned, Some("2"), "V2__b.sql"),
            row(3, HistoryKind::Versioned, Some("3"), "V3__c.sql"),
            row(4, HistoryKind::Undo, Some("3"), "U3__c.sql"),
        ];
        let states: Vec<(String, State, HistoryKind)> = entries(&files, &history)
            .into_iter()
            .map(|e| (e.script, e.state, e.kind))
            .collect();
        assert_eq!(
            states,
            [
                ("V1__a.sql".into(), State::Baselined, HistoryKind::Versioned),
                ("V2__b.sql".into(), State::Applied, HistoryKind::Versioned),
                ("V3__c.sql".into(), State::Pending, HistoryKind::Versioned),
            ]
        );
    }
}
