//! silo's events: the transactional outbox and the idempotent inbox, kept
//! in each publishing or consuming service's own store.
//!
//! This is the first step: [`ensure`] creates the event tables (see
//! [`schema`]) as the service, and [`publish`] writes an event in the
//! caller's transaction. Publishing from any other language is a plain
//! `INSERT INTO silo_outbox (type, key, payload) VALUES (...)`, or
//! `SELECT silo_publish(type, key, payload)` on PostgreSQL.
//! [`relay::embedded::deliver_once`] moves committed events from
//! publishers' outboxes into consumers' inboxes on the embedded bus, and
//! [`worker`] keeps doing it until stopped (`silo events run`).
//! [`inbox::Inbox`] consumes them, each in the transaction of the
//! service's own writes; [`dlq`] lists, retries and drops the events
//! given up on; [`status`] reads backlog, progress and lag.

pub mod contracts;
pub mod dlq;
pub mod inbox;
pub mod relay;
pub mod schema;
pub mod status;
pub mod worker;

use miette::Diagnostic;
use silo_manifest::Service;
use silo_store::{Outcome, Provisioned, ServiceConnection, StoreError, Stores};
use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};
use uuid::Uuid;

/// The name silo's event connections carry on the server.
const APPLICATION: &str = "silo events";

/// What went wrong with a service's event tables.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum EventsError {
    /// Reaching the store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),

    /// The nats bus failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Nats(#[from] relay::nats::NatsError),

    /// A statement on the store failed.
    #[error("{action} failed")]
    #[diagnostic(code(silo::events::sql))]
    Sql {
        action: String,
        #[source]
        source: sqlx::Error,
    },

    /// The store's event tables were made by a newer silo.
    #[error(
        "the event tables of {service} have format {found}; this silo knows formats up to {supported}"
    )]
    #[diagnostic(
        code(silo::events::newer_format),
        help("a newer silo upgraded this store; run that version (or newer) of silo")
    )]
    NewerFormat {
        service: String,
        found: i64,
        supported: i64,
    },

    /// The newest contract of a published type is not usable.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Contracts(#[from] contracts::ContractsError),

    /// The payload given to [`publish`] is not a JSON value a store can keep.
    #[error("the payload of a {event_type} event could not be serialized: {reason}")]
    #[diagnostic(code(silo::events::payload))]
    Payload { event_type: String, reason: String },

    /// Events were to be taken from the inbox outside a transaction.
    #[error("events can only be taken from the inbox inside a transaction")]
    #[diagnostic(
        code(silo::events::not_in_transaction),
        help(
            "begin a transaction (`BEGIN IMMEDIATE` on SQLite) and take the events with it, so they stay claimed until their done marks commit; or use Inbox::handle, which does"
        )
    )]
    NotInTransaction,

    /// An event was to be marked done or failed, but is not pending.
    #[error("inbox event {id} is no longer pending")]
    #[diagnostic(
        code(silo::events::not_pending),
        help(
            "another consumer handled it, or it was taken outside the transaction that marks it; take events with Inbox::next_batch in that transaction"
        )
    )]
    NotPending { id: String },

    /// A dead outbox event was to be retried: its contract refused its
    /// payload and would again.
    #[error(
        "{id} is a dead outbox event of {service}: its contract refused its payload, and would again"
    )]
    #[diagnostic(
        code(silo::events::outbox_not_retried),
        help(
            "publish a corrected event from {service}, then remove this one with `silo events dlq drop {id} --yes`"
        )
    )]
    OutboxNotRetried { service: String, id: String },
}

impl EventsError {
    /// The exit code this error means: 2 for a store that cannot be
    /// reached or a contract that cannot be used (the project's files are
    /// wrong), 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            EventsError::Store(e) => e.exit_code(),
            EventsError::Contracts(_) => 2,
            EventsError::Nats(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// `message: innermost cause` on one line, as logs show an error.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let top = e.to_string();
    let root = silo_store::root_cause(e);
    if top.ends_with(&root) {
        top
    } else {
        format!("{top}: {root}")
    }
}

fn sql(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> EventsError {
    let action = action.into();
    move |source| EventsError::Sql { action, source }
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The event tables were created.
    Created,
    /// The event tables were upgraded from an older format, or (`from`
    /// the current one) completed: made by an earlier build of a format
    /// not yet released.
    Upgraded { from: i64 },
    /// The event tables were there, in this format: nothing changed.
    Unchanged,
    /// The service neither publishes nor consumes: no tables needed.
    NotNeeded,
}

impl Ensured {
    /// The change to report, if something changed.
    pub fn change(&self) -> Option<String> {
        match self {
            Ensured::Created => Some("created the event tables".into()),
            Ensured::Upgraded { from } if *from == schema::FORMAT => {
                Some(format!("completed the event tables of format {from}"))
            }
            Ensured::Upgraded { from } => Some(format!(
                "upgraded the event tables from format {from} to {}",
                schema::FORMAT
            )),
            Ensured::Unchanged | Ensured::NotNeeded => None,
        }
    }

    /// Adds this change, if any, to what provisioning the store did: a
    /// store that was otherwise unchanged is then updated.
    pub fn record(&self, provisioned: &mut Provisioned) {
        if let Some(change) = self.change() {
            provisioned.changes.push(change);
            if provisioned.outcome == Outcome::Unchanged {
                provisioned.outcome = Outcome::Updated;
            }
        }
    }
}

/// Whether a SQLite store's cursor table has its `seq` column.
async fn has_cursor_seq(conn: &mut SqliteConnection) -> Result<bool, EventsError> {
    sqlx::query_scalar(schema::CURSOR_SEQ_SQLITE)
        .fetch_one(conn)
        .await
        .map_err(sql("looking for the event tables' columns"))
}

/// Whether `service` needs event tables: it publishes or consumes.
pub fn needs_tables(service: &Service) -> bool {
    !service.publishes.is_empty() || !service.consumes.is_empty()
}

/// Creates or upgrades the event tables in `service`'s store, as the
/// service (so its role owns them), in one transaction. Running it again
/// changes nothing. A store whose tables have a newer format is refused.
/// A service that neither publishes nor consumes is left alone.
pub async fn ensure(stores: &Stores, service: &Service) -> Result<Ensured, EventsError> {
    if !needs_tables(service) {
        return Ok(Ensured::NotNeeded);
    }
    let conn = stores.connect_as(service, APPLICATION).await?;
    match conn {
        ServiceConnection::Postgres(mut c) => {
            let r = ensure_postgres(&mut c, &service.name).await;
            let _ = c.close().await;
            r
        }
        ServiceConnection::Sqlite(mut c) => {
            let r = ensure_sqlite(&mut c, &service.name).await;
            let _ = c.close().await;
            r
        }
    }
}

/// What to do given the format a store records and, for this format,
/// whether its tables are complete (see [`schema::COMPLETE_POSTGRES`]).
fn plan(service: &str, found: Option<i64>, complete: bool) -> Result<Option<Ensured>, EventsError> {
    match found {
        Some(f) if f > schema::FORMAT => Err(EventsError::NewerFormat {
            service: service.to_string(),
            found: f,
            supported: schema::FORMAT,
        }),
        Some(f) if f == schema::FORMAT && complete => Ok(None),
        Some(from) => Ok(Some(Ensured::Upgraded { from })),
        None => Ok(Some(Ensured::Created)),
    }
}

const RECORD_FORMAT: &str = "INSERT INTO silo_events_state (id, format) VALUES (1, $1) \
     ON CONFLICT (id) DO UPDATE SET format = excluded.format";

async fn ensure_postgres(conn: &mut PgConnection, service: &str) -> Result<Ensured, EventsError> {
    let mut tx = conn.begin().await.map_err(sql("beginning a transaction"))?;
    // Two ensures at once take turns: the second sees the first's tables.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('silo_events_state'))")
        .execute(&mut *tx)
        .await
        .map_err(sql("locking the event tables"))?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('silo_events_state') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await
        .map_err(sql("looking for the event tables"))?;
    let found: Option<i64> = if exists {
        sqlx::query_scalar("SELECT format::bigint FROM silo_events_state WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql("reading the event tables' format"))?
    } else {
        None
    };
    let complete = found != Some(schema::FORMAT)
        || sqlx::query_scalar(schema::COMPLETE_POSTGRES)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql("looking for the event tables' columns"))?;
    let Some(done) = plan(service, found, complete)? else {
        return Ok(Ensured::Unchanged);
    };
    sqlx::raw_sql(AssertSqlSafe(schema::POSTGRES))
        .execute(&mut *tx)
        .await
        .map_err(sql("creating the event tables"))?;
    sqlx::query(RECORD_FORMAT)
        .bind(schema::FORMAT as i32)
        .execute(&mut *tx)
        .await
        .map_err(sql("recording the event tables' format"))?;
    tx.commit()
        .await
        .map_err(sql("committing the event tables"))?;
    Ok(done)
}

async fn ensure_sqlite(conn: &mut SqliteConnection, service: &str) -> Result<Ensured, EventsError> {
    // IMMEDIATE: the write lock first, so two ensures take turns.
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(sql("beginning a transaction"))?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'silo_events_state')",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(sql("looking for the event tables"))?;
    let found: Option<i64> = if exists {
        sqlx::query_scalar("SELECT format FROM silo_events_state WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql("reading the event tables' format"))?
    } else {
        None
    };
    let complete = found != Some(schema::FORMAT) || has_cursor_seq(&mut tx).await?;
    let Some(done) = plan(service, found, complete)? else {
        return Ok(Ensured::Unchanged);
    };
    sqlx::raw_sql(AssertSqlSafe(schema::SQLITE))
        .execute(&mut *tx)
        .await
        .map_err(sql("creating the event tables"))?;
    // SQLite has no `ADD COLUMN IF NOT EXISTS`; a cursor table just made
    // has the column.
    if !has_cursor_seq(&mut tx).await? {
        sqlx::raw_sql(schema::ADD_CURSOR_SEQ_SQLITE)
            .execute(&mut *tx)
            .await
            .map_err(sql("adding the cursor's seq"))?;
    }
    sqlx::query(RECORD_FORMAT)
        .bind(schema::FORMAT)
        .execute(&mut *tx)
        .await
        .map_err(sql("recording the event tables' format"))?;
    tx.commit()
        .await
        .map_err(sql("committing the event tables"))?;
    Ok(done)
}

/// Where [`publish`] writes: a connection (or a transaction: `&mut *tx`
/// derefs to one) to a service's own store.
pub enum Outbox<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

impl<'c> From<&'c mut PgConnection> for Outbox<'c> {
    fn from(c: &'c mut PgConnection) -> Self {
        Outbox::Postgres(c)
    }
}

impl<'c> From<&'c mut SqliteConnection> for Outbox<'c> {
    fn from(c: &'c mut SqliteConnection) -> Self {
        Outbox::Sqlite(c)
    }
}

impl<'c> From<&'c mut ServiceConnection> for Outbox<'c> {
    fn from(c: &'c mut ServiceConnection) -> Self {
        match c {
            ServiceConnection::Postgres(c) => Outbox::Postgres(c),
            ServiceConnection::Sqlite(c) => Outbox::Sqlite(c),
        }
    }
}

/// Publishes an event: one row in the store's `silo_outbox`, written on
/// `conn`, so it commits or rolls back with the caller's transaction.
/// Returns the event's id, a UUID v7.
pub async fn publish<'c>(
    conn: impl Into<Outbox<'c>>,
    event_type: &str,
    key: &str,
    payload: &serde_json::Value,
) -> Result<Uuid, EventsError> {
    let id = Uuid::now_v7();
    let body = serde_json::to_string(payload).map_err(|e| EventsError::Payload {
        event_type: event_type.to_string(),
        reason: e.to_string(),
    })?;
    let action = format!("publishing a {event_type} event");
    match conn.into() {
        Outbox::Postgres(c) => {
            sqlx::query(
                "INSERT INTO silo_outbox (id, type, key, payload) VALUES ($1::uuid, $2, $3, $4::jsonb)",
            )
            .bind(id.to_string())
            .bind(event_type)
            .bind(key)
            .bind(body)
            .execute(c)
            .await
            .map_err(sql(action))?;
        }
        Outbox::Sqlite(c) => {
            sqlx::query("INSERT INTO silo_outbox (id, type, key, payload) VALUES ($1, $2, $3, $4)")
                .bind(id.to_string())
                .bind(event_type)
                .bind(key)
                .bind(body)
                .execute(c)
                .await
                .map_err(sql(action))?;
        }
    }
    Ok(id)
}
