//! `silo_schema_history`: each store's own record of its migrations. There
//! is no central registry that could become a shared database.

use serde::Serialize;

use crate::Kind;
use crate::error::MigrateError;

/// The history table's layout version. A store whose table says a higher
/// number was written by a newer silo and is refused.
pub const FORMAT: u32 = 1;

/// The history table's name in every store.
pub const TABLE: &str = "silo_schema_history";

/// What a history row records, as the table's `type` column spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryKind {
    /// A `V` file applied.
    Versioned,
    /// A `U` file applied: its version is undone.
    Undo,
    /// An `R` file applied (again).
    Repeatable,
    /// `silo baseline` (or an adopted baseline): versions up to this one
    /// never run.
    Baseline,
}

impl HistoryKind {
    /// Every kind.
    pub const ALL: [HistoryKind; 4] = [
        HistoryKind::Versioned,
        HistoryKind::Undo,
        HistoryKind::Repeatable,
        HistoryKind::Baseline,
    ];

    /// The `type` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Versioned => "versioned",
            HistoryKind::Undo => "undo",
            HistoryKind::Repeatable => "repeatable",
            HistoryKind::Baseline => "baseline",
        }
    }

    /// The kind a `type` column holds, if silo wrote it.
    pub fn parse(text: &str) -> Option<HistoryKind> {
        HistoryKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl From<Kind> for HistoryKind {
    /// The row a file of this kind writes when it is applied.
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Versioned => HistoryKind::Versioned,
            Kind::Undo => HistoryKind::Undo,
            Kind::Repeatable => HistoryKind::Repeatable,
        }
    }
}

impl std::fmt::Display for HistoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a file that runs outside a transaction records its progress,
/// statement by statement: one row per such file that has started and not
/// finished, beside its history row (`success` false until it finishes).
/// Made on first use; the history table's format does not change, and a
/// silo that does not know this table sees the file as failed, never as
/// pending. Like every `silo_*` table, schema snapshots, `verify` and
/// `diff` leave it out.
pub const PROGRESS_TABLE: &str = "silo_migration_progress";

/// One row of the history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryRow {
    pub installed_rank: i32,
    pub version: Option<String>,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: HistoryKind,
    pub script: String,
    pub checksum: Option<String>,
    pub installed_by: String,
    pub installed_on: String,
    pub execution_time_ms: i32,
    pub success: bool,
    /// A file that ran outside a transaction and has not finished: how far
    /// it got. Only on a row whose `success` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// How far a file that runs outside a transaction got.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Progress {
    /// Statements in the file when it started.
    pub statements: usize,
    /// The first `done` statements ran and were recorded.
    pub done: usize,
    /// A statement that was started and whose end was never recorded (silo
    /// was killed while it ran): it may or may not have taken effect.
    pub running: Option<usize>,
    /// How the statement after the last one done ended, when it did.
    pub stopped: Option<StopReason>,
    /// SHA-256 of the statements done, so `--resume` can tell that they
    /// are still the file's first statements.
    #[serde(skip)]
    pub done_checksum: String,
    /// Who ran it: `pid N on HOST`.
    pub started_by: String,
}

/// Why a statement of a file outside a transaction did not complete.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "reason", content = "message", rename_all = "kebab-case")]
pub enum StopReason {
    /// Cancelled through the run's token (Ctrl-C): nothing of it applied.
    Cancelled,
    /// The server refused it, with this message.
    Failed(String),
}

impl StopReason {
    /// The `stopped` and `error` columns.
    pub(crate) fn columns(&self) -> (&'static str, Option<&str>) {
        match self {
            StopReason::Cancelled => ("cancelled", None),
            StopReason::Failed(m) => ("failed", Some(m)),
        }
    }

    pub(crate) fn from_columns(stopped: Option<&str>, error: Option<String>) -> Option<Self> {
        match stopped? {
            "cancelled" => Some(StopReason::Cancelled),
            _ => Some(StopReason::Failed(error.unwrap_or_default())),
        }
    }
}

/// The SHA-256 of the statements a file has done, each followed by a NUL
/// byte, built up one statement at a time.
#[derive(Clone, Default)]
pub struct StatementsChecksum(sha2::Sha256);

impl StatementsChecksum {
    /// Adds the next statement done.
    pub fn push(&mut self, statement: &str) {
        use sha2::Digest;
        self.0.update(statement.as_bytes());
        self.0.update([0u8]);
    }

    /// The checksum so far, in hex.
    pub fn hex(&self) -> String {
        use sha2::Digest;
        self.0
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// `pid N on HOST`, for the progress row.
pub(crate) fn this_process() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unknown host".into());
    format!("pid {} on {host}", std::process::id())
}

/// Whether the process named by `started_by` ([`this_process`]'s words)
/// is another silo running on this host now: the file is then being run,
/// not stopped. A guess from `/proc` (Linux): the process exists and its
/// command line names silo.
pub(crate) fn is_running_elsewhere(started_by: &str) -> bool {
    let Some((pid, host)) = started_by
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_once(" on "))
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let here = this_process();
    let this_host = here.split_once(" on ").map(|(_, h)| h);
    if pid == std::process::id() || this_host != Some(host) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|b| *b == 0)
            .next()
            .and_then(|program| {
                std::path::Path::new(std::str::from_utf8(program).ok()?)
                    .file_name()?
                    .to_str()
                    .map(str::to_string)
            })
            .is_some_and(|name| name == "silo")
    })
}

/// A progress row as read, keyed by its history row's rank.
#[derive(Debug, Clone)]
pub(crate) struct ProgressRow {
    pub installed_rank: i32,
    pub progress: Progress,
}

/// The progress columns every engine reads, in [`progress_from_row`] order.
pub(crate) const PROGRESS_COLUMNS: &str =
    "installed_rank, statements, done, running, stopped, error, done_checksum, started_by";

pub(crate) fn progress_from_row<R>(r: &R) -> ProgressRow
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i32>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let count = |n: i32| usize::try_from(n).unwrap_or(0);
    let stopped: Option<String> = r.get(4);
    ProgressRow {
        installed_rank: r.get(0),
        progress: Progress {
            statements: count(r.get(1)),
            done: count(r.get(2)),
            running: r.get::<Option<i32>, _>(3).map(count),
            stopped: StopReason::from_columns(stopped.as_deref(), r.get(5)),
            done_checksum: r.get(6),
            started_by: r.get(7),
        },
    }
}

/// Attaches progress rows to their failed history rows.
pub(crate) fn attach(history: &mut [HistoryRow], progress: Vec<ProgressRow>) {
    for p in progress {
        if let Some(row) = history
            .iter_mut()
            .find(|h| h.installed_rank == p.installed_rank && !h.success)
        {
            row.progress = Some(p.progress);
        }
    }
}

/// A row about to be written (rank and time are the store's).
#[derive(Debug, Clone)]
pub struct NewRow {
    pub version: Option<String>,
    pub description: String,
    pub kind: HistoryKind,
    pub script: String,
    pub checksum: Option<String>,
    pub execution_time_ms: i32,
    pub success: bool,
}

/// The columns every engine reads, in [`HistoryRow`] order.
pub(crate) const COLUMNS: &str =
    "installed_rank, version, description, type, script, checksum, installed_by";

/// Maps a row selected as [`COLUMNS`] + installed_on (text),
/// execution_time_ms, success. A `type` silo does not write is refused:
/// replaying the history without that row would be a silent wrong answer.
pub(crate) fn from_row<R>(r: &R) -> Result<HistoryRow, MigrateError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let installed_rank: i32 = r.get(0);
    let kind: String = r.get(3);
    let kind = HistoryKind::parse(&kind).ok_or(MigrateError::UnknownHistoryKind {
        rank: installed_rank,
        kind,
    })?;
    Ok(HistoryRow {
        installed_rank,
        version: r.get(1),
        description: r.get(2),
        kind,
        script: r.get(4),
        checksum: r.get(5),
        installed_by: r.get(6),
        installed_on: r.get(7),
        execution_time_ms: r.get(8),
        success: r.get(9),
        progress: None,
    })
}

#[cfg(test)]
mod tests {
    use super::HistoryKind;

    /// The `type` column and `--json` keep the words silo always wrote.
    #[test]
    fn kinds_keep_their_words() {
        for (kind, text) in [
            (HistoryKind::Versioned, "versioned"),
            (HistoryKind::Undo, "undo"),
            (HistoryKind::Repeatable, "repeatable"),
            (HistoryKind::Baseline, "baseline"),
        ] {
            assert_eq!(kind.as_str(), text);
            assert_eq!(HistoryKind::parse(text), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), text);
        }
        assert_eq!(HistoryKind::parse("SQL"), None);
        assert_eq!(
            HistoryKind::from(crate::Kind::Undo),
            HistoryKind::Undo,
            "a U file writes an undo row"
        );
    }
}
