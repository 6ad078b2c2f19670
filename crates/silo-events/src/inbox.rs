//! Consuming: a service handles the events in its own `silo_inbox`, each
//! in the transaction of its own writes.
//!
//! The exactly-once *effect* comes from two things: an event reaches an
//! inbox at most once (its id is unique there), and the service's writes
//! and the inbox row's `done` mark commit or roll back together.
//!
//! [`Inbox::handle`] is the whole consume loop: per event it opens a
//! transaction, takes the next event that is ready, runs the service's
//! handler inside a savepoint, and either marks the event done or (the
//! handler failed: its writes are rolled back to the savepoint) records
//! the failed attempt, then commits. [`Inbox::next_batch`],
//! [`Inbox::done`] and [`Inbox::fail`] are its parts, for a service that
//! keeps its own loop. The SQL is in [`ConsumeSql`], the same statements
//! docs/events.md gives for services written in other languages.
//!
//! What is ready:
//! - `pending`, and its `next_attempt_at` (set by a failure) has passed;
//! - per key (of one publisher), only the oldest pending event: a key
//!   whose earlier event waits for a retry holds its later events back,
//!   so they are handled in publish order. A `dead` event holds nothing.
//!
//! Several consumers of one store at once never take the same event: on
//! PostgreSQL the claim locks the rows it returns and skips rows another
//! consumer holds (`FOR UPDATE SKIP LOCKED`), and the later events of a key
//! whose earlier event is held stay back (it is still pending to everyone
//! else); on SQLite the transaction starts with `BEGIN IMMEDIATE`, so
//! consumers take turns.

use std::fmt::Display;
use std::time::Duration;

use silo_manifest::{Engine, EventsSettings};
use sqlx::{AssertSqlSafe, Connection, PgConnection, SqlSafeStr, SqliteConnection};

use crate::{EventsError, Outbox, sql};

const SAVEPOINT: &str = "SAVEPOINT handler";
const RELEASE: &str = "RELEASE SAVEPOINT handler";
const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT handler";

/// The consume loop's statements for one engine, exactly as docs/events.md
/// shows them. Parameters are numbered (`$1` on PostgreSQL, `?1` on SQLite,
/// which every SQLite driver understands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeSql {
    /// Starts the transaction: `BEGIN` on PostgreSQL, `BEGIN IMMEDIATE` on
    /// SQLite (the write lock first, so consumers take turns).
    pub begin: &'static str,
    /// Takes up to `$1` ready events, oldest first, one per key; on
    /// PostgreSQL it locks them and skips events other consumers hold.
    pub claim: &'static str,
    /// Marks event `$1` (its `seq`) done, in the transaction of the
    /// service's own writes.
    pub done: &'static str,
    /// Before the handler's writes: a savepoint to roll back to if they
    /// fail, keeping the claim.
    pub savepoint: &'static str,
    /// After the handler's writes succeeded.
    pub release: &'static str,
    /// After the handler failed: undoes its writes, not the claim.
    pub rollback_to: &'static str,
    /// Records a failed attempt of event `$1`: adds 1 to `attempts`, keeps
    /// the error `$2`, and makes the event wait `$4` seconds, or makes it
    /// `dead` once `attempts` reaches `$3` (max_attempts). Returns the new
    /// state and attempts.
    pub fail: &'static str,
}

impl ConsumeSql {
    /// The statements on PostgreSQL.
    pub const POSTGRES: ConsumeSql = ConsumeSql {
        begin: "BEGIN",
        claim:
            "SELECT seq, event_id, type, source, key, time, payload, headers, dataschema, attempts
FROM silo_inbox AS i
WHERE state = 'pending'
  AND (next_attempt_at IS NULL OR next_attempt_at <= now())
  AND NOT EXISTS (
    SELECT 1 FROM silo_inbox AS e
    WHERE e.source = i.source AND e.key = i.key
      AND e.state = 'pending' AND e.seq < i.seq)
ORDER BY seq
LIMIT $1
FOR UPDATE SKIP LOCKED",
        done: "UPDATE silo_inbox
SET state = 'done', done_at = clock_timestamp(), next_attempt_at = NULL
WHERE seq = $1 AND state = 'pending'",
        savepoint: SAVEPOINT,
        release: RELEASE,
        rollback_to: ROLLBACK_TO,
        fail: "UPDATE silo_inbox
SET attempts = attempts + 1,
    last_error = $2,
    state = CASE WHEN attempts + 1 >= $3 THEN 'dead' ELSE 'pending' END,
    next_attempt_at = CASE WHEN attempts + 1 >= $3 THEN NULL
                           ELSE now() + make_interval(secs => $4) END
WHERE seq = $1 AND state = 'pending'
RETURNING state, attempts",
    };

    /// The statements on SQLite.
    pub const SQLITE: ConsumeSql = ConsumeSql {
        begin: "BEGIN IMMEDIATE",
        claim:
            "SELECT seq, event_id, type, source, key, time, payload, headers, dataschema, attempts
FROM silo_inbox AS i
WHERE state = 'pending'
  AND (next_attempt_at IS NULL
       OR next_attempt_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
  AND NOT EXISTS (
    SELECT 1 FROM silo_inbox AS e
    WHERE e.source = i.source AND e.key = i.key
      AND e.state = 'pending' AND e.seq < i.seq)
ORDER BY seq
LIMIT ?1",
        done: "UPDATE silo_inbox
SET state = 'done', done_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), next_attempt_at = NULL
WHERE seq = ?1 AND state = 'pending'",
        savepoint: SAVEPOINT,
        release: RELEASE,
        rollback_to: ROLLBACK_TO,
        fail: "UPDATE silo_inbox
SET attempts = attempts + 1,
    last_error = ?2,
    state = CASE WHEN attempts + 1 >= ?3 THEN 'dead' ELSE 'pending' END,
    next_attempt_at = CASE WHEN attempts + 1 >= ?3 THEN NULL
                           ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?4 || ' seconds') END
WHERE seq = ?1 AND state = 'pending'
RETURNING state, attempts",
    };

    /// The statements for `engine`.
    pub fn of(engine: Engine) -> &'static ConsumeSql {
        match engine {
            Engine::Postgres => &Self::POSTGRES,
            Engine::Sqlite => &Self::SQLITE,
        }
    }
}

/// One event taken from the inbox: its CloudEvents envelope, its payload,
/// and how often handling it failed so far.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxEvent {
    /// The inbox row (`seq`): the order events arrived in.
    pub seq: i64,
    /// The event's id (CloudEvents `id`), a UUID, the same in every
    /// consumer's inbox.
    pub id: String,
    /// The event type (`type`).
    pub event_type: String,
    /// The publishing service (`source`).
    pub source: String,
    /// The key (`subject`): events of one key are handled in publish order.
    pub key: String,
    /// When it was published (`time`, RFC 3339).
    pub time: String,
    /// The payload (`data`).
    pub payload: serde_json::Value,
    /// Headers the publisher set (an object, often empty).
    pub headers: serde_json::Value,
    /// The contract's URI (`dataschema`), when the type has one.
    pub dataschema: Option<String>,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// How long an event waits after a failed attempt: `base` after the
/// first, doubling with each further failure, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// 1 s, 2 s, 4 s, … up to 5 minutes.
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(300),
    };

    /// No wait: a failed event is ready again at once (tests, or a
    /// handler whose failures are not transient).
    pub const NONE: Backoff = Backoff {
        base: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// The wait after the `failures`-th failed attempt (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::DEFAULT
    }
}

/// What became of an event whose handling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// It waits `delay`, then is tried again.
    Retry { attempts: u32, delay: Duration },
    /// It reached `max_attempts` and is dead: `silo events dlq` lists it.
    Dead { attempts: u32 },
}

/// One failed attempt during [`Inbox::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The event's id.
    pub id: String,
    /// The event's type.
    pub event_type: String,
    /// The handler's error, as kept in `last_error`.
    pub error: String,
    /// Whether the event is retried or dead.
    pub outcome: Failed,
}

/// What one [`Inbox::handle`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handled {
    /// Events handled and marked done.
    pub done: u64,
    /// Each failed attempt, in order.
    pub failures: Vec<Failure>,
}

impl Handled {
    /// Events taken: done plus failed attempts.
    pub fn taken(&self) -> usize {
        self.done as usize + self.failures.len()
    }

    /// Failed attempts that left their event dead.
    pub fn dead(&self) -> usize {
        self.failures
            .iter()
            .filter(|f| matches!(f.outcome, Failed::Dead { .. }))
            .count()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::PgConnection {}
    impl Sealed for sqlx::SqliteConnection {}
}

/// A connection to a service's own store that the inbox works on:
/// [`PgConnection`] or [`SqliteConnection`]. Inside a transaction `tx`,
/// `&mut *tx` is one.
pub trait InboxStore:
    sealed::Sealed + Connection<Database: sqlx::Database<Connection = Self>>
{
    /// This connection by engine: for a handler written once for both
    /// engines (`match tx.store() { Outbox::Postgres(c) => …, Outbox::Sqlite(c) => … }`),
    /// and what [`crate::publish`] takes, to publish in the handler's
    /// transaction.
    fn store(&mut self) -> Outbox<'_>;
}

impl InboxStore for PgConnection {
    fn store(&mut self) -> Outbox<'_> {
        Outbox::Postgres(self)
    }
}

impl InboxStore for SqliteConnection {
    fn store(&mut self) -> Outbox<'_> {
        Outbox::Sqlite(self)
    }
}

/// The consumer side of a service's own store: how often an event may fail
/// and how long it waits between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inbox {
    max_attempts: u32,
    backoff: Backoff,
}

impl Default for Inbox {
    /// 5 attempts ([`EventsSettings`]' default), [`Backoff::DEFAULT`].
    fn default() -> Self {
        Inbox::new(&EventsSettings::default())
    }
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i32,
);

impl Inbox {
    /// The inbox as silo.toml's `[events]` sets it (`max_attempts`), with
    /// [`Backoff::DEFAULT`].
    pub fn new(settings: &EventsSettings) -> Self {
        Inbox {
            max_attempts: settings.max_attempts.max(1),
            backoff: Backoff::DEFAULT,
        }
    }

    /// Failed attempts after which an event is dead (at least 1).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// How long failed events wait.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Failed attempts after which an event is dead.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Handles up to `limit` ready events, each in a transaction of its
    /// own, and returns what happened; it stops early when none is ready.
    ///
    /// Per event: begin, take the event, run `handler` with the
    /// transaction (`&mut C`: write with it, publish with it) inside a
    /// savepoint, then
    /// - on `Ok`: mark the event done and commit: the handler's writes and
    ///   the done mark commit together;
    /// - on `Err(e)`: roll the handler's writes back to the savepoint,
    ///   record the failure (`attempts` + 1, `last_error` = `e` shown with
    ///   `{:#}`, the wait, or `dead` at `max_attempts`) and commit.
    ///
    /// An error of the store itself (not of the handler) is returned, and
    /// the event is left as it was.
    ///
    /// In a spawned task (`tokio::spawn`), give the handler what it uses
    /// by value (`async move |tx, event| …` over clones or `Arc`s): a
    /// handler that borrows from the task's locals makes a future the
    /// compiler cannot yet prove `Send`.
    ///
    /// ```no_run
    /// # async fn f(conn: &mut sqlx::PgConnection) -> Result<(), silo_events::EventsError> {
    /// use silo_events::inbox::Inbox;
    /// let inbox = Inbox::default();
    /// inbox
    ///     .handle(conn, 100, async |tx, event| {
    ///         sqlx::query("INSERT INTO orders_seen (id, total) VALUES ($1, $2)")
    ///             .bind(&event.key)
    ///             .bind(event.payload["total"].as_f64())
    ///             .execute(&mut *tx)
    ///             .await?;
    ///         Ok::<_, sqlx::Error>(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn handle<C, E, F>(
        &self,
        conn: &mut C,
        limit: usize,
        mut handler: F,
    ) -> Result<Handled, EventsError>
    where
        C: InboxStore,
        E: Display,
        F: AsyncFnMut(&mut C, &InboxEvent) -> Result<(), E>,
    {
        let mut handled = Handled::default();
        while handled.taken() < limit {
            let mut tx = begin(conn).await?;
            let Some(event) = self.next_batch(&mut *tx, 1).await?.pop() else {
                tx.rollback()
                    .await
                    .map_err(sql("ending a transaction on the inbox"))?;
                break;
            };
            let mut savepoint = Connection::begin(&mut *tx)
                .await
                .map_err(sql("making a savepoint for the handler"))?;
            match handler(&mut *savepoint, &event).await {
                Ok(()) => {
                    savepoint
                        .commit()
                        .await
                        .map_err(sql("releasing the handler's savepoint"))?;
                    self.done(&mut *tx, &event).await?;
                    tx.commit()
                        .await
                        .map_err(sql(format!("committing event {}", event.id)))?;
                    handled.done += 1;
                }
                Err(e) => {
                    savepoint
                        .rollback()
                        .await
                        .map_err(sql("rolling back the handler's writes"))?;
                    let error = format!("{e:#}");
                    let outcome = self.fail(&mut *tx, &event, &error).await?;
                    tx.commit().await.map_err(sql(format!(
                        "committing the failed attempt of event {}",
                        event.id
                    )))?;
                    handled.failures.push(Failure {
                        id: event.id,
                        event_type: event.event_type,
                        error,
                        outcome,
                    });
                }
            }
        }
        Ok(handled)
    }

    /// Takes up to `limit` ready events, oldest first, at most one per key,
    /// in the caller's transaction `tx` (on PostgreSQL they stay locked
    /// until it ends; begin it with `BEGIN IMMEDIATE` on SQLite). Mark
    /// each one [`Inbox::done`] in the same transaction as the writes it
    /// caused. Outside a transaction it refuses: the claim would end at
    /// once and another consumer could take the same events.
    pub async fn next_batch<C: InboxStore>(
        &self,
        tx: &mut C,
        limit: usize,
    ) -> Result<Vec<InboxEvent>, EventsError> {
        if !tx.is_in_transaction() {
            return Err(EventsError::NotInTransaction);
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let action = "taking events from the inbox";
        let rows: Vec<Row> = match tx.store() {
            Outbox::Postgres(c) => {
                // The documented claim as it is, its columns as text.
                let query = format!(
                    "SELECT seq, event_id::text, type, source, key, \
                            to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                            payload::text, headers::text, dataschema, attempts \
                     FROM ({}) AS claimed ORDER BY seq",
                    ConsumeSql::POSTGRES.claim
                );
                sqlx::query_as(AssertSqlSafe(query))
                    .bind(limit)
                    .fetch_all(c)
                    .await
                    .map_err(sql(action))?
            }
            Outbox::Sqlite(c) => sqlx::query_as(ConsumeSql::SQLITE.claim)
                .bind(limit)
                .fetch_all(c)
                .await
                .map_err(sql(action))?,
        };
        rows.into_iter().map(event).collect()
    }

    /// Marks `event` done, on `tx`: the transaction of the service's own
    /// writes for it.
    pub async fn done<C: InboxStore>(
        &self,
        tx: &mut C,
        event: &InboxEvent,
    ) -> Result<(), EventsError> {
        let action = format!("marking event {} done", event.id);
        let marked = match tx.store() {
            Outbox::Postgres(c) => sqlx::query(ConsumeSql::POSTGRES.done)
                .bind(event.seq)
                .execute(c)
                .await
                .map_err(sql(action))?
                .rows_affected(),
            Outbox::Sqlite(c) => sqlx::query(ConsumeSql::SQLITE.done)
                .bind(event.seq)
                .execute(c)
                .await
                .map_err(sql(action))?
                .rows_affected(),
        };
        if marked == 0 {
            return Err(EventsError::NotPending {
                id: event.id.clone(),
            });
        }
        Ok(())
    }

    /// Records a failed attempt at `event` with `error`: on `conn` after
    /// the transaction of the handler's writes was rolled back (on its
    /// own, or in a transaction of its own), or in that transaction after
    /// rolling back to a savepoint, as [`Inbox::handle`] does.
    pub async fn fail<C: InboxStore>(
        &self,
        conn: &mut C,
        event: &InboxEvent,
        error: &str,
    ) -> Result<Failed, EventsError> {
        let delay = self.backoff.delay(event.attempts.saturating_add(1));
        // Milliseconds: SQLite reads `+0.001 seconds`, not `+1e-3 seconds`.
        let seconds = delay.as_millis() as f64 / 1000.0;
        let max = i32::try_from(self.max_attempts).unwrap_or(i32::MAX);
        let action = format!("recording a failed attempt of event {}", event.id);
        let row: Option<(String, i32)> = match conn.store() {
            Outbox::Postgres(c) => sqlx::query_as(ConsumeSql::POSTGRES.fail)
                .bind(event.seq)
                .bind(error)
                .bind(max)
                .bind(seconds)
                .fetch_optional(c)
                .await
                .map_err(sql(action))?,
            Outbox::Sqlite(c) => sqlx::query_as(ConsumeSql::SQLITE.fail)
                .bind(event.seq)
                .bind(error)
                .bind(max)
                .bind(seconds)
                .fetch_optional(c)
                .await
                .map_err(sql(action))?,
        };
        let Some((state, attempts)) = row else {
            return Err(EventsError::NotPending {
                id: event.id.clone(),
            });
        };
        let attempts = attempts.max(0) as u32;
        Ok(if state == "dead" {
            Failed::Dead { attempts }
        } else {
            Failed::Retry { attempts, delay }
        })
    }
}

/// Begins a consume transaction: `BEGIN IMMEDIATE` on SQLite, so two
/// consumers take turns instead of both reading the same event.
async fn begin<C: InboxStore>(
    conn: &mut C,
) -> Result<sqlx::Transaction<'_, C::Database>, EventsError> {
    let sqlite = matches!(conn.store(), Outbox::Sqlite(_));
    let action = "beginning a transaction on the inbox";
    if sqlite {
        // As an owned SqlStr: a `&'static str` would be captured by
        // begin_with's future and keep callers' futures from being Send.
        conn.begin_with(ConsumeSql::SQLITE.begin.into_sql_str())
            .await
            .map_err(sql(action))
    } else {
        conn.begin().await.map_err(sql(action))
    }
}

fn event(row: Row) -> Result<InboxEvent, EventsError> {
    let (seq, id, event_type, source, key, time, payload, headers, dataschema, attempts) = row;
    let json = |what: &str, text: &str| {
        serde_json::from_str(text).map_err(|e| EventsError::Payload {
            event_type: event_type.clone(),
            reason: format!("the {what} of inbox event {id} is not JSON: {e}"),
        })
    };
    Ok(InboxEvent {
        payload: json("payload", &payload)?,
        headers: json("headers", &headers)?,
        seq,
        id: id.clone(),
        event_type: event_type.clone(),
        source,
        key,
        time,
        dataschema,
        attempts: attempts.max(0) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let b = Backoff::DEFAULT;
        let secs: Vec<u64> = (1..=11).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(300));
        assert_eq!(Backoff::NONE.delay(7), Duration::ZERO);
    }

    #[test]
    fn max_attempts_comes_from_the_manifest_and_is_at_least_one() {
        let settings = EventsSettings {
            max_attempts: 3,
            ..EventsSettings::default()
        };
        assert_eq!(Inbox::new(&settings).max_attempts(), 3);
        assert_eq!(Inbox::default().max_attempts(), 5);
        assert_eq!(Inbox::default().with_max_attempts(0).max_attempts(), 1);
    }
}
