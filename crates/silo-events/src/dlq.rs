//! Dead letters: the events silo gave up on, kept in each service's own
//! store with the reason, and read and changed only as that service.
//!
//! - In a consumer's `silo_inbox`: an event whose handler failed
//!   `max_attempts` times (`state = 'dead'`, `attempts`, `last_error`).
//!   [`retry`] makes it pending again with its attempts reset.
//! - In a publisher's `silo_outbox`: an event whose payload its contract
//!   refused (`state = 'dead'`, `error`). It would be refused again, so it
//!   is not retried: the publisher publishes a corrected event.
//!
//! [`drop`] deletes a dead row of either kind.

use silo_manifest::Service;
use silo_store::{ServiceConnection, Stores};

use crate::{APPLICATION, EventsError, needs_tables, sql};

/// Which table a dead letter is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The consumer's inbox: its handler gave up.
    Inbox,
    /// The publisher's outbox: its contract refused the payload.
    Outbox,
}

impl Side {
    /// `inbox` or `outbox`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Inbox => "inbox",
            Side::Outbox => "outbox",
        }
    }
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub side: Side,
    /// The event's id.
    pub id: String,
    pub event_type: String,
    pub key: String,
    /// The publishing service (inbox dead letters).
    pub source: Option<String>,
    /// Failed attempts (inbox dead letters).
    pub attempts: Option<u32>,
    /// Why: the handler's last error, or the contract's refusal.
    pub error: Option<String>,
    /// When the event was received (inbox) or published (outbox), RFC 3339.
    pub time: String,
}

/// Which dead letters [`retry`] makes pending again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection<'a> {
    /// The one with this event id.
    One(&'a str),
    /// All of the service's.
    All,
}

/// The dead letters in `service`'s store, inbox first, oldest first.
pub async fn list(stores: &Stores, service: &Service) -> Result<Vec<DeadLetter>, EventsError> {
    if !needs_tables(service) {
        return Ok(Vec::new());
    }
    let mut conn = stores.connect_as(service, APPLICATION).await?;
    let result = list_on(&mut conn, service).await;
    conn.close().await;
    result
}

type InboxRow = (String, String, String, String, i32, Option<String>, String);
type OutboxRow = (String, String, String, Option<String>, String);

async fn list_on(
    conn: &mut ServiceConnection,
    service: &Service,
) -> Result<Vec<DeadLetter>, EventsError> {
    let action = format!("reading {}'s dead letters", service.name);
    let (inbox, outbox): (Vec<InboxRow>, Vec<OutboxRow>) = match conn {
        ServiceConnection::Postgres(c) => (
            sqlx::query_as(
                "SELECT event_id::text, type, key, source, attempts, last_error, \
                        to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                 FROM silo_inbox WHERE state = 'dead' ORDER BY seq",
            )
            .fetch_all(&mut *c)
            .await
            .map_err(sql(action.clone()))?,
            sqlx::query_as(
                "SELECT id::text, type, key, error, \
                        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                 FROM silo_outbox WHERE state = 'dead' ORDER BY txid, seq",
            )
            .fetch_all(&mut *c)
            .await
            .map_err(sql(action))?,
        ),
        ServiceConnection::Sqlite(c) => (
            sqlx::query_as(
                "SELECT event_id, type, key, source, attempts, last_error, received_at \
                 FROM silo_inbox WHERE state = 'dead' ORDER BY seq",
            )
            .fetch_all(&mut *c)
            .await
            .map_err(sql(action.clone()))?,
            sqlx::query_as(
                "SELECT id, type, key, error, created_at \
                 FROM silo_outbox WHERE state = 'dead' ORDER BY seq",
            )
            .fetch_all(&mut *c)
            .await
            .map_err(sql(action))?,
        ),
    };
    let inbox =
        inbox.into_iter().map(
            |(id, event_type, key, source, attempts, error, time)| DeadLetter {
                side: Side::Inbox,
                id,
                event_type,
                key,
                source: Some(source),
                attempts: Some(attempts.max(0) as u32),
                error,
                time,
            },
        );
    let outbox = outbox
        .into_iter()
        .map(|(id, event_type, key, error, time)| DeadLetter {
            side: Side::Outbox,
            id,
            event_type,
            key,
            source: None,
            attempts: None,
            error,
            time,
        });
    Ok(inbox.chain(outbox).collect())
}

/// Makes `service`'s dead inbox events of `selection` pending again, with
/// their attempts reset (their last error is kept until they succeed or
/// fail again). Returns how many. A dead outbox event is refused
/// ([`EventsError::OutboxNotRetried`]): its contract would refuse it again.
pub async fn retry(
    stores: &Stores,
    service: &Service,
    selection: Selection<'_>,
) -> Result<u64, EventsError> {
    if !needs_tables(service) {
        return Ok(0);
    }
    let mut conn = stores.connect_as(service, APPLICATION).await?;
    let result = retry_on(&mut conn, service, selection).await;
    conn.close().await;
    result
}

async fn retry_on(
    conn: &mut ServiceConnection,
    service: &Service,
    selection: Selection<'_>,
) -> Result<u64, EventsError> {
    let action = format!("retrying {}'s dead letters", service.name);
    let id = match selection {
        Selection::One(id) => {
            if find(conn, service, id).await? == Some(Side::Outbox) {
                return Err(EventsError::OutboxNotRetried {
                    service: service.name.clone(),
                    id: id.to_string(),
                });
            }
            Some(id.to_ascii_lowercase())
        }
        Selection::All => None,
    };
    let retried = match conn {
        ServiceConnection::Postgres(c) => sqlx::query(
            "UPDATE silo_inbox SET state = 'pending', attempts = 0, next_attempt_at = NULL \
             WHERE state = 'dead' AND ($1::text IS NULL OR event_id::text = $1)",
        )
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(sql(action))?
        .rows_affected(),
        ServiceConnection::Sqlite(c) => sqlx::query(
            "UPDATE silo_inbox SET state = 'pending', attempts = 0, next_attempt_at = NULL \
             WHERE state = 'dead' AND ($1 IS NULL OR lower(event_id) = $1)",
        )
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(sql(action))?
        .rows_affected(),
    };
    Ok(retried)
}

/// Deletes `service`'s dead letter `id`, inbox or outbox, for good.
/// Returns which it was, or `None` when `service` has no dead letter of
/// that id. An inbox event dropped is forgotten: delivered again (a
/// replay), it arrives as new.
pub async fn drop(
    stores: &Stores,
    service: &Service,
    id: &str,
) -> Result<Option<Side>, EventsError> {
    if !needs_tables(service) {
        return Ok(None);
    }
    let mut conn = stores.connect_as(service, APPLICATION).await?;
    let result = drop_on(&mut conn, service, id).await;
    conn.close().await;
    result
}

async fn drop_on(
    conn: &mut ServiceConnection,
    service: &Service,
    id: &str,
) -> Result<Option<Side>, EventsError> {
    let Some(side) = find(conn, service, id).await? else {
        return Ok(None);
    };
    let action = format!("dropping {}'s dead letter {id}", service.name);
    let id = id.to_ascii_lowercase();
    let statement = match (side, conn.engine()) {
        (Side::Inbox, silo_manifest::Engine::Postgres) => {
            "DELETE FROM silo_inbox WHERE state = 'dead' AND event_id::text = $1"
        }
        (Side::Outbox, silo_manifest::Engine::Postgres) => {
            "DELETE FROM silo_outbox WHERE state = 'dead' AND id::text = $1"
        }
        (Side::Inbox, silo_manifest::Engine::Sqlite) => {
            "DELETE FROM silo_inbox WHERE state = 'dead' AND lower(event_id) = $1"
        }
        (Side::Outbox, silo_manifest::Engine::Sqlite) => {
            "DELETE FROM silo_outbox WHERE state = 'dead' AND lower(id) = $1"
        }
    };
    let deleted = match conn {
        ServiceConnection::Postgres(c) => sqlx::query(statement)
            .bind(&id)
            .execute(&mut *c)
            .await
            .map_err(sql(action))?
            .rows_affected(),
        ServiceConnection::Sqlite(c) => sqlx::query(statement)
            .bind(&id)
            .execute(&mut *c)
            .await
            .map_err(sql(action))?
            .rows_affected(),
    };
    Ok((deleted > 0).then_some(side))
}

/// Which table holds dead letter `id` in this store, if any.
async fn find(
    conn: &mut ServiceConnection,
    service: &Service,
    id: &str,
) -> Result<Option<Side>, EventsError> {
    let action = format!("looking for dead letter {id} in {}'s store", service.name);
    let id = id.to_ascii_lowercase();
    let found: Option<String> = match conn {
        ServiceConnection::Postgres(c) => sqlx::query_scalar(
            "SELECT 'inbox' FROM silo_inbox WHERE state = 'dead' AND event_id::text = $1 \
             UNION ALL SELECT 'outbox' FROM silo_outbox WHERE state = 'dead' AND id::text = $1",
        )
        .bind(&id)
        .fetch_optional(&mut *c)
        .await
        .map_err(sql(action))?,
        ServiceConnection::Sqlite(c) => sqlx::query_scalar(
            "SELECT 'inbox' FROM silo_inbox WHERE state = 'dead' AND lower(event_id) = $1 \
             UNION ALL SELECT 'outbox' FROM silo_outbox WHERE state = 'dead' AND lower(id) = $1",
        )
        .bind(&id)
        .fetch_optional(&mut *c)
        .await
        .map_err(sql(action))?,
    };
    Ok(found.map(|side| match side.as_str() {
        "inbox" => Side::Inbox,
        _ => Side::Outbox,
    }))
}
