//! BattleScope's ingestion service (seeds 000 and 001).
//!
//! It reads killmails as zKillboard serves them (here from the bundled
//! sample, `services/ingestion/data/killmails.jsonl`, one killmail per
//! line), stores each in its own `killmail_events` table and publishes
//! `killmail.ingested`, both in one transaction: publishing is a plain
//! `INSERT INTO silo_outbox`. It consumes `battle.created` and
//! `battle.updated` to record which battle each of its killmails ended up
//! in (`killmail_events.battle_id`, an id with no foreign key).
//!
//! It connects to its own store only, with its own credentials:
//! `DATABASE_URL` from the environment, or else from the file `silo up`
//! wrote for it, `.silo/secrets/ingestion.env`. `silo events run` moves
//! the events; this program never talks to another service.
//!
//! ```text
//! battlescope-ingestion [--once] [--sample FILE] [--env-file FILE]
//! ```
//! `--once` ingests the sample, handles every event that is due and exits;
//! without it, the service keeps handling events until Ctrl-C or SIGTERM.
//!
//! This file shares no code with the other services (seed 001: no shared
//! code between services); each keeps its own copy of the few lines that
//! reach its store and run its inbox.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use sqlx::{Connection, PgConnection, SqliteConnection};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

/// Failed attempts after which an inbox row is dead: silo's default
/// `[events] max_attempts`.
const MAX_ATTEMPTS: i32 = 5;

/// How long the service waits between looks at its inbox.
const POLL: Duration = Duration::from_millis(250);

/// How many inbox events, or sample killmails, one transaction takes at
/// most.
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
            eprintln!("battlescope-ingestion: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    once: bool,
    sample: PathBuf,
    env_file: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        once: false,
        sample: "services/ingestion/data/killmails.jsonl".into(),
        env_file: ".silo/secrets/ingestion.env".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--once" => args.once = true,
            "-h" | "--help" => {
                println!("usage: battlescope-ingestion [--once] [--sample FILE] [--env-file FILE]");
                std::process::exit(0);
            }
            "--sample" => args.sample = it.next().ok_or("--sample needs a file")?.into(),
            "--env-file" => args.env_file = it.next().ok_or("--env-file needs a file")?.into(),
            _ => {
                return Err(format!(
                    "unknown argument `{arg}`; usage: battlescope-ingestion [--once] [--sample FILE] [--env-file FILE]"
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
    let published = ingest(&mut store, &args.sample).await?;
    println!("ingestion: {published} new killmails stored and published");
    if args.once {
        let handled = drain(&mut store).await?;
        println!("ingestion: {handled} events handled");
        return Ok(());
    }
    follow(&mut store).await
}

/// Handles events as they arrive until Ctrl-C or SIGTERM; a batch in
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

/// A killmail as zKillboard serves it: ESI's killmail plus zKillboard's
/// `zkb` block. Only the fields this service stores; the event carries the
/// killmail whole.
#[derive(Deserialize)]
struct Killmail {
    killmail_id: i64,
    killmail_time: String,
    solar_system_id: i64,
    victim: Party,
    attackers: Vec<Party>,
    zkb: Zkb,
}

#[derive(Deserialize)]
struct Party {
    alliance_id: Option<i64>,
}

#[derive(Deserialize)]
struct Zkb {
    #[serde(rename = "totalValue")]
    total_value: f64,
    url: String,
}

/// Stores every killmail of the sample file that is not stored yet and
/// publishes it, [`BATCH`] killmails to a transaction. Returns how many
/// were new: running it again publishes nothing twice.
async fn ingest(store: &mut Store, sample: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(sample)
        .map_err(|e| format!("cannot read the sample {}: {e}", sample.display()))?;
    let mut killmails = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |e: serde_json::Error| format!("{}:{}: {e}", sample.display(), n + 1);
        let raw: Value = serde_json::from_str(line).map_err(at)?;
        let killmail: Killmail = serde_json::from_value(raw.clone()).map_err(at)?;
        killmails.push((killmail, raw));
    }
    let mut published = 0;
    for batch in killmails.chunks(BATCH as usize) {
        store.begin().await?;
        for (killmail, raw) in batch {
            match store_killmail(store, killmail, raw).await {
                Ok(new) => published += u64::from(new),
                Err(e) => {
                    store.run("ROLLBACK").await?;
                    return Err(e);
                }
            }
        }
        store.run("COMMIT").await?;
    }
    Ok(published)
}

/// Stores one killmail and, if it was not there, publishes
/// `killmail.ingested`, in the caller's transaction.
async fn store_killmail(store: &mut Store, killmail: &Killmail, raw: &Value) -> Result<bool> {
    let mut alliances: Vec<i64> = killmail
        .attackers
        .iter()
        .filter_map(|a| a.alliance_id)
        .collect();
    alliances.sort_unstable();
    alliances.dedup();
    let alliances = serde_json::to_string(&alliances)?;
    let isk = killmail.zkb.total_value.round() as i64;
    let inserted = execute!(
        store,
        "INSERT INTO killmail_events (killmail_id, system_id, occurred_at, fetched_at, \
           victim_alliance_id, attacker_alliance_ids, isk_value, zkb_url) \
         VALUES ($1, $2, $3::timestamptz, now(), $4, \
           ARRAY(SELECT jsonb_array_elements_text($5::jsonb)::bigint), $6, $7) \
         ON CONFLICT (killmail_id) DO NOTHING",
        "INSERT INTO killmail_events (killmail_id, system_id, occurred_at, fetched_at, \
           victim_alliance_id, attacker_alliance_ids, isk_value, zkb_url) \
         VALUES ($1, $2, $3, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), $4, $5, $6, $7) \
         ON CONFLICT (killmail_id) DO NOTHING",
        killmail.killmail_id,
        killmail.solar_system_id,
        &killmail.killmail_time,
        killmail.victim.alliance_id,
        &alliances,
        isk,
        &killmail.zkb.url,
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    // Publishing: one row in this store's outbox, in this transaction.
    execute!(
        store,
        "INSERT INTO silo_outbox (type, key, payload) VALUES ('killmail.ingested', $1, $2::jsonb)",
        "INSERT INTO silo_outbox (type, key, payload) VALUES ('killmail.ingested', $1, $2)",
        killmail.killmail_id.to_string(),
        raw.to_string(),
    )?;
    Ok(true)
}

/// What this service reads of `battle.created` and `battle.updated`: the
/// battle and the killmail that was added to it.
#[derive(Deserialize)]
struct BattleChange {
    battle_id: String,
    killmail_id: i64,
}

/// Applies one event, in the transaction that marks it done.
async fn handle(store: &mut Store, event_type: &str, payload: &str) -> Result<()> {
    match event_type {
        "battle.created" | "battle.updated" => {
            let change: BattleChange = serde_json::from_str(payload)?;
            // A killmail this service never stored (another source's) is
            // not its business: nothing to update.
            execute!(
                store,
                "UPDATE killmail_events SET battle_id = $1::uuid, processed_at = now() \
                 WHERE killmail_id = $2",
                "UPDATE killmail_events SET battle_id = $1, \
                   processed_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') \
                 WHERE killmail_id = $2",
                &change.battle_id,
                change.killmail_id,
            )?;
            Ok(())
        }
        other => Err(format!("ingestion does not consume {other} events").into()),
    }
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
