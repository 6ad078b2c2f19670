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
    /// Reading the store's migration history failed.
    #[error("reading the migration history of the copy failed")]
    #[diagnostic(code(silo::backup::history))]
    History(#[source] silo_migrate::MigrateError),

    /// A pgBackRest command ran and failed.
    #[error("{what}:\n{stderr}")]
    #[diagnostic(code(silo::backup::pgbackrest))]
    PgbackrestFailed {
        /// `pgbackrest backup of stanza `battles` failed (exit status: 87)`.
        what: String,
        /// pgBackRest's own error output (the password is never on its
        /// command line or in its config).
        stderr: String,
        #[help]
        help: String,
    },

    /// A restore that would overwrite what it must not.
    #[error("{reason}")]
    #[diagnostic(code(silo::backup::restore_refused))]
    RestoreRefused {
        reason: String,
        #[help]
        help: String,
    },

    /// A recovery target time silo cannot read.
    #[error("`{text}` is not a time with its offset")]
    #[diagnostic(
        code(silo::backup::bad_target_time),
        help(
            "write the time and its UTC offset, such as \"2026-11-28 05:10:00+00\" or 2026-11-28T06:10:00+01:00 (fractions of a second are allowed)"
        )
    )]
    BadTargetTime { text: String },

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

    /// A restored SQLite store failed the full `PRAGMA integrity_check`
    /// (indexes against their tables, which the check at backup time
    /// skips).
    #[error("backup {id} does not restore to a sound store: {report}")]
    #[diagnostic(
        code(silo::backup::restore_integrity),
        help(
            "the backup's store file was damaged before it was checksummed; restore an older backup (`silo backup list`)"
        )
    )]
    RestoreIntegrity { id: String, report: String },

    /// SQLite's online copy of a store, or a check of the copy, failed.
    #[error("{action} {path}: {source}")]
    #[diagnostic(
        code(silo::backup::sqlite_copy),
        help("check that the store file and the backup folder are readable and the disk has room")
    )]
    SqliteCopy {
        action: String,
        path: String,
        #[source]
        source: rusqlite::Error,
    },

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
    /// An object a backup needs is not at the destination.
    #[error("{path} is missing at {destination}")]
    #[diagnostic(
        code(silo::backup::missing),
        help(
            "list what the destination holds with `silo backup list`; the backup may have been pruned"
        )
    )]
    ObjectMissing { path: String, destination: String },

    /// An s3:// destination without credentials in the environment.
    #[error("no S3 credentials for {url}: {missing}")]
    #[diagnostic(
        code(silo::backup::s3_credentials),
        help(
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN; on EC2 with an instance role set AWS_METADATA_ENDPOINT=http://169.254.169.254"
        )
    )]
    S3NoCredentials { url: String, missing: String },

    /// The bucket of an s3:// destination does not exist.
    #[error("the bucket of {destination} does not exist")]
    #[diagnostic(
        code(silo::backup::s3_bucket),
        help(
            "create the bucket, or fix the bucket name in the destination URL (s3://BUCKET/prefix) or AWS_ENDPOINT_URL"
        )
    )]
    S3BucketMissing {
        /// `s3://bucket/prefix`, with the endpoint when known.
        destination: String,
    },

    /// The S3 endpoint did not answer.
    #[error("{destination} is unreachable: {reason}")]
    #[diagnostic(
        code(silo::backup::s3_unreachable),
        help(
            "check AWS_ENDPOINT_URL (an S3-compatible server's URL) and AWS_REGION; a plain http:// endpoint also needs AWS_ALLOW_HTTP=true"
        )
    )]
    S3Unreachable { destination: String, reason: String },

    /// The S3 server refused the credentials or the request.
    #[error("{destination} refused access: {reason}")]
    #[diagnostic(
        code(silo::backup::s3_denied),
        help(
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that their user may list, read, write and delete under the destination's prefix"
        )
    )]
    S3Denied { destination: String, reason: String },

    /// An age recipient that does not parse.
    #[error("age recipient #{position} {recipient:?} is not valid: {reason}")]
    #[diagnostic(
        code(silo::backup::bad_recipient),
        help(
            "recipients are X25519 public keys as `age-keygen` prints them: age1 followed by 58 letters and digits"
        )
    )]
    BadRecipient {
        /// 1-based position in the list.
        position: usize,
        recipient: String,
        reason: String,
    },

    /// Encryption was asked for without any recipient.
    #[error("encryption needs at least one age recipient, and none is configured")]
    #[diagnostic(
        code(silo::backup::no_recipients),
        help(
            "add the public keys (age1...) that may read backups to the manifest's age recipients"
        )
    )]
    NoRecipients,

    /// An encrypted backup, and no identity to decrypt it with.
    #[error("backup {what} is encrypted and {var} is not set")]
    #[diagnostic(
        code(silo::backup::no_identity),
        help(
            "set {var} to the path of an age identity file (the private key `age-keygen -o key.txt` wrote) whose public key is one of the backup's recipients"
        )
    )]
    IdentityNotSet { what: String, var: &'static str },

    /// The identity file could not be read or holds no identity.
    #[error("age identity file {path} ({var}): {reason}")]
    #[diagnostic(
        code(silo::backup::bad_identity),
        help(
            "the file must hold age X25519 identities (AGE-SECRET-KEY-1...), one a line; `#` starts a comment"
        )
    )]
    BadIdentity {
        path: String,
        var: &'static str,
        reason: String,
    },

    /// None of the identities is a recipient of the file.
    #[error(
        "cannot decrypt {file}: no identity matches (none of the keys in {identity} is among its recipients)"
    )]
    #[diagnostic(
        code(silo::backup::wrong_identity),
        help(
            "point the identity variable at the private key of one of the recipients the backup was encrypted to"
        )
    )]
    NoMatchingIdentity { file: String, identity: String },

    /// Ciphertext that does not decrypt: damaged, tampered with, or not age.
    #[error("cannot decrypt {file}: {reason}")]
    #[diagnostic(
        code(silo::backup::decrypt),
        help(
            "the encrypted file is damaged or was changed after it was written; restore another backup"
        )
    )]
    Decrypt { file: String, reason: String },
}

impl BackupError {
    /// The exit code the CLI gives this error: 2 for what the user must
    /// set up (a bad destination, no S3 credentials, no identity to
    /// decrypt with) or an unreachable server, 1 for a backup or restore
    /// that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Store(e) => e.exit_code(),
            BackupError::History(e) => e.exit_code(),
            BackupError::BadDestination { .. }
            | BackupError::S3NoCredentials { .. }
            | BackupError::S3Unreachable { .. }
            | BackupError::BadRecipient { .. }
            | BackupError::NoRecipients
            | BackupError::IdentityNotSet { .. }
            | BackupError::BadIdentity { .. }
            | BackupError::BadTargetTime { .. } => 2,
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
