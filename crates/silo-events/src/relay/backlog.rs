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

/// Committed outbox rows a PostgreSQL publisher's relay may not take yet:
/// their transaction id is not below the oldest transaction still open on
/// the server (`pg_snapshot_xmin`), so an open transaction anywhere on the
/// server holds them back.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldBack {
    /// How many committed pending rows are held back.
    pub rows: u64,
    /// Seconds since the oldest of them was published.
    pub secs: f64,
    /// How many transaction ids the server has handed out since the
    /// oldest open one: how far behind it is.
    pub xids_behind: i64,
    /// The backend of the oldest open transaction and its database, when
    /// `pg_stat_activity` shows it to the publisher's role.
    pub holder: Option<(i32, Option<String>)>,
}

/// What holds the publisher's relay back, read as the publisher: `None`
/// on SQLite (writers are serialized) or when nothing committed waits.
/// One statement over the outbox's pending index and `pg_stat_activity`:
/// for a warning, not for every batch.
pub async fn held_back(
    source: &mut ServiceConnection,
    publisher: &Service,
) -> Result<Option<HeldBack>, EventsError> {
    let ServiceConnection::Postgres(c) = source else {
        return Ok(None);
    };
    let action = format!("looking for what holds back {}'s outbox", publisher.name);
    type Row = (i64, f64, i64, Option<i32>, Option<String>);
    let (rows, secs, xids_behind, pid, database): Row = sqlx::query_as(
        "WITH s AS (SELECT pg_current_snapshot() AS snap),               h AS (SELECT a.pid, a.datname FROM pg_stat_activity a                     WHERE a.backend_xid IS NOT NULL                     ORDER BY age(a.backend_xid) DESC LIMIT 1)          SELECT count(o.id),                 COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(o.created_at))::float8, 0),                 (SELECT pg_snapshot_xmax(snap)::text::bigint - pg_snapshot_xmin(snap)::text::bigint FROM s),                 (SELECT pid FROM h), (SELECT datname::text FROM h)          FROM silo_outbox o          WHERE o.state = 'pending' AND o.txid >= (SELECT pg_snapshot_xmin(snap) FROM s)",
    )
    .fetch_one(&mut *c)
    .await
    .map_err(sql(action))?;
    if rows == 0 {
        return Ok(None);
    }
    Ok(Some(HeldBack {
        rows: u64::try_from(rows).unwrap_or(0),
        secs: secs.max(0.0),
        xids_behind,
        holder: pid.map(|p| (p, database)),
    }))
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
