//! Errors from store engines. Each says what went wrong, where, and what
//! to do; none ever contains a password.

use std::path::PathBuf;

/// What can go wrong with a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{kind} `{name}` exists but was not created by silo; silo never touches what it did not create"
    )]
    NotManaged { kind: &'static str, name: String },

    #[error("{kind} `{name}` is managed by silo for service `{owner}`, not `{service}`")]
    ManagedByOther {
        kind: &'static str,
        name: String,
        owner: String,
        service: String,
    },

    #[error(
        "{kind} `{name}` is not service `{service}`'s store: {}",
        match found {
            Some(owner) => format!("it is marked as service `{owner}`'s"),
            None => "it carries no silo mark (copied, replaced or emptied?)".to_string(),
        }
    )]
    NotServiceStore {
        service: String,
        kind: &'static str,
        name: String,
        /// The service its mark names, if any.
        found: Option<String>,
    },

    #[error(
        "service `{service}`'s store was made on {recorded}, but silo.toml now says {configured}"
    )]
    EngineMismatch {
        service: String,
        recorded: silo_manifest::Engine,
        configured: silo_manifest::Engine,
    },

    #[error("{kind} `{name}` belongs to silo project `{project}`, not `{ours}`")]
    OtherProject {
        kind: &'static str,
        name: String,
        project: String,
        ours: String,
    },

    #[error("the server refused service `{service}`'s own login")]
    ServiceLogin {
        service: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("service `{service}` uses PostgreSQL but no admin URL is set")]
    NoAdminUrl { service: String },

    #[error("service `{service}` reads its server's admin URL from `{var}`, which is not set")]
    UrlEnvUnset { service: String, var: String },

    #[error("invalid PostgreSQL URL in {origin}: {reason}")]
    BadUrl { origin: String, reason: String },

    /// A PostgreSQL server could not be reached, or refused the login.
    #[error("cannot connect to {target}")]
    Connect {
        /// Where, with any password masked.
        target: String,
        #[source]
        source: sqlx::Error,
    },

    /// A SQLite store file could not be opened for reading and writing.
    #[error("cannot open the SQLite store {}", path.display())]
    OpenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{action} failed")]
    Sql {
        action: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is not a silo credentials file", path.display())]
    BadSecretsFile { path: PathBuf },

    #[error("service `{service}` has no credentials at {}", path.display())]
    NoCredentials { service: String, path: PathBuf },

    #[error("{0}")]
    Unsupported(String),

    /// A restore target that must be fresh already exists.
    #[error("{kind} `{name}` already exists; a restore goes into a fresh store only")]
    AlreadyExists { kind: &'static str, name: String },

    /// A store cannot be swapped while sessions are open on it.
    #[error("database `{database}` is in use: {}", sessions.join(", "))]
    InUse {
        database: String,
        /// `role (application)` of each open session.
        sessions: Vec<String>,
        /// Whether they are all the service's own (ended by `--terminate`).
        own_only: bool,
    },
}

impl StoreError {
    /// A stable name for the kind of failure: the last part of the
    /// diagnostic code (`silo::store::<kind>`).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotManaged { .. } => "not-managed",
            StoreError::ManagedByOther { .. } => "managed-by-other",
            StoreError::NotServiceStore { .. } => "not-service-store",
            StoreError::OtherProject { .. } => "other-project",
            StoreError::ServiceLogin { .. } => "service-login",
            StoreError::EngineMismatch { .. } => "engine-mismatch",
            StoreError::NoAdminUrl { .. } => "no-admin-url",
            StoreError::UrlEnvUnset { .. } => "url-env-unset",
            StoreError::BadUrl { .. } => "bad-url",
            StoreError::Connect { .. } => "connect",
            StoreError::OpenFile { .. } => "open-file",
            StoreError::Sql { .. } => "sql",
            StoreError::Io { .. } => "io",
            StoreError::BadSecretsFile { .. } => "bad-secrets-file",
            StoreError::NoCredentials { .. } => "no-credentials",
            StoreError::Unsupported(_) => "unsupported",
            StoreError::AlreadyExists { .. } => "already-exists",
            StoreError::InUse { .. } => "in-use",
        }
    }

    /// The documented exit code: 2 when a server cannot be reached or the
    /// manifest does not match the stores that exist, 1 for an operation
    /// that failed.
    pub fn exit_code(&self) -> u8 {
        if self.is_unreachable() { 2 } else { 1 }
    }

    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::NotManaged { kind, .. } if kind.starts_with("SQLite") => Some(
                "move the file away and run `silo up` for a new store, or pass `--adopt` to take this file over as the service's store (silo then marks it and makes it private)".into(),
            ),
            StoreError::NotManaged { .. } => Some(
                "pass `--adopt` to take it over (silo then resets its owner, privileges and password), or name another database or role in silo.toml".into(),
            ),
            StoreError::ManagedByOther { kind, .. } if kind.starts_with("SQLite") => Some(
                "this file is another service's store (copied or moved here?): move it away and run `silo up` for this service's own; two services never share a store".into(),
            ),
            StoreError::ManagedByOther { .. } => Some(
                "two services cannot share a store; give this service its own `database` and `role`".into(),
            ),
            StoreError::NotServiceStore { service, .. } => Some(format!(
                "silo runs nothing in a store that is not the service's own; `silo status {service}` shows what is there. Move the file or database away and run `silo up {service}` for a new store, or put the service's own store back"
            )),
            StoreError::EngineMismatch {
                service,
                recorded,
                configured,
            } => Some(format!(
                "silo never moves a store between engines. To keep working on the existing store, set `engine = \"{recorded}\"` under [services.{service}] in silo.toml; to start over on {configured}, first run `silo --engine {recorded} down {service} --yes`"
            )),
            StoreError::ServiceLogin { service, .. } => Some(format!(
                "its credentials file does not match its role: `silo up {service}` checks it against the server and repairs it"
            )),
            StoreError::OtherProject { .. } => Some(
                "two projects on one server cannot share a store: give this service another `database` and `role` in silo.toml".into(),
            ),
            StoreError::NoAdminUrl { .. } => Some(
                "set SILO_PG_ADMIN_URL (for example postgres://postgres@127.0.0.1:5432/postgres) or pass --admin-url".into(),
            ),
            StoreError::UrlEnvUnset { var, .. } => Some(format!(
                "export {var}=postgres://ADMIN@HOST:PORT/postgres for this service's own server"
            )),
            StoreError::NoCredentials { service, .. } => Some(format!(
                "run `silo up {service}`: it checks the service's store and writes its credentials file"
            )),
            StoreError::BadSecretsFile { .. } => Some(
                "silo never overwrites a file it cannot read: move it away (it may hold a password), then `silo up` writes a new one (on PostgreSQL with a new password)".into(),
            ),
            StoreError::BadUrl { .. } => Some(
                "give a URL such as postgres://postgres@127.0.0.1:5432/postgres (SILO_PG_ADMIN_URL, --admin-url, or the variable named by `url_env`)".into(),
            ),
            StoreError::Connect { source, .. } => connect_hint(source).map(Into::into),
            StoreError::AlreadyExists { .. } => Some(
                "choose another name with --into, or drop what is there first (`silo status` shows whose it is)".into(),
            ),
            StoreError::InUse { own_only: true, .. } => Some(
                "stop the service first, or pass --terminate to end its sessions (the swap then happens while new ones are refused)".into(),
            ),
            StoreError::InUse { .. } => Some(
                "sessions of other roles are never ended by silo: close them (pg_stat_activity shows where they come from) and try again".into(),
            ),
            StoreError::OpenFile { path, source } => Some(open_file_hint(path, source)),
            StoreError::Sql { source, .. } if is_privilege_error(source) => Some(
                "the administrator lacks a privilege this needs: use an admin URL whose role may create roles and databases (CREATEROLE and CREATEDB, or a superuser)".into(),
            ),
            _ => None,
        }
    }

    /// Whether the failure is about reaching a server or finding its URL,
    /// or a manifest that does not match the stores that exist (a
    /// service with no credentials file: not provisioned) (exit code 2),
    /// rather than an operation that failed (exit code 1).
    /// A server that answers but refuses a privilege, and a SQLite file
    /// that cannot be opened, are failed operations.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Connect { source, .. } => !is_privilege_error(source),
            StoreError::EngineMismatch { .. }
            | StoreError::NoCredentials { .. }
            | StoreError::NoAdminUrl { .. }
            | StoreError::UrlEnvUnset { .. }
            | StoreError::BadUrl { .. } => true,
            _ => false,
        }
    }
}

/// Whether the server refused for want of a privilege (SQLSTATE 42501):
/// it was reached, and the login itself worked or was not the problem.
pub fn is_privilege_error(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42501"))
}

/// What to check when a PostgreSQL connection fails, by how it failed.
fn connect_hint(e: &sqlx::Error) -> Option<&'static str> {
    let code = match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    Some(match code.as_deref() {
        Some("42501") => {
            "the role may not connect to this database: `silo up` restores a service's own grants; `silo audit` shows who may connect where"
        }
        Some("28P01") => {
            "the server refused the password: check the admin URL, or run `silo up` to repair a service's credentials file"
        }
        Some(c) if c.starts_with("28") => {
            "the server refused this role: check that it exists and may log in, and that pg_hba.conf lets it in from here"
        }
        Some("3D000") => {
            "the database does not exist: check the admin URL's database, or run `silo up` to create a service's store"
        }
        Some("53300") => {
            "the server has no free connection slot: lower -j, or raise the server's max_connections"
        }
        Some("57P03") => "the server is starting up or shutting down: try again shortly",
        Some(_) => return None,
        None => "check that the server is running and the URL is right",
    })
}

/// What to do when a SQLite store file cannot be opened, by why.
fn open_file_hint(path: &std::path::Path, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "this user may not read and write {}: run silo as the user that owns the store (silo makes it mode 0600 in a 0700 folder), or fix its owner",
            path.display()
        ),
        std::io::ErrorKind::NotFound => "run `silo up` to create the store".into(),
        _ => format!(
            "{} must be a SQLite file that silo created: `silo status` shows what is there",
            path.display()
        ),
    }
}

pub(crate) fn sql(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let action = action.into();
    move |source| StoreError::Sql { action, source }
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

/// The innermost cause's message, for one-line reports. A database error
/// gives the server's own words, without the line of the server's C
/// source that sqlx appends ("... at line 363").
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    loop {
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>() {
            return db.message().to_string();
        }
        match cause.source() {
            Some(next) => cause = next,
            None => return cause.to_string(),
        }
    }
}

impl miette::Diagnostic for StoreError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(format!("silo::store::{}", self.kind())))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.hint()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display + 'a>)
    }
}
