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
            MigrateError::ForeignHistory { .. } => "foreign-history",
            MigrateError::NoForeignHistory { .. } => "no-foreign-history",
            MigrateError::UnknownHistoryKind { .. } => "unknown-history-kind",
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

    pub fn is_unreachable(&self) -> bool {
        matches!(self, MigrateError::Store(e) if e.is_unreachable())
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
        self.hint()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display + 'a>)
    }
}
