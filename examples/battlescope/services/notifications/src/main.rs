//! BattleScope's notification service (seeds 000 and 001).
//!
//! Users subscribe to a solar system, an alliance or a pilot
//! (`user_subscriptions`; the bundled
//! `services/notifications/data/subscriptions.json` stands in for the
//! service's API, loaded at start). The service consumes `battle.created`
//! and `battle.updated` and notifies every active subscription the battle
//! matches, keeping each notification with the event it was sent for in
//! `notification_history`, in the transaction that marks the inbox row
//! done. Here notifying is that record: no webhook is called, no mail
//! sent.
//!
//! It connects to its own store only, with its own credentials:
//! `DATABASE_URL` from the environment, or else from the file `silo up`
//! wrote for it, `.silo/secrets/notifications.env`. `silo events run`
//! moves the events; this program never talks to another service.
//!
//! ```text
//! battlescope-notifications [--once] [--subscriptions FILE] [--env-file FILE]
//! ```
//! `--once` handles every event that is due and exits; without it, the
//! service keeps handling events until Ctrl-C or SIGTERM.
//!
//! This file shares no code with the other services (seed 001: no shared
//! code between services); each keeps its own copy of the few lines that
//! reach its store and run its inbox.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use sqlx::{Connection, PgConnection, SqliteConnection};
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

/// Failed attempts after which an inbox row is dead: silo's default
/// `[events] max_attempts`.
const MAX_ATTEMPTS: i32 = 5;

/// How long the service waits between looks at its inbox.
const POLL: Duration = Duration::from_millis(250);

/// How many inbox events one transaction takes at most.
const BATCH: i64 = 100;

/// Runs one statement, written for each engine, on the store; returns the
/// rows it changed.
macro_rules! execute {
    ($store:expr, $pg:expr, $sqlite:expr $(, $arg:expr)* $(,)?) => {
        match &mut *$store {
            Store::Postgres(c) => sqlx::query($pg)$(.bind($arg))*
                .execute(&mut *c).await.map(|r| r.rows_affected()),
            Store::Sqlite(c) => sqlx::query($sqlite)$(.bind($arg))*
                .execute(&mut *c).await.map(|r| r.rows_affected()),
        }
    };
}

/// Runs a query, written for each engine, and returns all its rows.
macro_rules! fetch_all {
    ($store:expr, $row:ty, $pg:expr, $sqlite:expr $(, $arg:expr)* $(,)?) => {
        match &mut *$store {
            Store::Postgres(c) => sqlx::query_as::<_, $row>($pg)$(.bind($arg))*
                .fetch_all(&mut *c).await,
            Store::Sqlite(c) => sqlx::query_as::<_, $row>($sqlite)$(.bind($arg))*
                .fetch_all(&mut *c).await,
        }
    };
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("battlescope-notifications: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    once: bool,
    subscriptions: PathBuf,
    env_file: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        once: false,
        subscriptions: "services/notifications/data/subscriptions.json".into(),
        env_file: ".silo/secrets/notifications.env".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--once" => args.once = true,
            "-h" | "--help" => {
                println!(
                    "usage: battlescope-notifications [--once] [--subscriptions FILE] [--env-file FILE]"
                );
                std::process::exit(0);
            }
            "--subscriptions" => {
                args.subscriptions = it.next().ok_or("--subscriptions needs a file")?.into()
            }
            "--env-file" => args.env_file = it.next().ok_or("--env-file needs a file")?.into(),
            _ => {
                return Err(format!(
                    "unknown argument `{arg}`; usage: battlescope-notifications [--once] \
                     [--subscriptions FILE] [--env-file FILE]"
                )
                .into());
            }
        }
    }
    Ok(args)
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    let mut store = Store::open(&args.env_file).await?;
    let added = subscribe(&mut store, &args.subscriptions).await?;
    println!("notifications: {added} new subscriptions");
    if args.once {
        let handled = drain(&mut store).await?;
        println!("notifications: {handled} events handled");
        return Ok(());
    }
    follow(&mut store).await
}

/// Handles events as they arrive until Ctrl-C or SIGTERM; an event in
/// flight is finished first.
async fn follow(store: &mut Store) -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        drain(store).await?;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

/// A subscription as the bundled file lists it.
#[derive(Deserialize)]
struct Subscription {
    id: String,
    user_id: String,
    subscription_type: String,
    filter_value: i64,
    notification_channel: String,
    webhook_url: Option<String>,
    #[serde(default = "active")]
    is_active: bool,
}

fn active() -> bool {
    true
}

/// Adds the file's subscriptions that are not there yet, in one
/// transaction; returns how many were new.
async fn subscribe(store: &mut Store, file: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the subscriptions {}: {e}", file.display()))?;
    let subscriptions: Vec<Subscription> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    store.begin().await?;
    let mut added = 0;
    for s in &subscriptions {
        added += execute!(
            store,
            "INSERT INTO user_subscriptions (id, user_id, subscription_type, filter_value, \
               notification_channel, webhook_url, is_active) \
             VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            "INSERT INTO user_subscriptions (id, user_id, subscription_type, filter_value, \
               notification_channel, webhook_url, is_active) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &s.id,
            &s.user_id,
            &s.subscription_type,
            s.filter_value,
            &s.notification_channel,
            s.webhook_url.as_deref(),
            s.is_active,
        )?;
    }
    store.run("COMMIT").await?;
    Ok(added)
}

/// `battle.created` and `battle.updated` (the fields this service
/// matches subscriptions on).
#[derive(Deserialize)]
struct Battle {
    system: BattleSystem,
    alliance_ids: Vec<i64>,
    participant_ids: Vec<i64>,
}

#[derive(Deserialize)]
struct BattleSystem {
    id: i64,
}

/// Applies one event, in the transaction that marks it done.
async fn handle(store: &mut Store, event_type: &str, payload: &str) -> Result<()> {
    match event_type {
        "battle.created" | "battle.updated" => notify(store, event_type, payload).await,
        other => Err(format!("notifications does not consume {other} events").into()),
    }
}

/// Notifies every active subscription to the battle's system, one of its
/// alliances or one of its pilots, keeping the event with each
/// notification.
async fn notify(store: &mut Store, event_type: &str, payload: &str) -> Result<()> {
    let battle: Battle = serde_json::from_str(payload)?;
    let alliances = serde_json::to_string(&battle.alliance_ids)?;
    let pilots = serde_json::to_string(&battle.participant_ids)?;
    let matches = fetch_all!(
        store,
        (String, String),
        "SELECT id::text, user_id::text FROM user_subscriptions WHERE is_active AND ( \
           (subscription_type = 'system' AND filter_value = $1) \
           OR (subscription_type = 'alliance' AND filter_value IN \
                (SELECT jsonb_array_elements_text($2::jsonb)::bigint)) \
           OR (subscription_type = 'character' AND filter_value IN \
                (SELECT jsonb_array_elements_text($3::jsonb)::bigint))) \
         ORDER BY id",
        "SELECT id, user_id FROM user_subscriptions WHERE is_active AND ( \
           (subscription_type = 'system' AND filter_value = $1) \
           OR (subscription_type = 'alliance' AND filter_value IN (SELECT value FROM json_each($2))) \
           OR (subscription_type = 'character' AND filter_value IN (SELECT value FROM json_each($3)))) \
         ORDER BY id",
        battle.system.id,
        &alliances,
        &pilots,
    )?;
    for (subscription_id, user_id) in &matches {
        execute!(
            store,
            "INSERT INTO notification_history (id, user_id, subscription_id, event_type, \
               event_data, sent_at) \
             VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5::jsonb, now())",
            "INSERT INTO notification_history (id, user_id, subscription_id, event_type, \
               event_data, sent_at) \
             VALUES ($1, $2, $3, $4, $5, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            Uuid::now_v7().to_string(),
            user_id,
            subscription_id,
            event_type,
            payload,
        )?;
    }
    Ok(())
}

/// Handles every inbox event that is ready, oldest first, up to [`BATCH`]
/// in one transaction, each in a savepoint of its own: the consume loop of
/// docs/events.md. An event's writes and its inbox row's `done` commit
/// together or not at all, and an event reaches the inbox once, so each
/// takes effect exactly once. An event waits while an earlier one of its
/// key is pending, so each key is handled in publish order. An event that
/// fails is rolled back to its savepoint and recorded by [`fail`]; the
/// others in the batch go on. Returns how many were handled.
async fn drain(store: &mut Store) -> Result<u64> {
    let mut handled = 0;
    loop {
        store.begin().await?;
        let batch = fetch_all!(
            store,
            (i64, String, String),
            "SELECT seq, type, payload::text FROM silo_inbox AS i \
             WHERE state = 'pending' \
               AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
               AND NOT EXISTS (SELECT 1 FROM silo_inbox AS e \
                 WHERE e.source = i.source AND e.key = i.key \
                   AND e.state = 'pending' AND e.seq < i.seq) \
             ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
            "SELECT seq, type, payload FROM silo_inbox AS i \
             WHERE state = 'pending' \
               AND (next_attempt_at IS NULL \
                 OR next_attempt_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
               AND NOT EXISTS (SELECT 1 FROM silo_inbox AS e \
                 WHERE e.source = i.source AND e.key = i.key \
                   AND e.state = 'pending' AND e.seq < i.seq) \
             ORDER BY seq LIMIT $1",
            BATCH,
        )?;
        if batch.is_empty() {
            store.run("ROLLBACK").await?;
            return Ok(handled);
        }
        for (seq, event_type, payload) in &batch {
            store.run("SAVEPOINT handler").await?;
            match handle(store, event_type, payload).await {
                Ok(()) => {
                    store.run("RELEASE SAVEPOINT handler").await?;
                    execute!(
                        store,
                        "UPDATE silo_inbox \
                         SET state = 'done', done_at = clock_timestamp(), next_attempt_at = NULL \
                         WHERE seq = $1 AND state = 'pending'",
                        "UPDATE silo_inbox \
                         SET state = 'done', done_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), \
                           next_attempt_at = NULL \
                         WHERE seq = $1 AND state = 'pending'",
                        seq,
                    )?;
                    handled += 1;
                }
                Err(e) => {
                    store.run("ROLLBACK TO SAVEPOINT handler").await?;
                    fail(store, *seq, &e.to_string()).await?;
                }
            }
        }
        store.run("COMMIT").await?;
    }
}

/// Records a failed attempt: the error, a wait before the next one that
/// doubles with each attempt (1 s, 2 s, 4 s, ... up to 5 minutes), and
/// `dead` after [`MAX_ATTEMPTS`] (`silo events dlq` lists dead events and
/// retries them).
async fn fail(store: &mut Store, seq: i64, error: &str) -> Result<()> {
    execute!(
        store,
        "UPDATE silo_inbox \
         SET attempts = attempts + 1, last_error = $2, \
           state = CASE WHEN attempts + 1 >= $3 THEN 'dead' ELSE 'pending' END, \
           next_attempt_at = CASE WHEN attempts + 1 >= $3 THEN NULL \
             ELSE now() + make_interval(secs => least(power(2, attempts), 300)) END \
         WHERE seq = $1 AND state = 'pending'",
        "UPDATE silo_inbox \
         SET attempts = attempts + 1, last_error = $2, \
           state = CASE WHEN attempts + 1 >= $3 THEN 'dead' ELSE 'pending' END, \
           next_attempt_at = CASE WHEN attempts + 1 >= $3 THEN NULL \
             ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now', \
               '+' || min(1 << attempts, 300) || ' seconds') END \
         WHERE seq = $1 AND state = 'pending'",
        seq,
        error,
        MAX_ATTEMPTS,
    )?;
    Ok(())
}

/// This service's own store: PostgreSQL or SQLite, whichever its
/// credentials name.
enum Store {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Store {
    /// Connects with `DATABASE_URL` from the environment, or else with the
    /// one in `env_file`, the credentials `silo up` wrote for this service.
    async fn open(env_file: &Path) -> Result<Store> {
        let url = match std::env::var("DATABASE_URL") {
            Ok(url) => url,
            Err(_) => std::fs::read_to_string(env_file)
                .map_err(|e| {
                    format!(
                        "cannot read {}: {e}; run `silo up` in the project folder, \
                         and this service from there",
                        env_file.display()
                    )
                })?
                .lines()
                .find_map(|l| l.strip_prefix("DATABASE_URL="))
                .map(str::to_string)
                .ok_or_else(|| format!("{} has no DATABASE_URL", env_file.display()))?,
        };
        Ok(if url.starts_with("sqlite:") {
            Store::Sqlite(SqliteConnection::connect(&url).await?)
        } else {
            Store::Postgres(PgConnection::connect(&url).await?)
        })
    }

    /// Begins a transaction. On SQLite, IMMEDIATE takes the write lock now
    /// rather than at the first write, so two writers wait for each other
    /// instead of failing.
    async fn begin(&mut self) -> Result<()> {
        match self {
            Store::Postgres(_) => self.run("BEGIN").await,
            Store::Sqlite(_) => self.run("BEGIN IMMEDIATE").await,
        }
    }

    /// Runs a statement with no parameters and no rows: COMMIT, SAVEPOINT.
    async fn run(&mut self, sql: &'static str) -> Result<()> {
        match self {
            Store::Postgres(c) => {
                sqlx::raw_sql(sql).execute(c).await?;
            }
            Store::Sqlite(c) => {
                sqlx::raw_sql(sql).execute(c).await?;
            }
        }
        Ok(())
    }
}
