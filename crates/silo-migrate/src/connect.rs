//! Opening a service's store as the service itself, from its credentials
//! file: migrations never run as the administrator.

use silo_manifest::{Engine, Service};
use silo_store::{Credentials, StoreError, Stores};
use sqlx::{Connection, PgConnection};

use crate::error::MigrateError;
use crate::postgres::PgTarget;
use crate::sqlite::SqliteTarget;
use crate::target::{LockPolicy, Target};

/// Connects to `service`'s store with its own credentials.
pub async fn open(
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    let creds = stores.engine(service)?.credentials(service)?;
    open_with(&creds, service, policy).await
}

/// Connects with given credentials (a scratch store's, say) as `service`.
pub async fn open_with(
    creds: &Credentials,
    service: &Service,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    match creds.engine {
        Engine::Postgres => {
            let options = silo_store::postgres::parse_url(&creds.url(), "the credentials file")?
                .application_name(&format!("silo migrate {}", service.name));
            let conn = PgConnection::connect_with(&options)
                .await
                .map_err(|source| StoreError::Connect {
                    target: creds.redacted_url(),
                    source,
                })?;
            Ok(Box::new(PgTarget::new(conn, policy).await?))
        }
        Engine::Sqlite => {
            let conn = silo_store::sqlite::open(std::path::Path::new(&creds.database)).await?;
            Ok(Box::new(SqliteTarget::new(conn, policy).await?))
        }
    }
}
