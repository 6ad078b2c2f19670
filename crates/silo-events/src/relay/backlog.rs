//! What is still on its way on the embedded bus, read as the publisher:
//! the events after a consumer's cursor, and the outbox rows that went
//! dead.

use std::collections::BTreeMap;

use silo_manifest::Service;
use silo_store::ServiceConnection;

use crate::relay::embedded::Position;
use crate::{EventsError, sql};

/// The events of a route not yet in the consumer's inbox.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Pending outbox rows of the route's types after the cursor, committed
    /// or not yet ready (PostgreSQL: behind a running transaction).
    pub events: u64,
    /// Seconds since the oldest of them was published; 0 when there are
    /// none.
    pub lag_secs: f64,
}

/// The backlog of the route whose consumer's cursor is at `cursor`, over
/// the publisher's rows of `types`.
pub async fn backlog(
    source: &mut ServiceConnection,
    publisher: &Service,
    types: &[String],
    cursor: &Position,
) -> Result<Backlog, EventsError> {
    let action = format!("measuring the backlog of {}'s outbox", publisher.name);
    let (events, lag_secs): (i64, f64) = match source {
        ServiceConnection::Postgres(c) => sqlx::query_as(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at))::float8, 0) \
             FROM silo_outbox \
             WHERE state = 'pending' AND type = ANY($1) \
               AND (txid, seq) > ($2::bigint::text::xid8, $3)",
        )
        .bind(types)
        .bind(cursor.position)
        .bind(cursor.seq)
        .fetch_one(&mut *c)
        .await
        .map_err(sql(action))?,
        ServiceConnection::Sqlite(c) => sqlx::query_as(
            "SELECT count(*), \
                    COALESCE((julianday('now') - julianday(min(created_at))) * 86400.0, 0.0) \
             FROM silo_outbox \
             WHERE state = 'pending' AND seq > $1 \
               AND type IN (SELECT value FROM json_each($2))",
        )
        .bind(cursor.position)
        .bind(serde_json::to_string(types).expect("a list of strings is JSON"))
        .fetch_one(&mut *c)
        .await
        .map_err(sql(action))?,
    };
    Ok(Backlog {
        events: u64::try_from(events).unwrap_or(0),
        lag_secs: lag_secs.max(0.0),
    })
}

/// The publisher's `dead` outbox rows per event type.
pub async fn dead(
    source: &mut ServiceConnection,
    publisher: &Service,
) -> Result<BTreeMap<String, u64>, EventsError> {
    let action = format!("counting the dead events in {}'s outbox", publisher.name);
    let sql_text = "SELECT type, count(*) FROM silo_outbox WHERE state = 'dead' GROUP BY type";
    let rows: Vec<(String, i64)> = match source {
        ServiceConnection::Postgres(c) => sqlx::query_as(sql_text).fetch_all(&mut *c).await,
        ServiceConnection::Sqlite(c) => sqlx::query_as(sql_text).fetch_all(&mut *c).await,
    }
    .map_err(sql(action))?;
    Ok(rows
        .into_iter()
        .map(|(t, n)| (t, u64::try_from(n).unwrap_or(0)))
        .collect())
}
