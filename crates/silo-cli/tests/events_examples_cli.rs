//! The bundled examples' events, end to end, on real stores.
//!
//! BattleScope: `scripts/demo-events.sh` (what `make demo-events` runs)
//! takes the example through `silo up`, `silo migrate` and rounds of
//! `silo events run --once` and each of its five services, then checks
//! every denormalized copy against its source. The test runs it on each
//! engine, then checks the stores again itself, as each service, with
//! queries of its own: the copies, the battles' clustering, the
//! notifications' subscriptions. A copy broken by hand must make the
//! script's check fail, or that check would prove nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use silo_manifest::Engine;
use silo_testkit::{Prefix, admin_url};
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
/// services built for it.
fn demo(args: &[&str]) -> Output {
    Command::new(workspace().join("scripts/demo-events.sh"))
        .args(args)
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
            Store::Postgres(c) => sqlx::query(AssertSqlSafe(pg.to_string()))
                .fetch_all(c)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..r.len()).map(|i| cell(r, i)).collect())
                .collect(),
            Store::Sqlite(c) => sqlx::query(AssertSqlSafe(sqlite.to_string()))
                .fetch_all(c)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..r.len()).map(|i| cell(r, i)).collect())
                .collect(),
        }
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

    let out = demo(&[dir.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo-events on {engine} failed: {stdout}\n{}",
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

    check_stores(dir, killmails).await;

    // A copy broken behind the service's back: the check must say so.
    let mut search = Store::open(dir, "search").await;
    search
        .execute("UPDATE battle_documents SET total_kills = total_kills + 1")
        .await;
    search.close().await;
    let out = demo(&["--check", dir.to_str().unwrap()]);
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

    silo(dir).args(["destroy", "--yes"]).assert().success();
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
