//! `silo migrate` and friends through the real binary: concurrency across
//! processes, index builds outside transactions, validation and exit codes.

use std::process::Stdio;

use serde_json::Value;

mod common;
use common::{json, orders_project as project, silo};
use silo_testkit::{Prefix, admin_url};

/// Eight `silo migrate` processes at once on one store: every process
/// exits 0 and every version is recorded exactly once.
fn eight_concurrent_processes(engine: &str) {
    let prefix = Prefix::new();
    let (dir, migrations) = project(engine, &prefix);
    for v in 1..=12 {
        std::fs::write(
            migrations.join(format!("V{v}__step_{v}.sql")),
            format!("CREATE TABLE t{v} (id INTEGER);\nINSERT INTO t{v} VALUES ({v});\n"),
        )
        .unwrap();
    }
    let bin = assert_cmd::cargo::cargo_bin("silo");
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(&bin)
                .current_dir(dir.path())
                .env("SILO_PG_ADMIN_URL", admin_url())
                .env_remove("SILO_ENGINE")
                .args(["migrate", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied_total = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a concurrent migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        applied_total += doc["services"][0]["applied"].as_array().unwrap().len();
    }
    assert_eq!(
        applied_total, 12,
        "each migration applied by exactly one process"
    );
    let info = json(silo(dir.path()).args(["info", "--json"]));
    let entries = info["services"][0]["migrations"].as_array().unwrap();
    assert_eq!(entries.len(), 12);
    assert!(entries.iter().all(|e| e["state"] == "applied"), "{info:#}");
}

#[test]
fn concurrent_processes_sqlite() {
    eight_concurrent_processes("sqlite");
}

#[test]
fn concurrent_processes_postgres() {
    eight_concurrent_processes("postgres");
}

/// Two migrators on a file with CREATE INDEX CONCURRENTLY: the waiter
/// polls for the lock instead of holding a snapshot the index build would
/// wait for, so neither deadlocks.
#[test]
fn concurrent_index_build_does_not_deadlock() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("postgres", &prefix);
    std::fs::write(
        migrations.join("V1__table.sql"),
        "CREATE TABLE big (id bigint, x bigint);\n\
         INSERT INTO big SELECT g, g % 97 FROM generate_series(1, 200000) g;",
    )
    .unwrap();
    std::fs::write(
        migrations.join("V2__index.sql"),
        "CREATE INDEX CONCURRENTLY idx_big_x ON big (x);",
    )
    .unwrap();
    std::fs::write(
        migrations.join("V3__after.sql"),
        "CREATE TABLE after_index (id bigint);",
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("silo");
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&bin)
                .current_dir(dir.path())
                .env("SILO_PG_ADMIN_URL", admin_url())
                .args(["migrate", "--lock-timeout", "120"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let info = json(silo(dir.path()).args(["info", "--json"]));
    let states: Vec<&str> = info["services"][0]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["applied", "applied", "applied"]);
}

#[test]
fn validate_and_migrate_refuse_a_changed_file() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("sqlite", &prefix);
    let file = migrations.join("V1__a.sql");
    std::fs::write(&file, "CREATE TABLE a (id INTEGER);\n").unwrap();
    silo(dir.path()).arg("migrate").assert().success();
    silo(dir.path()).arg("validate").assert().success();

    std::fs::write(&file, "CREATE TABLE a (id INTEGER, extra TEXT);\n").unwrap();
    let out = silo(dir.path()).arg("validate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("V1__a.sql changed after it was applied"),
        "{text}"
    );
    assert!(text.contains("recorded checksum"), "{text}");

    std::fs::write(migrations.join("V2__b.sql"), "CREATE TABLE b (id INTEGER);").unwrap();
    let out = silo(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    silo(dir.path())
        .args(["repair", "orders", "--yes"])
        .assert()
        .success();
    silo(dir.path()).arg("validate").assert().success();
    silo(dir.path()).arg("migrate").assert().success();
}

#[test]
fn failed_migration_reports_file_line_and_statement() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("postgres", &prefix);
    std::fs::write(
        migrations.join("V1__broken.sql"),
        "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES ('x');\n",
    )
    .unwrap();
    let out = silo(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("V1__broken.sql:3:"), "{err}");
    assert!(
        err.contains("invalid input syntax for type integer"),
        "{err}"
    );
    assert!(err.contains("rolled back"), "{err}");
    let info = json(silo(dir.path()).args(["info", "--json"]));
    assert_eq!(info["services"][0]["migrations"][0]["state"], "pending");
}

#[test]
fn new_numbers_files_after_the_last() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("sqlite", &prefix);
    std::fs::write(migrations.join("V009__old.sql"), "SELECT 1;").unwrap();
    silo(dir.path())
        .args(["new", "orders", "Add user roles"])
        .assert()
        .success();
    assert!(migrations.join("V010__add_user_roles.sql").exists());
    let undo = std::fs::read_to_string(migrations.join("U010__add_user_roles.sql")).unwrap();
    assert!(undo.contains("undo V010"));
}
