//! Migration errors. Each names the service, the file and, for SQL, the
//! line and column in the file.

use std::path::PathBuf;
use std::time::Duration;

use silo_migration_files::FileError;
use silo_store::StoreError;

/// Where in a migration file something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The byte offset of this line and column (both 1-based, the column
    /// counted in characters) in `text`: the end of the text when it lies
    /// beyond it.
    pub fn offset_in(&self, text: &str) -> usize {
        let line_start: usize = text
            .split_inclusive('\n')
            .take(self.line.saturating_sub(1))
            .map(str::len)
            .sum();
        let rest = &text[line_start.min(text.len())..];
        line_start.min(text.len())
            + rest
                .char_indices()
                .nth(self.column.saturating_sub(1))
                .map_or(rest.len(), |(i, _)| i)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// A migration that the database refused.
#[derive(Debug, Clone)]
pub struct Failure {
    pub script: String,
    /// Where the error points, when it could be located.
    pub location: Option<Location>,
    /// The statement that failed, when known.
    pub statement: Option<String>,
    /// The server's message.
    pub message: String,
    /// SQLSTATE (PostgreSQL) or extended result code (SQLite).
    pub code: Option<String>,
    /// Whether the store is as it was (transactional file) or may hold a
    /// partial change (no-transaction file).
    pub rolled_back: bool,
    /// The file's text, named by its path, as it was run: what the
    /// diagnostic shows with the failing spot underlined.
    pub source: Option<miette::NamedSource<String>>,
}

impl Failure {
    /// What the failure left and what to do next.
    pub fn help(&self) -> &'static str {
        if self.rolled_back {
            "the file ran in a transaction: it was rolled back and is not recorded as applied"
        } else {
            "the file ran outside a transaction: statements before the failing one stay applied, and `silo info` shows it partial. Fix the failing statement and run again with --resume to go on from it; or revert what ran by hand, then `silo repair`"
        }
    }

    /// The span the diagnostic underlines: from the location, as long as
    /// the failing statement (at least one byte), within the file's text.
    fn span(&self) -> Option<miette::SourceSpan> {
        let (location, source) = (self.location.as_ref()?, self.source.as_ref()?);
        let text = source.inner();
        let offset = location.offset_in(text);
        let len = self
            .statement
            .as_ref()
            .map_or(1, |s| s.len().min(text.len() - offset).max(1));
        Some((offset, len).into())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}", self.message)?,
            None => write!(f, "{}: {}", self.script, self.message)?,
        }
        if let Some(code) = &self.code {
            write!(f, " (code {code})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A migrations folder or file that cannot be used as it is.
    #[error(transparent)]
    Files(#[from] FileError),

    #[error("{location}: unknown placeholder `${{{name}}}`")]
    UnknownPlaceholder { location: Location, name: String },

    #[error(transparent)]
    Store(#[from] StoreError),

    #[error("{action} failed")]
    Sql {
        action: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("{0}")]
    Failed(Box<Failure>),

    #[error("another silo migrate has held the lock for {0:?}; gave up (--lock-timeout)")]
    LockTimeout(Duration),

    #[error(
        "the history table was written by a newer silo (format {found}; this silo reads format {supported})"
    )]
    NewerHistory { found: u32, supported: u32 },

    #[error(
        "row {rank} of the history table has type `{kind}`, which silo does not write (versioned, undo, repeatable, baseline)"
    )]
    UnknownHistoryKind { rank: i32, kind: String },

    #[error("validation failed: {0}")]
    Validation(String),

    #[error("cannot undo version {version}: {reason}")]
    Undo { version: String, reason: String },

    #[error("{0}")]
    Refused(String),

    /// The backup taken before migrating (`silo migrate --backup-first`)
    /// failed, so the store was not migrated.
    #[error("not migrated: the backup {reason} failed: {cause}")]
    BackupFirst { reason: String, cause: String },

    #[error(
        "the store holds {}'s history ({table}, {}) and no silo history: migrating would run again what {} applied",
        tool.title(),
        rows_text(*rows),
        tool.title()
    )]
    ForeignHistory {
        tool: crate::adopt::Tool,
        table: String,
        rows: Option<u64>,
    },

    #[error("the store has no table {table}: there is no {} history to adopt", tool.title())]
    NoForeignHistory {
        tool: crate::adopt::Tool,
        table: String,
    },

    /// The run was called off through its [`crate::Cancel`] token.
    #[error("{0}")]
    Cancelled(Box<Cancelled>),

    /// A file that runs outside a transaction stopped part way; running it
    /// again from the start would repeat what it already did.
    #[error("{0}")]
    Partial(Box<PartialStop>),
}

/// What a cancelled run left: what was running and what became of it, and
/// which versions the store holds.
#[derive(Debug, Clone)]
pub struct Cancelled {
    pub stopped: Stopped,
    /// Versions applied in the store once the run had stopped, oldest
    /// first; `None` when they could not be read.
    pub applied: Option<Vec<String>>,
}

/// Where a cancelled run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The run was cancelled before it reached this store: nothing was
    /// read or changed.
    NotStarted,
    /// No file was running: the run waited for the lock, or was between
    /// files.
    BetweenFiles,
    /// A file that runs in a transaction: rolled back, nothing of it is
    /// applied.
    RolledBack { script: String },
    /// A file that runs outside a transaction, statement by statement:
    /// its first `done` of `total` statements are applied (recorded as
    /// partly applied when `done` > 0; `silo migrate --resume` goes on).
    Partial {
        script: String,
        /// Whether it is a U file (`silo undo --resume` goes on with it).
        undo: bool,
        done: usize,
        total: usize,
    },
    /// A change to the history alone (repair, baseline, adopt): rolled
    /// back.
    HistoryUnchanged,
    /// Work on a scratch store (verify, diff): the scratch store was
    /// dropped; the service's own store was not touched.
    Scratch,
}

impl Cancelled {
    /// A cancellation at `stopped`, the store's versions not read yet.
    pub fn new(stopped: Stopped) -> Self {
        Cancelled {
            stopped,
            applied: None,
        }
    }
}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.stopped {
            Stopped::NotStarted => {
                return write!(f, "not started: cancelled before silo reached this store");
            }
            Stopped::BetweenFiles => write!(f, "cancelled before the next file started")?,
            Stopped::RolledBack { script } => write!(
                f,
                "{script} was cancelled and rolled back; nothing of it is applied"
            )?,
            Stopped::Partial {
                script,
                done: 0,
                total,
                ..
            } => write!(
                f,
                "{script} was cancelled at its first statement (of {total}); nothing of it is applied and it is pending again"
            )?,
            Stopped::Partial {
                script,
                done,
                total,
                ..
            } => write!(
                f,
                "{script} was cancelled after statement {done} of {total}: it runs outside a transaction, so {} applied and the rest is not; `silo info` shows it partial",
                statements_text(*done, "is", "are")
            )?,
            Stopped::HistoryUnchanged => {
                return write!(f, "cancelled; the history was not changed");
            }
            Stopped::Scratch => {
                return write!(
                    f,
                    "cancelled; the scratch store was dropped and the service's own store was not touched"
                );
            }
        }
        match self.applied.as_deref() {
            None => Ok(()),
            Some([]) => write!(f, "; no version is applied"),
            Some(versions) => write!(f, "; {}", applied_text(versions)),
        }
    }
}

/// `V1, V2 applied` or, for many, `V1 to V41 applied (41 versions)`.
fn applied_text(versions: &[String]) -> String {
    match versions {
        [first, .., last] if versions.len() > 5 => {
            format!("V{first} to V{last} applied ({} versions)", versions.len())
        }
        _ => {
            let list: Vec<String> = versions.iter().map(|v| format!("V{v}")).collect();
            format!("{} applied", list.join(", "))
        }
    }
}

/// `statement 1 is`, `statements 1 and 2 are`, `statements 1 to 5 are`
/// (the verb left out when empty).
fn statements_text(n: usize, one: &str, many: &str) -> String {
    let (text, verb) = match n {
        1 => ("statement 1".to_string(), one),
        2 => ("statements 1 and 2".to_string(), many),
        n => (format!("statements 1 to {n}"), many),
    };
    if verb.is_empty() {
        text
    } else {
        format!("{text} {verb}")
    }
}

/// A file found partly applied: it ran outside a transaction and stopped
/// (cancelled, failed, or silo was killed) before its last statement was
/// recorded.
#[derive(Debug, Clone)]
pub struct PartialStop {
    pub script: String,
    /// `versioned`, `undo` or `repeatable`.
    pub kind: String,
    /// Statements recorded done (the first `done`).
    pub done: usize,
    /// Statements in the file when it started.
    pub total: usize,
    /// The statement that was running when silo stopped, when it never
    /// learned how it ended: it may or may not have taken effect.
    pub running: Option<usize>,
    /// How the statement after the last one done ended, when known.
    pub stopped: Option<crate::history::StopReason>,
    /// The line of the statement after the last one done, in the file as
    /// it is now.
    pub next_line: Option<usize>,
    /// Who ran it (`pid N on HOST`), when that silo is still running on
    /// this host: the file has not stopped, it is being run.
    pub running_elsewhere: Option<String>,
}

impl PartialStop {
    /// The statement `--resume` runs first (1-based).
    pub fn resume_from(&self) -> usize {
        self.done + 1
    }

    fn next(&self) -> String {
        let n = self.resume_from();
        match self.next_line {
            Some(line) => format!("statement {n} (line {line})"),
            None => format!("statement {n}"),
        }
    }
}

impl std::fmt::Display for PartialStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (script, done, total) = (&self.script, self.done, self.total);
        if let Some(who) = &self.running_elsewhere {
            return write!(
                f,
                "{script} is being run right now by another silo ({who}), statement by statement outside a transaction: {done} of {total} statements done"
            );
        }
        if done >= total && self.running.is_none() {
            return write!(
                f,
                "{script} ran all {total} statements outside a transaction, but silo stopped before recording it as applied"
            );
        }
        write!(
            f,
            "{script} stopped after statement {done} of {total}; it runs outside a transaction, so "
        )?;
        match done {
            0 => write!(f, "none of its statements is recorded done")?,
            n => write!(f, "{} applied", statements_text(n, "is", "are"))?,
        }
        let next = self.next();
        match (&self.running, &self.stopped) {
            (Some(_), _) => write!(
                f,
                "; {next} was running when silo stopped and may or may not have taken effect"
            ),
            (None, Some(crate::history::StopReason::Cancelled)) => {
                write!(f, "; {next} was cancelled, and nothing of it is applied")
            }
            (None, Some(crate::history::StopReason::Failed(message))) => {
                write!(f, "; {next} failed: {message}")
            }
            (None, None) => write!(f, "; {next} had not started"),
        }
    }
}

impl PartialStop {
    /// What to do, in words, with the commands to run.
    pub fn help(&self) -> String {
        let (script, done) = (&self.script, self.done);
        if self.running_elsewhere.is_some() {
            return "wait for that run to finish, then run again".into();
        }
        let resume = if self.kind == "undo" {
            "silo undo <service> --resume"
        } else {
            "silo migrate --resume"
        };
        if done >= self.total && self.running.is_none() {
            return format!("`{resume}` records it as applied");
        }
        let from = self.resume_from();
        let check = match self.running {
            Some(n) => format!(
                "check whether statement {n} took effect; if it did, revert it by hand first, since "
            ),
            None => String::new(),
        };
        let first = match done {
            0 => "nothing of it".to_string(),
            n => statements_text(n, "", ""),
        };
        format!(
            "{check}`{resume}` runs {script} on from statement {from} (fix that statement in the file first if it failed; the statements before it must stay as they are). Or revert {first} by hand, then `silo repair <service> --yes`: the file is pending again and runs from the start"
        )
    }
}

fn rows_text(rows: Option<u64>) -> String {
    match rows {
        Some(1) => "1 row".into(),
        Some(n) => format!("{n} rows"),
        None => "rows this service may not read".into(),
    }
}

impl MigrateError {
    pub(crate) fn failed(failure: Failure) -> Self {
        MigrateError::Failed(Box::new(failure))
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            MigrateError::Store(e) => e.hint(),
            MigrateError::Sql { source, .. } if silo_store::is_privilege_error(source) => Some(
                "the service's role lacks a privilege in its own store: `silo up` restores its ownership and grants".into(),
            ),
            MigrateError::Files(e) => e.hint(),
            MigrateError::UnknownPlaceholder { .. } => Some(
                "define it under [services.<name>.placeholders] in silo.toml; ${service}, ${database} and ${role} are built in".into(),
            ),
            MigrateError::LockTimeout(_) => {
                Some("wait for the other run to finish, or raise --lock-timeout".into())
            }
            MigrateError::NewerHistory { .. } => Some("upgrade silo".into()),
            MigrateError::UnknownHistoryKind { .. } => Some(
                "the history table was changed by hand or by another tool: restore the row's type, or remove the row if it records nothing silo ran".into(),
            ),
            MigrateError::ForeignHistory { tool, .. } => Some(format!(
                "adopt it first: `silo migrations adopt <service> --from {tool}` records what {} applied, then `silo migrate` runs only what is new (`--dry-run` shows what it would record); or, if that history does not matter, `silo baseline <service> --version <V>`",
                tool.title()
            )),
            MigrateError::NoForeignHistory { tool, .. } => Some(format!(
                "if {} was told to keep its history in another table, name it with --table",
                tool.title()
            )),
            MigrateError::Partial(p) => Some(p.help()),
            MigrateError::Cancelled(c) => match &c.stopped {
                Stopped::Partial {
                    done, total, undo, ..
                } if *done > 0 && done < total => Some(format!(
                    "`{}` goes on from statement {}; or revert what ran by hand, then `silo repair <service> --yes`",
                    if *undo {
                        "silo undo <service> --resume"
                    } else {
                        "silo migrate --resume"
                    },
                    done + 1
                )),
                _ => None,
            },
            MigrateError::BackupFirst { .. } => Some(
                "the store is as it was: make the backup work (`silo backup <service>` shows the same error), or migrate without one with --no-backup-first".into(),
            ),
            MigrateError::Validation(_) => Some(
                "run `silo validate` for details; `silo repair SERVICE --yes` realigns checksums, `--ignore-mismatch` runs anyway".into(),
            ),
            _ => None,
        }
    }

    /// The message and its innermost cause on one line, the cause in the
    /// server's own words: without the line of the server's C source that
    /// sqlx appends to a database error ("... at line 363"). Every place
    /// that shows a migration error in one line uses this.
    pub fn describe(&self) -> String {
        let top = self.to_string();
        let cause = silo_store::root_cause(self);
        if cause == top || top.ends_with(&cause) {
            top
        } else {
            format!("{top}: {cause}")
        }
    }

    /// Whether the run was called off through its [`crate::Cancel`] token.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, MigrateError::Cancelled(_))
    }

    /// Whether the store could not be reached (exit code 2).
    /// A stable name for the kind of failure: the last part of the
    /// diagnostic code (`silo::migrate::<kind>`).
    pub fn kind(&self) -> &'static str {
        match self {
            MigrateError::Io { .. } => "io",
            MigrateError::Files(_) => "files",
            MigrateError::UnknownPlaceholder { .. } => "unknown-placeholder",
            MigrateError::Store(_) => "store",
            MigrateError::Sql { .. } => "sql",
            MigrateError::Failed(_) => "failed",
            MigrateError::LockTimeout(_) => "lock-timeout",
            MigrateError::NewerHistory { .. } => "newer-history",
            MigrateError::Validation(_) => "validation",
            MigrateError::Undo { .. } => "undo",
            MigrateError::Refused(_) => "refused",
            MigrateError::BackupFirst { .. } => "backup-first",
            MigrateError::ForeignHistory { .. } => "foreign-history",
            MigrateError::NoForeignHistory { .. } => "no-foreign-history",
            MigrateError::UnknownHistoryKind { .. } => "unknown-history-kind",
            MigrateError::Cancelled(_) => "cancelled",
            MigrateError::Partial(_) => "partial",
        }
    }

    /// The documented exit code: a store error's own (2 when a server
    /// cannot be reached or the manifest does not match the stores), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            MigrateError::Store(e) => e.exit_code(),
            _ => 1,
        }
    }
}

pub(crate) fn sql(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> MigrateError {
    let action = action.into();
    move |source| MigrateError::Sql { action, source }
}

impl miette::Diagnostic for MigrateError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(match self {
            MigrateError::Store(e) => format!("silo::store::{}", e.kind()),
            MigrateError::Files(e) => format!("silo::files::{}", e.kind()),
            other => format!("silo::migrate::{}", other.kind()),
        }))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        if let MigrateError::Failed(f) = self {
            return Some(Box::new(f.help()));
        }
        self.hint()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display + 'a>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        match self {
            MigrateError::Failed(f) if f.span().is_some() => {
                f.source.as_ref().map(|s| s as &dyn miette::SourceCode)
            }
            _ => None,
        }
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        match self {
            MigrateError::Failed(f) => {
                let span = f.span()?;
                Some(Box::new(std::iter::once(
                    miette::LabeledSpan::new_with_span(Some("here".into()), span),
                )))
            }
            _ => None,
        }
    }
}

/// A migration error of one service, as silo reports it: `service:
/// message: cause`, with the error's code, source and labels, and its
/// help naming the service.
#[derive(Debug)]
pub struct ServiceError {
    pub service: String,
    pub error: MigrateError,
}

impl ServiceError {
    /// `error`, reported as `service`'s.
    pub fn new(service: impl Into<String>, error: MigrateError) -> Self {
        ServiceError {
            service: service.into(),
            error,
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.service, self.error.describe())
    }
}

// No `source()`: the message already ends with the innermost cause.
impl std::error::Error for ServiceError {}

impl miette::Diagnostic for ServiceError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.error.code()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        let help = self.error.help()?.to_string();
        Some(Box::new(help.replace("<service>", &self.service)))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.error.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.error.labels()
    }
}

#[cfg(test)]
mod tests {
    use super::{Cancelled, Failure, Location, MigrateError, ServiceError, Stopped, applied_text};
    use miette::Diagnostic;

    #[test]
    fn a_failed_file_is_labelled_at_its_line_and_column() {
        // Line 3 starts at byte 10; its 9th character is the `x`, after
        // `SELECTé ` (8 characters in 9 bytes): byte 19.
        let text = "-- first\n\nSELECT\u{e9} x FROM nosuch;\n";
        let failure = Failure {
            script: "V1__a.sql".into(),
            location: Some(Location {
                path: "migrations/V1__a.sql".into(),
                line: 3,
                column: 9,
            }),
            statement: Some("x FROM nosuch".into()),
            message: "no such column: x".into(),
            code: None,
            rolled_back: true,
            source: Some(miette::NamedSource::new(
                "migrations/V1__a.sql",
                text.to_string(),
            )),
        };
        let e = ServiceError::new("orders", MigrateError::failed(failure));
        let labels: Vec<_> = e.labels().expect("a label").collect();
        assert_eq!(labels.len(), 1);
        assert_eq!(labels[0].offset(), text.find("x FROM").unwrap());
        assert_eq!(labels[0].offset(), 19);
        assert_eq!(labels[0].len(), "x FROM nosuch".len());
        let source = e.source_code().expect("the file's text");
        let spot = source.read_span(labels[0].inner(), 0, 0).unwrap();
        assert_eq!(spot.data(), b"x FROM nosuch");
        assert_eq!(spot.name(), Some("migrations/V1__a.sql"));
        assert!(e.help().unwrap().to_string().contains("rolled back"));
        assert!(
            e.to_string()
                .starts_with("orders: migrations/V1__a.sql:3:9: ")
        );
        // A place beyond the text is its end, never a panic.
        let far = Location {
            path: "x".into(),
            line: 9,
            column: 9,
        };
        assert_eq!(far.offset_in(text), text.len());
    }

    #[test]
    fn a_service_error_names_its_service_in_the_help() {
        let e = ServiceError::new(
            "orders",
            MigrateError::ForeignHistory {
                tool: crate::adopt::Tool::Flyway,
                table: "flyway_schema_history".into(),
                rows: Some(2),
            },
        );
        let help = e.help().unwrap().to_string();
        assert!(
            help.contains("silo migrations adopt orders --from flyway"),
            "{help}"
        );
        assert!(e.labels().is_none());
        assert!(e.source_code().is_none());
    }

    #[test]
    fn applied_versions_in_words() {
        let v = |n: usize| (1..=n).map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(applied_text(&v(2)), "V1, V2 applied");
        assert_eq!(applied_text(&v(41)), "V1 to V41 applied (41 versions)");
        let mut c = Cancelled::new(Stopped::RolledBack {
            script: "V3__x.sql".into(),
        });
        assert_eq!(
            c.to_string(),
            "V3__x.sql was cancelled and rolled back; nothing of it is applied"
        );
        c.applied = Some(Vec::new());
        assert!(c.to_string().ends_with("; no version is applied"));
    }
}
