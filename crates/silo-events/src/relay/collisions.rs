//! An event id already in a consumer's inbox from another source.
//!
//! The inbox keeps one row per event id, and a second arrival of an id is
//! dropped (`ON CONFLICT (event_id)`): the same event delivered again. But
//! an id can also come from two sources, say a service forwarding an
//! upstream event with the upstream's id. The second one is then a
//! different event dropped as if it were a copy, so the writers look for
//! that whenever fewer rows went in than came, and warn naming the id and
//! both sources. The inbox's unique key stays the event id.

use sqlx::{PgConnection, SqliteConnection};

use crate::{EventsError, sql};

/// One event that was to go in: its id and its source.
pub(crate) type Arrival<'a> = (&'a str, &'a str);

/// Warns about each of `arrivals` whose id `consumer`'s inbox holds from
/// another source (read on `conn`, in the writing transaction). Returns
/// how many.
pub(crate) async fn warn_postgres(
    conn: &mut PgConnection,
    consumer: &str,
    arrivals: &[Arrival<'_>],
) -> Result<usize, EventsError> {
    let ids: Vec<&str> = arrivals.iter().map(|(id, _)| *id).collect();
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_id::text, source FROM silo_inbox WHERE event_id = ANY($1::text[]::uuid[])",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(sql(format!("reading {consumer}'s inbox")))?;
    Ok(warn(consumer, arrivals, &held))
}

/// [`warn_postgres`] on SQLite.
pub(crate) async fn warn_sqlite(
    conn: &mut SqliteConnection,
    consumer: &str,
    arrivals: &[Arrival<'_>],
) -> Result<usize, EventsError> {
    let ids: Vec<&str> = arrivals.iter().map(|(id, _)| *id).collect();
    let ids = serde_json::to_string(&ids).expect("a list of strings is JSON");
    let held: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_id, source FROM silo_inbox WHERE event_id IN (SELECT value FROM json_each($1))",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
    .map_err(sql(format!("reading {consumer}'s inbox")))?;
    Ok(warn(consumer, arrivals, &held))
}

fn warn(consumer: &str, arrivals: &[Arrival<'_>], held: &[(String, String)]) -> usize {
    let mut found = 0;
    for (id, source) in arrivals {
        let theirs = held
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(id))
            .map(|(_, s)| s);
        if let Some(theirs) = theirs.filter(|s| s.as_str() != *source) {
            found += 1;
            tracing::warn!(
                service = %consumer,
                event_id = %id,
                inbox_source = %theirs,
                source = %source,
                "event {id} from {source} was not delivered to {consumer}: its inbox already holds event {id} from {theirs} (an event id must be unique across sources)"
            );
        }
    }
    found
}
