//! The administrator's side of the seam: which server a store lives on,
//! and an admin handle on it for the work that is not a service's own
//! (provisioning, catalog reads, the audit's fixes). Everything else
//! reaches a store as its service ([`crate::Stores::connect_as`]).

use std::sync::Arc;

use serde::{Serialize, Serializer};
use silo_manifest::{Engine, Isolation, Service};
use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPool};

use crate::Stores;
use crate::error::StoreError;
use crate::postgres::PgEngine;

/// Which PostgreSQL server holds a store: the project's shared server (the
/// admin URL), or, with `instance` isolation, the server named by the
/// service's `url_env`. Serializes as that variable's name, or null.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ServerId(Option<String>);

impl ServerId {
    /// The shared server of the admin URL.
    pub const SHARED: ServerId = ServerId(None);

    /// The server of `service`'s store; `None` for a SQLite store.
    pub fn of(service: &Service) -> Option<ServerId> {
        match (service.engine, service.isolation) {
            (Engine::Sqlite, _) => None,
            (Engine::Postgres, Isolation::Instance) => Some(ServerId(service.url_env.clone())),
            (Engine::Postgres, Isolation::Database) => Some(ServerId::SHARED),
        }
    }

    /// A service's own server, named by its `url_env`.
    pub fn instance(url_env: &str) -> ServerId {
        ServerId(Some(url_env.to_string()))
    }

    /// The environment variable naming the server, for an instance.
    pub fn url_env(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl std::fmt::Display for ServerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("the shared server"),
            Some(var) => write!(f, "the server of ${var}"),
        }
    }
}

impl Serialize for ServerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The administrator of one PostgreSQL server.
#[derive(Clone)]
pub struct Admin {
    engine: Arc<PgEngine>,
}

impl Admin {
    /// `host:port`, for messages.
    pub fn server(&self) -> &str {
        self.engine.server()
    }

    /// A pool of admin connections to the admin URL's database, for
    /// catalog reads. The first use fails at once when the server is down.
    pub async fn catalog(&self) -> Result<&PgPool, StoreError> {
        self.engine.admin_pool().await
    }

    /// An admin connection to `database` (per-database catalogs and
    /// fixes).
    pub async fn connect_in(&self, database: &str) -> Result<PgConnection, StoreError> {
        self.engine.admin_in(database).await
    }

    /// An admin connection to the admin URL's database.
    pub async fn connect(&self) -> Result<PgConnection, StoreError> {
        self.engine.admin_in_default().await
    }

    /// Options to log in to this server as `user` into `database`: host,
    /// port and TLS are the admin URL's, the credentials are the caller's
    /// (the audit's probes try each service's own).
    pub fn login_options(
        &self,
        user: &str,
        password: Option<&str>,
        database: &str,
    ) -> PgConnectOptions {
        let options = self
            .engine
            .admin_options()
            .clone()
            .username(user)
            .database(database);
        match password {
            Some(p) => options.password(p),
            None => options,
        }
    }
}

impl Stores {
    /// The admin handle of the server holding `service`'s store.
    pub fn admin(&self, service: &Service) -> Result<Admin, StoreError> {
        Ok(Admin {
            engine: self.postgres(service)?,
        })
    }
}
