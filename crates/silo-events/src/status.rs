//! What the event tables of each service hold: outbox backlog, inbox
//! progress, how far the embedded bus lags, and which types are there.
//! Every store is read as its own service. On the nats bus, [`nats_lag`]
//! reads the lag from the consumer's durables.

use silo_manifest::{Bus, Manifest, Service};
use silo_store::{ServiceConnection, Stores};

use crate::relay::backlog::backlog;
use crate::relay::embedded::{
    CURSOR_SELECT, Position, StoredCursor, read_origin, resume_in, routed_types,
};
use crate::{APPLICATION, EventsError, sql};

/// A publisher's outbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutboxStatus {
    /// Events not delivered yet.
    pub pending: u64,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_pending_secs: Option<f64>,
    /// Events whose payload their contract refused.
    pub dead: u64,
    /// Delivered events kept (`retention = "keep"`).
    pub sent: u64,
}

/// A consumer's inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxStatus {
    /// Events not handled yet.
    pub pending: u64,
    /// Of those, events that failed at least once and wait for a retry.
    pub retrying: u64,
    pub done: u64,
    /// Events whose handler gave up (`silo events dlq`).
    pub dead: u64,
}

/// How far a consumer is behind one publisher: on the embedded bus, its
/// cursor; on the nats bus, its durables ([`nats_lag`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Behind {
    /// The publisher's pending events past the cursor, of the types that
    /// go from it to the consumer ([`crate::relay::embedded::routed_types`]).
    pub events: u64,
    /// How long the oldest of them has waited, in seconds.
    pub oldest_secs: Option<f64>,
}

/// A consumer's lag behind one publisher.
#[derive(Debug)]
pub struct Lag {
    pub publisher: String,
    /// An error when the publisher's store could not be read.
    pub behind: Result<Behind, EventsError>,
}

/// One service's event tables.
#[derive(Debug)]
pub struct Status {
    /// `None` when the service does not publish.
    pub outbox: Option<OutboxStatus>,
    /// `None` when the service does not consume.
    pub inbox: Option<InboxStatus>,
    /// Per publisher of a type it consumes, on the embedded bus (empty on
    /// the nats bus: [`nats_lag`] reads it from the bus).
    pub lag: Vec<Lag>,
}

/// Reads `service`'s event tables, and on the embedded bus its lag behind
/// each publisher it consumes from (an unreachable publisher is an error
/// in that lag only). The event tables must exist ([`crate::ensure`]).
pub async fn status(
    stores: &Stores,
    manifest: &Manifest,
    service: &Service,
) -> Result<Status, EventsError> {
    let mut status = Status {
        outbox: None,
        inbox: None,
        lag: Vec::new(),
    };
    if !crate::needs_tables(service) {
        return Ok(status);
    }
    let mut conn = stores.connect_as(service, APPLICATION).await?;
    let result = read(stores, manifest, service, &mut conn, &mut status).await;
    conn.close().await;
    result.map(|()| status)
}

async fn read(
    stores: &Stores,
    manifest: &Manifest,
    service: &Service,
    conn: &mut ServiceConnection,
    status: &mut Status,
) -> Result<(), EventsError> {
    if !service.publishes.is_empty() {
        status.outbox = Some(outbox(conn, service).await?);
    }
    if service.consumes.is_empty() {
        return Ok(());
    }
    status.inbox = Some(inbox(conn, service).await?);
    if manifest.events.bus != Bus::Embedded {
        return Ok(());
    }
    for publisher in manifest.services.iter().filter(|p| {
        p.publishes
            .iter()
            .any(|t| service.consumes.iter().any(|c| c == t))
    }) {
        status.lag.push(Lag {
            publisher: publisher.name.clone(),
            behind: behind(stores, publisher, service, conn).await,
        });
    }
    Ok(())
}

async fn outbox(
    conn: &mut ServiceConnection,
    service: &Service,
) -> Result<OutboxStatus, EventsError> {
    let action = format!("reading {}'s outbox", service.name);
    let (pending, oldest, dead, sent): (i64, Option<f64>, i64, i64) = match conn {
        ServiceConnection::Postgres(c) => sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'pending'), \
                    extract(epoch FROM clock_timestamp() - min(created_at) FILTER (WHERE state = 'pending'))::float8, \
                    count(*) FILTER (WHERE state = 'dead'), \
                    count(*) FILTER (WHERE state = 'sent') \
             FROM silo_outbox",
        )
        .fetch_one(&mut *c)
        .await
        .map_err(sql(action))?,
        ServiceConnection::Sqlite(c) => sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state = 'pending'), \
                    (julianday('now') - julianday(min(created_at) FILTER (WHERE state = 'pending'))) * 86400.0, \
                    count(*) FILTER (WHERE state = 'dead'), \
                    count(*) FILTER (WHERE state = 'sent') \
             FROM silo_outbox",
        )
        .fetch_one(&mut *c)
        .await
        .map_err(sql(action))?,
    };
    Ok(OutboxStatus {
        pending: count(pending),
        oldest_pending_secs: oldest.map(|s| s.max(0.0)),
        dead: count(dead),
        sent: count(sent),
    })
}

async fn inbox(
    conn: &mut ServiceConnection,
    service: &Service,
) -> Result<InboxStatus, EventsError> {
    let action = format!("reading {}'s inbox", service.name);
    let statement = "SELECT count(*) FILTER (WHERE state = 'pending'), \
                            count(*) FILTER (WHERE state = 'pending' AND attempts > 0), \
                            count(*) FILTER (WHERE state = 'done'), \
                            count(*) FILTER (WHERE state = 'dead') \
                     FROM silo_inbox";
    let (pending, retrying, done, dead): (i64, i64, i64, i64) = match conn {
        ServiceConnection::Postgres(c) => sqlx::query_as(statement).fetch_one(&mut *c).await,
        ServiceConnection::Sqlite(c) => sqlx::query_as(statement).fetch_one(&mut *c).await,
    }
    .map_err(sql(action))?;
    Ok(InboxStatus {
        pending: count(pending),
        retrying: count(retrying),
        done: count(done),
        dead: count(dead),
    })
}

/// How far `consumer`'s cursor for `publisher` is behind: its cursor read
/// on `conn` (as the consumer), the publisher's outbox read as the
/// publisher, from where the relay would go on (a cursor of another
/// origin starts over, as the relay's does).
async fn behind(
    stores: &Stores,
    publisher: &Service,
    consumer: &Service,
    conn: &mut ServiceConnection,
) -> Result<Behind, EventsError> {
    let action = format!(
        "reading {}'s cursor for events from {}",
        consumer.name, publisher.name
    );
    let stored: Option<StoredCursor> = match conn {
        ServiceConnection::Postgres(c) => {
            sqlx::query_as(CURSOR_SELECT)
                .bind(&publisher.name)
                .fetch_optional(&mut *c)
                .await
        }
        ServiceConnection::Sqlite(c) => {
            sqlx::query_as(CURSOR_SELECT)
                .bind(&publisher.name)
                .fetch_optional(&mut *c)
                .await
        }
    }
    .map_err(sql(action))?;
    let mut source = stores.connect_as(publisher, APPLICATION).await?;
    let result = async {
        let origin = read_origin(&mut source, publisher).await?;
        let cursor = resume_in(&mut source, publisher, stored, &origin).await?;
        let at = Position {
            origin: origin.id,
            position: cursor.position,
            seq: cursor.seq,
            event_id: cursor.event_id,
        };
        let types = routed_types(publisher, consumer);
        let b = backlog(&mut source, publisher, &types, &at).await?;
        Ok(Behind {
            events: b.events,
            oldest_secs: (b.events > 0).then_some(b.lag_secs),
        })
    }
    .await;
    source.close().await;
    result
}

/// The event types a store's tables hold, with how many events of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredTypes {
    /// In `silo_outbox`: what the service published (not yet deleted).
    pub outbox: Vec<(String, u64)>,
    /// In `silo_inbox`: what reached the service.
    pub inbox: Vec<(String, u64)>,
}

/// The event types in `service`'s outbox and inbox, read as the service;
/// `None` when its store has no event tables.
pub async fn stored_types(
    stores: &Stores,
    service: &Service,
) -> Result<Option<StoredTypes>, EventsError> {
    let mut conn = stores.connect_as(service, APPLICATION).await?;
    let result = stored_types_on(&mut conn, service).await;
    conn.close().await;
    result
}

async fn stored_types_on(
    conn: &mut ServiceConnection,
    service: &Service,
) -> Result<Option<StoredTypes>, EventsError> {
    let action = format!("reading the event types in {}'s store", service.name);
    let exists: bool = match conn {
        ServiceConnection::Postgres(c) => sqlx::query_scalar(
            "SELECT to_regclass('silo_outbox') IS NOT NULL AND to_regclass('silo_inbox') IS NOT NULL",
        )
        .fetch_one(&mut *c)
        .await,
        ServiceConnection::Sqlite(c) => sqlx::query_scalar(
            "SELECT count(*) = 2 FROM sqlite_master \
             WHERE type = 'table' AND name IN ('silo_outbox', 'silo_inbox')",
        )
        .fetch_one(&mut *c)
        .await,
    }
    .map_err(sql(action.clone()))?;
    if !exists {
        return Ok(None);
    }
    let mut types = StoredTypes::default();
    for (table, into) in [
        ("silo_outbox", &mut types.outbox),
        ("silo_inbox", &mut types.inbox),
    ] {
        let statement = sqlx::AssertSqlSafe(format!(
            "SELECT type, count(*) FROM {table} GROUP BY type ORDER BY type"
        ));
        let rows: Vec<(String, i64)> = match conn {
            ServiceConnection::Postgres(c) => sqlx::query_as(statement).fetch_all(&mut *c).await,
            ServiceConnection::Sqlite(c) => sqlx::query_as(statement).fetch_all(&mut *c).await,
        }
        .map_err(sql(action.clone()))?;
        *into = rows.into_iter().map(|(t, n)| (t, count(n))).collect();
    }
    Ok(Some(types))
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

/// A consumer's lag on the nats bus, per publisher of a type it consumes:
/// the messages of the types that go from that publisher to it which its
/// durables have not seen acked ([`crate::relay::nats::stream::pending`]),
/// read as the consumer. The oldest's age is not known there. A type
/// published by two services counts for both. Each publisher's entry has
/// its own error when the bus cannot be read.
pub async fn nats_lag(
    config: &crate::relay::nats::NatsConfig,
    manifest: &Manifest,
    service: &Service,
) -> Vec<Lag> {
    use crate::relay::nats::stream::pending;
    let mut conn = None;
    let mut lags = Vec::new();
    for publisher in &manifest.services {
        let types = routed_types(publisher, service);
        if types.is_empty() {
            continue;
        }
        let behind = async {
            if conn.is_none() {
                conn = Some(config.connect(&service.name).await?);
            }
            let c = conn.as_ref().expect("connected");
            let events = pending(c, manifest, service, &types).await?;
            Ok::<_, EventsError>(Behind {
                events,
                oldest_secs: None,
            })
        }
        .await;
        lags.push(Lag {
            publisher: publisher.name.clone(),
            behind,
        });
    }
    lags
}
