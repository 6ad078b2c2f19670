//! BattleScope's enrichment service (seeds 000 and 001).
//!
//! It consumes `killmail.ingested`, resolves every id in the killmail to a
//! name (systems, ship types, pilots, corporations, alliances), stores the
//! result in its own `enriched_killmails` table and publishes
//! `killmail.enriched`, all in the transaction that marks the inbox row
//! done. Names come from EVE's ESI API, cached in `esi_cache_entries`;
//! here the bundled table `services/enrichment/data/esi.json` answers in
//! ESI's place, so the example runs offline. An id it cannot resolve
//! fails the event, which is retried and, after five attempts, dead
//! (`silo events dlq`).
//!
//! It connects to its own store only, with its own credentials:
//! `DATABASE_URL` from the environment, or else from the file `silo up`
//! wrote for it, `.silo/secrets/enrichment.env`. `silo events run` moves
//! the events; this program never talks to another service.
//!
//! ```text
//! battlescope-enrichment [--once] [--names FILE] [--env-file FILE]
//! ```
//! `--once` handles every event that is due and exits; without it, the
//! service keeps handling events until Ctrl-C or SIGTERM.
//!
//! This file shares no code with the other services (seed 001: no shared
//! code between services); each keeps its own copy of the few lines that
//! reach its store and run its inbox.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, SqliteConnection};

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

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("battlescope-enrichment: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    once: bool,
    names: PathBuf,
    env_file: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        once: false,
        names: "services/enrichment/data/esi.json".into(),
        env_file: ".silo/secrets/enrichment.env".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--once" => args.once = true,
            "-h" | "--help" => {
                println!("usage: battlescope-enrichment [--once] [--names FILE] [--env-file FILE]");
                std::process::exit(0);
            }
            "--names" => args.names = it.next().ok_or("--names needs a file")?.into(),
            "--env-file" => args.env_file = it.next().ok_or("--env-file needs a file")?.into(),
            _ => {
                return Err(format!(
                    "unknown argument `{arg}`; usage: battlescope-enrichment [--once] [--names FILE] [--env-file FILE]"
                )
                .into());
            }
        }
    }
    Ok(args)
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    let esi = Esi::load(&args.names)?;
    let mut store = Store::open(&args.env_file).await?;
    if args.once {
        let handled = drain(&mut store, &esi).await?;
        println!("enrichment: {handled} events handled");
        return Ok(());
    }
    follow(&mut store, &esi).await
}

/// Handles events as they arrive until Ctrl-C or SIGTERM; an event in
/// flight is finished first.
async fn follow(store: &mut Store, esi: &Esi) -> Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        drain(store, esi).await?;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
        }
    }
}

/// What ESI answers, by path (`universe/systems/30000142`): the bundled
/// stand-in for the API.
struct Esi {
    answers: HashMap<String, Value>,
}

impl Esi {
    /// Reads the bundled table: `{"systems": {"<id>": {...}}, "types": ...,
    /// "alliances": ..., "corporations": ..., "characters": ...}`.
    fn load(path: &Path) -> Result<Esi> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the ESI table {}: {e}", path.display()))?;
        let table: HashMap<String, HashMap<String, Value>> =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut answers = HashMap::new();
        for (category, entries) in table {
            let prefix = match category.as_str() {
                "systems" => "universe/systems",
                "types" => "universe/types",
                other => other,
            };
            for (id, value) in entries {
                answers.insert(format!("{prefix}/{id}"), value);
            }
        }
        Ok(Esi { answers })
    }
}

/// Resolves one ESI path: from the cache in this service's store while it
/// is fresh, else from ESI, then cached for a day.
async fn resolve(store: &mut Store, esi: &Esi, path: &str) -> Result<Value> {
    let cached = fetch_optional!(
        store,
        (String,),
        "SELECT cache_value::text FROM esi_cache_entries WHERE cache_key = $1 AND expires_at > now()",
        "SELECT cache_value FROM esi_cache_entries WHERE cache_key = $1 \
           AND expires_at > strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
        path,
    )?;
    if let Some((text,)) = cached {
        return Ok(serde_json::from_str(&text)?);
    }
    let answer = esi
        .answers
        .get(path)
        .ok_or_else(|| format!("ESI knows nothing at /{path}/"))?;
    execute!(
        store,
        "INSERT INTO esi_cache_entries (cache_key, cache_value, cached_at, expires_at) \
         VALUES ($1, $2::jsonb, now(), now() + interval '1 day') \
         ON CONFLICT (cache_key) DO UPDATE SET cache_value = excluded.cache_value, \
           cached_at = excluded.cached_at, expires_at = excluded.expires_at",
        "INSERT INTO esi_cache_entries (cache_key, cache_value, cached_at, expires_at) \
         VALUES ($1, $2, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'), \
           strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+1 day')) \
         ON CONFLICT (cache_key) DO UPDATE SET cache_value = excluded.cache_value, \
           cached_at = excluded.cached_at, expires_at = excluded.expires_at",
        path,
        answer.to_string(),
    )?;
    Ok(answer.clone())
}

/// The name ESI gives `path`, or none when there is no id (an NPC has no
/// character, an unaligned corporation no alliance).
async fn name(store: &mut Store, esi: &Esi, kind: &str, id: Option<i64>) -> Result<Option<String>> {
    let Some(id) = id else { return Ok(None) };
    let answer = resolve(store, esi, &format!("{kind}/{id}")).await?;
    Ok(answer["name"].as_str().map(str::to_string))
}

/// `killmail.ingested`: a killmail as zKillboard serves it (the fields
/// this service reads).
#[derive(Deserialize)]
struct Killmail {
    killmail_id: i64,
    killmail_time: String,
    solar_system_id: i64,
    victim: Victim,
    attackers: Vec<Attacker>,
    zkb: Zkb,
}

#[derive(Deserialize)]
struct Victim {
    character_id: Option<i64>,
    corporation_id: Option<i64>,
    alliance_id: Option<i64>,
    ship_type_id: i64,
}

#[derive(Deserialize)]
struct Attacker {
    character_id: Option<i64>,
    corporation_id: Option<i64>,
    alliance_id: Option<i64>,
    ship_type_id: Option<i64>,
    #[serde(default)]
    final_blow: bool,
}

#[derive(Deserialize)]
struct Zkb {
    #[serde(rename = "totalValue")]
    total_value: f64,
    url: String,
}

/// A pilot with every id resolved.
async fn pilot(
    store: &mut Store,
    esi: &Esi,
    character_id: Option<i64>,
    corporation_id: Option<i64>,
    alliance_id: Option<i64>,
) -> Result<Value> {
    Ok(json!({
        "character_id": character_id,
        "name": name(store, esi, "characters", character_id).await?,
        "corporation_id": corporation_id,
        "corp_name": name(store, esi, "corporations", corporation_id).await?,
        "alliance_id": alliance_id,
        "alliance_name": name(store, esi, "alliances", alliance_id).await?,
    }))
}

/// Applies one event, in the transaction that marks it done.
async fn handle(store: &mut Store, esi: &Esi, event_type: &str, payload: &str) -> Result<()> {
    match event_type {
        "killmail.ingested" => enrich(store, esi, serde_json::from_str(payload)?).await,
        other => Err(format!("enrichment does not consume {other} events").into()),
    }
}

/// Resolves a killmail's names, stores it and publishes
/// `killmail.enriched`. A killmail enriched before is left alone and not
/// published again.
async fn enrich(store: &mut Store, esi: &Esi, km: Killmail) -> Result<()> {
    let system = resolve(
        store,
        esi,
        &format!("universe/systems/{}", km.solar_system_id),
    )
    .await?;
    let ship = resolve(
        store,
        esi,
        &format!("universe/types/{}", km.victim.ship_type_id),
    )
    .await?;
    let victim = pilot(
        store,
        esi,
        km.victim.character_id,
        km.victim.corporation_id,
        km.victim.alliance_id,
    )
    .await?;
    let mut attackers = Vec::with_capacity(km.attackers.len());
    for a in &km.attackers {
        let mut attacker =
            pilot(store, esi, a.character_id, a.corporation_id, a.alliance_id).await?;
        attacker["ship_type_id"] = json!(a.ship_type_id);
        attacker["ship_name"] = json!(name(store, esi, "universe/types", a.ship_type_id).await?);
        attacker["final_blow"] = json!(a.final_blow);
        attackers.push(attacker);
    }
    let text = |v: &Value| v.as_str().map(str::to_string);
    let system_name = text(&system["name"]).ok_or("a system without a name")?;
    let ship_name = text(&ship["name"]).ok_or("a ship type without a name")?;
    let inserted = execute!(
        store,
        "INSERT INTO enriched_killmails (killmail_id, ship_type_id, ship_type_name, ship_group_name, \
           system_id, system_name, region_name, security_status, victim_character_id, \
           victim_character_name, victim_corp_name, victim_alliance_name, attacker_names, enriched_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9, $10, $11, $12, $13::jsonb, now()) \
         ON CONFLICT (killmail_id) DO NOTHING",
        "INSERT INTO enriched_killmails (killmail_id, ship_type_id, ship_type_name, ship_group_name, \
           system_id, system_name, region_name, security_status, victim_character_id, \
           victim_character_name, victim_corp_name, victim_alliance_name, attacker_names, enriched_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
           strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) \
         ON CONFLICT (killmail_id) DO NOTHING",
        km.killmail_id,
        km.victim.ship_type_id,
        &ship_name,
        text(&ship["group"]).unwrap_or_default(),
        km.solar_system_id,
        &system_name,
        text(&system["region"]).unwrap_or_default(),
        system["security_status"].as_f64().unwrap_or_default(),
        km.victim.character_id,
        text(&victim["name"]),
        text(&victim["corp_name"]),
        text(&victim["alliance_name"]),
        Value::Array(attackers.clone()).to_string(),
    )?;
    if inserted == 0 {
        return Ok(());
    }
    let event = json!({
        "killmail_id": km.killmail_id,
        "occurred_at": km.killmail_time,
        "zkb_url": km.zkb.url,
        "isk_value": km.zkb.total_value.round() as i64,
        "system": {
            "id": km.solar_system_id,
            "name": system_name,
            "region": system["region"],
            "security_status": system["security_status"],
        },
        "ship": {
            "type_id": km.victim.ship_type_id,
            "name": ship_name,
            "group": ship["group"],
        },
        "victim": victim,
        "attackers": attackers,
    });
    // Publishing: one row in this store's outbox, in this transaction.
    execute!(
        store,
        "INSERT INTO silo_outbox (type, key, payload) VALUES ('killmail.enriched', $1, $2::jsonb)",
        "INSERT INTO silo_outbox (type, key, payload) VALUES ('killmail.enriched', $1, $2)",
        km.killmail_id.to_string(),
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
async fn drain(store: &mut Store, esi: &Esi) -> Result<u64> {
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
            match handle(store, esi, event_type, payload).await {
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
