//! Inserting events into a consumer's inbox, the one statement both buses
//! use: a batch in one round trip, in the batch's order (so the inbox's
//! `seq` follows it), with the conflict clause the caller gives, and a
//! warning for any event id the inbox holds from another source
//! ([`super::collisions`]).

use std::collections::BTreeMap;

use sqlx::{PgConnection, SqliteConnection};

use super::collisions::{self, Arrival};
use super::nats::envelope::Envelope;
use crate::{EventsError, sql};

/// Rows written, per (source, type).
pub(crate) type Inserted = BTreeMap<(String, String), u64>;

/// Inserts `events` into `consumer`'s inbox on PostgreSQL, `ON CONFLICT
/// (event_id) {conflict}`. Returns the rows written per (source, type),
/// counted by the server: a batch's rows do not travel back one by one.
pub(crate) async fn insert_postgres(
    c: &mut PgConnection,
    consumer: &str,
    events: &[&Envelope],
    conflict: &str,
) -> Result<Inserted, EventsError> {
    let column = |f: fn(&Envelope) -> Option<&str>| -> Vec<Option<&str>> {
        events.iter().map(|e| f(e)).collect()
    };
    let statement = format!(
        "WITH w AS ( \
           INSERT INTO silo_inbox (event_id, type, source, key, payload, headers, time, dataschema) \
           SELECT e::uuid, t, s, k, p::jsonb, h::jsonb, tm::timestamptz, d \
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                       $6::text[], $7::text[], $8::text[]) \
                WITH ORDINALITY AS u(e, t, s, k, p, h, tm, d, n) \
           ORDER BY n \
           ON CONFLICT (event_id) {conflict} \
           RETURNING source, type) \
         SELECT source, type, count(*) FROM w GROUP BY source, type"
    );
    let counted: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(statement))
        .bind(column(|e| Some(e.id.as_str())))
        .bind(column(|e| Some(e.event_type.as_str())))
        .bind(column(|e| Some(e.source.as_str())))
        .bind(column(|e| Some(e.key.as_str())))
        .bind(column(|e| Some(e.payload.as_str())))
        .bind(column(|e| Some(e.headers.as_str())))
        .bind(column(|e| Some(e.time.as_str())))
        .bind(column(|e| e.dataschema.as_deref()))
        .fetch_all(&mut *c)
        .await
        .map_err(sql(action(consumer)))?;
    let written: Inserted = counted
        .into_iter()
        .map(|(source, event_type, n)| ((source, event_type), n as u64))
        .collect();
    if written.values().sum::<u64>() < events.len() as u64 {
        collisions::warn_postgres(c, consumer, &arrivals(events)).await?;
    }
    Ok(written)
}

/// [`insert_postgres`] on SQLite: the rows go in as one JSON array.
pub(crate) async fn insert_sqlite(
    c: &mut SqliteConnection,
    consumer: &str,
    events: &[&Envelope],
    conflict: &str,
) -> Result<Inserted, EventsError> {
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!([
                e.id,
                e.event_type,
                e.source,
                e.key,
                e.payload,
                e.headers,
                e.time,
                e.dataschema
            ])
        })
        .collect();
    let statement = format!(
        "INSERT INTO silo_inbox (event_id, type, source, key, payload, headers, time, dataschema) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                value ->> 5, value ->> 6, value ->> 7 \
         FROM json_each($1) WHERE true ORDER BY key \
         ON CONFLICT (event_id) {conflict} \
         RETURNING source, type"
    );
    // SQLite takes no INSERT in a WITH: the rows are counted here.
    let returned: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(statement))
        .bind(serde_json::Value::Array(rows).to_string())
        .fetch_all(&mut *c)
        .await
        .map_err(sql(action(consumer)))?;
    if returned.len() < events.len() {
        collisions::warn_sqlite(c, consumer, &arrivals(events)).await?;
    }
    let mut written = Inserted::new();
    for row in returned {
        *written.entry(row).or_default() += 1;
    }
    Ok(written)
}

fn action(consumer: &str) -> String {
    format!("writing events into {consumer}'s inbox")
}

fn arrivals<'a>(events: &[&'a Envelope]) -> Vec<Arrival<'a>> {
    events
        .iter()
        .map(|e| (e.id.as_str(), e.source.as_str()))
        .collect()
}
