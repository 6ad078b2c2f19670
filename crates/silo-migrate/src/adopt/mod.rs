//! `silo migrations adopt`: moving into silo from Flyway, sqlx, diesel or
//! refinery with the history those tools kept in the store.
//!
//! adopt reads the other tool's history table in the service's store, as
//! the service, matches each row to the service's migration file by
//! version, checks the file against the tool's own checksum where the tool
//! keeps one ([`checksum`]), and copies the history into
//! `silo_schema_history` with its original times and users. The other
//! tool's table is read, never changed.
//!
//! The copy is faithful, so silo's own rules then judge it: a file that is
//! not what the tool applied is recorded with the tool's checksum (`silo
//! info` shows it `checksum-mismatch` and `migrate` refuses until someone
//! restores the file or accepts it with `silo repair`), a failed row is
//! recorded as failed (never as applied), and a row whose file is gone is
//! recorded so `info` shows it missing. Each of these is reported. Rows that
//! are already in silo's history are left alone, so a second run changes
//! nothing.

pub mod checksum;
mod tools;

use std::collections::HashMap;

use serde::Serialize;

use crate::error::MigrateError;
use crate::file::{Kind, Migration};
use crate::history::{HistoryKind, HistoryRow, NewRow, TABLE};
use crate::run::Prepared;
use crate::target::Target;
use crate::version::Version;

pub use tools::{ForeignRow, Tool, check_table_name};

/// What to adopt.
#[derive(Debug, Clone)]
pub struct Options {
    pub tool: Tool,
    /// The tool's history table, when not its default name.
    pub table: Option<String>,
    /// Report what would be recorded; write nothing.
    pub dry_run: bool,
}

/// What became of one row of the other tool's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The file is the one the tool applied (its checksum matches, or the
    /// tool keeps none): recorded as applied.
    Matched,
    /// Flyway's baseline marker: recorded as silo's baseline.
    Baseline,
    /// Already in silo's history: nothing to do.
    AlreadyRecorded,
    /// The file is not what the tool applied: recorded with the tool's
    /// checksum, so silo sees the mismatch.
    ChecksumMismatch,
    /// The tool recorded the migration as failed: recorded as failed.
    Failed,
    /// No file has this version: recorded, so silo sees it missing.
    MissingFile,
    /// A repeatable migration whose file changed since the tool ran it:
    /// not recorded, so `silo migrate` runs it again, as the tool would.
    Changed,
    /// A kind of migration silo cannot hold (a Java migration): not
    /// recorded.
    Unsupported,
    /// Not a migration (Flyway's schema-creation marker), or replaced by a
    /// later row: not recorded.
    Skipped,
}

impl Outcome {
    /// Whether someone has to look at it.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            Outcome::ChecksumMismatch
                | Outcome::Failed
                | Outcome::MissingFile
                | Outcome::Unsupported
        )
    }

    /// The outcome in words, as `--json` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::Baseline => "baseline",
            Outcome::AlreadyRecorded => "already-recorded",
            Outcome::ChecksumMismatch => "checksum-mismatch",
            Outcome::Failed => "failed",
            Outcome::MissingFile => "missing-file",
            Outcome::Changed => "changed",
            Outcome::Unsupported => "unsupported",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One row of the other tool's history and what adopt made of it.
#[derive(Debug, Clone, Serialize)]
pub struct AdoptedRow {
    pub version: Option<String>,
    pub description: String,
    /// The silo file it matched, or the name the tool gave it.
    pub script: String,
    /// When the tool applied it (ISO 8601, UTC).
    pub installed_on: String,
    /// Who applied it, when the tool records that (Flyway).
    pub installed_by: Option<String>,
    /// Whether the tool recorded it as successful.
    pub success: bool,
    pub outcome: Outcome,
    /// Whether this run writes it to `silo_schema_history` (would, in a
    /// dry run).
    pub recorded: bool,
    /// What was compared and found, in words.
    pub detail: String,
}

/// The result of one adoption.
#[derive(Debug, Clone, Serialize)]
pub struct Adoption {
    pub tool: Tool,
    pub table: String,
    pub dry_run: bool,
    /// Every row of the other tool's history, in its order.
    pub rows: Vec<AdoptedRow>,
}

impl Adoption {
    /// Rows written (or to be written) to silo's history by this run.
    pub fn recorded(&self) -> usize {
        self.rows.iter().filter(|r| r.recorded).count()
    }

    /// Rows someone has to look at.
    pub fn problems(&self) -> impl Iterator<Item = &AdoptedRow> {
        self.rows.iter().filter(|r| r.outcome.is_problem())
    }

    /// Rows that were already in silo's history.
    pub fn already_recorded(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.outcome == Outcome::AlreadyRecorded)
            .count()
    }
}

/// Another tool's history table found in a store.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub tool: Tool,
    pub table: String,
    /// How many rows it holds; `None` when the service may not read it.
    pub rows: Option<u64>,
}

/// The other tools' history tables (under their default names) in the
/// store, with their row counts.
pub async fn detect(target: &mut dyn Target) -> Result<Vec<Found>, MigrateError> {
    let engine = target.engine();
    let mut found = Vec::new();
    for tool in Tool::ALL {
        let table = tool.default_table();
        if !exists(target, table).await? {
            continue;
        }
        let rows = target
            .query_text(&tools::count_query(engine, table), &[], "counting rows")
            .await
            .ok()
            .and_then(|r| r.into_iter().next())
            .and_then(|r| r.into_iter().next().flatten())
            .and_then(|n| n.parse().ok());
        found.push(Found {
            tool,
            table: table.to_string(),
            rows,
        });
    }
    Ok(found)
}

async fn exists(target: &mut dyn Target, table: &str) -> Result<bool, MigrateError> {
    let engine = target.engine();
    let rows = target
        .query_text(
            tools::exists_query(engine),
            &[&tools::exists_arg(engine, table)],
            "looking for another tool's history table",
        )
        .await?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .is_some_and(Option::is_some))
}

/// Adopts the history of `options.tool` in the store of `target`, matching
/// its rows to `prepared` (the service's files). Without `dry_run`, the
/// new rows are written in one transaction under the migration lock.
pub async fn adopt(
    target: &mut dyn Target,
    prepared: &[Prepared],
    options: &Options,
) -> Result<Adoption, MigrateError> {
    let table = options
        .table
        .clone()
        .unwrap_or_else(|| options.tool.default_table().to_string());
    check_table_name(&table).map_err(MigrateError::Refused)?;
    if options.dry_run {
        let foreign = read(target, options.tool, &table).await?;
        let history = target.history().await?;
        return Ok(plan(options.tool, &table, true, foreign, prepared, &history)?.0);
    }
    crate::run::lock_for_history(target).await?;
    let result = async {
        target.begin().await?;
        let written = async {
            let foreign = read(target, options.tool, &table).await?;
            target.ensure_history().await?;
            let history = target.history().await?;
            let (adoption, writes) =
                plan(options.tool, &table, false, foreign, prepared, &history)?;
            for w in &writes {
                target
                    .record_adopted(&w.row, &w.installed_by, &w.installed_on)
                    .await?;
            }
            crate::run::unless_cancelled(&*target)?;
            Ok::<_, MigrateError>(adoption)
        }
        .await;
        match written {
            Ok(adoption) => {
                target.commit().await?;
                Ok(adoption)
            }
            Err(e) => {
                let _ = target.rollback().await;
                Err(e)
            }
        }
    }
    .await;
    let unlocked = target.unlock().await;
    let adoption = result?;
    unlocked?;
    Ok(adoption)
}

async fn read(
    target: &mut dyn Target,
    tool: Tool,
    table: &str,
) -> Result<Vec<ForeignRow>, MigrateError> {
    if !exists(target, table).await? {
        return Err(MigrateError::NoForeignHistory {
            tool,
            table: table.to_string(),
        });
    }
    let engine = target.engine();
    let rows = target
        .query_text(
            &tools::read_query(tool, engine, table),
            &[],
            &format!("reading {table}"),
        )
        .await?;
    Ok(rows.into_iter().map(tools::parse_row).collect())
}

/// A row to write to silo's history.
struct Write {
    row: NewRow,
    installed_by: String,
    installed_on: String,
}

/// silo history rows are counted by kind and version (or script, for
/// repeatables): the n-th row of the other tool with a key is already
/// adopted when silo's history holds n rows with it.
type Key = (HistoryKind, String);

fn key_of(kind: HistoryKind, version: Option<&str>, script: &str) -> Option<Key> {
    if kind == HistoryKind::Repeatable {
        return Some((kind, script.to_string()));
    }
    let version = Version::parse(version?).ok()?;
    Some((kind, version.canonical()))
}

/// Decides every row's outcome and the rows to write. Pure: the store is
/// read before and written after.
fn plan(
    tool: Tool,
    table: &str,
    dry_run: bool,
    foreign: Vec<ForeignRow>,
    prepared: &[Prepared],
    history: &[HistoryRow],
) -> Result<(Adoption, Vec<Write>), MigrateError> {
    let mut existing: HashMap<Key, usize> = HashMap::new();
    for row in history {
        if let Some(k) = key_of(row.kind, row.version.as_deref(), &row.script) {
            *existing.entry(k).or_default() += 1;
        }
    }
    let mut used: HashMap<Key, usize> = HashMap::new();
    let files: Vec<&Prepared> = prepared.iter().collect();

    // A Flyway `DELETE` row (written by `flyway repair` for a migration
    // whose file is gone) cancels the rows of its version before it.
    let deleted: Vec<(usize, String)> = foreign
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == "DELETE")
        .filter_map(|(i, r)| Some((i, canonical(r.version.as_deref()?)?)))
        .collect();
    // Only the latest run of a repeatable migration counts.
    let mut latest_repeatable: HashMap<String, usize> = HashMap::new();
    for (i, r) in foreign.iter().enumerate() {
        if r.version.is_none() && r.kind == "SQL" {
            latest_repeatable.insert(base_name(r.script.as_deref().unwrap_or("")), i);
        }
    }

    let mut rows = Vec::new();
    let mut writes = Vec::new();
    for (i, r) in foreign.iter().enumerate() {
        let mut out = AdoptedRow {
            version: r.version.clone(),
            description: r.description.clone(),
            script: r
                .script
                .as_deref()
                .map(base_name)
                .unwrap_or_else(|| synthetic_script(tool, r)),
            installed_on: r.installed_on.clone(),
            installed_by: r.installed_by.clone(),
            success: r.success,
            outcome: Outcome::Skipped,
            recorded: false,
            detail: String::new(),
        };
        let decided = decide(tool, i, r, &files, &deleted, &latest_repeatable)?;
        out.outcome = decided.outcome;
        out.detail = decided.detail;
        if let Some(file) = decided.file {
            out.script = file.script.clone();
            out.description = file.description.clone();
            out.version = file.version.as_ref().map(|v| v.to_string()).or(out.version);
        }
        if let Some(new) = decided.record {
            let key = key_of(new.kind, new.version.as_deref(), &new.script);
            let already = key.is_some_and(|k| {
                let n = used.entry(k.clone()).or_default();
                *n += 1;
                *n <= existing.get(&k).copied().unwrap_or(0)
            });
            if already {
                out.outcome = Outcome::AlreadyRecorded;
                out.detail = format!("already in {TABLE}");
            } else {
                out.recorded = true;
                writes.push(Write {
                    row: new,
                    installed_by: r
                        .installed_by
                        .clone()
                        .unwrap_or_else(|| tool.as_str().to_string()),
                    installed_on: r.installed_on.clone(),
                });
            }
        }
        rows.push(out);
    }
    Ok((
        Adoption {
            tool,
            table: table.to_string(),
            dry_run,
            rows,
        },
        writes,
    ))
}

/// One row's outcome, the file it matched and what to write.
struct Decided<'a> {
    outcome: Outcome,
    detail: String,
    file: Option<&'a Migration>,
    record: Option<NewRow>,
}

impl<'a> Decided<'a> {
    fn skip(outcome: Outcome, detail: String) -> Self {
        Decided {
            outcome,
            detail,
            file: None,
            record: None,
        }
    }
}

fn decide<'a>(
    tool: Tool,
    index: usize,
    r: &ForeignRow,
    files: &[&'a Prepared],
    deleted: &[(usize, String)],
    latest_repeatable: &HashMap<String, usize>,
) -> Result<Decided<'a>, MigrateError> {
    let title = tool.title();
    match r.kind.as_str() {
        "SCHEMA" => {
            return Ok(Decided::skip(
                Outcome::Skipped,
                "Flyway's note that it created the schema: not a migration".into(),
            ));
        }
        "DELETE" => {
            return Ok(Decided::skip(
                Outcome::Skipped,
                "Flyway repair's mark that this migration was deleted: its earlier rows are not adopted".into(),
            ));
        }
        "BASELINE" => {
            let record = r.version.as_ref().map(|v| NewRow {
                version: Some(v.clone()),
                description: r.description.clone(),
                kind: HistoryKind::Baseline,
                script: r
                    .script
                    .clone()
                    .unwrap_or_else(|| "<< Flyway Baseline >>".into()),
                checksum: None,
                execution_time_ms: r.execution_time_ms,
                success: r.success,
            });
            let detail = match &r.version {
                Some(v) => format!("Flyway's baseline: files up to version {v} never run"),
                None => "Flyway's baseline without a version: not adopted".into(),
            };
            return Ok(Decided {
                outcome: if record.is_some() {
                    Outcome::Baseline
                } else {
                    Outcome::Skipped
                },
                detail,
                file: None,
                record,
            });
        }
        "SQL" | "UNDO_SQL" => {}
        other => {
            return Ok(Decided::skip(
                Outcome::Unsupported,
                format!(
                    "a Flyway `{other}` migration: silo runs SQL files only; write it as SQL, or baseline past it"
                ),
            ));
        }
    }
    let undo = r.kind == "UNDO_SQL";

    // A repeatable migration (Flyway only: a SQL row without a version).
    let Some(version_text) = r.version.as_deref() else {
        let script = base_name(r.script.as_deref().unwrap_or(""));
        if latest_repeatable.get(&script) != Some(&index) {
            return Ok(Decided::skip(
                Outcome::Skipped,
                "an earlier run of a repeatable migration that ran again later".into(),
            ));
        }
        let file = files
            .iter()
            .find(|p| p.migration.kind == Kind::Repeatable && p.migration.script == script);
        return repeatable(r, script, file.copied());
    };

    // A later `flyway repair` marked this version deleted.
    let key = canonical(version_text);
    if deleted
        .iter()
        .any(|(at, v)| *at > index && Some(v) == key.as_ref())
    {
        return Ok(Decided::skip(
            Outcome::Skipped,
            "marked deleted by a later `flyway repair`".into(),
        ));
    }

    let want = if undo { Kind::Undo } else { Kind::Versioned };
    let file = files.iter().map(|p| &p.migration).find(|m| {
        m.kind == want
            && m.version
                .as_ref()
                .is_some_and(|v| same_version(tool, v, version_text))
    });
    let kind = if undo {
        HistoryKind::Undo
    } else {
        HistoryKind::Versioned
    };
    let Some(file) = file else {
        let detail = if r.success {
            format!("{title} applied version {version_text}, but no file has that version")
        } else {
            format!(
                "{title} recorded version {version_text} as failed, and no file has that version"
            )
        };
        return Ok(Decided {
            outcome: if r.success {
                Outcome::MissingFile
            } else {
                Outcome::Failed
            },
            detail,
            file: None,
            record: Some(NewRow {
                version: Some(version_text.to_string()),
                description: if r.description.is_empty() {
                    format!("{title} migration {version_text}")
                } else {
                    r.description.clone()
                },
                kind,
                script: r
                    .script
                    .as_deref()
                    .map(base_name)
                    .unwrap_or_else(|| synthetic_script(tool, r)),
                checksum: r.checksum.as_ref().map(|c| marker(tool, c)),
                execution_time_ms: r.execution_time_ms,
                success: r.success,
            }),
        });
    };
    let new_row = |checksum: String| NewRow {
        version: file.version.as_ref().map(|v| v.to_string()),
        description: file.description.clone(),
        kind,
        script: file.script.clone(),
        checksum: Some(checksum),
        execution_time_ms: r.execution_time_ms,
        success: r.success,
    };
    if !r.success {
        return Ok(Decided {
            outcome: Outcome::Failed,
            detail: format!(
                "{title} recorded it as failed: recorded as failed, never as applied (it may be half applied)"
            ),
            file: Some(file),
            record: Some(new_row(file.checksum.clone())),
        });
    }
    let (matched, detail) = compare(tool, r, file)?;
    Ok(Decided {
        outcome: if matched {
            Outcome::Matched
        } else {
            Outcome::ChecksumMismatch
        },
        detail,
        file: Some(file),
        record: Some(new_row(if matched {
            file.checksum.clone()
        } else {
            // Anything but the file's checksum makes silo see the mismatch;
            // the tool's own value says where it came from.
            marker(tool, r.checksum.as_deref().unwrap_or("none"))
        })),
    })
}

/// The latest run of a Flyway repeatable migration.
fn repeatable<'a>(
    r: &ForeignRow,
    script: String,
    file: Option<&'a Prepared>,
) -> Result<Decided<'a>, MigrateError> {
    let new_row = |checksum: Option<String>, description: String| NewRow {
        version: None,
        description,
        kind: HistoryKind::Repeatable,
        script: script.clone(),
        checksum,
        execution_time_ms: r.execution_time_ms,
        success: r.success,
    };
    let Some(p) = file else {
        return Ok(Decided {
            outcome: if r.success {
                Outcome::MissingFile
            } else {
                Outcome::Failed
            },
            detail: format!("Flyway ran {script}, but there is no such file"),
            file: None,
            record: Some(new_row(
                r.checksum.as_ref().map(|c| marker(Tool::Flyway, c)),
                r.description.clone(),
            )),
        });
    };
    let m = &p.migration;
    if !r.success {
        return Ok(Decided {
            outcome: Outcome::Failed,
            detail: "Flyway recorded its last run as failed: recorded as failed".into(),
            file: Some(m),
            record: Some(new_row(Some(m.checksum.clone()), m.description.clone())),
        });
    }
    // Flyway checksums a repeatable after replacing placeholders; silo's
    // `${...}` are Flyway's syntax, so try the file as it is and as silo
    // substitutes it.
    let stored = r
        .checksum
        .as_deref()
        .and_then(|c| c.trim().parse::<i32>().ok());
    let raw = checksum::flyway(&raw_bytes(m)?);
    let substituted = checksum::flyway(p.sql.text.as_bytes());
    if stored.is_some_and(|c| c == raw || c == substituted) {
        Ok(Decided {
            outcome: Outcome::Matched,
            detail: format!(
                "Flyway checksum {} matches the file",
                stored.unwrap_or_default()
            ),
            file: Some(m),
            record: Some(new_row(Some(m.checksum.clone()), m.description.clone())),
        })
    } else {
        Ok(Decided {
            outcome: Outcome::Changed,
            detail: format!(
                "changed since Flyway last ran it (Flyway checksum {}, the file's {raw}): `silo migrate` runs it again, as Flyway would",
                r.checksum.as_deref().unwrap_or("none")
            ),
            file: Some(m),
            record: None,
        })
    }
}

/// Compares a successful row's checksum with the file's, the tool's way.
fn compare(tool: Tool, r: &ForeignRow, file: &Migration) -> Result<(bool, String), MigrateError> {
    let stored = r.checksum.as_deref().map(str::trim);
    let bytes = raw_bytes(file)?;
    Ok(match tool {
        Tool::Diesel => (
            true,
            "diesel keeps no checksum: matched by version only".into(),
        ),
        Tool::Flyway => {
            let ours = checksum::flyway(&bytes);
            match stored {
                None => (
                    true,
                    "Flyway kept no checksum: matched by version only".into(),
                ),
                Some(c) if c.parse::<i32>().ok() == Some(ours) => {
                    (true, format!("Flyway checksum {ours} matches the file"))
                }
                Some(c) => (
                    false,
                    format!(
                        "the file is not what Flyway applied: Flyway recorded checksum {c}, the file's is {ours}"
                    ),
                ),
            }
        }
        Tool::Sqlx => {
            let ours = checksum::sqlx(&bytes);
            match stored {
                Some(c) if c.eq_ignore_ascii_case(&ours) => {
                    (true, "sqlx checksum (SHA-384) matches the file".into())
                }
                c => (
                    false,
                    format!(
                        "the file is not what sqlx applied: sqlx recorded SHA-384 {}..., the file's is {}...",
                        short(c.unwrap_or("none")),
                        short(&ours)
                    ),
                ),
            }
        }
        Tool::Refinery => {
            let name = file
                .script
                .split_once("__")
                .map(|(_, rest)| rest.strip_suffix(".sql").unwrap_or(rest))
                .unwrap_or_default();
            let version: i64 = r
                .version
                .as_deref()
                .and_then(|v| v.parse().ok())
                .unwrap_or_default();
            // refinery hashes the text as read, byte-order mark included.
            let text = String::from_utf8_lossy(&bytes);
            let ours = checksum::refinery(name, version, &text);
            match stored.and_then(|c| c.parse::<u64>().ok()) {
                Some(c) if ours.contains(&c) => {
                    (true, format!("refinery checksum {c} matches the file"))
                }
                _ => (
                    false,
                    format!(
                        "the file is not what refinery applied: refinery recorded checksum {}, the file's is {}",
                        stored.unwrap_or("none"),
                        ours[0]
                    ),
                ),
            }
        }
    })
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

/// What silo records as the checksum of a row whose file does not match:
/// the tool's own value, marked with the tool's name. It never equals a
/// silo checksum, so `silo info` shows the row as changed.
fn marker(tool: Tool, checksum: &str) -> String {
    format!("{tool}:{checksum}")
}

/// Whether a file's version is the one a tool recorded. diesel records the
/// folder name's digits (`2019-02-26-002946` as `20190226002946`), which
/// `silo migrations import` turns into `V2019_02_26_002946`; the others
/// record the number itself.
fn same_version(tool: Tool, file: &Version, recorded: &str) -> bool {
    match tool {
        Tool::Diesel => {
            let digits: String = file.as_str().chars().filter(char::is_ascii_digit).collect();
            let recorded: String = recorded.chars().filter(char::is_ascii_digit).collect();
            digits.trim_start_matches('0') == recorded.trim_start_matches('0')
        }
        _ => Version::parse(recorded).is_ok_and(|v| &v == file),
    }
}

fn canonical(version: &str) -> Option<String> {
    Version::parse(version).ok().map(|v| v.canonical())
}

/// Flyway's `script` may name a file under a folder of its location.
fn base_name(script: &str) -> String {
    script.rsplit('/').next().unwrap_or(script).to_string()
}

/// A file name for a row whose tool keeps none (sqlx, diesel, refinery).
fn synthetic_script(tool: Tool, r: &ForeignRow) -> String {
    let description: String = r
        .description
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let description = if description.is_empty() {
        tool.as_str().to_string()
    } else {
        description
    };
    format!(
        "V{}__{description}.sql",
        r.version.as_deref().unwrap_or("0")
    )
}

/// The file's bytes as the other tool read them (before silo removes a
/// byte-order mark).
fn raw_bytes(m: &Migration) -> Result<Vec<u8>, MigrateError> {
    std::fs::read(&m.path).map_err(|source| MigrateError::Io {
        path: m.path.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::checksum as silo_checksum;

    fn file(dir: &std::path::Path, name: &str, sql: &str) -> Migration {
        let path = dir.join(name);
        std::fs::write(&path, sql).unwrap();
        let parsed = crate::file::parse_file_name(name).unwrap().unwrap();
        Migration {
            kind: parsed.kind,
            version: parsed.version,
            description: parsed.description,
            script: name.to_string(),
            path,
            sql: sql.to_string(),
            checksum: silo_checksum(sql.as_bytes()),
        }
    }

    fn prepared(files: Vec<Migration>) -> Vec<Prepared> {
        let service = silo_manifest::Manifest::from_str(
            "[project]\nname = \"t\"\n[services.a]\n",
            std::path::Path::new("/x/silo.toml"),
            &silo_manifest::Overrides::default(),
        )
        .unwrap()
        .services
        .remove(0);
        crate::run::prepare(&files, &service).unwrap()
    }

    fn flyway_row(
        version: Option<&str>,
        kind: &str,
        script: &str,
        checksum: Option<i32>,
    ) -> ForeignRow {
        ForeignRow {
            version: version.map(str::to_string),
            description: "x".into(),
            kind: kind.into(),
            script: Some(script.into()),
            checksum: checksum.map(|c| c.to_string()),
            installed_by: Some("deployer".into()),
            installed_on: "2024-05-01T10:00:00.000000Z".into(),
            execution_time_ms: 12,
            success: true,
        }
    }

    fn outcomes(a: &Adoption) -> Vec<(&str, Outcome, bool)> {
        a.rows
            .iter()
            .map(|r| (r.script.as_str(), r.outcome, r.recorded))
            .collect()
    }

    #[test]
    fn flyway_rows_are_matched_checked_and_classified() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = "CREATE TABLE a (id int);\n";
        let v2 = "CREATE TABLE b (id int);\n";
        let r1 = "CREATE VIEW v AS SELECT 1;\n";
        let files = prepared(vec![
            file(dir.path(), "V001__a.sql", v1),
            file(dir.path(), "V002__b.sql", v2),
            file(dir.path(), "R__v.sql", r1),
        ]);
        let rows = vec![
            flyway_row(None, "SCHEMA", "\"public\"", None),
            flyway_row(
                Some("1"),
                "SQL",
                "V001__a.sql",
                Some(checksum::flyway(v1.as_bytes())),
            ),
            flyway_row(Some("2"), "SQL", "V002__b.sql", Some(12345)),
            flyway_row(None, "SQL", "R__v.sql", Some(1)),
            flyway_row(
                None,
                "SQL",
                "R__v.sql",
                Some(checksum::flyway(r1.as_bytes())),
            ),
            flyway_row(Some("3"), "SQL", "sub/V3__gone.sql", Some(7)),
            flyway_row(Some("4"), "JDBC", "db.migration.V4__Java", None),
        ];
        let (a, writes) = plan(
            Tool::Flyway,
            "flyway_schema_history",
            false,
            rows,
            &files,
            &[],
        )
        .unwrap();
        assert_eq!(
            outcomes(&a),
            [
                ("\"public\"", Outcome::Skipped, false),
                ("V001__a.sql", Outcome::Matched, true),
                ("V002__b.sql", Outcome::ChecksumMismatch, true),
                ("R__v.sql", Outcome::Skipped, false),
                ("R__v.sql", Outcome::Matched, true),
                ("V3__gone.sql", Outcome::MissingFile, true),
                ("db.migration.V4__Java", Outcome::Unsupported, false),
            ]
        );
        assert_eq!(a.problems().count(), 3);
        // Matched rows carry silo's checksum of the file; the mismatch the
        // tool's own value, so silo sees it.
        assert_eq!(
            writes[0].row.checksum.as_deref(),
            Some(silo_checksum(v1.as_bytes()).as_str())
        );
        assert_eq!(writes[1].row.checksum.as_deref(), Some("flyway:12345"));
        assert_eq!(writes[0].installed_by, "deployer");
        assert_eq!(writes[0].installed_on, "2024-05-01T10:00:00.000000Z");

        // With those rows in silo's history, nothing is left to record.
        let history: Vec<HistoryRow> = writes
            .iter()
            .enumerate()
            .map(|(i, w)| HistoryRow {
                installed_rank: i as i32 + 1,
                version: w.row.version.clone(),
                description: w.row.description.clone(),
                kind: w.row.kind,
                script: w.row.script.clone(),
                checksum: w.row.checksum.clone(),
                installed_by: w.installed_by.clone(),
                installed_on: w.installed_on.clone(),
                execution_time_ms: 0,
                success: w.row.success,
                progress: None,
            })
            .collect();
        let rows = vec![
            flyway_row(
                Some("1"),
                "SQL",
                "V001__a.sql",
                Some(checksum::flyway(v1.as_bytes())),
            ),
            flyway_row(Some("2"), "SQL", "V002__b.sql", Some(12345)),
        ];
        let (a, writes) = plan(Tool::Flyway, "t", false, rows, &files, &history).unwrap();
        assert!(writes.is_empty());
        assert!(a.rows.iter().all(|r| r.outcome == Outcome::AlreadyRecorded));
    }

    #[test]
    fn flyway_failed_baseline_and_deleted_rows() {
        let dir = tempfile::tempdir().unwrap();
        let files = prepared(vec![
            file(dir.path(), "V1__a.sql", "SELECT 1;"),
            file(dir.path(), "V2__b.sql", "SELECT 2;"),
            file(dir.path(), "V3__c.sql", "SELECT 3;"),
        ]);
        let mut failed = flyway_row(Some("3"), "SQL", "V3__c.sql", Some(1));
        failed.success = false;
        let rows = vec![
            flyway_row(Some("1"), "BASELINE", "<< Flyway Baseline >>", None),
            flyway_row(Some("2"), "SQL", "V2__b.sql", Some(5)),
            flyway_row(Some("2"), "DELETE", "V2__b.sql", None),
            failed,
        ];
        let (a, writes) = plan(Tool::Flyway, "t", true, rows, &files, &[]).unwrap();
        assert_eq!(
            outcomes(&a),
            [
                ("<< Flyway Baseline >>", Outcome::Baseline, true),
                ("V2__b.sql", Outcome::Skipped, false),
                ("V2__b.sql", Outcome::Skipped, false),
                ("V3__c.sql", Outcome::Failed, true),
            ]
        );
        assert_eq!(writes[0].row.kind, HistoryKind::Baseline);
        assert!(
            !writes[1].row.success,
            "a failed row is never recorded as applied"
        );
    }

    /// A repeatable migration changed since Flyway last ran it is left for
    /// `silo migrate` to run again, as Flyway would: not a problem, not
    /// recorded.
    #[test]
    fn a_changed_repeatable_is_left_to_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let files = prepared(vec![file(
            dir.path(),
            "R__v.sql",
            "CREATE VIEW v AS SELECT 2;\n",
        )]);
        let old = checksum::flyway(b"CREATE VIEW v AS SELECT 1;\n");
        let rows = vec![flyway_row(None, "SQL", "R__v.sql", Some(old))];
        let (a, writes) = plan(Tool::Flyway, "t", false, rows, &files, &[]).unwrap();
        assert_eq!(outcomes(&a), [("R__v.sql", Outcome::Changed, false)]);
        assert!(writes.is_empty());
        assert_eq!(a.problems().count(), 0);
    }

    #[test]
    fn diesel_versions_are_the_folder_digits() {
        let v = Version::parse("2019_02_26_002946").unwrap();
        assert!(same_version(Tool::Diesel, &v, "20190226002946"));
        assert!(!same_version(Tool::Diesel, &v, "20190226002947"));
        let zero = Version::parse("00000000000000").unwrap();
        assert!(same_version(Tool::Diesel, &zero, "00000000000000"));
        assert!(same_version(
            Tool::Sqlx,
            &Version::parse("001").unwrap(),
            "1"
        ));
    }
}
