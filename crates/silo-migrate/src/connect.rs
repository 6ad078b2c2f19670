//! Opening a service's store as the service itself, through silo-store's
//! seam: migrations never run as the administrator, and never in a store
//! that is not the service's own.

use std::sync::Arc;

use silo_manifest::Service;
use silo_store::{Credentials, ServiceConnection, StoreKind, Stores};

use crate::error::MigrateError;
use crate::postgres::{Connector, PgTarget};
use crate::sqlite::SqliteTarget;
use crate::target::{LockPolicy, Target};

/// Connects to `service`'s own store with its own credentials.
pub async fn open(
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    let creds = stores.credentials(service)?;
    open_with(creds, service, StoreKind::Own, policy).await
}

/// Connects to a scratch store made for `service` (by `silo verify` or
/// `silo diff`), as `service`.
pub async fn open_scratch(
    scratch: &Credentials,
    service: &Service,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    open_with(scratch.clone(), service, StoreKind::Scratch, policy).await
}

/// Connects to `service`'s own store with credentials the caller already
/// holds (the gateway keeps each service's), as `service`; the store must
/// prove it is the service's own as with [`open`].
pub async fn open_as(
    creds: &Credentials,
    service: &Service,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    open_with(creds.clone(), service, StoreKind::Own, policy).await
}

fn application(service: &Service) -> String {
    format!("silo migrate {}", service.name)
}

async fn open_with(
    creds: Credentials,
    service: &Service,
    kind: StoreKind,
    policy: LockPolicy,
) -> Result<Box<dyn Target>, MigrateError> {
    let conn = silo_store::connect_with(&creds, service, kind, &application(service)).await?;
    Ok(match conn {
        ServiceConnection::Postgres(conn) => Box::new(
            PgTarget::new(conn, policy)
                .await?
                .cancel_with(canceller(creds, service.clone(), kind)),
        ),
        ServiceConnection::Sqlite(conn) => Box::new(SqliteTarget::new(conn, policy).await?),
    })
}

/// A second connection to the same store as the same service, opened only
/// when a running statement has to be cancelled.
fn canceller(creds: Credentials, service: Service, kind: StoreKind) -> Connector {
    Arc::new(move || {
        let (creds, service) = (creds.clone(), service.clone());
        Box::pin(async move {
            let application = format!("silo cancel {}", service.name);
            match silo_store::connect_with(&creds, &service, kind, &application).await? {
                ServiceConnection::Postgres(conn) => Ok(conn),
                other => {
                    other.close().await;
                    Err(MigrateError::Refused(
                        "the store is not a PostgreSQL database".into(),
                    ))
                }
            }
        })
    })
}
