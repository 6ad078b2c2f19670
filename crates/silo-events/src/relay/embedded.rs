//! The embedded bus's delivery step: outbox rows to inbox rows, store to
//! store, with no server in between.
//!
//! [`deliver_once`] reads each publisher's outbox **as the publisher** and
//! writes each consumer's inbox **as the consumer** (both through
//! [`Stores::connect_as`]). The consumer keeps a cursor per publisher in
//! its own `silo_inbox_cursor`, written in the same transaction as the
//! inbox rows it covers, so a relay killed at any point neither loses nor
//! repeats an event; the inbox's unique event id (`ON CONFLICT (event_id)
//! DO NOTHING`) guards against a second relay racing the first.
//!
//! Order, per engine of the publisher:
//! - PostgreSQL: only rows whose transaction is older than every
//!   transaction still running (`txid < pg_snapshot_xmin(pg_current_snapshot())`),
//!   in `(txid, id)` order, with the cursor at the last `(txid, id)`.
//!   Rows of a transaction still open are left for a later pass, so a
//!   transaction that took an earlier id but commits later is never
//!   skipped. A long-running transaction anywhere on the server holds
//!   delivery back (lag, not loss).
//! - SQLite: in `seq` order. Writers are serialized, so `seq` order is
//!   commit order.
//!
//! After a restore, positions can go back: a PostgreSQL store restored
//! into another cluster counts transaction ids from that cluster's own
//! counter (watermill #576), and a SQLite file put back from a backup
//! counts `seq` on from the backup's value, so new events would sit below
//! a consumer's cursor and be skipped. Each cursor therefore records the
//! publisher's origin (PostgreSQL: cluster system identifier and database
//! oid; SQLite: a random id made with the tables), and a cursor of another
//! origin, or one ahead of the publisher's own counter, starts over from
//! the beginning of the outbox. The inbox's unique event id keeps the
//! events already delivered from arriving twice.
//!
//! Each payload is checked against its type's contract as it is read
//! ([`crate::contracts::check`]): one the contract refuses goes to no
//! consumer, its outbox row becomes `dead` with the reason, and the
//! cursor moves past it. Delivered rows carry the contract's `dataschema`.

use silo_manifest::{Manifest, Service};
use silo_store::{ServiceConnection, Stores};
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::contracts::{self, Contracts, Verdict};
use crate::{EventsError, sql};

/// The connections' name on the server.
const APPLICATION: &str = "silo events relay";

/// How many events one transaction on a consumer's store takes at most.
pub const BATCH: i64 = 500;

/// What one [`deliver_once`] moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Per (publisher, consumer), the events newly written to the
    /// consumer's inbox, for every pair that was looked at.
    pub pairs: Vec<Pair>,
}

/// The events moved from one publisher to one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The publishing service.
    pub publisher: String,
    /// The consuming service.
    pub consumer: String,
    /// Inbox rows written (events already there are not counted).
    pub events: u64,
    /// Events whose contract refused them: dead in the publisher's outbox.
    pub refused: u64,
}

impl Delivered {
    /// All the inbox rows written.
    pub fn total(&self) -> u64 {
        self.pairs.iter().map(|p| p.events).sum()
    }
}

/// One outbox row, engine-neutral.
struct Event {
    /// The publisher's order: `txid` on PostgreSQL, `seq` on SQLite.
    position: i64,
    id: String,
    event_type: String,
    key: String,
    payload: String,
    headers: String,
    /// When it was published (RFC 3339, UTC).
    time: String,
    /// The contract's URI, when its type has one.
    dataschema: Option<String>,
    /// Refused by its contract: not delivered, only passed by the cursor.
    refused: bool,
}

/// Where a consumer's cursor for one publisher stands.
struct Cursor {
    position: i64,
    event_id: String,
}

/// Which store a publisher's positions count in, and how far its counter
/// has gone: a cursor can never be ahead of it unless the store went back.
struct Origin {
    id: String,
    counter: i64,
}

impl Cursor {
    fn start() -> Self {
        Cursor {
            position: 0,
            event_id: "00000000-0000-0000-0000-000000000000".into(),
        }
    }
}

/// Delivers every committed event that is not delivered yet from each
/// service that publishes to each service whose `consumes` lists its type,
/// until no more are ready, checking payloads against `contracts` (loaded
/// once by the caller: [`Contracts::load`]). The event tables must exist
/// ([`crate::ensure`]).
pub async fn deliver_once(
    stores: &Stores,
    manifest: &Manifest,
    contracts: &Contracts,
) -> Result<Delivered, EventsError> {
    let mut delivered = Delivered::default();
    for publisher in manifest.services.iter().filter(|s| !s.publishes.is_empty()) {
        for consumer in manifest.services.iter().filter(|s| !s.consumes.is_empty()) {
            let (events, refused) = deliver_pair(stores, publisher, consumer, contracts).await?;
            delivered.pairs.push(Pair {
                publisher: publisher.name.clone(),
                consumer: consumer.name.clone(),
                events,
                refused,
            });
        }
    }
    Ok(delivered)
}

/// Delivers from `publisher` to `consumer` in batches until a batch comes
/// back short. Returns (inbox rows written, events refused by their
/// contract).
pub async fn deliver_pair(
    stores: &Stores,
    publisher: &Service,
    consumer: &Service,
    contracts: &Contracts,
) -> Result<(u64, u64), EventsError> {
    let mut source = stores.connect_as(publisher, APPLICATION).await?;
    let mut sink = stores.connect_as(consumer, APPLICATION).await?;
    let (mut total, mut refused) = (0, 0);
    let result = loop {
        match deliver_batch(&mut source, publisher, &mut sink, consumer, contracts).await {
            Ok((read, written, dead)) => {
                total += written;
                refused += dead;
                if read < BATCH as usize {
                    break Ok((total, refused));
                }
            }
            Err(e) => break Err(e),
        }
    };
    source.close().await;
    sink.close().await;
    result
}

/// One batch: in one transaction on the consumer's store, read its cursor
/// for the publisher, read what follows from the publisher's outbox, check
/// it against its contracts, insert the events they pass and move the
/// cursor. Returns (rows read, rows inserted, rows refused).
async fn deliver_batch(
    source: &mut ServiceConnection,
    publisher: &Service,
    sink: &mut ServiceConnection,
    consumer: &Service,
    contracts: &Contracts,
) -> Result<(usize, u64, u64), EventsError> {
    match sink {
        ServiceConnection::Postgres(c) => {
            let mut tx = c.begin().await.map_err(sql(begin(consumer)))?;
            // The row lock makes two relays on one pair take turns.
            let cursor = sqlx::query_as::<_, (String, i64, String)>(
                "SELECT origin, position, event_id FROM silo_inbox_cursor WHERE source = $1 FOR UPDATE",
            )
            .bind(&publisher.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql(read_cursor(publisher, consumer)))?;
            let origin = read_origin(source, publisher).await?;
            let cursor = resume(cursor, &origin);
            let mut events = read_outbox(source, publisher, &consumer.consumes, &cursor).await?;
            let refused = screen(source, publisher, contracts, &mut events).await?;
            let written = write_postgres(&mut tx, publisher, consumer, &origin, &events).await?;
            tx.commit().await.map_err(sql(commit(consumer)))?;
            Ok((events.len(), written, refused))
        }
        ServiceConnection::Sqlite(c) => {
            // IMMEDIATE: the write lock first, so two relays take turns.
            let mut tx = c
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(sql(begin(consumer)))?;
            let cursor = sqlx::query_as::<_, (String, i64, String)>(
                "SELECT origin, position, event_id FROM silo_inbox_cursor WHERE source = $1",
            )
            .bind(&publisher.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql(read_cursor(publisher, consumer)))?;
            let origin = read_origin(source, publisher).await?;
            let cursor = resume(cursor, &origin);
            let mut events = read_outbox(source, publisher, &consumer.consumes, &cursor).await?;
            let refused = screen(source, publisher, contracts, &mut events).await?;
            let written = write_sqlite(&mut tx, publisher, consumer, &origin, &events).await?;
            tx.commit().await.map_err(sql(commit(consumer)))?;
            Ok((events.len(), written, refused))
        }
    }
}

/// The cursor to go on from: the stored one, unless the publisher's store
/// is not the one it counted in (another origin) or went back (the cursor
/// is ahead of its counter): then the beginning.
fn resume(stored: Option<(String, i64, String)>, origin: &Origin) -> Cursor {
    match stored {
        Some((id, position, event_id)) if id == origin.id && position <= origin.counter => {
            Cursor { position, event_id }
        }
        _ => Cursor::start(),
    }
}

/// The publisher's origin and counter, read as the publisher. Read before
/// its outbox, so every position the cursor holds is at most the counter.
async fn read_origin(
    source: &mut ServiceConnection,
    publisher: &Service,
) -> Result<Origin, EventsError> {
    let action = format!("reading where {}'s outbox counts from", publisher.name);
    let (id, counter): (String, i64) = match source {
        ServiceConnection::Postgres(c) => sqlx::query_as(
            "SELECT (SELECT system_identifier::text FROM pg_control_system()) || ':' || \
                    (SELECT oid::text FROM pg_database WHERE datname = current_database()), \
                    pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
        )
        .fetch_one(&mut *c)
        .await
        .map_err(sql(action))?,
        ServiceConnection::Sqlite(c) => sqlx::query_as(
            "SELECT (SELECT origin FROM silo_events_state WHERE id = 1), \
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'silo_outbox'), 0)",
        )
        .fetch_one(&mut *c)
        .await
        .map_err(sql(action))?,
    };
    Ok(Origin { id, counter })
}

fn begin(consumer: &Service) -> String {
    format!("beginning a delivery into {}'s inbox", consumer.name)
}

fn commit(consumer: &Service) -> String {
    format!("committing a delivery into {}'s inbox", consumer.name)
}

fn read_cursor(publisher: &Service, consumer: &Service) -> String {
    format!(
        "reading {}'s cursor for events from {}",
        consumer.name, publisher.name
    )
}

/// Checks each event against its contract: a refused one is marked
/// refused here and dead in the publisher's outbox (as the publisher);
/// the others get their `dataschema`. Returns how many were refused.
async fn screen(
    source: &mut ServiceConnection,
    publisher: &Service,
    contracts: &Contracts,
    events: &mut [Event],
) -> Result<u64, EventsError> {
    let mut refused = 0;
    for e in events.iter_mut() {
        match contracts::check(contracts, &publisher.name, &e.event_type, &e.payload) {
            Verdict::Deliver { dataschema } => e.dataschema = dataschema,
            Verdict::Refuse { reason } => {
                contracts::dead_letter(source, publisher, &e.id, &reason).await?;
                e.refused = true;
                refused += 1;
            }
        }
    }
    Ok(refused)
}

/// The next batch after `cursor` of the publisher's committed events of
/// `types`, in commit-safe order, read as the publisher.
async fn read_outbox(
    source: &mut ServiceConnection,
    publisher: &Service,
    types: &[String],
    cursor: &Cursor,
) -> Result<Vec<Event>, EventsError> {
    let action = format!("reading {}'s outbox", publisher.name);
    type Row = (i64, String, String, String, String, String, String);
    let rows: Vec<Row> = match source {
        ServiceConnection::Postgres(c) => {
            // Only transactions older than every running one: a row of a
            // transaction still open may carry a lower (txid, id) than rows
            // already committed, and must not be skipped.
            sqlx::query_as(
                "SELECT txid::text::bigint, id::text, type, key, payload::text, headers::text, \
                        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                 FROM silo_outbox \
                 WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) \
                   AND (txid, id) > ($1::bigint::text::xid8, $2::uuid) \
                   AND type = ANY($3) AND state <> 'dead' \
                 ORDER BY txid, id LIMIT $4",
            )
            .bind(cursor.position)
            .bind(&cursor.event_id)
            .bind(types)
            .bind(BATCH)
            .fetch_all(&mut *c)
            .await
            .map_err(sql(action))?
        }
        ServiceConnection::Sqlite(c) => {
            let types = serde_json::to_string(types).expect("a list of strings is JSON");
            sqlx::query_as(
                "SELECT seq, id, type, key, payload, headers, created_at FROM silo_outbox \
                 WHERE seq > $1 AND type IN (SELECT value FROM json_each($2)) AND state <> 'dead' \
                 ORDER BY seq LIMIT $3",
            )
            .bind(cursor.position)
            .bind(types)
            .bind(BATCH)
            .fetch_all(&mut *c)
            .await
            .map_err(sql(action))?
        }
    };
    Ok(rows
        .into_iter()
        .map(
            |(position, id, event_type, key, payload, headers, time)| Event {
                position,
                id,
                event_type,
                key,
                payload,
                headers,
                time,
                dataschema: None,
                refused: false,
            },
        )
        .collect())
}

const CURSOR_UPSERT: &str = "INSERT INTO silo_inbox_cursor (source, origin, position, event_id) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (source) DO UPDATE \
     SET origin = excluded.origin, position = excluded.position, event_id = excluded.event_id, \
         updated_at = excluded.updated_at";

async fn write_postgres(
    tx: &mut PgConnection,
    publisher: &Service,
    consumer: &Service,
    origin: &Origin,
    events: &[Event],
) -> Result<u64, EventsError> {
    let action = format!(
        "writing events from {} into {}'s inbox",
        publisher.name, consumer.name
    );
    let mut written = 0;
    for e in events.iter().filter(|e| !e.refused) {
        written += sqlx::query(
            "INSERT INTO silo_inbox (event_id, type, source, key, payload, headers, time, dataschema) \
             VALUES ($1::uuid, $2, $3, $4, $5::jsonb, $6::jsonb, $7::timestamptz, $8) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&e.id)
        .bind(&e.event_type)
        .bind(&publisher.name)
        .bind(&e.key)
        .bind(&e.payload)
        .bind(&e.headers)
        .bind(&e.time)
        .bind(&e.dataschema)
        .execute(&mut *tx)
        .await
        .map_err(sql(action.clone()))?
        .rows_affected();
    }
    if let Some(last) = events.last() {
        sqlx::query(CURSOR_UPSERT)
            .bind(&publisher.name)
            .bind(&origin.id)
            .bind(last.position)
            .bind(&last.id)
            .execute(&mut *tx)
            .await
            .map_err(sql(action))?;
    }
    Ok(written)
}

async fn write_sqlite(
    tx: &mut SqliteConnection,
    publisher: &Service,
    consumer: &Service,
    origin: &Origin,
    events: &[Event],
) -> Result<u64, EventsError> {
    let action = format!(
        "writing events from {} into {}'s inbox",
        publisher.name, consumer.name
    );
    let mut written = 0;
    for e in events.iter().filter(|e| !e.refused) {
        written += sqlx::query(
            "INSERT INTO silo_inbox (event_id, type, source, key, payload, headers, time, dataschema) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&e.id)
        .bind(&e.event_type)
        .bind(&publisher.name)
        .bind(&e.key)
        .bind(&e.payload)
        .bind(&e.headers)
        .bind(&e.time)
        .bind(&e.dataschema)
        .execute(&mut *tx)
        .await
        .map_err(sql(action.clone()))?
        .rows_affected();
    }
    if let Some(last) = events.last() {
        sqlx::query(CURSOR_UPSERT)
            .bind(&publisher.name)
            .bind(&origin.id)
            .bind(last.position)
            .bind(&last.id)
            .execute(&mut *tx)
            .await
            .map_err(sql(action))?;
    }
    Ok(written)
}
