//! Retention on the embedded bus: what becomes of an outbox row once every
//! consumer of its type has it.
//!
//! A consumer's cursor for a publisher ([`Position`]) says that every
//! event of the types it covers, up to that place in the publisher's
//! order, is in the consumer's inbox. So a row of type `T` is delivered
//! everywhere once it is at or before the lowest cursor among the
//! consumers of `T`; [`retire`] then deletes it (`retention = "delete"`,
//! the default) or marks it `sent` with `sent_at` (`retention = "keep"`,
//! for audit), as the publisher. A type that nobody consumes is retired at
//! once: an event is not kept for a consumer that might be added later
//! (such a consumer sees only what is still in the outbox). Rows that are
//! `dead`, and rows of a type the publisher does not list in `publishes`,
//! are never touched.
//!
//! Only a caller that knows every consumer's cursor may call it: a worker
//! for one consumer must not retire rows another consumer still needs.

use std::collections::BTreeMap;

use silo_manifest::{Retention, Service};
use silo_store::ServiceConnection;
use sqlx::{AssertSqlSafe, Connection};

use crate::relay::embedded::{Position, read_origin};
use crate::{EventsError, sql};

/// How far the rows of one event type may be retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watermark {
    /// Up to this position: the lowest cursor among the type's consumers.
    UpTo(Position),
    /// Every committed row: nobody consumes the type.
    All,
}

/// Retires the publisher's delivered outbox rows of each type in `marks`,
/// in one transaction on its store, as the publisher. A watermark counted
/// in another origin than the store's current one (the store was
/// restored) retires nothing. Returns the rows retired per type.
pub async fn retire(
    source: &mut ServiceConnection,
    publisher: &Service,
    marks: &[(String, Watermark)],
    retention: Retention,
) -> Result<BTreeMap<String, u64>, EventsError> {
    let action = format!("retiring delivered events in {}'s outbox", publisher.name);
    let origin = read_origin(source, publisher).await?;
    let mut retired = BTreeMap::new();
    let verb = match retention {
        Retention::Delete => "DELETE FROM silo_outbox",
        Retention::Keep => "UPDATE silo_outbox SET state = 'sent', sent_at = NOW_UTC",
    };
    match source {
        ServiceConnection::Postgres(c) => {
            let verb = verb.replace("NOW_UTC", "clock_timestamp()");
            let mut tx = c.begin().await.map_err(sql(action.clone()))?;
            for (event_type, mark) in marks {
                let done = match mark {
                    Watermark::All => {
                        sqlx::query(AssertSqlSafe(format!(
                            "{verb} WHERE state = 'pending' AND type = $1"
                        )))
                        .bind(event_type)
                        .execute(&mut *tx)
                        .await
                    }
                    Watermark::UpTo(p) if p.origin == origin.id => {
                        sqlx::query(AssertSqlSafe(format!(
                            "{verb} WHERE state = 'pending' AND type = $1 \
                             AND (txid, seq) <= ($2::bigint::text::xid8, $3)"
                        )))
                        .bind(event_type)
                        .bind(p.position)
                        .bind(p.seq)
                        .execute(&mut *tx)
                        .await
                    }
                    Watermark::UpTo(_) => continue,
                }
                .map_err(sql(action.clone()))?;
                count(&mut retired, event_type, done.rows_affected());
            }
            tx.commit().await.map_err(sql(action))?;
        }
        ServiceConnection::Sqlite(c) => {
            let verb = verb.replace("NOW_UTC", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')");
            let mut tx = c
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(sql(action.clone()))?;
            for (event_type, mark) in marks {
                let done = match mark {
                    Watermark::All => {
                        sqlx::query(AssertSqlSafe(format!(
                            "{verb} WHERE state = 'pending' AND type = $1"
                        )))
                        .bind(event_type)
                        .execute(&mut *tx)
                        .await
                    }
                    Watermark::UpTo(p) if p.origin == origin.id => {
                        sqlx::query(AssertSqlSafe(format!(
                            "{verb} WHERE state = 'pending' AND type = $1 AND seq <= $2"
                        )))
                        .bind(event_type)
                        .bind(p.position)
                        .execute(&mut *tx)
                        .await
                    }
                    Watermark::UpTo(_) => continue,
                }
                .map_err(sql(action.clone()))?;
                count(&mut retired, event_type, done.rows_affected());
            }
            tx.commit().await.map_err(sql(action))?;
        }
    }
    Ok(retired)
}

fn count(retired: &mut BTreeMap<String, u64>, event_type: &str, rows: u64) {
    if rows > 0 {
        *retired.entry(event_type.to_string()).or_default() += rows;
    }
}
