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
//!   in `(txid, seq)` order, with the cursor at the last `(txid, seq)`.
//!   Rows of a transaction still open are left for a later pass, so a
//!   transaction that took an earlier id but commits later is never
//!   skipped. A long-running transaction anywhere on the server holds
//!   delivery back (lag, not loss). Within a transaction, `seq` (an
//!   identity) is the order its rows were inserted in; the ids are not:
//!   those made in one millisecond differ only in random bits.
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
//! the beginning of the outbox. A SQLite file put back from a backup may
//! have counted past the cursor again before the relay looks: a cursor
//! whose `seq` holds another event than the cursor's own starts over too
//! ([`resume_in`]). The inbox's unique event id keeps the
//! events already delivered from arriving twice.
//!
//! Each payload is checked against its type's contract as it is read
//! ([`crate::contracts::check`]): one the contract refuses goes to no
//! consumer, its outbox row becomes `dead` with the reason, and the
//! cursor moves past it. Delivered rows carry the contract's `dataschema`.

use std::collections::BTreeMap;

use silo_manifest::{Manifest, Service};
use silo_store::{ServiceConnection, Stores};
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::contracts::{self, Contracts, Verdict};
use crate::relay::inbox_rows;
use crate::relay::nats::envelope::Envelope;
use crate::{EventsError, sql};

/// The connections' name on the server.
const APPLICATION: &str = "silo events relay";

/// How many events one transaction on a consumer's store takes at most.
pub const BATCH: i64 = 500;

/// Sets up a connection to a publisher's store for reading its outbox,
/// once per connection, before the first batch.
///
/// On PostgreSQL it turns bitmap and sequential scans off for the session,
/// so the outbox read walks the `(txid, seq)` index in order and stops
/// after one batch. On an outbox whose statistics are old or missing (a
/// backlog written since the last `ANALYZE`, the common case when delivery
/// falls behind), the planner guesses a few dozen rows, reads the whole
/// backlog by a bitmap scan or a sequential one and sorts it on every
/// batch: about 70 ms a batch at 40,000 rows instead of 1. (The nats
/// relay's read has its partial pending index and needs only the first:
/// [`crate::relay::nats::publish::prepare`].) The connection's other
/// statements are lookups by id or by `(txid, seq)`, which an index serves
/// as well; a statement with no index to use still scans the table.
pub async fn prepare_source(
    conn: &mut ServiceConnection,
    publisher: &Service,
) -> Result<(), EventsError> {
    if let ServiceConnection::Postgres(c) = conn {
        for setting in ["SET enable_bitmapscan = off", "SET enable_seqscan = off"] {
            sqlx::query(setting)
                .execute(&mut *c)
                .await
                .map_err(sql(format!(
                    "preparing the read of {}'s outbox",
                    publisher.name
                )))?;
        }
    }
    Ok(())
}

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
    /// The outbox's `seq`: the order within a position on PostgreSQL.
    seq: i64,
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

/// A consumer's cursor row for one publisher, as [`CURSOR_SELECT`] reads
/// it: (origin, position, seq, event id).
pub(crate) type StoredCursor = (String, i64, i64, String);

/// Reads a consumer's cursor row for the publisher `$1`.
pub(crate) const CURSOR_SELECT: &str =
    "SELECT origin, position, seq, event_id FROM silo_inbox_cursor WHERE source = $1";

/// Where a consumer's cursor for one publisher stands.
pub(crate) struct Cursor {
    pub(crate) position: i64,
    pub(crate) seq: i64,
    pub(crate) event_id: String,
}

/// Which store a publisher's positions count in, and how far its counter
/// has gone: a cursor can never be ahead of it unless the store went back.
pub(crate) struct Origin {
    pub(crate) id: String,
    counter: i64,
}

impl Cursor {
    fn start() -> Self {
        Cursor {
            position: 0,
            seq: 0,
            event_id: "00000000-0000-0000-0000-000000000000".into(),
        }
    }
}

/// Delivers every committed event that is not delivered yet from each
/// service that publishes to each service whose `consumes` lists its type
/// (of the types the publisher lists in `publishes`: see
/// [`routed_types`]), until no more are ready, checking payloads against
/// `contracts` (loaded once by the caller: [`Contracts::load`]). The event
/// tables must exist ([`crate::ensure`]).
pub async fn deliver_once(
    stores: &Stores,
    manifest: &Manifest,
    contracts: &Contracts,
) -> Result<Delivered, EventsError> {
    let mut delivered = Delivered::default();
    for publisher in manifest.services.iter().filter(|s| !s.publishes.is_empty()) {
        for consumer in manifest.services.iter() {
            if routed_types(publisher, consumer).is_empty() {
                continue;
            }
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

/// The event types that go from `publisher` to `consumer`: those the
/// publisher lists in `publishes` and the consumer in `consumes`. An
/// outbox row of a type its publisher does not declare goes nowhere.
pub fn routed_types(publisher: &Service, consumer: &Service) -> Vec<String> {
    consumer
        .consumes
        .iter()
        .filter(|t| publisher.publishes.contains(t))
        .cloned()
        .collect()
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
    let types = routed_types(publisher, consumer);
    let mut source = stores.connect_as(publisher, APPLICATION).await?;
    prepare_source(&mut source, publisher).await?;
    let mut sink = stores.connect_as(consumer, APPLICATION).await?;
    let (mut total, mut refused) = (0, 0);
    let result = loop {
        match deliver_batch(
            &mut source,
            publisher,
            &mut sink,
            consumer,
            &types,
            contracts,
        )
        .await
        {
            Ok(batch) => {
                total += batch.written();
                refused += batch.refused;
                if !batch.full() {
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

/// What one [`deliver_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The outbox rows read, in order: (type, position, event id).
    pub read: Vec<(String, i64, String)>,
    /// Inbox rows written per event type (events already there are not
    /// counted).
    pub written: BTreeMap<String, u64>,
    /// Events their contract refused: dead in the outbox, delivered to
    /// no one.
    pub refused: u64,
    /// Where the consumer's cursor for the publisher stands after the
    /// batch, in the publisher's current origin.
    pub cursor: Position,
}

impl Batch {
    /// All the inbox rows written.
    pub fn written(&self) -> u64 {
        self.written.values().sum()
    }

    /// Whether the batch was full: more events may be ready at once.
    pub fn full(&self) -> bool {
        self.read.len() >= BATCH as usize
    }
}

/// A place in a publisher's outbox order: every event at or before it of
/// the types a cursor covers is in the consumer's inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Which store the position counts in (see the module's doc).
    pub origin: String,
    /// The publisher's `txid` (PostgreSQL) or `seq` (SQLite).
    pub position: i64,
    /// The last event's outbox `seq` (PostgreSQL orders by `(txid, seq)`;
    /// on SQLite it equals `position`).
    pub seq: i64,
    /// The last event's id, for people reading the cursor.
    pub event_id: String,
}

/// One batch: in one transaction on the consumer's store, read its cursor
/// for the publisher, read what follows from the publisher's outbox (rows
/// of `types`), check them against their contracts, insert the events they
/// pass and move the cursor.
pub async fn deliver_batch(
    source: &mut ServiceConnection,
    publisher: &Service,
    sink: &mut ServiceConnection,
    consumer: &Service,
    types: &[String],
    contracts: &Contracts,
) -> Result<Batch, EventsError> {
    match sink {
        ServiceConnection::Postgres(c) => {
            let mut tx = c.begin().await.map_err(sql(begin(consumer)))?;
            // The lock makes two relays on one pair take turns. An advisory
            // lock rather than `FOR UPDATE`: a row lock gives the
            // transaction an id at once, and a transaction id held while
            // the outbox is read would hold back every other delivery
            // from the same server (they wait for older transactions).
            sqlx::query(
                "SELECT pg_advisory_xact_lock(hashtext('silo_inbox_cursor'), hashtext($1))",
            )
            .bind(&publisher.name)
            .execute(&mut *tx)
            .await
            .map_err(sql(read_cursor(publisher, consumer)))?;
            let cursor = sqlx::query_as::<_, StoredCursor>(CURSOR_SELECT)
                .bind(&publisher.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql(read_cursor(publisher, consumer)))?;
            let origin = read_origin(source, publisher).await?;
            let cursor = resume_in(source, publisher, cursor, &origin).await?;
            let mut events = read_outbox(source, publisher, types, &cursor).await?;
            let refused = screen(source, publisher, contracts, &mut events).await?;
            let written = write_postgres(&mut tx, publisher, consumer, &origin, &events).await?;
            tx.commit().await.map_err(sql(commit(consumer)))?;
            Ok(batch(events, written, refused, cursor, origin))
        }
        ServiceConnection::Sqlite(c) => {
            // IMMEDIATE: the write lock first, so two relays take turns.
            let mut tx = c
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(sql(begin(consumer)))?;
            let cursor = sqlx::query_as::<_, StoredCursor>(CURSOR_SELECT)
                .bind(&publisher.name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql(read_cursor(publisher, consumer)))?;
            let origin = read_origin(source, publisher).await?;
            let cursor = resume_in(source, publisher, cursor, &origin).await?;
            let mut events = read_outbox(source, publisher, types, &cursor).await?;
            let refused = screen(source, publisher, contracts, &mut events).await?;
            let written = write_sqlite(&mut tx, publisher, consumer, &origin, &events).await?;
            tx.commit().await.map_err(sql(commit(consumer)))?;
            Ok(batch(events, written, refused, cursor, origin))
        }
    }
}

/// What a batch that read `events` after `cursor` and wrote `written` did.
fn batch(
    events: Vec<Event>,
    written: BTreeMap<String, u64>,
    refused: u64,
    cursor: Cursor,
    origin: Origin,
) -> Batch {
    let cursor = match events.last() {
        Some(last) => Position {
            origin: origin.id,
            position: last.position,
            seq: last.seq,
            event_id: last.id.clone(),
        },
        None => Position {
            origin: origin.id,
            position: cursor.position,
            seq: cursor.seq,
            event_id: cursor.event_id,
        },
    };
    Batch {
        read: events
            .into_iter()
            .map(|e| (e.event_type, e.position, e.id))
            .collect(),
        written,
        refused,
        cursor,
    }
}

/// The cursor to go on from: the stored one, unless the publisher's store
/// is not the one it counted in (another origin) or went back (the cursor
/// is ahead of its counter): then the beginning.
pub(crate) fn resume(stored: Option<StoredCursor>, origin: &Origin) -> Cursor {
    match stored {
        Some((id, position, seq, event_id)) if id == origin.id && position <= origin.counter => {
            Cursor {
                position,
                seq,
                event_id,
            }
        }
        _ => Cursor::start(),
    }
}

/// [`resume`], and the start too when the publisher's outbox holds a row
/// at the cursor's place that is not the cursor's event: the store was
/// put back from a backup keeping its origin (a SQLite file copied back)
/// and has since counted past the cursor again, which [`resume`] alone
/// cannot see; the rows from the backup's counter on are new events the
/// cursor would skip. A row gone from the outbox (retired) says nothing
/// either way. On PostgreSQL the place is `(txid, seq)`, both of which a
/// physical restore in place turns back: only a row at exactly that place
/// is caught (docs/events.md, "After a restore").
pub(crate) async fn resume_in(
    source: &mut ServiceConnection,
    publisher: &Service,
    stored: Option<StoredCursor>,
    origin: &Origin,
) -> Result<Cursor, EventsError> {
    let cursor = resume(stored, origin);
    if cursor.seq == 0 {
        return Ok(cursor);
    }
    let action = format!("reading {}'s outbox", publisher.name);
    let at: Option<String> = match source {
        ServiceConnection::Postgres(c) => {
            // By (txid, seq): the outbox's index.
            sqlx::query_scalar(
                "SELECT id::text FROM silo_outbox WHERE txid = $1::bigint::text::xid8 AND seq = $2",
            )
            .bind(cursor.position)
            .bind(cursor.seq)
            .fetch_optional(&mut *c)
            .await
        }
        ServiceConnection::Sqlite(c) => {
            sqlx::query_scalar("SELECT id FROM silo_outbox WHERE seq = $1")
                .bind(cursor.seq)
                .fetch_optional(&mut *c)
                .await
        }
    }
    .map_err(sql(action))?;
    Ok(match at {
        Some(id) if !id.eq_ignore_ascii_case(&cursor.event_id) => Cursor::start(),
        _ => cursor,
    })
}

/// The publisher's origin and counter, read as the publisher. Read before
/// its outbox, so every position the cursor holds is at most the counter.
pub(crate) async fn read_origin(
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
    type Row = (i64, i64, String, String, String, String, String, String);
    let rows: Vec<Row> = match source {
        ServiceConnection::Postgres(c) => {
            // Only transactions older than every running one: a row of a
            // transaction still open may carry a lower (txid, seq) than
            // rows already committed, and must not be skipped. The order
            // names the table's columns (`o.`), not the output's text
            // cast of `txid`, so the `(txid, seq)` index serves it instead
            // of a sort.
            sqlx::query_as(
                "SELECT txid::text::bigint, seq, id::text, type, key, payload::text, headers::text, \
                        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                 FROM silo_outbox o \
                 WHERE o.txid < pg_snapshot_xmin(pg_current_snapshot()) \
                   AND (o.txid, o.seq) > ($1::bigint::text::xid8, $2) \
                   AND o.type = ANY($3) AND o.state <> 'dead' \
                 ORDER BY o.txid, o.seq LIMIT $4",
            )
            .bind(cursor.position)
            .bind(cursor.seq)
            .bind(types)
            .bind(BATCH)
            .fetch_all(&mut *c)
            .await
            .map_err(sql(action))?
        }
        ServiceConnection::Sqlite(c) => {
            let types = serde_json::to_string(types).expect("a list of strings is JSON");
            sqlx::query_as(
                "SELECT seq, seq, id, type, key, payload, headers, created_at FROM silo_outbox \
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
            |(position, seq, id, event_type, key, payload, headers, time)| Event {
                position,
                seq,
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

const CURSOR_UPSERT: &str = "INSERT INTO silo_inbox_cursor (source, origin, position, seq, event_id) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source) DO UPDATE \
     SET origin = excluded.origin, position = excluded.position, seq = excluded.seq, \
         event_id = excluded.event_id, updated_at = excluded.updated_at";

/// The events a batch delivers (those their contract passed), as the
/// envelopes the inbox takes.
fn envelopes(publisher: &Service, events: &[Event]) -> Vec<Envelope> {
    events
        .iter()
        .filter(|e| !e.refused)
        .map(|e| Envelope {
            id: e.id.clone(),
            source: publisher.name.clone(),
            event_type: e.event_type.clone(),
            key: e.key.clone(),
            time: e.time.clone(),
            dataschema: e.dataschema.clone(),
            headers: e.headers.clone(),
            payload: e.payload.clone(),
        })
        .collect()
}

async fn write_postgres(
    tx: &mut PgConnection,
    publisher: &Service,
    consumer: &Service,
    origin: &Origin,
    events: &[Event],
) -> Result<BTreeMap<String, u64>, EventsError> {
    let action = format!(
        "writing events from {} into {}'s inbox",
        publisher.name, consumer.name
    );
    let mut written = BTreeMap::new();
    let Some(last) = events.last() else {
        return Ok(written);
    };
    let envelopes = envelopes(publisher, events);
    let rows: Vec<&Envelope> = envelopes.iter().collect();
    let inserted = inbox_rows::insert_postgres(tx, &consumer.name, &rows, "DO NOTHING").await?;
    for ((_, event_type), n) in inserted {
        *written.entry(event_type).or_default() += n;
    }
    sqlx::query(CURSOR_UPSERT)
        .bind(&publisher.name)
        .bind(&origin.id)
        .bind(last.position)
        .bind(last.seq)
        .bind(&last.id)
        .execute(&mut *tx)
        .await
        .map_err(sql(action))?;
    Ok(written)
}

async fn write_sqlite(
    tx: &mut SqliteConnection,
    publisher: &Service,
    consumer: &Service,
    origin: &Origin,
    events: &[Event],
) -> Result<BTreeMap<String, u64>, EventsError> {
    let action = format!(
        "writing events from {} into {}'s inbox",
        publisher.name, consumer.name
    );
    let mut written = BTreeMap::new();
    // The whole batch in one statement, as on PostgreSQL: a statement per
    // row is a round trip to the connection's thread per row, which took
    // most of the batch's time.
    let envelopes = envelopes(publisher, events);
    let rows: Vec<&Envelope> = envelopes.iter().collect();
    if !rows.is_empty() {
        let inserted = inbox_rows::insert_sqlite(tx, &consumer.name, &rows, "DO NOTHING").await?;
        for ((_, event_type), n) in inserted {
            *written.entry(event_type).or_default() += n;
        }
    }
    if let Some(last) = events.last() {
        sqlx::query(CURSOR_UPSERT)
            .bind(&publisher.name)
            .bind(&origin.id)
            .bind(last.position)
            .bind(last.seq)
            .bind(&last.id)
            .execute(&mut *tx)
            .await
            .map_err(sql(action))?;
    }
    Ok(written)
}
