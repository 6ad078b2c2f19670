//! Store engines: give each service its own store and its own credentials,
//! report on them, and drop them again.
//!
//! The seam is [`StoreEngine`]; [`sqlite::SqliteEngine`] and
//! [`postgres::PgEngine`] implement it, and [`Stores`] picks the engine
//! (and, for instance isolation, the server) of each service. Engines mark
//! everything they create (`managed by silo: service=<name>`) and refuse to
//! adopt or drop anything unmarked.

mod admin;
mod connect;
mod credentials;
mod error;
pub mod files;
mod leftover;
mod orphans;
pub mod postgres;
pub mod schema;
mod secret;
pub mod secrets_layout;
pub mod sqlite;
mod stores;

use async_trait::async_trait;
use serde::Serialize;
use silo_manifest::Service;

pub use admin::{Admin, ServerId};
pub use connect::{ServiceConnection, StoreKind, connect_with};
pub use credentials::{Credentials, CredentialsView, MASK, SecretsDir};
pub use error::{StoreError, is_privilege_error, root_cause};
pub use leftover::{Leftover, LeftoverKind};
pub use orphans::Orphan;
pub use secret::{Secret, scram_verifier, scram_verifies};
pub use stores::{Stores, StoresConfig};

/// The comment silo puts on every database and role it creates:
/// `managed by silo: service=<name>; project=<project>`. The project keeps
/// two projects on one server from taking each other's stores for their
/// own; stores made before it was recorded carry the service only.
pub fn marker(service: &str, project: Option<&str>) -> String {
    match project {
        Some(project) => format!("managed by silo: service={service}; project={project}"),
        None => format!("managed by silo: service={service}"),
    }
}

/// The service named by a silo marker, if `comment` is one.
pub fn marker_service(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix("managed by silo: service=")?;
    Some(
        rest.split_once("; project=")
            .map_or(rest, |(service, _)| service),
    )
}

/// The project named by a silo marker; `None` for a marker without one
/// (or a comment that is no marker).
pub fn marker_project(comment: &str) -> Option<&str> {
    comment
        .strip_prefix("managed by silo: service=")?
        .split_once("; project=")
        .map(|(_, project)| project)
}

/// The comment on a store made by [`StoreEngine::restore_target`] to
/// replace `service`'s live store, until [`StoreEngine::swap`] puts it in
/// place (and gives it the service's own marker).
pub fn replacement_marker(service: &str) -> String {
    format!("silo restore of service={service}")
}

/// The service named by a replacement-store comment, if `comment` is one.
pub fn replacement_service(comment: &str) -> Option<&str> {
    comment.strip_prefix("silo restore of service=")
}

/// The comment on the store a swap took out of service: named after the
/// service and the time, so nobody takes it for a live store.
pub fn replaced_marker(service: &str, at: &str) -> String {
    format!("silo store of service={service} replaced by a restore at {at}")
}

/// The comment on a scratch store made for `service`.
pub fn scratch_marker(service: &str) -> String {
    format!("silo scratch store of service={service}")
}

/// The service named by a scratch-store comment, if `comment` is one.
pub fn scratch_service(comment: &str) -> Option<&str> {
    comment.strip_prefix("silo scratch store of service=")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_the_service_and_the_project() {
        let m = marker("orders", Some("shop; east"));
        assert_eq!(marker_service(&m), Some("orders"));
        assert_eq!(marker_project(&m), Some("shop; east"));
        let legacy = marker("orders", None);
        assert_eq!(legacy, "managed by silo: service=orders");
        assert_eq!(marker_service(&legacy), Some("orders"));
        assert_eq!(marker_project(&legacy), None);
        assert_eq!(marker_service("made by hand"), None);
    }
}

/// Options for [`StoreEngine::provision`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ProvisionOptions {
    /// Take over a database or role that exists without silo's marker.
    pub adopt: bool,
}

/// What provisioning did to one store.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Provisioned {
    pub outcome: Outcome,
    /// Each change made, in order, in plain words (empty when unchanged).
    pub changes: Vec<String>,
}

/// The short verdict on one store.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Provisioned {
    pub(crate) fn from_changes(created: bool, changes: Vec<String>) -> Self {
        let outcome = match (created, changes.is_empty()) {
            (true, _) => Outcome::Created,
            (false, true) => Outcome::Unchanged,
            (false, false) => Outcome::Updated,
        };
        Provisioned { outcome, changes }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
        })
    }
}

/// A live look at one store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    /// The store exists (database or file).
    pub exists: bool,
    /// Its size on disk, when it exists.
    pub size_bytes: Option<u64>,
    /// The service's own credentials open its own store.
    pub connects: bool,
    /// Why it does not connect, when it does not.
    pub problem: Option<String>,
    /// What interrupted runs left behind for this service (see
    /// [`StoreEngine::leftovers`]); `down` removes them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<Leftover>,
}

/// What store a restore goes into (see [`StoreEngine::restore_target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreInto<'a> {
    /// A store of its own named `name` (`silo restore --into NAME`): the
    /// database (or SQLite file) `name`, marked as service `name`'s, its
    /// credentials in `secrets/<name>.env`. With `keep_credentials` it
    /// belongs to the service's own role and password; otherwise to a new
    /// role `<name>_svc` with a new generated password.
    Named {
        name: &'a str,
        keep_credentials: bool,
    },
    /// A store under the service's own role, to be put in place of its
    /// live store by [`StoreEngine::swap`] once the restore checked out
    /// (`silo restore --replace`).
    Replacement,
}

/// Options for [`StoreEngine::swap`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SwapOptions {
    /// End the service's own open sessions on its live store first
    /// (otherwise a store in use is refused). Sessions of other roles are
    /// never ended: they are named in the refusal.
    pub terminate: bool,
}

/// What a swap did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Swapped {
    /// The live store now (the restored one, under the live name).
    pub live: String,
    /// Where the store that was live is kept: a database (PostgreSQL) or
    /// file (SQLite) whose name says what it is. Dropped by `silo down`
    /// with the service, or by hand once no longer wanted.
    pub kept: String,
    /// How many of the service's sessions were ended.
    pub terminated: u64,
}

/// What dropping one store removed.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Dropped {
    /// Each thing removed, in plain words.
    pub removed: Vec<String>,
}

/// One engine: everything silo does to a service's store.
#[async_trait]
pub trait StoreEngine: Send + Sync {
    /// Creates the store, its credentials and its privileges, or brings an
    /// existing one back in line. Running it twice changes nothing.
    async fn provision(
        &self,
        service: &Service,
        options: ProvisionOptions,
    ) -> Result<Provisioned, StoreError>;

    /// Reports existence, size and whether the service's own credentials
    /// connect.
    async fn status(&self, service: &Service) -> Result<StoreStatus, StoreError>;

    /// Replaces the service's password in the server and the secrets file.
    async fn rotate(&self, service: &Service) -> Result<(), StoreError>;

    /// Drops the store, its role and its secrets, if silo created them.
    async fn drop_store(&self, service: &Service) -> Result<Dropped, StoreError>;

    /// The service's credentials as stored in its secrets file.
    fn credentials(&self, service: &Service) -> Result<Credentials, StoreError>;

    /// A new, empty store like the service's own (same engine, server and
    /// role), for proofs that must not touch the real one (`silo verify`,
    /// `silo diff`). Drop it with [`StoreEngine::drop_scratch`].
    async fn scratch(&self, service: &Service) -> Result<Credentials, StoreError>;

    /// What interrupted runs left behind for `service`, in plain words:
    /// scratch stores of a killed `verify` or `diff`, staged credentials
    /// files of a killed `up`, a store a killed `up` left half-made.
    /// `silo up` finishes a half-made store; `silo down` removes the rest.
    async fn leftovers(&self, service: &Service) -> Result<Vec<Leftover>, StoreError>;

    /// Drops a store made by [`StoreEngine::scratch`].
    async fn drop_scratch(&self, scratch: &Credentials) -> Result<(), StoreError>;

    /// A fresh, empty store to restore `service`'s backup into, provisioned
    /// the silo way (owned by its role, PUBLIC stripped, marked), and the
    /// credentials that reach it. Refuses a store, role or credentials file
    /// that already exists: a restore never lands in something that has
    /// data. Needs the administrator (the admin URL); the restore itself
    /// then runs as the returned credentials.
    async fn restore_target(
        &self,
        service: &Service,
        into: RestoreInto<'_>,
    ) -> Result<Credentials, StoreError> {
        let _ = (service, into);
        Err(StoreError::Unsupported(
            "restoring into a fresh store is not available for this engine".into(),
        ))
    }

    /// Drops a store made by [`StoreEngine::restore_target`] (a restore
    /// that did not check out), with the role and credentials file made
    /// for it; never the service's own role or file.
    async fn drop_restore_target(
        &self,
        service: &Service,
        target: &Credentials,
    ) -> Result<Dropped, StoreError> {
        let _ = (service, target);
        Err(StoreError::Unsupported(
            "restoring into a fresh store is not available for this engine".into(),
        ))
    }

    /// Puts `restored` (made by [`StoreEngine::restore_target`] with
    /// [`RestoreInto::Replacement`]) in place of `service`'s live store,
    /// keeping the old one under a name that says what it is. The service's
    /// credentials keep working: the restored store belongs to its role.
    async fn swap(
        &self,
        service: &Service,
        restored: &Credentials,
        options: SwapOptions,
    ) -> Result<Swapped, StoreError> {
        let _ = (service, restored, options);
        Err(StoreError::Unsupported(
            "replacing a live store is not available for this engine".into(),
        ))
    }
}

/// A short random suffix for scratch stores.
pub(crate) fn scratch_suffix() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
