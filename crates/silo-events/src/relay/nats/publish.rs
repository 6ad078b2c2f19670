//! The relay on the nats bus: a publishing service's outbox → the
//! project's stream, read as the service.
//!
//! Rows are read in commit-safe order (PostgreSQL: only transactions
//! older than every running one, by `(txid, seq)`; SQLite: by `seq`), at
//! most [`BATCH`] rows and [`BATCH_BYTES`] of payloads at a time,
//! published one after the other on one connection without waiting
//! (JetStream stores them in that order), then every publish ack is
//! awaited and the acknowledged rows are marked `sent` (retention `keep`)
//! or deleted (retention `delete`) in one statement over their range (see
//! [`mark_sent`] for why the range holds nothing else). A relay killed
//! between the publish and the mark publishes those rows again: the
//! stream's duplicate window (`Nats-Msg-Id` = event id) drops them, and
//! past it the inbox's unique event id does.
//!
//! Each row's payload is checked against its type's contract
//! ([`crate::contracts::check`]) before it is published: a passing one
//! carries the contract's URI as `ce-dataschema`.
//!
//! A row that can never be published is marked `dead` with the reason
//! ([`crate::contracts::dead_letter`]), so it cannot hold back the rows
//! after it: a payload its contract refuses, a type the service does not
//! declare in `publishes` (under `nats_auth` the server would refuse it),
//! an event larger than the server takes, or one whose headers (its key,
//! mostly) are larger than JetStream stores.
//!
//! [`relay_batches`] moves several batches in a row and reads each next
//! batch while the stream's acks for the one before are on their way: it
//! reads on from the last row of that batch (`(txid, seq)` above it on
//! PostgreSQL, `seq` on SQLite), not from what is still pending, as those
//! rows are not marked yet. No row can appear below that point later: a
//! row is read only once every transaction older than its own has ended,
//! so any row committed afterwards has a larger `txid` (SQLite has one
//! writer at a time, and `seq` never goes back). The next batch is
//! published only once every row before it was acked and marked; when a
//! publish fails, it is dropped and read again on the next pass.
//!
//! When a publish fails, the rows before it are marked and the rest are
//! published again on the next pass, in order. If the connection was lost
//! part way and the client sent later rows again after it reconnected,
//! those can sit in the stream before an earlier one: the relay notices
//! (the earlier one is new to the stream when it is published again) and
//! logs a warning naming the events.

use std::collections::BTreeMap;

use async_nats::jetstream::message::PublishMessage;
use silo_manifest::{Manifest, Retention, Service};
use silo_store::ServiceConnection;

use super::connect::Connection;
use super::envelope::{self, Envelope};
use super::names;
use crate::contracts::{self, Contracts, Verdict};
use crate::{EventsError, sql};

/// How many outbox rows one pass reads and publishes at most.
pub const BATCH: i64 = 1000;

/// How many bytes of payloads one pass reads at most: a batch ends before
/// the row that would pass them, except that it always holds one row. Large
/// events make smaller batches instead of megabytes held at once in the
/// relay's memory and on its way to the server.
pub const BATCH_BYTES: i64 = 1 << 20;

/// How many batches [`relay_batches`] moves in a row at most, before its
/// caller looks at its stop signal and metrics again.
pub const BATCHES_IN_A_ROW: usize = 20;

/// What one [`relay_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Rows read from the outbox.
    pub read: usize,
    /// Events the stream acknowledged (new or already there), whose rows
    /// were then deleted or marked sent.
    pub published: u64,
    /// Rows marked dead.
    pub dead: u64,
    /// Of those, per type: (published, dead).
    pub by_type: BTreeMap<String, (u64, u64)>,
    /// Whether a publish failed (the rest of the batch waits for the next
    /// pass).
    pub failed: Option<String>,
    /// Whether the last batch read came back full: more rows may wait.
    pub more: bool,
}

impl Relayed {
    fn add(&mut self, other: Relayed) {
        self.read += other.read;
        self.published += other.published;
        self.dead += other.dead;
        for (t, (p, d)) in other.by_type {
            let e = self.by_type.entry(t).or_default();
            e.0 += p;
            e.1 += d;
        }
        self.failed = other.failed;
        self.more = other.more;
    }
}

/// One outbox row, and its place.
struct Row {
    envelope: Envelope,
    place: Place,
}

/// A row's place in commit-safe order (`txid` is PostgreSQL's, as text);
/// a read of the outbox goes on from just after one.
#[derive(Debug, Clone, Default)]
struct Place {
    txid: Option<String>,
    seq: i64,
}

/// Rows read, the place of the last of them, and whether the batch came
/// back full (its row or byte limit cut it: more rows may wait).
struct Read {
    rows: Vec<Row>,
    after: Place,
    full: bool,
}

/// Sets up a store connection for the relay, once per connection, before
/// its first batch.
///
/// On PostgreSQL it turns bitmap scans off for the session. The pending
/// read must walk the `(txid, seq)` index in order and stop after one
/// batch; on an outbox whose statistics are old or missing (a backlog
/// written since the last `ANALYZE`, the common case when the relay falls
/// behind), the planner guesses few rows and takes a bitmap heap scan,
/// which fetches and sorts the whole backlog on every batch: tens of
/// milliseconds a batch at 50,000 rows instead of under one. The relay's
/// other statements are lookups by `(txid, seq)` too, for which a plain
/// index scan is as good.
pub async fn prepare(conn: &mut ServiceConnection, service: &Service) -> Result<(), EventsError> {
    if let ServiceConnection::Postgres(c) = conn {
        sqlx::query("SET enable_bitmapscan = off")
            .execute(&mut *c)
            .await
            .map_err(sql(format!(
                "preparing {}'s relay connection",
                service.name
            )))?;
    }
    Ok(())
}

/// Reads one batch of `service`'s pending outbox rows, checks them against
/// `contracts` (loaded once by the caller: [`Contracts::load`]),
/// publishes them and marks them. `conn` is the service's own store
/// connection.
pub async fn relay_batch(
    conn: &mut ServiceConnection,
    bus: &Connection,
    manifest: &Manifest,
    service: &Service,
    contracts: &Contracts,
) -> Result<Relayed, EventsError> {
    relay_batches(conn, bus, manifest, service, contracts, 1).await
}

/// As [`relay_batch`], for up to `most` batches in a row while they come
/// back full, each next one read while the acks of the one before are on
/// their way (see the module's notes). Returns what they did in all;
/// `failed` and `more` tell of the last one.
pub async fn relay_batches(
    conn: &mut ServiceConnection,
    bus: &Connection,
    manifest: &Manifest,
    service: &Service,
    contracts: &Contracts,
    most: usize,
) -> Result<Relayed, EventsError> {
    let mut total = Relayed::default();
    let mut next = read_pending(conn, service, &Place::default()).await?;
    let mut moved = 0;
    loop {
        moved += 1;
        let read = std::mem::take(&mut next.rows);
        let after = next.after.clone();
        let full = next.full;
        let mut sending = publish_rows(bus, manifest, service, contracts, read).await;
        sending.done.more = full;
        let go_on = full && moved < most && sending.done.failed.is_none();
        let (acked, following) = tokio::join!(await_acks(service, sending), async {
            if go_on {
                Some(read_pending(conn, service, &after).await)
            } else {
                None
            }
        });
        let done = retire(conn, service, manifest.events.retention, acked).await?;
        let failed = done.failed.is_some();
        total.add(done);
        match following {
            Some(following) if !failed => {
                next = following?;
                if next.rows.is_empty() {
                    total.more = false;
                    return Ok(total);
                }
            }
            _ => return Ok(total),
        }
    }
}

/// A batch on its way to the stream: what it did so far, the rows to mark
/// dead, and the acks to wait for.
struct Sending {
    done: Relayed,
    dead: Vec<(String, String, String)>,
    acks: Vec<(
        (String, String, Place),
        async_nats::jetstream::context::PublishAckFuture,
    )>,
}

/// A batch the stream has answered for: the places of the rows it acked,
/// in order up to the first failure, and the rows to mark dead.
struct Acked {
    done: Relayed,
    dead: Vec<(String, String, String)>,
    sent: Vec<Place>,
}

/// Checks `rows` and publishes them, one after the other without waiting
/// for acks; stops at the first publish that fails.
async fn publish_rows(
    bus: &Connection,
    manifest: &Manifest,
    service: &Service,
    contracts: &Contracts,
    rows: Vec<Row>,
) -> Sending {
    let mut done = Relayed {
        read: rows.len(),
        ..Default::default()
    };
    let max_payload = bus.client.server_info().max_payload;
    let mut dead: Vec<(String, String, String)> = Vec::new();
    let mut acks = Vec::new();
    // Each type's subject, made once per batch.
    let mut subjects: BTreeMap<String, async_nats::Subject> = BTreeMap::new();
    for row in rows {
        let Row {
            envelope: mut e,
            place,
        } = row;
        if !service.publishes.contains(&e.event_type) {
            dead.push((
                e.id.clone(),
                e.event_type.clone(),
                format!(
                    "{} does not declare {} in `publishes` in silo.toml, so the bus does not take it",
                    service.name, e.event_type
                ),
            ));
            continue;
        }
        match contracts::check(contracts, &service.name, &e.event_type, &e.payload) {
            Verdict::Deliver { dataschema } => e.dataschema = dataschema,
            Verdict::Refuse { reason } => {
                dead.push((e.id.clone(), e.event_type.clone(), reason));
                continue;
            }
        }
        let headers = e.to_headers();
        if let Some(why) = envelope::headers_too_large(&headers) {
            dead.push((e.id.clone(), e.event_type.clone(), why));
            continue;
        }
        let size = e.payload.len() + envelope::header_bytes(&headers);
        if max_payload > 0 && size > max_payload {
            dead.push((
                e.id.clone(),
                e.event_type.clone(),
                format!("the event is {size} bytes with its headers; the NATS server takes at most {max_payload}"),
            ));
            continue;
        }
        let message = PublishMessage::build()
            .payload(std::mem::take(&mut e.payload).into())
            .headers(headers);
        let subject = subjects
            .entry(e.event_type.clone())
            .or_insert_with(|| names::subject(&manifest.project, &e.event_type).into())
            .clone();
        match bus.js.send_publish(subject, message).await {
            Ok(ack) => acks.push(((e.id, e.event_type, place), ack)),
            Err(err) => {
                done.failed = Some(err.to_string());
                break;
            }
        }
    }
    Sending { done, dead, acks }
}

/// Waits for every ack of `sending`, in order; the first failure ends
/// what may be marked.
async fn await_acks(service: &Service, sending: Sending) -> Acked {
    let Sending {
        mut done,
        dead,
        acks,
    } = sending;
    // Every ack, in order; the first failure ends what may be marked.
    let mut sent = Vec::new();
    let mut failed_at: Option<usize> = None;
    let mut later_ok = Vec::new();
    // All at once: with the server gone, each times out, and one after
    // the other would take the timeout times the batch.
    let (rows, futures): (Vec<(String, String, Place)>, Vec<_>) = acks.into_iter().unzip();
    let results = futures::future::join_all(futures.into_iter().map(|f| f.into_future())).await;
    for (i, ((id, event_type, place), result)) in rows.into_iter().zip(results).enumerate() {
        match (result.map_err(|e| e.to_string()), failed_at) {
            (Ok(_), None) => {
                done.by_type.entry(event_type).or_default().0 += 1;
                sent.push(place);
            }
            (Ok(a), Some(_)) if !a.duplicate => later_ok.push(id),
            (Ok(_), Some(_)) => {}
            (Err(e), None) => {
                failed_at = Some(i);
                done.failed.get_or_insert(e);
            }
            (Err(_), Some(_)) => {}
        }
    }
    if !later_ok.is_empty() {
        tracing::warn!(
            service = %service.name,
            events = ?later_ok,
            "a publish failed while later ones reached the stream: these events may sit before an earlier one of the same service"
        );
    }
    done.published = sent.len() as u64;
    Acked { done, dead, sent }
}

/// Marks what `acked` says: the dead rows dead, then the rows the stream
/// has as sent (or deletes them). In that order: the rows sent are retired
/// by their range, which holds the dead ones between them too, and only
/// the rows still pending in it are touched.
async fn retire(
    conn: &mut ServiceConnection,
    service: &Service,
    retention: Retention,
    acked: Acked,
) -> Result<Relayed, EventsError> {
    let Acked {
        mut done,
        dead,
        sent,
    } = acked;
    for (id, event_type, why) in &dead {
        contracts::dead_letter(conn, service, id, why).await?;
        done.by_type.entry(event_type.clone()).or_default().1 += 1;
    }
    done.dead = dead.len() as u64;
    if let (Some(first), Some(last)) = (sent.first(), sent.last()) {
        mark_sent(conn, service, first, last, retention).await?;
    }
    Ok(done)
}

/// The next batch of pending rows in commit-safe order, after `after`: at
/// most [`BATCH`] rows, and rows while their payloads add up to at most
/// [`BATCH_BYTES`] (always the first one). The byte count is a running sum
/// in SQL, so the rows past it never leave the server. `more` is whether a
/// row followed the last one taken among the [`BATCH`] read.
async fn read_pending(
    conn: &mut ServiceConnection,
    service: &Service,
    after: &Place,
) -> Result<Read, EventsError> {
    let action = format!("reading {}'s outbox", service.name);
    type R = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        i64,
        bool,
    );
    let rows: Vec<R> = match conn {
        // The inner `ORDER BY` names the table's columns, so it walks the
        // pending (txid, seq) index instead of sorting the outbox (with
        // bitmap scans off: [`prepare`]), and the windows over its rows
        // in the same order add no sort. `seq`, not `id`: the ids of one
        // transaction's events made in the same millisecond differ only in
        // random bits.
        ServiceConnection::Postgres(c) => sqlx::query_as(
            "SELECT id, type, key, payload, headers, time, txid::text, seq, more FROM ( \
               SELECT p.*, sum(octet_length(p.payload)) OVER w AS upto, \
                      octet_length(p.payload) AS bytes, lead(p.seq) OVER w IS NOT NULL AS more \
               FROM (SELECT id::text AS id, type, key, payload::text AS payload, \
                            headers::text AS headers, \
                            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS time, \
                            txid, seq \
                     FROM silo_outbox \
                     WHERE state = 'pending' AND txid < pg_snapshot_xmin(pg_current_snapshot()) \
                       AND (txid, seq) > ($2::text::xid8, $3) \
                     ORDER BY silo_outbox.txid, silo_outbox.seq LIMIT $1) p \
               WINDOW w AS (ORDER BY p.txid, p.seq ROWS UNBOUNDED PRECEDING) \
             ) b \
             WHERE upto <= $4 OR upto = bytes \
             ORDER BY b.txid, b.seq",
        )
        .bind(BATCH)
        .bind(after.txid.as_deref().unwrap_or("0"))
        .bind(after.seq)
        .bind(BATCH_BYTES)
        .fetch_all(&mut *c)
        .await
        .map_err(sql(action))?,
        ServiceConnection::Sqlite(c) => sqlx::query_as(
            "SELECT id, type, key, payload, headers, created_at, NULL, seq, more FROM ( \
               SELECT p.*, sum(length(CAST(p.payload AS BLOB))) OVER w AS upto, \
                      length(CAST(p.payload AS BLOB)) AS bytes, \
                      lead(p.seq) OVER w IS NOT NULL AS more \
               FROM (SELECT id, type, key, payload, headers, created_at, seq FROM silo_outbox \
                     WHERE state = 'pending' AND seq > $2 ORDER BY seq LIMIT $1) p \
               WINDOW w AS (ORDER BY p.seq ROWS UNBOUNDED PRECEDING) \
             ) \
             WHERE upto <= $3 OR upto = bytes \
             ORDER BY seq",
        )
        .bind(BATCH)
        .bind(after.seq)
        .bind(BATCH_BYTES)
        .fetch_all(&mut *c)
        .await
        .map_err(sql(action))?,
    };
    let full = rows.len() as i64 >= BATCH || rows.last().is_some_and(|r| r.8);
    let after = rows.last().map_or_else(Place::default, |r| Place {
        txid: r.6.clone(),
        seq: r.7,
    });
    let rows = rows
        .into_iter()
        .map(
            |(id, event_type, key, payload, headers, time, txid, seq, _)| Row {
                envelope: Envelope {
                    id,
                    source: service.name.clone(),
                    event_type,
                    key,
                    time,
                    dataschema: None,
                    headers,
                    payload,
                },
                place: Place { txid, seq },
            },
        )
        .collect();
    Ok(Read { rows, after, full })
}

/// Marks the rows from `first` to `last` (both in, in commit-safe order)
/// that are still pending as sent, or deletes them, in one statement.
///
/// The range holds exactly the rows of the batch up to `last` and nothing
/// else: the batch took every pending row between the two when it read
/// them, and no row can enter the range later. On PostgreSQL the read took
/// only rows whose `txid` is below the oldest transaction still running,
/// so every transaction whose `txid` lies in the range had ended when it
/// read: a transaction that commits later has a larger `txid`, even if it
/// began before a row of the range was committed (the out-of-order
/// commit). On SQLite, writers are serialized and `seq` never goes back.
/// A row is pending only from its insert on (silo never makes an outbox
/// row pending again), so the rows of the range not published are the
/// dead ones, marked dead first ([`retire`]) and spared here.
async fn mark_sent(
    conn: &mut ServiceConnection,
    service: &Service,
    first: &Place,
    last: &Place,
    retention: Retention,
) -> Result<(), EventsError> {
    let action = format!("marking {}'s relayed events", service.name);
    match conn {
        ServiceConnection::Postgres(c) => {
            let statement = match retention {
                Retention::Keep => {
                    "UPDATE silo_outbox SET state = 'sent', sent_at = clock_timestamp(), error = NULL \
                     WHERE state = 'pending' \
                       AND (txid, seq) >= ($1::text::xid8, $2) AND (txid, seq) <= ($3::text::xid8, $4)"
                }
                Retention::Delete => {
                    "DELETE FROM silo_outbox WHERE state = 'pending' \
                       AND (txid, seq) >= ($1::text::xid8, $2) AND (txid, seq) <= ($3::text::xid8, $4)"
                }
            };
            sqlx::query(statement)
                .bind(first.txid.as_deref().unwrap_or("0"))
                .bind(first.seq)
                .bind(last.txid.as_deref().unwrap_or("0"))
                .bind(last.seq)
                .execute(&mut *c)
                .await
                .map_err(sql(action))?;
        }
        ServiceConnection::Sqlite(c) => {
            let statement = match retention {
                Retention::Keep => {
                    "UPDATE silo_outbox SET state = 'sent', \
                     sent_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), error = NULL \
                     WHERE state = 'pending' AND seq BETWEEN $1 AND $2"
                }
                Retention::Delete => {
                    "DELETE FROM silo_outbox WHERE state = 'pending' AND seq BETWEEN $1 AND $2"
                }
            };
            sqlx::query(statement)
                .bind(first.seq)
                .bind(last.seq)
                .execute(&mut *c)
                .await
                .map_err(sql(action))?;
        }
    }
    Ok(())
}
