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

    /// Reading the store's migration history failed.
    #[error("reading the migration history of the copy failed")]
    #[diagnostic(code(silo::backup::history))]
    History(#[source] silo_migrate::MigrateError),

    /// What silo cannot back up or restore yet.
    #[error("{0}")]
    #[diagnostic(code(silo::backup::unsupported))]
    Unsupported(String),

    /// The copy of a store failed SQLite's own check.
    #[error("the copy of {service}'s store failed its integrity check: {report}")]
    #[diagnostic(
        code(silo::backup::integrity),
        help(
            "the live store may be damaged: run `PRAGMA integrity_check` on it and restore from an older backup"
        )
    )]
    Integrity { service: String, report: String },

    /// No backup matches what was asked for.
    #[error("{what} at {destination}")]
    #[diagnostic(
        code(silo::backup::not_found),
        help("`silo backup list` shows the backups there; `silo backup SERVICE` takes one")
    )]
    NotFound { what: String, destination: String },

    /// A backup of another service, restored without saying so.
    #[error("backup {id} is of service `{found}`, not `{service}`")]
    #[diagnostic(
        code(silo::backup::other_service),
        help("to restore it into `{service}` on purpose, add --from-service {found}")
    )]
    OtherService {
        id: String,
        found: String,
        service: String,
    },

    /// A backup of another engine than the service's.
    #[error("backup {id} is a {found} backup; service `{service}` is on {engine}")]
    #[diagnostic(code(silo::backup::other_engine))]
    OtherEngine {
        id: String,
        found: silo_manifest::Engine,
        service: String,
        engine: silo_manifest::Engine,
    },

    /// The restored store does not match what the backup recorded.
    #[error("the store restored from backup {id} does not match it: {}", differences.join("; "))]
    #[diagnostic(
        code(silo::backup::mismatch),
        help(
            "the restored copy was kept out of service; report the backup and restore another one"
        )
    )]
    Mismatch {
        id: String,
        differences: Vec<String>,
    },

    /// A restore target that exists already.
    #[error("{what} exists already")]
    #[diagnostic(
        code(silo::backup::target_exists),
        help("choose another name with --into, or remove it first")
    )]
    TargetExists { what: String },
}

impl BackupError {
    /// The exit code the CLI gives this error: 2 for a bad destination or
    /// an unreachable server, 1 for a backup or restore that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Store(e) => e.exit_code(),
            BackupError::History(e) => e.exit_code(),
            BackupError::BadDestination { .. } => 2,
            _ => 1,
        }
    }

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
