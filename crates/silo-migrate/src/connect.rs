//! Opening a service's store as the service itself, through silo-store's
//! seam: migrations never run as the administrator, and never in a store
//! that is not the service's own.

use silo_manifest::Service;
use silo_store::{Credentials, ServiceConnection, StoreKind, Stores};

use crate::error::MigrateError;
use crate::postgres::PgTarget;
use crate::sqlite::SqliteTarget;
use crate::target::{LockPolicy, Target};

/// Connects to `service`'s own store with its own credentials.
pub async fn open(
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    let conn = stores.connect_as(service, &application(service)).await?;
    target(conn, policy).await
}

/// Connects to a scratch store made for `service` (by `silo verify` or
/// `silo diff`), as `service`.
pub async fn open_scratch(
    scratch: &Credentials,
    service: &Service,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    let conn =
        silo_store::connect_with(scratch, service, StoreKind::Scratch, &application(service))
            .await?;
    target(conn, policy).await
}

fn application(service: &Service) -> String {
    format!("silo migrate {}", service.name)
}

async fn target(
    conn: ServiceConnection,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    Ok(match conn {
        ServiceConnection::Postgres(conn) => Box::new(PgTarget::new(conn, policy).await?),
        ServiceConnection::Sqlite(conn) => Box::new(SqliteTarget::new(conn, policy).await?),
    })
}
