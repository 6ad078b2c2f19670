//! Database events (seed 003 §3.3, §7.3), written through the service's
//! own outbox (`silo_events::publish`, a row in its `silo_outbox`):
//!
//! - `storage.db.write_complete`: one per operation of a write, and
//!   `storage.db.transaction_complete` once per write, in the write's own
//!   transaction, just before its commit;
//! - `storage.db.migration_complete` and `storage.schema.version_change`,
//!   in the migration's own transaction;
//! - `storage.db.error` and `storage.db.deadlock` for a write or a
//!   migration the store refused, after the rollback, in a transaction of
//!   their own (the failed one left nothing behind).
//!
//! So an event exists exactly when what it tells of committed: a write
//! rolled back takes its events with it. A service gets only the types it
//! lists in its manifest's `publishes` ([`events_for`]).
//!
//! Payloads name tables, counts, versions and the request, never a row's
//! values: events travel to every consumer of the type, and the values
//! belong to the service's store alone (they may be personal data or
//! secrets, and the isolation silo keeps between stores would leak
//! through them).

use serde_json::{Value, json};
use silo_migrate::{Applied, Conn, MigrateError, Migration, Step, Target};
use silo_store::ServiceConnection;

use crate::Served;
use crate::error::GatewayError;
use crate::request::{IsolationLevel, OperationResult};

pub const WRITE_COMPLETE: &str = "storage.db.write_complete";
pub const TRANSACTION_COMPLETE: &str = "storage.db.transaction_complete";
pub const ERROR: &str = "storage.db.error";
pub const DEADLOCK: &str = "storage.db.deadlock";
pub const MIGRATION_COMPLETE: &str = "storage.db.migration_complete";
pub const VERSION_CHANGE: &str = "storage.schema.version_change";

/// Every type the gateway writes.
pub const ALL: [&str; 6] = [
    WRITE_COMPLETE,
    TRANSACTION_COMPLETE,
    ERROR,
    DEADLOCK,
    MIGRATION_COMPLETE,
    VERSION_CHANGE,
];

/// The database events one service gets, and what they carry of the
/// request.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// The service's database, in every payload and as every event's key
    /// (so one store's events keep their order).
    database: String,
    types: Vec<&'static str>,
    request_id: Option<String>,
}

/// The database events `served` gets: the types of [`ALL`] it lists in
/// its manifest's `publishes`, none when its `[services.X.gateway]
/// events = false`. This is the one place a service's switches are read.
pub fn events_for(served: &Served) -> Events {
    let publishes = &served.service.publishes;
    let on = served.service.gateway.events;
    Events {
        database: served.service.database.clone(),
        types: ALL
            .into_iter()
            .filter(|t| on && publishes.iter().any(|p| p == t))
            .collect(),
        request_id: None,
    }
}

impl Events {
    /// These events, naming `request_id` (the request they tell of).
    pub fn with_request_id(mut self, request_id: Option<&str>) -> Self {
        self.request_id = request_id.map(str::to_string);
        self
    }

    /// Whether the service gets events of `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.types.contains(&event_type)
    }

    /// Whether the service gets no events at all.
    pub fn none(&self) -> bool {
        self.types.is_empty()
    }

    /// `fields` with the database and the request id.
    fn payload(&self, fields: Value) -> Value {
        let mut payload = json!({
            "database": self.database,
            "request_id": self.request_id,
        });
        if let (Value::Object(p), Value::Object(f)) = (&mut payload, fields) {
            p.extend(f);
        }
        payload
    }

    /// Writes `event_type` on `conn` if the service gets it.
    async fn publish<'c>(
        &self,
        conn: impl Into<silo_events::Outbox<'c>>,
        event_type: &'static str,
        fields: Value,
    ) -> Result<(), sqlx::Error> {
        if !self.wants(event_type) {
            return Ok(());
        }
        silo_events::publish(conn, event_type, &self.database, &self.payload(fields))
            .await
            .map(|_| ())
            .map_err(|e| match e {
                silo_events::EventsError::Sql { source, .. } => source,
                other => sqlx::Error::Configuration(other.to_string().into()),
            })
    }

    /// `storage.db.write_complete` for one operation of a write, in its
    /// transaction.
    pub async fn write_complete(
        &self,
        conn: &mut ServiceConnection,
        index: usize,
        result: &OperationResult,
    ) -> Result<(), sqlx::Error> {
        let fields = json!({
            "index": index,
            "table": result.table,
            "operation": result.kind,
            "rows": result.rows_affected,
        });
        self.publish(conn, WRITE_COMPLETE, fields).await
    }

    /// `storage.db.transaction_complete` for a whole write, in its
    /// transaction, before its commit.
    pub async fn transaction_complete(
        &self,
        conn: &mut ServiceConnection,
        isolation: IsolationLevel,
        attempt: u32,
        results: &[OperationResult],
    ) -> Result<(), sqlx::Error> {
        let mut tables: Vec<&str> = results.iter().map(|r| r.table.as_str()).collect();
        tables.sort();
        tables.dedup();
        let fields = json!({
            "operations": results.len(),
            "rows": results.iter().map(|r| r.rows_affected).sum::<u64>(),
            "tables": tables,
            "isolation": isolation,
            "attempt": attempt,
        });
        self.publish(conn, TRANSACTION_COMPLETE, fields).await
    }

    /// `storage.db.deadlock` (SQLSTATE 40P01) or `storage.db.error` for a
    /// write or migration that failed in the store, on `conn` after its rollback, as a
    /// transaction of its own. `retried`: the write runs again. Best
    /// effort: the caller's answer is the write's own error, so a failure
    /// here is logged, not returned.
    pub async fn failed<'c>(
        &self,
        conn: impl Into<silo_events::Outbox<'c>>,
        operation: &str,
        tables: &[&str],
        attempt: u32,
        retried: bool,
        error: &GatewayError,
    ) {
        let deadlock = error.sqlstate.as_deref() == Some("40P01");
        let event_type = if deadlock { DEADLOCK } else { ERROR };
        if !self.wants(event_type) {
            return;
        }
        let mut tables = tables.to_vec();
        tables.sort();
        tables.dedup();
        let fields = json!({
            "operation": operation,
            "tables": tables,
            "code": error.code,
            "sqlstate": error.sqlstate,
            "attempt": attempt,
            "retried": retried,
        });
        if let Err(e) = self.publish(conn, event_type, fields).await {
            tracing::warn!(
                database = %self.database,
                "could not write a {event_type} event: {e}"
            );
        }
    }
}

/// Writes `storage.db.migration_complete` and
/// `storage.schema.version_change` in each migration's own transaction.
pub struct MigrationEvents {
    pub events: Events,
}

impl MigrationEvents {
    /// `storage.db.error` (or `storage.db.deadlock`) for a migration the
    /// store refused, on `target` after its transaction rolled back.
    pub async fn failed(&self, target: &mut dyn Target, error: &GatewayError) {
        self.events
            .failed(outbox(target), "schema", &[], 1, false, error)
            .await;
    }
}

#[async_trait::async_trait]
impl Applied for MigrationEvents {
    async fn applied(
        &mut self,
        target: &mut dyn Target,
        migration: &Migration,
        step: &Step,
    ) -> Result<(), MigrateError> {
        let events = &self.events;
        if !events.wants(MIGRATION_COMPLETE) && !events.wants(VERSION_CHANGE) {
            return Ok(());
        }
        // The versions before and after, from the history as this
        // transaction sees it: its own row is the newest.
        let history = target.history().await?;
        let before = silo_migrate::state::replay(&history[..history.len().saturating_sub(1)])
            .newest()
            .map(|v| v.to_string());
        let after = silo_migrate::state::replay(&history)
            .newest()
            .map(|v| v.to_string());
        let complete = json!({
            "version": step.version,
            "script": step.script,
            "description": migration.description,
            "checksum": migration.checksum,
            "execution_time_ms": step.execution_time_ms,
        });
        let change = json!({"from": before, "to": after});
        let written = async {
            events
                .publish(outbox(target), MIGRATION_COMPLETE, complete)
                .await?;
            if before != after {
                events
                    .publish(outbox(target), VERSION_CHANGE, change)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .await;
        written.map_err(|source| MigrateError::Sql {
            action: "writing the migration's events".into(),
            source,
        })
    }
}

fn outbox(target: &mut dyn Target) -> silo_events::Outbox<'_> {
    match target.conn() {
        Conn::Postgres(c) => silo_events::Outbox::Postgres(c),
        Conn::Sqlite(c) => silo_events::Outbox::Sqlite(c),
    }
}
