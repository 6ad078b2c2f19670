//! A connection to a store as its service: the one way every other crate
//! reaches a store. The connection is made with the service's own
//! credentials, never the administrator's, and only after the store has
//! proven it is the service's own: its silo mark names the service, and it
//! lives on the engine the store was made on.

use std::path::Path;

use silo_manifest::{Engine, Service};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::credentials::Credentials;
use crate::error::{StoreError, sql};
use crate::postgres::parse_url;
use crate::{Stores, marker_service};

/// An open connection to one service's store, as that service.
#[derive(Debug)]
pub enum ServiceConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl ServiceConnection {
    /// The engine at the other end.
    pub fn engine(&self) -> Engine {
        match self {
            ServiceConnection::Postgres(_) => Engine::Postgres,
            ServiceConnection::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// Closes the connection, ignoring a server that is already gone.
    pub async fn close(self) {
        let _ = match self {
            ServiceConnection::Postgres(c) => c.close().await,
            ServiceConnection::Sqlite(c) => c.close().await,
        };
    }
}

/// Which store a connection is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The service's own store, marked `managed by silo: service=<name>`.
    Own,
    /// A scratch store made by [`crate::StoreEngine::scratch`] for it.
    Scratch,
    /// A store made by [`crate::StoreEngine::restore_target`] to replace
    /// its live store, before the swap.
    Replacement,
}

impl Stores {
    /// Connects to `service`'s own store with its own credentials (its
    /// credentials file is all it needs, no admin URL), after checking
    /// that the store is the one silo made for it.
    /// `application` names the connection on the server (`pg_stat_activity`).
    pub async fn connect_as(
        &self,
        service: &Service,
        application: &str,
    ) -> Result<ServiceConnection, StoreError> {
        let creds = self.credentials(service)?;
        connect_with(&creds, service, StoreKind::Own, application).await
    }

    /// A connection to `service`'s own PostgreSQL store, as the service,
    /// that receives the store's notifications (`LISTEN channel`). It
    /// reconnects by itself when the connection drops. `None` for a SQLite
    /// store, which has no notifications. The store's mark is checked
    /// first, as [`Stores::connect_as`] does.
    pub async fn listen_as(
        &self,
        service: &Service,
        application: &str,
        channel: &str,
    ) -> Result<Option<PgListener>, StoreError> {
        let creds = self.credentials(service)?;
        if creds.engine != Engine::Postgres {
            return Ok(None);
        }
        connect_with(&creds, service, StoreKind::Own, application)
            .await?
            .close()
            .await;
        let options =
            parse_url(&creds.url(), "the credentials file")?.application_name(application);
        let connect = |source| StoreError::Connect {
            target: creds.redacted_url(),
            source,
        };
        // A pool of one: PgListener reconnects through it.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(options)
            .await
            .map_err(connect)?;
        let mut listener = PgListener::connect_with(&pool).await.map_err(connect)?;
        listener
            .listen(channel)
            .await
            .map_err(sql("listening for the store's notifications"))?;
        Ok(Some(listener))
    }
}

/// Connects with given credentials (a scratch store's, say) as `service`,
/// checking the store's mark first.
pub async fn connect_with(
    creds: &Credentials,
    service: &Service,
    kind: StoreKind,
    application: &str,
) -> Result<ServiceConnection, StoreError> {
    if creds.engine != service.engine {
        return Err(StoreError::EngineMismatch {
            service: service.name.clone(),
            recorded: creds.engine,
            configured: service.engine,
        });
    }
    match creds.engine {
        Engine::Postgres => {
            let options =
                parse_url(&creds.url(), "the credentials file")?.application_name(application);
            let mut conn = PgConnection::connect_with(&options)
                .await
                .map_err(|source| match &source {
                    // The server answered and refused the service's own
                    // login: its credentials are wrong, not the server
                    // unreachable.
                    sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")) => {
                        StoreError::ServiceLogin {
                            service: service.name.clone(),
                            source,
                        }
                    }
                    _ => StoreError::Connect {
                        target: creds.redacted_url(),
                        source,
                    },
                })?;
            let comment: Option<String> = sqlx::query_scalar(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
                 WHERE datname = current_database()",
            )
            .fetch_one(&mut conn)
            .await
            .map_err(sql("reading the database's silo mark"))?;
            let owner = match kind {
                StoreKind::Own => comment.as_deref().and_then(marker_service),
                StoreKind::Scratch => comment.as_deref().and_then(crate::scratch_service),
                StoreKind::Replacement => comment.as_deref().and_then(crate::replacement_service),
            };
            check_owner(owner, "database", &creds.database, service)?;
            Ok(ServiceConnection::Postgres(conn))
        }
        Engine::Sqlite => {
            // Only through SQLite: a process that opens and closes the file
            // by other means drops the locks all its connections hold on it
            // (POSIX locks go with any close), and another process could
            // then checkpoint and delete the WAL under them, corrupting the
            // store. A long-running process (the events worker) keeps
            // connections open while it makes new ones.
            let path = Path::new(&creds.database);
            let foreign = || StoreError::NotServiceStore {
                service: service.name.clone(),
                kind: "SQLite file",
                name: creds.database.clone(),
                found: None,
            };
            let mut conn = crate::sqlite::open_existing(path).await?;
            let owner = match crate::sqlite::owner(&mut conn).await {
                Ok(owner) => owner,
                Err(e) if crate::sqlite::is_not_a_database(&e) => {
                    let _ = conn.close().await;
                    return Err(foreign());
                }
                Err(e) => return Err(e),
            };
            if let Err(e) = check_owner(owner.as_deref(), "SQLite file", &creds.database, service) {
                let _ = conn.close().await;
                return Err(e);
            }
            // Only now, the file proven to be the service's store: WAL is
            // a lasting setting of the file (silo's stores have it already).
            crate::sqlite::use_wal(&mut conn).await?;
            Ok(ServiceConnection::Sqlite(conn))
        }
    }
}

fn check_owner(
    owner: Option<&str>,
    kind: &'static str,
    name: &str,
    service: &Service,
) -> Result<(), StoreError> {
    match owner {
        Some(owner) if owner == service.name => Ok(()),
        found => Err(StoreError::NotServiceStore {
            service: service.name.clone(),
            kind,
            name: name.to_string(),
            found: found.map(str::to_string),
        }),
    }
}
