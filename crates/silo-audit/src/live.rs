//! The live audit: read every PostgreSQL server's catalog and every
//! service database's, make the connection probes, and hand the snapshot to
//! the checks.

use std::collections::HashMap;

use futures::StreamExt;
use silo_manifest::{Engine, Manifest, Service};
use silo_store::{ServerId, StoreError, Stores, root_cause};
use sqlx::postgres::PgConnectOptions;

use crate::catalog::{self, DatabaseCatalog, ServerCatalog};
use crate::probe::{self, Attempt, Probe};
use crate::secrets::SecretsFile;
use crate::{AuditError, Options};

/// One PostgreSQL server and what it holds.
pub struct Server {
    /// Which server: the shared one, or an instance's.
    pub key: ServerId,
    pub options: PgConnectOptions,
    /// `host:port`, for messages.
    pub label: String,
    pub catalog: ServerCatalog,
    /// Services whose store is here, in manifest order.
    pub services: Vec<String>,
    /// Each service database's inside, by service name.
    pub databases: HashMap<String, DatabaseCatalog>,
}

/// Everything the live checks look at.
pub struct Live<'m> {
    pub manifest: &'m Manifest,
    pub servers: Vec<Server>,
    /// Every service's secrets file, as it is on disk.
    pub secrets: HashMap<String, SecretsFile>,
    /// Probe results by (role's service, store's service).
    pub probes: HashMap<(String, String), Probe>,
}

impl<'m> Live<'m> {
    /// The service called `name`.
    pub fn service(&self, name: &str) -> &'m Service {
        self.manifest
            .service(name)
            .expect("the audit only names manifest services")
    }

    /// The service whose role is `role`, if any.
    pub fn role_owner(&self, role: &str) -> Option<&'m Service> {
        self.manifest
            .services
            .iter()
            .find(|s| s.engine == Engine::Postgres && s.role == role)
    }

    /// Every service database whose inside was read, with its server and
    /// its service.
    pub fn service_databases(
        &self,
    ) -> impl Iterator<Item = (&Server, &'m Service, &DatabaseCatalog)> + '_ {
        self.servers.iter().flat_map(move |server| {
            server.services.iter().filter_map(move |name| {
                let inside = server.databases.get(name)?;
                Some((server, self.service(name), inside))
            })
        })
    }

    /// The service whose database on `server` is `database`, if any.
    pub fn database_owner(&self, server: &Server, database: &str) -> Option<&'m Service> {
        server
            .services
            .iter()
            .map(|n| self.service(n))
            .find(|s| s.database == database)
    }
}

/// The server holding `service`'s (PostgreSQL) store.
pub fn server_key(service: &Service) -> ServerId {
    ServerId::of(service).unwrap_or(ServerId::SHARED)
}

/// Reads catalogs and makes probes for the manifest's PostgreSQL services.
pub async fn read<'m>(
    manifest: &'m Manifest,
    stores: &Stores,
    options: &Options,
) -> Result<Live<'m>, AuditError> {
    let postgres: Vec<&Service> = manifest
        .services
        .iter()
        .filter(|s| s.engine == Engine::Postgres)
        .collect();
    let roles: Vec<String> = postgres.iter().map(|s| s.role.clone()).collect();
    let secrets: HashMap<String, SecretsFile> = manifest
        .services
        .iter()
        .map(|s| (s.name.clone(), SecretsFile::read(stores.secrets(), s)))
        .collect();

    // Group services by server, keeping manifest order.
    let mut groups: Vec<(ServerId, Vec<&Service>)> = Vec::new();
    for s in &postgres {
        let key = server_key(s);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(s),
            None => groups.push((key, vec![s])),
        }
    }

    let mut servers = Vec::new();
    for (key, services) in groups {
        let engine = stores.admin(services[0]).map_err(AuditError::Store)?;
        let databases: Vec<String> = services.iter().map(|s| s.database.clone()).collect();
        let catalog = catalog::read_server(
            engine.catalog().await.map_err(|e| match e {
                StoreError::Connect { source, .. } => AuditError::Unreachable {
                    server: engine.server().to_string(),
                    action: "connecting as the admin".into(),
                    message: root_cause(&source),
                },
                other => AuditError::Store(other),
            })?,
            &roles,
            &databases,
        )
        .await
        .map_err(|e| AuditError::from_sql(e, engine.server(), "reading the catalog"))?;
        // One admin connection per service database, `jobs` at a time.
        let mut inside = HashMap::new();
        let reads = services
            .iter()
            .filter(|s| catalog.databases.contains_key(&s.database))
            .map(|s| {
                let engine = engine.clone();
                async move {
                    let mut conn = engine.connect_in(&s.database).await.map_err(|e| {
                        AuditError::Privilege(format!(
                            "the administrator cannot read database `{}` on {}: {}",
                            s.database,
                            engine.server(),
                            root_cause(&e)
                        ))
                    })?;
                    let read = catalog::read_database(&mut conn, &s.role).await;
                    let _ = sqlx::Connection::close(conn).await;
                    let db = read.map_err(|e| {
                        AuditError::from_sql(
                            e,
                            engine.server(),
                            &format!("reading database `{}`", s.database),
                        )
                    })?;
                    Ok::<_, AuditError>((s.name.clone(), db))
                }
            });
        {
            let mut read = futures::stream::iter(reads).buffer_unordered(options.jobs.max(1));
            while let Some(result) = read.next().await {
                let (name, db) = result?;
                inside.insert(name, db);
            }
        }
        servers.push(Server {
            key,
            options: engine.login_options("", None, "postgres"),
            label: engine.server().to_string(),
            catalog,
            services: services.iter().map(|s| s.name.clone()).collect(),
            databases: inside,
        });
    }

    let mut live = Live {
        manifest,
        servers,
        secrets,
        probes: HashMap::new(),
    };
    live.probes = run_probes(&live, options).await;
    Ok(live)
}

/// Chooses and runs the probes: every service's own store, the next
/// sibling on its server, every pair the catalog shows open, and with
/// `thorough` every pair on each server.
async fn run_probes(live: &Live<'_>, options: &Options) -> HashMap<(String, String), Probe> {
    let mut pairs: Vec<(String, String, &Server)> = Vec::new();
    for server in &live.servers {
        let n = server.services.len();
        for (i, role_service) in server.services.iter().enumerate() {
            let s = live.service(role_service);
            if !server.catalog.roles.contains_key(&s.role) {
                continue;
            }
            for (j, store_service) in server.services.iter().enumerate() {
                let store = live.service(store_service);
                if !server.catalog.databases.contains_key(&store.database) {
                    continue;
                }
                let open = server
                    .catalog
                    .connect
                    .contains(&(s.role.clone(), store.database.clone()));
                let chosen = i == j || options.thorough || j == (i + 1) % n || open;
                if chosen {
                    pairs.push((role_service.clone(), store_service.clone(), server));
                }
            }
        }
    }
    let attempts = pairs
        .into_iter()
        .filter_map(|(role_service, store_service, server)| {
            let secrets = &live.secrets[&role_service];
            let (user, password) = (secrets.user.clone()?, secrets.password.clone()?);
            let attempt = Attempt {
                server: server.options.clone(),
                user,
                password,
                database: live.service(&store_service).database.clone(),
                write: role_service == store_service,
            };
            Some(async move {
                let outcome = probe::attempt(&attempt).await;
                ((role_service, store_service), outcome)
            })
        });
    futures::stream::iter(attempts)
        .buffer_unordered(options.probe_jobs.max(1))
        .collect()
        .await
}
