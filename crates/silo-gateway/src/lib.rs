//! silo's storage gateway (seed 003's storage service): one process that
//! fronts every service's own store. A caller proves who it is with its
//! gateway token; the token decides the store, and every statement runs on
//! a connection as that service's own database role, so a store refuses
//! what the gateway might wrongly let through.
//!
//! - [`identity`]: bearer token → service.
//! - [`jwt`]: signed JWTs (`[gateway.jwt]`) → service.
//! - [`request`]: the JSON shapes of `query` and `write` (seed 003 §11).
//! - [`catalog`]: each store's tables and columns, read as the service;
//!   every name in a request is checked there before SQL is built.
//! - [`sql`]: statements from checked names and bound parameters only.
//! - [`exec`]: per-service connection pools, queries, transactions.
//! - [`schema`]: `/v1/schema`, a service migrating its own store through
//!   silo's migration engine.
//! - [`limits`]: each service's limits from silo.toml, applied: rate,
//!   body size, page size, rows affected, statement deadline.
//! - [`dispatch`]: one entry for every transport: credential, routing,
//!   parsing, then the store.
//! - [`events`]: seed 003's database events, through the service's own
//!   outbox in the transaction of what they tell of.
//! - [`error`]: one error shape with PostgreSQL's SQLSTATE and an HTTP
//!   status.
//! - [`http`]: the axum router (`POST /v1/query`, `/v1/write`,
//!   `/v1/schema`, `GET /healthz`, `/readyz`, `/openapi.json`).
//! - [`openapi`]: the OpenAPI 3.1 document, generated from the types.
//! - [`serve`]: the accept loop: TLS, and a shutdown that lets requests in
//!   flight finish within a bound.
//! - [`request_id`], [`prometheus`], [`audit`]: what operators see of
//!   each request.
//! - [`nats`]: the same operations over NATS request/reply, the caller
//!   known by its token or by its NATS user.

pub mod audit;
pub mod catalog;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod exec;
pub mod http;
pub mod identity;
pub mod jwt;
pub mod limits;
pub mod nats;
pub mod openapi;
pub mod prometheus;
pub mod request;
pub mod request_id;
pub mod schema;
pub mod serve;
pub mod sql;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use silo_manifest::Service;
use silo_store::Stores;

pub use audit::AuditLog;
pub use error::GatewayError;
pub use http::router;
pub use identity::{Credential, Identities};
pub use jwt::JwtAuth;
pub use serve::{ServeOptions, Stopped, serve, serve_with};
pub use tls::Tls;

use crate::catalog::Catalog;
use crate::exec::Pool;
use crate::limits::Limits;

/// What the gateway applies to every service alike; the per-service
/// limits are each service's `[services.<name>.gateway]` in silo.toml
/// ([`silo_manifest::GatewayLimits`]).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Overrides every service's `pool_size` (`--pool-size`).
    pub pool_size: Option<u32>,
    /// Overrides every service's `statement_timeout`
    /// (`--statement-timeout`).
    pub statement_timeout: Option<Duration>,
    /// Overrides every service's `acquire_timeout`: how long a request
    /// waits for a free connection before 503.
    pub acquire_timeout: Option<Duration>,
    /// Tries of a write that meets a serialization failure or deadlock.
    pub max_attempts: u32,
    /// Signed JWTs accepted beside the services' gateway tokens
    /// (`[gateway.jwt]`); `None`: gateway tokens only.
    pub jwt: Option<JwtAuth>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            pool_size: None,
            statement_timeout: None,
            acquire_timeout: None,
            max_attempts: 3,
            jwt: None,
        }
    }
}

/// One served service: its store's pool and catalog.
pub struct Served {
    pub service: Service,
    /// Its limits, overrides applied.
    pub limits: Limits,
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
    /// Replaced whole by [`Gateway::reload`].
    pub(crate) identities: RwLock<Identities>,
    /// By service name.
    pub(crate) served: HashMap<String, Arc<Served>>,
    /// Database name (the manifest's `database`) → service name, for every
    /// service of the manifest, served or not.
    pub(crate) databases: HashMap<String, String>,
    /// Services left out at start.
    pub skipped: Vec<Skipped>,
    /// What the gateway changed of the manifest's limits, and why (a pool
    /// capped by the role's `connection_limit`), for the operator.
    pub notes: Vec<String>,
    pub(crate) metrics: prometheus::Metrics,
    pub(crate) audit: Option<AuditLog>,
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
        let mut notes = Vec::new();
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
            let (limits, changed) = Limits::new(service, &config);
            notes.extend(changed);
            served.insert(
                service.name.clone(),
                Arc::new(Served {
                    service: service.clone(),
                    pool: Pool::new(service.clone(), creds, &limits.values),
                    limits,
                    catalog: Catalog::default(),
                }),
            );
        }
        let identities = Identities::new(tokens).with_jwt(config.jwt.clone());
        Ok(Gateway {
            config,
            identities: RwLock::new(identities),
            served,
            databases,
            skipped,
            notes,
            metrics: prometheus::Metrics::new(),
            audit: None,
        })
    }

    /// The gateway, writing a line per request to `log`.
    pub fn with_audit_log(mut self, log: AuditLog) -> Self {
        self.audit = Some(log);
        self
    }

    /// The Prometheus exposition text (`GET /metrics`).
    pub fn metrics(&self) -> String {
        let names = self.services();
        self.metrics.render(
            names
                .iter()
                .map(|name| (*name, self.served[*name].pool.stats())),
        )
    }

    /// Writes what is left of the audit log. Call it once every face
    /// that serves this gateway has stopped; requests answered later are
    /// not logged.
    pub fn close(&self) {
        if let Some(audit) = &self.audit {
            audit.close();
        }
    }

    /// The served service `credential` proves the caller is (401
    /// otherwise).
    pub(crate) fn authenticate(&self, credential: Credential<'_>) -> Result<&str, GatewayError> {
        let identities = self.identities.read().expect("identities lock");
        let name = identities.authenticate(credential)?;
        // Named from the served map, which lives as long as the gateway:
        // the identities may be replaced by the next reload.
        self.served
            .get_key_value(name)
            .map(|(name, _)| name.as_str())
            .ok_or_else(|| GatewayError::unauthenticated("the credential names no served service"))
    }

    /// Reads every served service's gateway token and store credentials
    /// again from its secrets file (after `silo credentials rotate`): a
    /// rotated token works and the old one is refused from now on, and new
    /// connections use the rotated password (open ones go on). A service
    /// whose file has no token any more is refused until it has one; one
    /// whose credentials cannot be read keeps its old ones. Returns what
    /// the operator should know.
    pub fn reload(&self, stores: &Stores) -> Vec<String> {
        let mut notes = Vec::new();
        let mut tokens = Vec::new();
        for name in self.services() {
            let served = &self.served[name];
            match stores.secrets().gateway_token(name) {
                Ok(Some(token)) => tokens.push((name.to_string(), token)),
                Ok(None) => notes.push(format!(
                    "`{name}`: its secrets file has no SILO_GATEWAY_TOKEN; its requests are refused until `silo up` makes one"
                )),
                Err(e) => notes.push(format!(
                    "`{name}`: its gateway token could not be read ({e}); its requests are refused"
                )),
            }
            match stores.credentials(&served.service) {
                Ok(creds) => served.pool.set_credentials(creds),
                Err(e) => notes.push(format!(
                    "`{name}`: its credentials could not be read ({e}); new connections use the old ones"
                )),
            }
        }
        let identities = Identities::new(tokens).with_jwt(self.config.jwt.clone());
        *self.identities.write().expect("identities lock") = identities;
        notes
    }

    /// The largest body any served service may send: what the HTTP layer
    /// reads at most before each service's own `max_body_bytes` is
    /// checked.
    pub fn max_body_bytes(&self) -> usize {
        let largest = self
            .served
            .values()
            .map(|s| s.limits.values.max_body_bytes)
            .max()
            .unwrap_or(silo_manifest::GatewayLimits::DEFAULT_MAX_BODY_BYTES);
        usize::try_from(largest).unwrap_or(usize::MAX)
    }

    /// A served service's limits, overrides applied.
    pub fn limits(&self, service: &str) -> Option<&Limits> {
        self.served.get(service).map(|s| &s.limits)
    }

    /// `(in use, size)` of a served service's connection pool, as the
    /// `silo_gateway_pool_*` metrics count them.
    pub fn pool_use(&self, service: &str) -> Option<(usize, usize)> {
        self.served.get(service).map(|s| {
            let stats = s.pool.stats();
            (stats.busy, stats.size)
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
