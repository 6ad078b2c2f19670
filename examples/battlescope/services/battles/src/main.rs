//! BattleScope's clusterer, the battles service (seeds 000 and 001).
//!
//! It consumes `killmail.enriched` and keeps what it needs of each
//! killmail in its own store: a `battle_killmails` row with the names
//! copied from the event (denormalized: no foreign key to another
//! service's store, and no call to one), the pilots in
//! `battle_participants` and `pilot_ship_history`. It groups killmails
//! into battles: a killmail joins the battle in its solar system whose
//! time span, widened by [`WINDOW_MINUTES`] on each side, holds it, or
//! starts a new one. Each change publishes the battle's whole new state,
//! `battle.created` for a new battle and `battle.updated` after, in the
//! transaction that marks the inbox row done. The state carries `version`
//! (the kills counted so far, which only grow), so a consumer can tell a
//! newer state from an older one.
//!
//! Battles are not merged: a late killmail that would bridge two battles
//! joins the later one. Killmails arrive in about the order they happened,
//! as zKillboard's feed sends them.
//!
//! It connects to its own store only, with its own credentials:
//! `DATABASE_URL` from the environment, or else from the file `silo up`
//! wrote for it, `.silo/secrets/battles.env`. `silo events run` moves the
//! events; this program never talks to another service.
//!
//! ```text
//! battlescope-battles [--once] [--env-file FILE]
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
use serde_json::json;
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

/// How far apart in time two kills in one system may be and still belong
/// to one battle.
const WINDOW_MINUTES: i32 = 20;

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

/// Runs a query, written for each engine, that returns at most one row.
macro_rules! fetch_optional {
    ($store:expr, $row:ty, $pg:expr, $sqlite:expr $(, $arg:expr)* $(,)?) => {
        match &mut *$store {
            Store::Postgres(c) => sqlx::query_as::<_, $row>($pg)$(.bind($arg))*
                .fetch_optional(&mut *c).await,
            Store::Sqlite(c) => sqlx::query_as::<_, $row>($sqlite)$(.bind($arg))*
                .fetch_optional(&mut *c).await,
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

/// Runs a query, written for each engine, that returns exactly one row.
macro_rules! fetch_one {
    ($store:expr, $row:ty, $pg:expr, $sqlite:expr $(, $arg:expr)* $(,)?) => {
        match &mut *$store {
            Store::Postgres(c) => sqlx::query_as::<_, $row>($pg)$(.bind($arg))*
                .fetch_one(&mut *c).await,
            Store::Sqlite(c) => sqlx::query_as::<_, $row>($sqlite)$(.bind($arg))*
                .fetch_one(&mut *c).await,
        }
    };
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("battlescope-battles: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    once: bool,
    env_file: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        once: false,
        env_file: ".silo/secrets/battles.env".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--once" => args.once = true,
            "-h" | "--help" => {
                println!("usage: battlescope-battles [--once] [--env-file FILE]");
                std::process::exit(0);
            }
            "--env-file" => args.env_file = it.next().ok_or("--env-file needs a file")?.into(),
            _ => {
                return Err(format!(
                    "unknown argument `{arg}`; usage: battlescope-battles [--once] [--env-file FILE]"
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
    if args.once {
        let handled = drain(&mut store).await?;
        println!("battles: {handled} events handled");
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

/// `killmail.enriched` (the fields this service reads).
#[derive(Deserialize)]
struct Killmail {
    killmail_id: i64,
    occurred_at: String,
    zkb_url: String,
    isk_value: i64,
    system: System,
    ship: Ship,
    victim: Pilot,
    attackers: Vec<Pilot>,
}

#[derive(Deserialize)]
struct System {
    id: i64,
    name: String,
    security_status: f64,
}

#[derive(Deserialize)]
struct Ship {
    type_id: i64,
    name: String,
}

/// A victim or an attacker. The victim's ship is the killmail's `ship`.
#[derive(Deserialize)]
struct Pilot {
    character_id: Option<i64>,
    name: Option<String>,
    corporation_id: Option<i64>,
    corp_name: Option<String>,
    alliance_id: Option<i64>,
    alliance_name: Option<String>,
    #[serde(default)]
    ship_type_id: Option<i64>,
    #[serde(default)]
    ship_name: Option<String>,
}

/// Applies one event, in the transaction that marks it done.
async fn handle(store: &mut Store, event_type: &str, payload: &str) -> Result<()> {
    match event_type {
        "killmail.enriched" => cluster(store, serde_json::from_str(payload)?).await,
        other => Err(format!("battles does not consume {other} events").into()),
    }
}

/// EVE's name for a system's security: wormhole space by its ids, else by
/// the security status as the game rounds it.
fn security_type(system: &System) -> &'static str {
    if (31_000_000..32_000_000).contains(&system.id) {
        "wormhole"
    } else if system.security_status >= 0.45 {
        "highsec"
    } else if system.security_status > 0.0 {
        "lowsec"
    } else {
        "nullsec"
    }
}

/// zKillboard's page of every kill in `system_id` around the hour of
/// `time` (`2025-11-20T18:03:12Z` → `.../related/<system>/202511201800/`).
fn related_url(system_id: i64, time: &str) -> Option<String> {
    let hour: String = time
        .get(..13)?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Some(format!(
        "https://zkillboard.com/related/{system_id}/{hour}00/"
    ))
}

/// Puts a killmail into its battle, creating the battle if none is near
/// enough, and publishes the battle's new state. A killmail already in a
/// battle is left alone and publishes nothing.
async fn cluster(store: &mut Store, km: Killmail) -> Result<()> {
    let known = fetch_optional!(
        store,
        (String,),
        "SELECT battle_id::text FROM battle_killmails WHERE killmail_id = $1",
        "SELECT battle_id FROM battle_killmails WHERE killmail_id = $1",
        km.killmail_id,
    )?;
    if known.is_some() {
        return Ok(());
    }
    let near = fetch_optional!(
        store,
        (String,),
        "SELECT id::text FROM battles WHERE system_id = $1 \
           AND start_time - make_interval(mins => $3) <= $2::timestamptz \
           AND end_time + make_interval(mins => $3) >= $2::timestamptz \
         ORDER BY end_time DESC LIMIT 1",
        "SELECT id FROM battles WHERE system_id = $1 \
           AND strftime('%Y-%m-%dT%H:%M:%SZ', start_time, printf('-%d minutes', $3)) <= $2 \
           AND strftime('%Y-%m-%dT%H:%M:%SZ', end_time, printf('+%d minutes', $3)) >= $2 \
         ORDER BY end_time DESC LIMIT 1",
        km.system.id,
        &km.occurred_at,
        WINDOW_MINUTES,
    )?;
    let (battle_id, created) = match near {
        Some((id,)) => (id, false),
        None => {
            let id = Uuid::now_v7().to_string();
            execute!(
                store,
                "INSERT INTO battles (id, system_id, system_name, security_type, start_time, \
                   end_time, total_kills, total_isk_destroyed, zkill_related_url) \
                 VALUES ($1::uuid, $2, $3, $4, $5::timestamptz, $5::timestamptz, 0, 0, $6)",
                "INSERT INTO battles (id, system_id, system_name, security_type, start_time, \
                   end_time, total_kills, total_isk_destroyed, zkill_related_url, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5, 0, 0, $6, \
                   strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                &id,
                km.system.id,
                &km.system.name,
                security_type(&km.system),
                &km.occurred_at,
                related_url(km.system.id, &km.occurred_at),
            )?;
            (id, true)
        }
    };
    // The names are copied from the event: this store keeps its own.
    execute!(
        store,
        "INSERT INTO battle_killmails (battle_id, killmail_id, occurred_at, zkb_url, \
           ship_type_name, victim_name, victim_alliance_name, isk_value) \
         VALUES ($1::uuid, $2, $3::timestamptz, $4, $5, $6, $7, $8)",
        "INSERT INTO battle_killmails (battle_id, killmail_id, occurred_at, zkb_url, \
           ship_type_name, victim_name, victim_alliance_name, isk_value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &battle_id,
        km.killmail_id,
        &km.occurred_at,
        &km.zkb_url,
        &km.ship.name,
        km.victim.name.as_deref(),
        km.victim.alliance_name.as_deref(),
        km.isk_value,
    )?;
    execute!(
        store,
        "UPDATE battles SET start_time = LEAST(start_time, $2::timestamptz), \
           end_time = GREATEST(end_time, $2::timestamptz), total_kills = total_kills + 1, \
           total_isk_destroyed = total_isk_destroyed + $3, updated_at = now() \
         WHERE id = $1::uuid",
        "UPDATE battles SET start_time = min(start_time, $2), end_time = max(end_time, $2), \
           total_kills = total_kills + 1, total_isk_destroyed = total_isk_destroyed + $3, \
           updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') \
         WHERE id = $1",
        &battle_id,
        &km.occurred_at,
        km.isk_value,
    )?;
    record_pilot(
        store,
        &battle_id,
        &km.victim,
        Some(km.ship.type_id),
        Some(&km.ship.name),
        true,
        &km.occurred_at,
    )
    .await?;
    for attacker in &km.attackers {
        record_pilot(
            store,
            &battle_id,
            attacker,
            attacker.ship_type_id,
            attacker.ship_name.as_deref(),
            false,
            &km.occurred_at,
        )
        .await?;
    }
    publish(store, &battle_id, km.killmail_id, created).await
}

/// Adds a pilot to the battle's participants and to their ship history:
/// a loss for the victim, a kill for each attacker. Pilots without a
/// character (NPCs, structures) are not tracked.
async fn record_pilot(
    store: &mut Store,
    battle_id: &str,
    pilot: &Pilot,
    ship_type_id: Option<i64>,
    ship_name: Option<&str>,
    is_victim: bool,
    time: &str,
) -> Result<()> {
    let Some(character_id) = pilot.character_id else {
        return Ok(());
    };
    execute!(
        store,
        "INSERT INTO battle_participants (battle_id, character_id, character_name, alliance_id, \
           alliance_name, corp_id, corp_name, ship_type_id, ship_type_name, is_victim) \
         VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (battle_id, character_id) DO UPDATE SET \
           ship_type_id = excluded.ship_type_id, ship_type_name = excluded.ship_type_name, \
           is_victim = battle_participants.is_victim OR excluded.is_victim",
        "INSERT INTO battle_participants (battle_id, character_id, character_name, alliance_id, \
           alliance_name, corp_id, corp_name, ship_type_id, ship_type_name, is_victim) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (battle_id, character_id) DO UPDATE SET \
           ship_type_id = excluded.ship_type_id, ship_type_name = excluded.ship_type_name, \
           is_victim = battle_participants.is_victim OR excluded.is_victim",
        battle_id,
        character_id,
        pilot.name.as_deref(),
        pilot.alliance_id,
        pilot.alliance_name.as_deref(),
        pilot.corporation_id,
        pilot.corp_name.as_deref(),
        ship_type_id,
        ship_name,
        is_victim,
    )?;
    let (Some(ship_type_id), Some(ship_name)) = (ship_type_id, ship_name) else {
        return Ok(());
    };
    let (kills, losses) = if is_victim { (0, 1) } else { (1, 0) };
    execute!(
        store,
        "INSERT INTO pilot_ship_history (character_id, ship_type_id, ship_type_name, first_seen, \
           last_seen, kill_count, loss_count) \
         VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz, $5, $6) \
         ON CONFLICT (character_id, ship_type_id) DO UPDATE SET \
           first_seen = LEAST(pilot_ship_history.first_seen, excluded.first_seen), \
           last_seen = GREATEST(pilot_ship_history.last_seen, excluded.last_seen), \
           kill_count = pilot_ship_history.kill_count + excluded.kill_count, \
           loss_count = pilot_ship_history.loss_count + excluded.loss_count",
        "INSERT INTO pilot_ship_history (character_id, ship_type_id, ship_type_name, first_seen, \
           last_seen, kill_count, loss_count) \
         VALUES ($1, $2, $3, $4, $4, $5, $6) \
         ON CONFLICT (character_id, ship_type_id) DO UPDATE SET \
           first_seen = min(pilot_ship_history.first_seen, excluded.first_seen), \
           last_seen = max(pilot_ship_history.last_seen, excluded.last_seen), \
           kill_count = pilot_ship_history.kill_count + excluded.kill_count, \
           loss_count = pilot_ship_history.loss_count + excluded.loss_count",
        character_id,
        ship_type_id,
        ship_name,
        time,
        kills,
        losses,
    )?;
    Ok(())
}

/// The battle's row, times as RFC 3339 UTC text.
type BattleRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
);

/// Publishes the battle's whole state after `killmail_id` was added:
/// `battle.created` for a new battle, `battle.updated` after.
async fn publish(
    store: &mut Store,
    battle_id: &str,
    killmail_id: i64,
    created: bool,
) -> Result<()> {
    let (system_id, system_name, security, start, end, kills, isk, related) = fetch_one!(
        store,
        BattleRow,
        "SELECT system_id, system_name, security_type, \
           to_char(start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
           to_char(end_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
           total_kills, total_isk_destroyed, zkill_related_url \
         FROM battles WHERE id = $1::uuid",
        "SELECT system_id, system_name, security_type, start_time, end_time, \
           total_kills, total_isk_destroyed, zkill_related_url \
         FROM battles WHERE id = $1",
        battle_id,
    )?;
    let alliances = fetch_all!(
        store,
        (i64, String),
        "SELECT DISTINCT alliance_id, alliance_name FROM battle_participants \
         WHERE battle_id = $1::uuid AND alliance_id IS NOT NULL AND alliance_name IS NOT NULL \
         ORDER BY alliance_name",
        "SELECT DISTINCT alliance_id, alliance_name FROM battle_participants \
         WHERE battle_id = $1 AND alliance_id IS NOT NULL AND alliance_name IS NOT NULL \
         ORDER BY alliance_name",
        battle_id,
    )?;
    let participants = fetch_all!(
        store,
        (i64, String),
        "SELECT character_id, character_name FROM battle_participants \
         WHERE battle_id = $1::uuid AND character_name IS NOT NULL ORDER BY character_name",
        "SELECT character_id, character_name FROM battle_participants \
         WHERE battle_id = $1 AND character_name IS NOT NULL ORDER BY character_name",
        battle_id,
    )?;
    let event = json!({
        "battle_id": battle_id,
        "version": kills,
        "killmail_id": killmail_id,
        "system": { "id": system_id, "name": system_name, "security_type": security },
        "start_time": start,
        "end_time": end,
        "total_kills": kills,
        "total_isk_destroyed": isk,
        "zkill_related_url": related,
        "alliance_ids": alliances.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        "alliance_names": alliances.iter().map(|(_, name)| name).collect::<Vec<_>>(),
        "participant_ids": participants.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        "participant_names": participants.iter().map(|(_, name)| name).collect::<Vec<_>>(),
    });
    let event_type = if created {
        "battle.created"
    } else {
        "battle.updated"
    };
    // Publishing: one row in this store's outbox, in this transaction.
    execute!(
        store,
        "INSERT INTO silo_outbox (type, key, payload) VALUES ($1, $2, $3::jsonb)",
        "INSERT INTO silo_outbox (type, key, payload) VALUES ($1, $2, $3)",
        event_type,
        battle_id,
        event.to_string(),
    )?;
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
