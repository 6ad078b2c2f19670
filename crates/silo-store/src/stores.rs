//! Which engine and server hold each service's store, and running one
//! operation over many services at once.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use silo_manifest::{Engine, Isolation, Service};

use crate::StoreEngine;
use crate::credentials::{Credentials, SecretsDir};
use crate::error::StoreError;
use crate::postgres::{PgEngine, parse_url};
use crate::sqlite::SqliteEngine;

/// What [`Stores`] needs to reach every store.
#[derive(Debug, Clone)]
pub struct StoresConfig {
    /// Data dir of SQLite stores and secrets files.
    pub data_dir: PathBuf,
    /// Admin URL of the shared PostgreSQL server (`database` isolation).
    pub admin_url: Option<String>,
    /// How many services are worked on at once.
    pub concurrency: usize,
    /// The project's name, recorded in the marker of every database and
    /// role silo makes (`None`: markers name the service only).
    pub project: Option<String>,
}

/// The engines of a project, made on first use and shared.
pub struct Stores {
    pub(crate) config: StoresConfig,
    sqlite: Arc<SqliteEngine>,
    pub(crate) secrets: SecretsDir,
    /// PostgreSQL engines by server: `None` is the shared server, `Some(var)`
    /// the server named by an instance-isolated service's `url_env`.
    postgres: Mutex<HashMap<Option<String>, Arc<PgEngine>>>,
}

impl Stores {
    /// Engines for the project described by `config`.
    pub fn new(config: StoresConfig) -> Self {
        Stores {
            sqlite: Arc::new(SqliteEngine::new(&config.data_dir)),
            secrets: SecretsDir::new(&config.data_dir),
            config,
            postgres: Mutex::new(HashMap::new()),
        }
    }

    /// The secrets files of the project's services.
    pub fn secrets(&self) -> &SecretsDir {
        &self.secrets
    }

    /// The engine holding `service`'s store. Refuses when the store was
    /// made on another engine than the manifest now names: silo never
    /// switches a service's store silently.
    pub fn engine(&self, service: &Service) -> Result<Arc<dyn StoreEngine>, StoreError> {
        self.check_recorded_engine(service)?;
        match service.engine {
            Engine::Sqlite => Ok(self.sqlite.clone()),
            Engine::Postgres => Ok(self.postgres(service)?),
        }
    }

    /// `service`'s own credentials, from its credentials file: all it takes
    /// to connect as the service. Needs no admin URL (nor `url_env`), so a
    /// sidecar that holds one service's credentials file and nothing else
    /// reaches its store. Refuses, as [`Stores::engine`] does, a file that
    /// records another engine than the manifest names.
    pub fn credentials(&self, service: &Service) -> Result<Credentials, StoreError> {
        self.check_recorded_engine(service)?;
        self.secrets.require(service)
    }

    /// The engine a store was made on is recorded in its credentials file
    /// (written when the store is made, removed when it is dropped).
    fn check_recorded_engine(&self, service: &Service) -> Result<(), StoreError> {
        // An unreadable file is reported by whatever reads it next.
        if let Ok(Some(creds)) = self.secrets.read(service)
            && creds.engine != service.engine
        {
            return Err(StoreError::EngineMismatch {
                service: service.name.clone(),
                recorded: creds.engine,
                configured: service.engine,
            });
        }
        Ok(())
    }

    /// Before a store is made: refuses when this service's store already
    /// lives on the other engine although its credentials file (the usual
    /// record) is gone, found by the store's own mark: a silo-marked SQLite
    /// file at its path, or a PostgreSQL database marked for this service
    /// (and project) on the shared server.
    pub async fn check_no_store_elsewhere(&self, service: &Service) -> Result<(), StoreError> {
        if self.secrets.read(service).ok().flatten().is_some() {
            return Ok(());
        }
        let mismatch = |recorded| StoreError::EngineMismatch {
            service: service.name.clone(),
            recorded,
            configured: service.engine,
        };
        match service.engine {
            Engine::Postgres => {
                let file = service.sqlite_path(&self.config.data_dir);
                if crate::sqlite::has_silo_header(&file).unwrap_or(false) {
                    return Err(mismatch(Engine::Sqlite));
                }
            }
            Engine::Sqlite => {
                if self.config.admin_url.is_none()
                    || service.sqlite_path(&self.config.data_dir).exists()
                {
                    return Ok(());
                }
                let mut probe = service.clone();
                probe.engine = Engine::Postgres;
                probe.isolation = Isolation::Database;
                let Ok(engine) = self.postgres(&probe) else {
                    return Ok(());
                };
                // An unreachable server is no reason to refuse a SQLite
                // store: the check is best effort.
                if let Ok(Some(comment)) = engine.database_comment(&service.database).await
                    && crate::marker_service(&comment) == Some(service.name.as_str())
                    && crate::marker_project(&comment)
                        .is_none_or(|p| Some(p) == self.config.project.as_deref())
                {
                    return Err(mismatch(Engine::Postgres));
                }
            }
        }
        Ok(())
    }

    /// The PostgreSQL engine of `service`'s server.
    pub(crate) fn postgres(&self, service: &Service) -> Result<Arc<PgEngine>, StoreError> {
        let (key, url, origin) = match (service.isolation, &service.url_env) {
            (Isolation::Instance, Some(var)) => {
                let url = std::env::var(var).map_err(|_| StoreError::UrlEnvUnset {
                    service: service.name.clone(),
                    var: var.clone(),
                })?;
                (Some(var.clone()), url, format!("${var}"))
            }
            _ => {
                let url = self
                    .config
                    .admin_url
                    .clone()
                    .ok_or_else(|| StoreError::NoAdminUrl {
                        service: service.name.clone(),
                    })?;
                (None, url, "the admin URL".to_string())
            }
        };
        let mut engines = self.postgres.lock().expect("engine cache poisoned");
        if let Some(engine) = engines.get(&key) {
            return Ok(engine.clone());
        }
        let options = parse_url(&url, &origin)?;
        let pool_size = u32::try_from(self.config.concurrency).unwrap_or(u32::MAX);
        let engine = Arc::new(
            PgEngine::new(options, &self.config.data_dir, pool_size)
                .for_project(self.config.project.clone()),
        );
        engines.insert(key, engine.clone());
        Ok(engine)
    }

    /// Runs `op` on every service, `concurrency` at a time, calling
    /// `on_done` as each finishes. One service's failure does not stop the
    /// others. Results come back in the order of `services`. `op` starts
    /// only when a slot is free, so it sees what finished before it (a
    /// cancellation, a failure that stops the rest). Its error is any type
    /// a [`StoreError`] converts into: the error of a service whose engine
    /// cannot be had.
    pub async fn for_each<'s, T, E, F, Fut>(
        &self,
        services: &[&'s Service],
        op: F,
        mut on_done: impl FnMut(&Service, &Result<T, E>),
    ) -> Vec<(&'s Service, Result<T, E>)>
    where
        E: From<StoreError>,
        F: Fn(Arc<dyn StoreEngine>, &'s Service) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let jobs = services.iter().enumerate().map(|(i, &service)| {
            let engine = self.engine(service);
            let fut = engine.map(|e| op(e, service));
            async move {
                let result = match fut {
                    Ok(fut) => fut.await,
                    Err(e) => Err(E::from(e)),
                };
                (i, service, result)
            }
        });
        let mut stream =
            futures::stream::iter(jobs).buffer_unordered(self.config.concurrency.max(1));
        let mut out: Vec<(usize, &'s Service, Result<T, E>)> = Vec::new();
        while let Some((i, service, result)) = stream.next().await {
            on_done(service, &result);
            out.push((i, service, result));
        }
        out.sort_by_key(|(i, _, _)| *i);
        out.into_iter().map(|(_, s, r)| (s, r)).collect()
    }
}
