//! silo's storage gateway (seed 003's storage service): one process that
//! fronts every service's own store. A caller proves who it is with its
//! gateway token; the token decides the store, and every statement runs on
//! a connection as that service's own database role, so a store refuses
//! what the gateway might wrongly let through.
//!
//! - [`identity`]: bearer token → service.
//! - [`request`]: the JSON shapes of `query` and `write` (seed 003 §11).
//! - [`catalog`]: each store's tables and columns, read as the service;
//!   every name in a request is checked there before SQL is built.
//! - [`sql`]: statements from checked names and bound parameters only.
//! - [`exec`]: per-service connection pools, queries, transactions.
//! - [`dispatch`]: one entry for every transport: credential, routing,
//!   parsing, then the store.
//! - [`error`]: one error shape with PostgreSQL's SQLSTATE and an HTTP
//!   status.
//! - [`http`]: the axum router (`POST /v1/query`, `/v1/write`, `GET
//!   /healthz`, `/readyz`).
//! - [`nats`]: the same operations over NATS request/reply, the caller
//!   known by its token or by its NATS user.

pub mod catalog;
pub mod dispatch;
pub mod error;
pub mod exec;
pub mod http;
pub mod identity;
pub mod nats;
pub mod request;
pub mod sql;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use silo_manifest::Service;
use silo_store::Stores;

pub use error::GatewayError;
pub use http::{router, serve};
pub use identity::{Credential, Identities};

use crate::catalog::Catalog;
use crate::exec::Pool;

/// How the gateway treats every service (per-service limits come later).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Connections kept per service.
    pub pool_size: usize,
    /// How long a request waits for a free connection before 503.
    pub acquire_timeout: Duration,
    /// Longest a statement may run (PostgreSQL `statement_timeout`).
    pub statement_timeout: Duration,
    /// Tries of a write that meets a serialization failure or deadlock.
    pub max_attempts: u32,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Most rows a query returns when it names no `limit`.
    pub default_limit: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            pool_size: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            max_attempts: 3,
            body_limit: 1024 * 1024,
            default_limit: 1000,
        }
    }
}

/// One served service: its store's pool and catalog.
pub struct Served {
    pub service: Service,
    pub(crate) pool: Pool,
    pub(crate) catalog: Catalog,
}

/// A service the gateway does not serve, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub service: String,
    pub reason: String,
}

/// The gateway: who may call, and every store it serves.
pub struct Gateway {
    pub(crate) config: GatewayConfig,
    pub(crate) identities: Identities,
    /// By service name.
    pub(crate) served: HashMap<String, Arc<Served>>,
    /// Database name (the manifest's `database`) → service name, for every
    /// service of the manifest, served or not.
    pub(crate) databases: HashMap<String, String>,
    /// Services left out at start.
    pub skipped: Vec<Skipped>,
}

impl Gateway {
    /// A gateway for `services`, reading each one's credentials and
    /// gateway token from its secrets file. A service without a store
    /// (no credentials file) or without a token is skipped and named in
    /// [`Gateway::skipped`]; connections are made on first use.
    pub fn new(
        stores: &Stores,
        services: &[Service],
        config: GatewayConfig,
    ) -> Result<Self, GatewayError> {
        let mut served = HashMap::new();
        let mut databases = HashMap::new();
        let mut tokens = Vec::new();
        let mut skipped = Vec::new();
        for service in services {
            databases.insert(service.database.clone(), service.name.clone());
            let creds = match stores.credentials(service) {
                Ok(creds) => creds,
                Err(e) => {
                    skipped.push(Skipped {
                        service: service.name.clone(),
                        reason: format!("no store to serve ({e}); run `silo up`"),
                    });
                    continue;
                }
            };
            let token = match stores.secrets().gateway_token(&service.name) {
                Ok(Some(token)) => token,
                Ok(None) => {
                    skipped.push(Skipped {
                        service: service.name.clone(),
                        reason: "its secrets file has no SILO_GATEWAY_TOKEN; run `silo up`".into(),
                    });
                    continue;
                }
                Err(e) => {
                    skipped.push(Skipped {
                        service: service.name.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            tokens.push((service.name.clone(), token));
            served.insert(
                service.name.clone(),
                Arc::new(Served {
                    service: service.clone(),
                    pool: Pool::new(service.clone(), creds, &config),
                    catalog: Catalog::default(),
                }),
            );
        }
        Ok(Gateway {
            config,
            identities: Identities::new(tokens),
            served,
            databases,
            skipped,
        })
    }

    /// The services served, by name, sorted.
    pub fn services(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.served.keys().map(String::as_str).collect();
        names.sort();
        names
    }

    /// Seed 003's `route_database_request`: the store `database` names,
    /// if it is `caller`'s own. An unknown database is 404
    /// `InvalidDatabase`; another service's is 403 `UnauthorizedAccess`,
    /// decided before any connection to its store is taken.
    pub fn route(&self, caller: &str, database: &str) -> Result<&Arc<Served>, GatewayError> {
        let owner = self
            .databases
            .get(database)
            .ok_or_else(|| GatewayError::invalid_database(database))?;
        if owner != caller {
            return Err(GatewayError::unauthorized_access(caller, database));
        }
        self.served
            .get(owner)
            .ok_or_else(|| GatewayError::invalid_database(database))
    }
}
