//! The bundled examples' events, end to end, on real stores.
//!
//! BattleScope: `scripts/demo-events.sh` (what `make demo-events` runs)
//! takes the example through `silo up`, `silo migrate` and rounds of
//! `silo events run --once` and each of its five services, then checks
//! every denormalized copy against its source. The test runs it on each
//! engine and each bus (the nats bus on a nats-server of the test's own),
//! then checks the stores again itself, as each service, with queries of
//! its own: the copies, the events per type, the battles' clustering, the
//! notifications' subscriptions. A copy broken by hand must make the
//! script's check fail, or that check would prove nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use silo_manifest::Engine;
use silo_testkit::{NatsServer, Prefix, admin_url};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row, SqliteConnection};

mod common;
use common::{prefix_names, silo};

/// BattleScope's services, in the order the flow reaches them.
const SERVICES: [&str; 5] = [
    "ingestion",
    "enrichment",
    "battles",
    "search",
    "notifications",
];

/// The battles service's clustering window, in seconds.
const WINDOW: i64 = 20 * 60;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example() -> PathBuf {
    workspace().join("examples/battlescope")
}

/// The folder of the `battlescope-*` binaries: built once per test run
/// with the same cargo, profile and target folder as the `silo` under
/// test, offline (the workspace's lock file has every crate they need).
fn service_bins() -> &'static Path {
    static BINS: OnceLock<PathBuf> = OnceLock::new();
    BINS.get_or_init(|| {
        let silo = PathBuf::from(env!("CARGO_BIN_EXE_silo"));
        let profile = silo.parent().unwrap().to_path_buf();
        let target = profile.parent().unwrap();
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(workspace())
            .args(["build", "--offline", "--quiet"])
            .env("CARGO_TARGET_DIR", target);
        // Cargo sets these for the test binary. Build scripts (ring's, via
        // `cc`) track some of them, so passing them on would make this
        // build and every other one in the target folder rebuild the
        // libraries they share, each undoing the other.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_tests = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CFG_"]
                .iter()
                .any(|p| name.starts_with(p))
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&name.as_ref());
            if set_for_tests {
                cargo.env_remove(name.as_ref());
            }
        }
        if profile.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        for s in SERVICES {
            cargo.args(["-p", &format!("battlescope-{s}")]);
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the battlescope services failed");
        profile
    })
}

/// `scripts/demo-events.sh ARGS` with the silo under test and the
/// services built for it, and `env` set.
fn demo(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(workspace().join("scripts/demo-events.sh"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("SILO", env!("CARGO_BIN_EXE_silo"))
        .env("BIN_DIR", service_bins())
        .env("SILO_PG_ADMIN_URL", admin_url())
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .output()
        .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A service's store, opened with the credentials `silo up` wrote for it:
/// the test reads each store as its own service, like the services do.
enum Store {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Store {
    async fn open(project: &Path, service: &str) -> Store {
        let env =
            std::fs::read_to_string(project.join(format!(".silo/secrets/{service}.env"))).unwrap();
        let url = env
            .lines()
            .find_map(|l| l.strip_prefix("DATABASE_URL="))
            .unwrap();
        if url.starts_with("sqlite:") {
            Store::Sqlite(SqliteConnection::connect(url).await.unwrap())
        } else {
            Store::Postgres(PgConnection::connect(url).await.unwrap())
        }
    }

    /// The rows of a query, each column as text (text and integer columns
    /// only), NULL as "".
    async fn rows(&mut self, pg: &str, sqlite: &str) -> Vec<Vec<String>> {
        self.rows_with(pg, sqlite, &[]).await
    }

    /// [`Store::rows`] of a query with parameters, each bound as text
    /// (PostgreSQL's statement casts them).
    async fn rows_with(&mut self, pg: &str, sqlite: &str, args: &[&str]) -> Vec<Vec<String>> {
        fn cell<R: Row>(row: &R, i: usize) -> String
        where
            usize: sqlx::ColumnIndex<R>,
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                return v.unwrap_or_default();
            }
            if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                return v.map(|v| v.to_string()).unwrap_or_default();
            }
            let v: Option<i32> = row.try_get(i).unwrap();
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        match self {
            Store::Postgres(c) => {
                let mut q = sqlx::query(AssertSqlSafe(pg.to_string()));
                for a in args {
                    q = q.bind(*a);
                }
                q.fetch_all(c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (0..r.len()).map(|i| cell(r, i)).collect())
                    .collect()
            }
            Store::Sqlite(c) => {
                let mut q = sqlx::query(AssertSqlSafe(sqlite.to_string()));
                for a in args {
                    q = q.bind(*a);
                }
                q.fetch_all(c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (0..r.len()).map(|i| cell(r, i)).collect())
                    .collect()
            }
        }
    }

    /// Runs a statement with parameters, each bound as text; returns the
    /// rows it changed.
    async fn exec(&mut self, pg: &str, sqlite: &str, args: &[&str]) -> u64 {
        match self {
            Store::Postgres(c) => {
                let mut q = sqlx::query(AssertSqlSafe(pg.to_string()));
                for a in args {
                    q = q.bind(*a);
                }
                q.execute(c).await.unwrap().rows_affected()
            }
            Store::Sqlite(c) => {
                let mut q = sqlx::query(AssertSqlSafe(sqlite.to_string()));
                for a in args {
                    q = q.bind(*a);
                }
                q.execute(c).await.unwrap().rows_affected()
            }
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Begins a transaction; on SQLite with the write lock taken first.
    async fn begin(&mut self) {
        let sql = if self.is_postgres() {
            "BEGIN"
        } else {
            "BEGIN IMMEDIATE"
        };
        self.execute(sql).await;
    }

    async fn execute(&mut self, sql: &str) {
        match self {
            Store::Postgres(c) => {
                sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                    .execute(c)
                    .await
                    .unwrap();
            }
            Store::Sqlite(c) => {
                sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                    .execute(c)
                    .await
                    .unwrap();
            }
        }
    }

    /// The one number a query returns.
    async fn count(&mut self, sql: &str) -> i64 {
        self.rows(sql, sql).await[0][0].parse().unwrap()
    }

    async fn close(self) {
        match self {
            Store::Postgres(c) => c.close().await.unwrap(),
            Store::Sqlite(c) => c.close().await.unwrap(),
        }
    }
}

/// The killmails of the bundled sample.
fn sample_killmails() -> i64 {
    let sample =
        std::fs::read_to_string(example().join("services/ingestion/data/killmails.jsonl")).unwrap();
    sample.lines().filter(|l| !l.trim().is_empty()).count() as i64
}

/// Runs BattleScope's flow on `engine` and checks what every store holds.
async fn battlescope_flows(engine: Engine) {
    battlescope_flows_with(engine, &[], None).await;
}

/// [`battlescope_flows`] on the nats bus, through a nats-server of the
/// test's own.
async fn battlescope_flows_on_nats(engine: Engine, script_args: &[&str]) {
    let server = NatsServer::start();
    let mut args = vec!["--bus", "nats"];
    args.extend_from_slice(script_args);
    battlescope_flows_with(engine, &args, Some(&server)).await;
}

/// [`battlescope_flows`] with more arguments for the demo script, and on
/// the nats bus the server the events go through.
async fn battlescope_flows_with(engine: Engine, script_args: &[&str], nats: Option<&NatsServer>) {
    let prefix = Prefix::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    silo(dir)
        .args(["--engine", &engine.to_string()])
        .args(["init", "--example", "battlescope"])
        .assert()
        .success();
    // Names of the run's own, on SQLite too: silo refuses a SQLite store
    // whose name a PostgreSQL database of silo's already has.
    prefix_names(dir, &prefix);
    // No service's code names another's store, role or credentials.
    silo(dir).args(["audit", "--code-only"]).assert().success();

    let mut args = script_args.to_vec();
    args.push(dir.to_str().unwrap());
    let env: Vec<(&str, String)> = nats
        .map(|server| ("SILO_NATS_URL", server.url()))
        .into_iter()
        .collect();
    let out = demo(&args, &env);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo-events {args:?} on {engine} failed: {stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("Every copy matches its source."),
        "{stdout}"
    );
    let killmails = sample_killmails();
    for line in [
        format!("killmail.ingested  ingestion   enrichment        {killmails}        0     0"),
        format!("killmail.enriched  enrichment  battles           {killmails}        0     0"),
        format!("killmail.enriched  enrichment  search            {killmails}        0     0"),
    ] {
        assert!(stdout.contains(&line), "no `{line}` in:\n{stdout}");
    }

    // The events went the way the manifest says, and only that way.
    let log = std::fs::read_to_string(dir.join("demo-events.log")).unwrap();
    let (bus, other) = if nats.is_some() {
        (
            "silo events run: nats bus, stream battlescope",
            "embedded bus",
        )
    } else {
        ("silo events run: embedded bus", "nats bus")
    };
    assert!(log.contains(bus) && !log.contains(other), "{log}");

    check_stores(dir, killmails).await;

    // A copy broken behind the service's back: the check must say so.
    let mut search = Store::open(dir, "search").await;
    search
        .execute("UPDATE battle_documents SET total_kills = total_kills + 1")
        .await;
    search.close().await;
    let out = demo(&["--check", dir.to_str().unwrap()], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("MISMATCH  search.battle_documents = battles.battles"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok        battles.battle_killmails = enrichment.enriched_killmails"),
        "only the broken copy is reported: {stdout}"
    );

    // On the nats bus the stream goes too.
    silo(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["destroy", "--yes"])
        .assert()
        .success();
}

/// What every store holds after the flow, read as each service.
async fn check_stores(dir: &Path, killmails: i64) {
    let mut ingestion = Store::open(dir, "ingestion").await;
    let mut enrichment = Store::open(dir, "enrichment").await;
    let mut battles = Store::open(dir, "battles").await;
    let mut search = Store::open(dir, "search").await;
    let mut notifications = Store::open(dir, "notifications").await;

    // Every sample killmail reached every store that keeps one, once.
    assert_eq!(
        ingestion
            .count("SELECT count(*) FROM killmail_events")
            .await,
        killmails
    );
    assert_eq!(
        ingestion
            .count("SELECT count(*) FROM killmail_events WHERE battle_id IS NULL")
            .await,
        0,
        "every killmail learnt its battle from the battles service's events"
    );
    assert_eq!(
        enrichment
            .count("SELECT count(*) FROM enriched_killmails")
            .await,
        killmails
    );
    assert_eq!(
        battles.count("SELECT count(*) FROM battle_killmails").await,
        killmails
    );
    assert_eq!(
        search
            .count("SELECT count(*) FROM killmail_documents")
            .await,
        killmails
    );

    // battle_killmails carries enrichment's names, killmail for killmail.
    let names = "SELECT killmail_id, ship_type_name, victim_character_name, victim_alliance_name \
                 FROM enriched_killmails ORDER BY killmail_id";
    let copied = "SELECT killmail_id, ship_type_name, victim_name, victim_alliance_name \
                  FROM battle_killmails ORDER BY killmail_id";
    assert_eq!(
        battles.rows(copied, copied).await,
        enrichment.rows(names, names).await
    );

    // Clustering: within a system, kills at most WINDOW apart share a
    // battle and kills further apart do not; each battle's totals and
    // span are its kills'.
    let kills = battles
        .rows(
            "SELECT b.system_id, k.battle_id::text, extract(epoch FROM k.occurred_at)::bigint, \
               k.isk_value FROM battle_killmails k JOIN battles b ON b.id = k.battle_id \
             ORDER BY b.system_id, k.occurred_at, k.killmail_id",
            "SELECT b.system_id, k.battle_id, CAST(strftime('%s', k.occurred_at) AS INTEGER), \
               k.isk_value FROM battle_killmails k JOIN battles b ON b.id = k.battle_id \
             ORDER BY b.system_id, k.occurred_at, k.killmail_id",
        )
        .await;
    for pair in kills.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a[0] != b[0] {
            continue;
        }
        let gap = b[2].parse::<i64>().unwrap() - a[2].parse::<i64>().unwrap();
        assert_eq!(
            gap <= WINDOW,
            a[1] == b[1],
            "kills {gap} s apart in system {}: battles {} and {}",
            a[0],
            a[1],
            b[1]
        );
    }
    let mut expected: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
    for k in &kills {
        let time: i64 = k[2].parse().unwrap();
        let isk: i64 = k[3].parse().unwrap();
        let e = expected
            .entry(k[1].clone())
            .or_insert((0, 0, i64::MAX, i64::MIN));
        e.0 += 1;
        e.1 += isk;
        e.2 = e.2.min(time);
        e.3 = e.3.max(time);
    }
    let found: BTreeMap<String, (i64, i64, i64, i64)> = battles
        .rows(
            "SELECT id::text, total_kills, total_isk_destroyed, \
               extract(epoch FROM start_time)::bigint, extract(epoch FROM end_time)::bigint \
             FROM battles",
            "SELECT id, total_kills, total_isk_destroyed, \
               CAST(strftime('%s', start_time) AS INTEGER), CAST(strftime('%s', end_time) AS INTEGER) \
             FROM battles",
        )
        .await
        .into_iter()
        .map(|r| {
            let n = |i: usize| r[i].parse::<i64>().unwrap();
            (r[0].clone(), (n(1), n(2), n(3), n(4)))
        })
        .collect();
    assert_eq!(found, expected);
    assert!(
        found.len() > 1 && found.len() < kills.len(),
        "the sample clusters into several battles: {}",
        found.len()
    );

    // Search keeps each battle at its latest state.
    let documents: BTreeMap<String, i64> = search
        .rows(
            "SELECT id, total_kills FROM battle_documents",
            "SELECT id, total_kills FROM battle_documents",
        )
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    let totals: BTreeMap<String, i64> = found.iter().map(|(id, t)| (id.clone(), t.0)).collect();
    assert_eq!(documents, totals);

    // Notifications: exactly the battles an active subscription matches
    // (their system, one of their alliances or one of their pilots).
    let subscriptions: BTreeSet<(String, i64)> = notifications
        .rows(
            "SELECT subscription_type, filter_value FROM user_subscriptions WHERE is_active",
            "SELECT subscription_type, filter_value FROM user_subscriptions WHERE is_active",
        )
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    let facts = battles
        .rows(
            "SELECT b.id::text, 'system', b.system_id FROM battles b \
             UNION SELECT p.battle_id::text, 'alliance', p.alliance_id FROM battle_participants p \
               WHERE p.alliance_id IS NOT NULL \
             UNION SELECT p.battle_id::text, 'character', p.character_id FROM battle_participants p",
            "SELECT b.id, 'system', b.system_id FROM battles b \
             UNION SELECT p.battle_id, 'alliance', p.alliance_id FROM battle_participants p \
               WHERE p.alliance_id IS NOT NULL \
             UNION SELECT p.battle_id, 'character', p.character_id FROM battle_participants p",
        )
        .await;
    let matching: BTreeSet<String> = facts
        .into_iter()
        .filter(|f| subscriptions.contains(&(f[1].clone(), f[2].parse().unwrap())))
        .map(|f| f[0].clone())
        .collect();
    let notified: BTreeSet<String> = notifications
        .rows(
            "SELECT DISTINCT event_data->>'battle_id' FROM notification_history",
            "SELECT DISTINCT json_extract(event_data, '$.battle_id') FROM notification_history",
        )
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(!matching.is_empty());
    assert_eq!(notified, matching);

    // Events per type: every consumer's inbox holds each event its
    // publisher's data says it published, once. Ingestion published one
    // `killmail.ingested` per killmail, enrichment one `killmail.enriched`;
    // battles one battle event per killmail it clustered, `battle.created`
    // for each battle's first.
    let battle_count = found.len() as i64;
    let per_type = "SELECT type, source, count(*) FROM silo_inbox \
                    GROUP BY type, source ORDER BY type";
    let expected_types = |types: &[(&str, &str, i64)]| -> Vec<Vec<String>> {
        types
            .iter()
            .map(|(t, source, n)| vec![t.to_string(), source.to_string(), n.to_string()])
            .collect()
    };
    let battle_events = [
        ("battle.created", "battles", battle_count),
        ("battle.updated", "battles", killmails - battle_count),
    ];
    let enriched = ("killmail.enriched", "enrichment", killmails);
    for (store, types) in [
        (&mut ingestion, expected_types(&battle_events)),
        (
            &mut enrichment,
            expected_types(&[("killmail.ingested", "ingestion", killmails)]),
        ),
        (&mut battles, expected_types(&[enriched])),
        (
            &mut search,
            expected_types(&[battle_events[0], battle_events[1], enriched]),
        ),
        (&mut notifications, expected_types(&battle_events)),
    ] {
        assert_eq!(store.rows(per_type, per_type).await, types);
    }

    // Every inbox drained, nothing dead.
    for store in [
        &mut ingestion,
        &mut enrichment,
        &mut battles,
        &mut search,
        &mut notifications,
    ] {
        assert_eq!(
            store
                .count("SELECT count(*) FROM silo_inbox WHERE state <> 'done'")
                .await,
            0
        );
    }
    for store in [ingestion, enrichment, battles, search, notifications] {
        store.close().await;
    }
}

#[tokio::test]
async fn battlescope_flows_on_sqlite() {
    battlescope_flows(Engine::Sqlite).await;
}

#[tokio::test]
async fn battlescope_flows_on_postgres() {
    battlescope_flows(Engine::Postgres).await;
}

/// The worker and the five services as long-running processes side by
/// side, writing the same SQLite files at once, then stopped by SIGTERM.
#[tokio::test]
async fn battlescope_flows_with_every_process_running_on_sqlite() {
    battlescope_flows_with(Engine::Sqlite, &["--follow"], None).await;
}

#[tokio::test]
async fn battlescope_flows_on_nats_on_sqlite() {
    battlescope_flows_on_nats(Engine::Sqlite, &[]).await;
}

#[tokio::test]
async fn battlescope_flows_on_nats_on_postgres() {
    battlescope_flows_on_nats(Engine::Postgres, &[]).await;
}

/// `silo events run` on the nats bus beside the five services, each a
/// long-running process, until quiet; then stopped by SIGTERM.
#[tokio::test]
async fn battlescope_flows_on_nats_with_every_process_running_on_postgres() {
    battlescope_flows_on_nats(Engine::Postgres, &["--follow"]).await;
}

/// On the nats bus with no server to reach, the demo stops before it makes
/// anything: exit 2 and what to do.
#[test]
fn the_demo_on_nats_says_to_start_a_server_when_none_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    // A port nobody listens on: one just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = demo(
        &["--bus", "nats", dir.to_str().unwrap()],
        &[("SILO_NATS_URL", format!("nats://127.0.0.1:{port}"))],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("no NATS server answers at 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("nats-server -js"), "{stderr}");
    assert!(!dir.join(".silo").exists(), "no store was made");
}

/// `battlescope-SERVICE ARGS` in the project folder `dir`; must succeed.
fn service(dir: &Path, name: &str, args: &[&str]) {
    let out = Command::new(service_bins().join(format!("battlescope-{name}")))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "battlescope-{name}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Enrichment's consume loop: an event whose names ESI cannot give fails
/// alone (its writes roll back to its savepoint, the batch's other events
/// commit), waits, and once ESI answers takes effect exactly once.
#[tokio::test]
async fn a_failing_event_rolls_back_alone_and_is_retried() {
    let prefix = Prefix::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    silo(dir)
        .args(["init", "--example", "battlescope"])
        .assert()
        .success();
    prefix_names(dir, &prefix);
    silo(dir).arg("up").assert().success();
    silo(dir).arg("migrate").assert().success();
    service(dir, "ingestion", &["--once"]);
    silo(dir)
        .args(["events", "run", "--once"])
        .assert()
        .success();

    // ESI forgets Jita.
    let jita = "30000142";
    let esi = dir.join("services/enrichment/data/esi.json");
    let mut table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&esi).unwrap()).unwrap();
    table["systems"].as_object_mut().unwrap().remove(jita);
    let partial = dir.join("esi-without-jita.json");
    std::fs::write(&partial, table.to_string()).unwrap();
    let in_jita = std::fs::read_to_string(dir.join("services/ingestion/data/killmails.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(&format!("\"solar_system_id\":{jita},")))
        .count() as i64;
    let killmails = sample_killmails();
    assert!(in_jita > 0 && in_jita < killmails);

    service(
        dir,
        "enrichment",
        &["--once", "--names", partial.to_str().unwrap()],
    );
    let mut enrichment = Store::open(dir, "enrichment").await;
    let failed = enrichment
        .rows(
            "SELECT attempts, last_error FROM silo_inbox WHERE state = 'pending'",
            "SELECT attempts, last_error FROM silo_inbox WHERE state = 'pending'",
        )
        .await;
    assert_eq!(failed.len() as i64, in_jita);
    for f in &failed {
        // At least once; more if the batches after it outlasted its wait.
        let attempts: i64 = f[0].parse().unwrap();
        assert!((1..5).contains(&attempts), "{attempts} attempts");
        assert_eq!(
            f[1],
            format!("ESI knows nothing at /universe/systems/{jita}/")
        );
    }
    let published = "SELECT count(*) FROM silo_outbox WHERE type = 'killmail.enriched'";
    for sql in [
        "SELECT count(*) FROM silo_inbox WHERE state = 'done'",
        "SELECT count(*) FROM enriched_killmails",
        published,
    ] {
        assert_eq!(enrichment.count(sql).await, killmails - in_jita, "{sql}");
    }
    // Nothing of a failed event stayed behind, not even the answers it
    // cached before it failed.
    assert_eq!(
        enrichment
            .count(&format!(
                "SELECT count(*) FROM enriched_killmails WHERE system_id = {jita}"
            ))
            .await,
        0
    );

    // ESI answers again; the failed events are retried after their wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        service(dir, "enrichment", &["--once"]);
        let left = enrichment
            .count("SELECT count(*) FROM silo_inbox WHERE state <> 'done'")
            .await;
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} events still not done"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(enrichment.count(published).await, killmails);
    assert_eq!(
        enrichment
            .count("SELECT count(*) FROM enriched_killmails")
            .await,
        killmails
    );
    assert_eq!(
        enrichment
            .count("SELECT count(*) FROM silo_inbox WHERE attempts > 0")
            .await,
        in_jita,
        "only the events ESI could not answer ever failed"
    );
    enrichment.close().await;
}

// Orion (seed 002, Strategy 1: event-driven sync). The test plays the
// services with the SQL they would run, in any language: the users
// service publishes `user.created` and `user.updated` in the transactions
// that change its users; auth keeps each login email current in
// `credentials`, and notifications queues a welcome on `user.created` and
// moves its queued (unsent) notifications to a user's new address.

const ALICE: &str = "0b8f2a4e-6a51-4d0c-9d7e-3f1c2b7a9e01";
const BOB: &str = "5d3c9e70-1f2b-4a86-b0c4-8e6d7f1a2b03";

/// Users: a new user and its `user.created`, in one transaction.
async fn create_user(users: &mut Store, id: &str, email: &str, name: &str) {
    let event = serde_json::json!({
        "user_id": id, "email": email, "name": name, "created_at": "2025-11-20T18:00:00Z",
    })
    .to_string();
    users.begin().await;
    users
        .exec(
            "INSERT INTO users (id, email, name, updated_at) VALUES ($1::uuid, $2, $3, now())",
            "INSERT INTO users (id, email, name, updated_at) \
             VALUES ($1, $2, $3, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
            &[id, email, name],
        )
        .await;
    users
        .exec(
            "SELECT silo_publish('user.created', $1, $2::jsonb)",
            "INSERT INTO silo_outbox (type, key, payload) VALUES ('user.created', $1, $2)",
            &[id, &event],
        )
        .await;
    users.execute("COMMIT").await;
}

/// Users: a profile change and its `user.updated`, in one transaction that
/// commits, or rolls back (then nothing was published either).
async fn update_user(users: &mut Store, id: &str, email: &str, name: &str, commit: bool) {
    let old: Vec<Vec<String>> = users
        .rows_with(
            "SELECT email, name FROM users WHERE id = $1::uuid",
            "SELECT email, name FROM users WHERE id = $1",
            &[id],
        )
        .await;
    let mut changes = Vec::new();
    if old[0][0] != email {
        changes.push("email");
    }
    if old[0][1] != name {
        changes.push("name");
    }
    let event = serde_json::json!({
        "user_id": id, "changes": changes, "email": email, "name": name,
        "updated_at": "2025-11-21T09:30:00Z",
    })
    .to_string();
    users.begin().await;
    users
        .exec(
            "UPDATE users SET email = $2, name = $3, updated_at = now() WHERE id = $1::uuid",
            "UPDATE users SET email = $2, name = $3, \
               updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE id = $1",
            &[id, email, name],
        )
        .await;
    users
        .exec(
            "SELECT silo_publish('user.updated', $1, $2::jsonb)",
            "INSERT INTO silo_outbox (type, key, payload) VALUES ('user.updated', $1, $2)",
            &[id, &event],
        )
        .await;
    users
        .execute(if commit { "COMMIT" } else { "ROLLBACK" })
        .await;
}

/// The consume loop of docs/events.md, once: the ready events, each in a
/// savepoint with the service's writes and the done mark. Returns how
/// many it handled.
async fn consume(store: &mut Store, service: &str) -> usize {
    store.begin().await;
    let batch = store
        .rows(
            "SELECT seq, event_id::text, type, payload::text FROM silo_inbox AS i \
             WHERE state = 'pending' \
               AND (next_attempt_at IS NULL OR next_attempt_at <= now()) \
               AND NOT EXISTS (SELECT 1 FROM silo_inbox AS e \
                 WHERE e.source = i.source AND e.key = i.key \
                   AND e.state = 'pending' AND e.seq < i.seq) \
             ORDER BY seq LIMIT 100 FOR UPDATE SKIP LOCKED",
            "SELECT seq, event_id, type, payload FROM silo_inbox AS i \
             WHERE state = 'pending' \
               AND (next_attempt_at IS NULL \
                 OR next_attempt_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
               AND NOT EXISTS (SELECT 1 FROM silo_inbox AS e \
                 WHERE e.source = i.source AND e.key = i.key \
                   AND e.state = 'pending' AND e.seq < i.seq) \
             ORDER BY seq LIMIT 100",
        )
        .await;
    for event in &batch {
        let (seq, event_id, event_type) = (&event[0], &event[1], &event[2]);
        let payload: serde_json::Value = serde_json::from_str(&event[3]).unwrap();
        let user = payload["user_id"].as_str().unwrap();
        let email = payload["email"].as_str().unwrap();
        let email_changed = event_type == "user.created"
            || payload["changes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "email");
        store.execute("SAVEPOINT handler").await;
        match (service, event_type.as_str()) {
            ("auth", _) if email_changed => {
                store
                    .exec(
                        "UPDATE credentials SET email = $2, updated_at = now() \
                         WHERE user_id = $1::uuid",
                        "UPDATE credentials SET email = $2, updated_at = CURRENT_TIMESTAMP \
                         WHERE user_id = $1",
                        &[user, email],
                    )
                    .await;
            }
            ("notifications", "user.created") => {
                // One welcome per event: the event's id is the
                // notification's, so the insert is idempotent by itself.
                store
                    .exec(
                        "INSERT INTO notifications (id, user_id, email, template) \
                         VALUES ($1::uuid, $2::uuid, $3, 'welcome') ON CONFLICT (id) DO NOTHING",
                        "INSERT INTO notifications (id, user_id, email, template) \
                         VALUES ($1, $2, $3, 'welcome') ON CONFLICT (id) DO NOTHING",
                        &[event_id, user, email],
                    )
                    .await;
            }
            ("notifications", "user.updated") if email_changed => {
                // What was sent went to the old address; what waits goes to
                // the new one.
                store
                    .exec(
                        "UPDATE notifications SET email = $2 \
                         WHERE user_id = $1::uuid AND status = 'queued'",
                        "UPDATE notifications SET email = $2 \
                         WHERE user_id = $1 AND status = 'queued'",
                        &[user, email],
                    )
                    .await;
            }
            _ => {}
        }
        store.execute("RELEASE SAVEPOINT handler").await;
        let done = store
            .exec(
                "UPDATE silo_inbox \
                 SET state = 'done', done_at = clock_timestamp(), next_attempt_at = NULL \
                 WHERE seq = $1::bigint AND state = 'pending'",
                "UPDATE silo_inbox \
                 SET state = 'done', done_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), \
                   next_attempt_at = NULL \
                 WHERE seq = $1 AND state = 'pending'",
                &[seq],
            )
            .await;
        assert_eq!(done, 1);
    }
    store.execute("COMMIT").await;
    batch.len()
}

/// `silo events run --once` in `dir`.
fn deliver(dir: &Path) {
    silo(dir)
        .args(["events", "run", "--once"])
        .assert()
        .success();
}

async fn orion_syncs_emails(engine: Engine) {
    let prefix = Prefix::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    silo(dir)
        .args(["--engine", &engine.to_string()])
        .args(["init", "--example", "orion"])
        .assert()
        .success();
    prefix_names(dir, &prefix);
    silo(dir).arg("up").assert().success();
    silo(dir).arg("migrate").assert().success();
    let mut users = Store::open(dir, "users").await;
    let mut auth = Store::open(dir, "auth").await;
    let mut notifications = Store::open(dir, "notifications").await;
    assert_eq!(users.is_postgres(), engine == Engine::Postgres);

    // Alice and Bob sign up: auth makes their credentials (its own data),
    // users their profiles, which it publishes.
    for (id, credential, email) in [
        (
            ALICE,
            "9a1e4c2b-7d3f-4e58-a6b9-0c2d4e6f8a11",
            "alice@example.com",
        ),
        (
            BOB,
            "2c7d9f1e-3a5b-4c6d-8e0f-1a2b3c4d5e22",
            "bob@example.com",
        ),
    ] {
        auth.exec(
            "INSERT INTO credentials (id, user_id, email, password_hash) \
             VALUES ($1::uuid, $2::uuid, $3, 'argon2id-hash')",
            "INSERT INTO credentials (id, user_id, email, password_hash) \
             VALUES ($1, $2, $3, 'argon2id-hash')",
            &[credential, id, email],
        )
        .await;
    }
    create_user(&mut users, ALICE, "alice@example.com", "Alice").await;
    create_user(&mut users, BOB, "bob@example.com", "Bob").await;
    deliver(dir);
    assert_eq!(consume(&mut auth, "auth").await, 2);
    assert_eq!(consume(&mut notifications, "notifications").await, 2);

    // Alice's welcome goes out; a digest waits for her.
    notifications
        .exec(
            "UPDATE notifications SET status = 'delivered' WHERE user_id = $1::uuid",
            "UPDATE notifications SET status = 'delivered' WHERE user_id = $1",
            &[ALICE],
        )
        .await;
    notifications
        .exec(
            "INSERT INTO notifications (id, user_id, email, template) \
             VALUES ('7e1f3a5c-9b2d-4f6e-8a0c-1d3e5f7a9b33', $1::uuid, 'alice@example.com', 'digest')",
            "INSERT INTO notifications (id, user_id, email, template) \
             VALUES ('7e1f3a5c-9b2d-4f6e-8a0c-1d3e5f7a9b33', $1, 'alice@example.com', 'digest')",
            &[ALICE],
        )
        .await;

    // Alice changes her email; Bob only his name; a change of Bob's email
    // rolls back, so its event never existed.
    update_user(&mut users, ALICE, "alice@work.example.com", "Alice", true).await;
    update_user(&mut users, BOB, "ghost@example.com", "Bob", false).await;
    update_user(&mut users, BOB, "bob@example.com", "Robert", true).await;
    deliver(dir);
    assert_eq!(consume(&mut auth, "auth").await, 2);
    assert_eq!(consume(&mut notifications, "notifications").await, 2);

    // Each copy follows the users service's data.
    let emails = "SELECT user_id::text, email FROM credentials ORDER BY user_id";
    let login: Vec<Vec<String>> = auth.rows(emails, &emails.replace("::text", "")).await;
    let profile = "SELECT id::text, email FROM users ORDER BY id";
    assert_eq!(
        login,
        users.rows(profile, &profile.replace("::text", "")).await
    );
    assert_eq!(
        login,
        [
            [ALICE.to_string(), "alice@work.example.com".to_string()],
            [BOB.to_string(), "bob@example.com".to_string()]
        ]
    );
    let sent = "SELECT template, status, email FROM notifications ORDER BY user_id, template";
    assert_eq!(
        notifications.rows(sent, sent).await,
        [
            ["digest", "queued", "alice@work.example.com"],
            ["welcome", "delivered", "alice@example.com"],
            ["welcome", "queued", "bob@example.com"],
        ]
        .map(|r| r.map(String::from).to_vec())
    );
    // Both consumers got each committed event once, from users, keyed by
    // the user; the rolled-back one reached no inbox.
    for store in [&mut auth, &mut notifications] {
        let inbox = "SELECT type, source, key, state FROM silo_inbox ORDER BY seq";
        assert_eq!(
            store.rows(inbox, inbox).await,
            [
                ["user.created", "users", ALICE, "done"],
                ["user.created", "users", BOB, "done"],
                ["user.updated", "users", ALICE, "done"],
                ["user.updated", "users", BOB, "done"],
            ]
            .map(|r| r.map(String::from).to_vec())
        );
        assert_eq!(
            store
                .count("SELECT count(*) FROM silo_inbox WHERE CAST(payload AS TEXT) LIKE '%ghost%'")
                .await,
            0
        );
    }
    for store in [users, auth, notifications] {
        store.close().await;
    }
    silo(dir).args(["destroy", "--yes"]).assert().success();
}

#[tokio::test]
async fn orion_syncs_emails_on_sqlite() {
    orion_syncs_emails(Engine::Sqlite).await;
}

#[tokio::test]
async fn orion_syncs_emails_on_postgres() {
    orion_syncs_emails(Engine::Postgres).await;
}
