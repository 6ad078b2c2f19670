//! `silo migrate` and friends through the real binary: concurrency across
//! processes, index builds outside transactions, validation and exit codes.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

mod common;
use common::{json, silo};
use silo_testkit::{Prefix, admin_url};

/// A project with one service `orders` on `engine`, provisioned.
fn project(engine: &str, prefix: &Prefix) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        format!(
            "[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n\
             [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name("orders"),
            prefix.name("orders_svc")
        ),
    )
    .unwrap();
    let migrations = dir.path().join("services/orders/migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    silo(dir.path()).arg("up").assert().success();
    (dir, migrations)
}

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

/// The real-world corpus (`SILO_CORPORA`, default `../shared/corpora`):
/// folder of a large application's diesel migrations.
fn corpora() -> PathBuf {
    std::env::var_os("SILO_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"))
}

/// Lemmy's 342 diesel migrations import unchanged and run, statement
/// splitting and all, until PostgreSQL 15 meets syntax only newer servers
/// know: the stop is the server's own syntax error in a late file, not
/// a splitting mistake in an early one.
#[test]
fn lemmy_corpus_imports_and_runs_until_the_server_stops_it() {
    let source = corpora().join("lemmy-migrations");
    assert!(
        source.is_dir(),
        "corpus not found at {}; set SILO_CORPORA",
        source.display()
    );
    let prefix = Prefix::new();
    let (dir, migrations) = project("postgres", &prefix);
    let imported = json(silo(dir.path()).args([
        "migrations",
        "import",
        "--from",
        "diesel",
        source.to_str().unwrap(),
        "--service",
        "orders",
        "--json",
    ]));
    let written = imported["written"].as_array().unwrap().len();
    let folders = std::fs::read_dir(&source).unwrap().count();
    assert_eq!(
        written,
        folders * 2,
        "an up and a down file per diesel folder"
    );
    // Content is kept byte for byte.
    let first = std::fs::read(source.join("00000000000000_diesel_initial_setup/up.sql")).unwrap();
    assert_eq!(
        std::fs::read(migrations.join("V00000000000000__diesel_initial_setup.sql")).unwrap(),
        first
    );

    let out = silo(dir.path())
        .args(["migrate", "--json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let applied = doc["services"][0]["applied"].as_array().unwrap().len();
    let info = json(silo(dir.path()).args(["info", "--json"]));
    let entries = info["services"][0]["migrations"].as_array().unwrap();
    assert!(applied >= 240, "only {applied} of {folders} applied");
    match doc["services"][0]["error"].as_str() {
        None => assert_eq!(applied, folders),
        Some(error) => {
            assert_eq!(out.status.code(), Some(1));
            // The server's SQLSTATE, located in the first pending file.
            let first_pending = entries.iter().find(|e| e["state"] == "pending").unwrap()["script"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(error.contains(&format!("{first_pending}:")), "{error}");
            assert!(error.contains("(code 42"), "{error}");
        }
    }
    let states: Vec<&str> = entries
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert!(states[..applied].iter().all(|s| *s == "applied"));
    assert!(states[applied..].iter().all(|s| *s == "pending"));
}

/// `baseline` takes its version as an argument: a `--version` flag of its
/// own collided with silo's global `--version` (debug builds panicked).
#[test]
fn baseline_takes_the_version_as_an_argument() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("sqlite", &prefix);
    for v in 1..=3 {
        std::fs::write(
            migrations.join(format!("V{v}__t{v}.sql")),
            format!("CREATE TABLE t{v} (id INTEGER);\n"),
        )
        .unwrap();
    }
    let doc = json(silo(dir.path()).args(["baseline", "orders", "2", "--json"]));
    assert_eq!(doc["baseline"], "2");
    let doc = json(silo(dir.path()).args(["migrate", "--json"]));
    let applied: Vec<&str> = doc["services"][0]["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["script"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["V3__t3.sql"]);
    let out = silo(dir.path())
        .args(["baseline", "--version"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("silo-baseline "));
}

/// With `postgres/` and `sqlite/` folders, `silo new` writes the pair into
/// both, under one version, and says so.
#[test]
fn new_writes_into_every_engine_folder() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("sqlite", &prefix);
    for engine in ["postgres", "sqlite"] {
        std::fs::create_dir_all(migrations.join(engine)).unwrap();
    }
    std::fs::write(migrations.join("postgres/V007__a.sql"), "SELECT 1;").unwrap();
    std::fs::write(migrations.join("sqlite/V003__a.sql"), "SELECT 1;").unwrap();
    let out = silo(dir.path())
        .args(["new", "orders", "add tags"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("each got the pair"), "{text}");
    for engine in ["postgres", "sqlite"] {
        for kind in ["V", "U"] {
            let file = migrations.join(format!("{engine}/{kind}008__add_tags.sql"));
            let body = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(body.contains(&format!("-- Engine: {engine}")), "{body}");
        }
    }
    let doc = json(silo(dir.path()).args(["new", "orders", "more", "--json"]));
    assert_eq!(doc["created"].as_array().unwrap().len(), 4, "{doc:#}");

    // Only the service's own engine folder missing: refused, nothing written.
    std::fs::remove_dir_all(migrations.join("sqlite")).unwrap();
    let out = silo(dir.path())
        .args(["new", "orders", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has none for sqlite"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!migrations.join("postgres/V010__x.sql").exists());
}

#[test]
fn every_json_flag_is_described_in_help() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["undo", "new", "repair", "baseline", "migrate", "status"] {
        let out = silo(dir.path()).args(["help", command]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        // `--json  Description` on one line, or the description on the
        // next line when the help is laid out long.
        let mut lines = help
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("--json"));
        let flag = lines.next().unwrap_or_default().trim_start();
        let mut description = flag.trim_start_matches("--json").trim();
        if description.is_empty() {
            description = lines.next().unwrap_or_default().trim();
        }
        assert!(
            description.starts_with("Print one JSON document"),
            "silo help {command}:\n{help}"
        );
    }
}
