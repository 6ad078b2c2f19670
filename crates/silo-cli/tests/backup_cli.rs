//! `silo backup` and `silo restore` through the real binary on real SQLite
//! stores: the round trip, a kill -9 half way through a backup, a damaged
//! backup, and a backup of another service.
//!
//! Every wait is a poll with a bound; nothing sleeps to let a race settle.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection, SqliteConnection};

mod common;
use common::{json, silo};

const BOUND: Duration = Duration::from_secs(60);

/// A project of SQLite services `orders` and `billing`, provisioned.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        "[project]\nname = \"t\"\n[defaults]\nengine = \"sqlite\"\n\
         [services.orders]\n[services.billing]\n",
    )
    .unwrap();
    silo(dir.path()).arg("up").assert().success();
    dir
}

fn store(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!(".silo/{service}/{service}.sqlite3"))
}

fn backups(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!(".silo/backups/{service}"))
}

async fn sql(path: &Path, text: &str) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(text.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

async fn count(path: &Path, table: &str) -> i64 {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

/// The ids `silo backup list SERVICE --json` shows.
fn listed(dir: &Path, service: &str) -> Vec<String> {
    let doc = json(silo(dir).args(["backup", "list", service, "--json"]));
    doc["services"][0]["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn backup_list_verify_and_restore_round_trip() {
    let dir = project();
    let dir = dir.path();
    sql(
        &store(dir, "orders"),
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         INSERT INTO items (name) VALUES ('a'), ('b'), ('c');",
    )
    .await;

    let doc = json(silo(dir).args(["backup", "--json"]));
    let rows = doc["backups"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{doc}");
    assert!(rows.iter().all(|r| r["ok"] == true), "{doc}");
    let orders = rows.iter().find(|r| r["service"] == "orders").unwrap();
    let id = orders["backup"]["id"].as_str().unwrap().to_string();
    assert_eq!(orders["backup"]["tables"]["items"], 3);
    assert_eq!(orders["backup"]["engine"], "sqlite");
    assert_eq!(listed(dir, "orders"), std::slice::from_ref(&id));

    let doc = json(silo(dir).args(["backup", "verify", "orders", "--json"]));
    assert_eq!(doc["verified"][0]["ok"], true, "{doc}");
    assert_eq!(doc["verified"][0]["backup"], id.as_str());

    // A change after the backup, then a restore beside the live store.
    sql(
        &store(dir, "orders"),
        "INSERT INTO items (name) VALUES ('d');",
    )
    .await;
    let doc = json(silo(dir).args(["restore", "orders", "--into", "copy", "--json"]));
    let copy = PathBuf::from(doc["restored"]["store"].as_str().unwrap());
    assert_eq!(count(&copy, "items").await, 3);
    assert_eq!(count(&store(dir, "orders"), "items").await, 4);

    // --replace needs --yes, and then swaps the live store, keeping the old.
    silo(dir)
        .args(["restore", "orders", "--replace"])
        .assert()
        .code(2);
    let out = silo(dir)
        .args(["restore", "orders", "--replace", "--yes"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(text.contains("previous store is kept at"), "{text}");
    assert_eq!(count(&store(dir, "orders"), "items").await, 3);
    let kept = store(dir, "orders").with_file_name(format!("orders.sqlite3.before-{id}"));
    assert_eq!(count(&kept, "items").await, 4);
    // The restored live store is the service's: status says it connects.
    let doc = json(silo(dir).args(["status", "orders", "--json"]));
    assert_eq!(doc["services"][0]["connects"], true, "{doc}");
}

#[tokio::test]
async fn a_flipped_byte_makes_restore_and_verify_refuse_naming_the_file() {
    let dir = project();
    let dir = dir.path();
    sql(
        &store(dir, "orders"),
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO items (name) VALUES ('a'), ('b');",
    )
    .await;
    silo(dir).args(["backup", "orders"]).assert().success();
    let id = listed(dir, "orders").remove(0);
    let file = backups(dir, "orders").join(&id).join("store.sqlite3");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x80;
    std::fs::write(&file, &bytes).unwrap();

    for args in [
        vec!["restore", "orders", "--into", "x"],
        vec!["backup", "verify", "orders"],
    ] {
        let out = silo(dir).args(&args).assert().code(1);
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains("store.sqlite3"), "{args:?}: {err}");
        assert!(err.contains("damaged"), "{args:?}: {err}");
    }
    assert!(!store(dir, "orders").with_file_name("x.sqlite3").exists());
}

#[tokio::test]
async fn a_backup_of_another_service_is_refused_unless_from_service() {
    let dir = project();
    let dir = dir.path();
    sql(
        &store(dir, "orders"),
        "CREATE TABLE items (id INTEGER PRIMARY KEY); INSERT INTO items VALUES (1);",
    )
    .await;
    silo(dir).args(["backup", "orders"]).assert().success();
    let id = listed(dir, "orders").remove(0);
    // orders' backup lands among billing's (a shared or copied folder).
    let theirs = backups(dir, "billing").join(&id);
    std::fs::create_dir_all(&theirs).unwrap();
    for entry in std::fs::read_dir(backups(dir, "orders").join(&id)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), theirs.join(entry.file_name())).unwrap();
    }

    let out = silo(dir)
        .args(["restore", "billing", "--backup", &id, "--into", "x"])
        .assert()
        .code(1);
    // miette wraps long lines: compare words.
    let err = String::from_utf8_lossy(&out.get_output().stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        err.contains("is of service `orders`, not `billing`"),
        "{err}"
    );
    assert!(err.contains("--from-service orders"), "{err}");

    let doc = json(silo(dir).args([
        "restore",
        "billing",
        "--from-service",
        "orders",
        "--into",
        "from_orders",
        "--json",
    ]));
    let restored = PathBuf::from(doc["restored"]["store"].as_str().unwrap());
    assert_eq!(count(&restored, "items").await, 1);
    let owner: String = {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", restored.display()))
            .await
            .unwrap();
        let v = sqlx::query_scalar("SELECT value FROM silo_store WHERE key = 'service'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        v
    };
    assert_eq!(owner, "billing", "the restored store is billing's");
}

/// A backup killed with SIGKILL while it uploads leaves files without
/// `meta.json`: never listed, and the next backup succeeds.
#[tokio::test]
async fn a_backup_killed_half_way_is_never_listed_and_the_next_succeeds() {
    let dir = project();
    let dir = dir.path();
    // About 64 MB, so the copy, checksums and upload take a while.
    sql(
        &store(dir, "orders"),
        "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 16000)
         INSERT INTO blobs (data) SELECT randomblob(4000) FROM n;",
    )
    .await;

    let mut child = Command::new(assert_cmd::cargo::cargo_bin("silo"))
        .current_dir(dir)
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .args(["backup", "orders"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as its files start arriving at the destination.
    let dest = backups(dir, "orders");
    let started = Instant::now();
    let partial = loop {
        let found = std::fs::read_dir(&dest)
            .ok()
            .and_then(|mut entries| entries.find_map(|e| e.ok().map(|e| e.path())));
        if let Some(found) = found {
            break found;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it was killed"
        );
        assert!(
            started.elapsed() < BOUND,
            "the backup never started uploading"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !partial.join("meta.json").exists(),
        "the backup finished before the kill"
    );

    assert!(
        listed(dir, "orders").is_empty(),
        "a killed backup is not listed"
    );
    silo(dir).args(["backup", "orders"]).assert().success();
    let ids = listed(dir, "orders");
    assert_eq!(ids.len(), 1);
    // The killed run's staging folder went with the next backup.
    let staging: Vec<_> = std::fs::read_dir(dir.join(".silo/backups/.staging"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
    let doc: Value = json(silo(dir).args(["backup", "verify", "orders", "--json"]));
    assert_eq!(doc["verified"][0]["ok"], true, "{doc}");
    assert_eq!(doc["verified"][0]["tables"]["blobs"], 16000);
}
