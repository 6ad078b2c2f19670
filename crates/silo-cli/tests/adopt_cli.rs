//! `silo migrations adopt` through the binary: exit codes, --json, and
//! what `migrate`, `info` and `validate` say about another tool's history.

mod common;

use std::path::Path;

use common::{json, silo};
use predicates::prelude::*;
use silo_manifest::{Manifest, Overrides};

/// A SQLite project with one service `orders`, provisioned, whose store
/// Flyway migrated with `files` (name, SQL, checksum Flyway stored).
async fn flyway_project(files: &[(&str, &str, i32)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        "[project]\nname = \"t\"\n[services.orders]\n",
    )
    .unwrap();
    let migrations = dir.path().join("services/orders/migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    silo(dir.path()).arg("up").assert().success();
    let m = Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let mut conn = silo_store::sqlite::open(&m.services[0].sqlite_path(&m.data_dir))
        .await
        .unwrap();
    // Flyway's createMetaDataTable.sql for SQLite.
    let mut sql = String::from(
        "CREATE TABLE \"main\".\"flyway_schema_history\" (
            \"installed_rank\" INT NOT NULL PRIMARY KEY,
            \"version\" VARCHAR(50),
            \"description\" VARCHAR(200) NOT NULL,
            \"type\" VARCHAR(20) NOT NULL,
            \"script\" VARCHAR(1000) NOT NULL,
            \"checksum\" INT,
            \"installed_by\" VARCHAR(100) NOT NULL,
            \"installed_on\" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
            \"execution_time\" INT NOT NULL,
            \"success\" BOOLEAN NOT NULL
        );
        CREATE INDEX \"main\".\"flyway_schema_history_s_idx\" ON \"flyway_schema_history\" (\"success\");",
    );
    for (rank, (name, text, checksum)) in files.iter().enumerate() {
        std::fs::write(migrations.join(name), text).unwrap();
        let version = name[1..].split("__").next().unwrap();
        sql.push_str(text);
        sql.push_str(&format!(
            "INSERT INTO flyway_schema_history VALUES ({}, '{version}', 'd', 'SQL', '{name}', \
             {checksum}, 'deployer', '2024-02-03 04:05:06.789', 10, 1);",
            rank + 1
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .unwrap();
    dir
}

// Flyway's checksums of the two files below, derived outside Rust:
//   python3 -c 'import zlib; print(zlib.crc32(b"CREATE TABLE a (id INTEGER);"))'
// -> 4235070197 and 3977470092 for b: one line each, so there is no line
// ending to drop; Flyway stores them as signed 32-bit integers (minus 2^32).
const A: (&str, &str, i32) = ("V1__a.sql", "CREATE TABLE a (id INTEGER);\n", -59_897_099);
const B: (&str, &str, i32) = ("V2__b.sql", "CREATE TABLE b (id INTEGER);\n", -317_497_204);

#[tokio::test]
async fn adopt_then_migrate_only_what_is_new() {
    let dir = flyway_project(&[A, B]).await;
    let d = dir.path();

    // migrate refuses: it would run V1 again on Flyway's tables.
    silo(d)
        .arg("migrate")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("flyway_schema_history"))
        .stderr(predicate::str::contains("silo migrations adopt"));
    // info shows the files pending and says why not to believe it.
    silo(d)
        .arg("info")
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "silo migrations adopt orders --from flyway",
        ));
    let info = json(silo(d).args(["info", "--json"]));
    assert_eq!(info["services"][0]["foreign_history"][0]["tool"], "flyway");
    assert_eq!(info["services"][0]["foreign_history"][0]["rows"], 2);

    // A dry run reports what it would record, and records nothing.
    let dry = json(silo(d).args([
        "migrations",
        "adopt",
        "orders",
        "--from",
        "flyway",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["summary"]["recorded"], 2);
    assert_eq!(dry["summary"]["problems"], 0);
    assert_eq!(dry["rows"][0]["outcome"], "matched");
    assert_eq!(dry["rows"][0]["installed_by"], "deployer");
    let info = json(silo(d).args(["info", "--json"]));
    assert_eq!(info["services"][0]["migrations"][0]["state"], "pending");

    silo(d)
        .args(["migrations", "adopt", "orders", "--from", "flyway"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("recorded 2 row(s)"));
    let info = json(silo(d).args(["info", "--json"]));
    let rows = info["services"][0]["migrations"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["state"] == "applied"), "{info:#}");
    assert_eq!(rows[0]["installed_on"], "2024-02-03T04:05:06.789Z");
    assert!(
        info["services"][0]["foreign_history"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Twice: nothing to do, and it says so.
    silo(d)
        .args(["migrations", "adopt", "orders", "--from", "flyway"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("nothing to do"));

    std::fs::write(
        d.join("services/orders/migrations/V3__c.sql"),
        "CREATE TABLE c (id INTEGER);\n",
    )
    .unwrap();
    let run = json(silo(d).args(["migrate", "--json"]));
    let applied: Vec<&str> = run["services"][0]["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["script"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["V3__c.sql"]);
}

#[tokio::test]
async fn problems_exit_1_and_usage_errors_exit_2() {
    // V2 changed after Flyway applied it: Flyway's checksum is another.
    let dir = flyway_project(&[A, (B.0, B.1, 12345)]).await;
    let d = dir.path();
    let out = silo(d)
        .args([
            "migrations",
            "adopt",
            "orders",
            "--from",
            "flyway",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["problems"], 1);
    assert_eq!(doc["rows"][1]["outcome"], "checksum-mismatch");
    assert_eq!(doc["rows"][1]["recorded"], true);
    // silo's own check now sees it.
    silo(d)
        .arg("validate")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "V2__b.sql changed after it was applied",
        ));

    // No such table: the operation fails (1) and says which table.
    silo(d)
        .args(["migrations", "adopt", "orders", "--from", "sqlx"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no table _sqlx_migrations"));
    // A table name that is not one, and an unknown tool: usage (2).
    silo(d)
        .args([
            "migrations",
            "adopt",
            "orders",
            "--from",
            "flyway",
            "--table",
            "a b",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid --table"));
    silo(d)
        .args(["migrations", "adopt", "orders", "--from", "liquibase"])
        .assert()
        .code(2);
    silo(d)
        .args(["migrations", "adopt", "nope", "--from", "flyway"])
        .assert()
        .code(2);
}

#[test]
fn help_documents_adopt() {
    let dir = tempfile::tempdir().unwrap();
    silo(Path::new(dir.path()))
        .args(["help", "migrations", "adopt"])
        .assert()
        .success()
        .stdout(predicate::str::contains("flyway_schema_history"))
        .stdout(predicate::str::contains("--dry-run"));
}
