//! The one error type of silo's backups.

use miette::Diagnostic;
use silo_store::StoreError;

/// Why a backup, restore or prune failed.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum BackupError {
    /// Reaching the store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    /// The destination could not be read or written.
    #[error("{action} at {destination} failed: {source}")]
    #[diagnostic(
        code(silo::backup::destination),
        help(
            "check that the destination exists and is writable, and for s3:// the AWS_* variables"
        )
    )]
    Destination {
        action: String,
        destination: String,
        #[source]
        source: object_store::Error,
    },

    /// A destination URL silo cannot use.
    #[error("backup destination {url:?}: {reason}")]
    #[diagnostic(
        code(silo::backup::bad_destination),
        help("use file:///absolute/path, a path relative to the project, or s3://bucket/prefix")
    )]
    BadDestination { url: String, reason: String },

    /// A local file or folder could not be read or written.
    #[error("{action} {path}: {source}")]
    #[diagnostic(code(silo::backup::io))]
    Io {
        action: String,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A backup's `meta.json` is not one this silo can read.
    #[error("the metadata of backup {id} is unreadable: {reason}")]
    #[diagnostic(
        code(silo::backup::bad_meta),
        help("the backup may be damaged or made by a newer silo; choose another with --backup ID")
    )]
    BadMeta { id: String, reason: String },

    /// A file of a backup does not match its recorded checksum or size.
    #[error("backup {id} is damaged: {file} {reason}")]
    #[diagnostic(
        code(silo::backup::damaged),
        help(
            "this backup cannot be trusted; restore another one (`silo backup list`) and find out what changed the file"
        )
    )]
    Damaged {
        id: String,
        file: String,
        reason: String,
    },

    /// A PostgreSQL client tool (`pg_dump`, `pg_restore`) that fits the
    /// server cannot be had.
    #[error("{tool}: {reason}")]
    #[diagnostic(code(silo::backup::tool))]
    Tool {
        tool: &'static str,
        reason: String,
        #[help]
        help: String,
    },

    /// `pg_dump` or `pg_restore` ran and failed.
    #[error("{tool} failed ({status}) on {target}:\n{stderr}")]
    #[diagnostic(
        code(silo::backup::tool_failed),
        help("the lines above are the tool's own; the backup or restore was not completed")
    )]
    ToolFailed {
        tool: &'static str,
        /// The store, password masked.
        target: String,
        status: String,
        /// The tool's error output (it never holds the password, which
        /// goes through the environment).
        stderr: String,
    },

    /// A statement on the store failed.
    #[error("{action} on {target} failed: {}", silo_store::root_cause(source))]
    #[diagnostic(code(silo::backup::sql))]
    Sql {
        action: String,
        target: String,
        #[source]
        source: sqlx::Error,
    },

    /// A restore target that is not empty.
    #[error(
        "database `{database}` is not empty ({objects} objects); a restore goes into an empty store only"
    )]
    #[diagnostic(
        code(silo::backup::not_empty),
        help("restore into a fresh store (`silo restore --into NAME`), or use --replace")
    )]
    NotEmpty { database: String, objects: i64 },
}

impl BackupError {
    pub(crate) fn io(
        action: impl Into<String>,
        path: &std::path::Path,
        source: std::io::Error,
    ) -> Self {
        BackupError::Io {
            action: action.into(),
            path: path.display().to_string(),
            source,
        }
    }
}
