//! `silo migrate` and friends through the real binary: concurrency across
//! processes, index builds outside transactions, validation and exit codes.

use std::path::Path;
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
    // The file's own text is shown, the failing statement labelled.
    assert!(err.contains("orders: "), "{err}");
    assert!(err.contains("INSERT INTO a VALUES ('x');"), "{err}");
    assert!(err.contains("here"), "{err}");
    assert!(err.contains("silo::migrate::failed"), "{err}");
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

/// The user tables of `orders`' store, from `silo schema dump --json`.
fn tables(dir: &Path) -> Vec<String> {
    let dump = json(silo(dir).args(["schema", "dump", "orders", "--json"]));
    dump["schema"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let name = t["name"].as_str().unwrap();
            name.rsplit('.').next().unwrap().to_string()
        })
        .collect()
}

/// `silo undo` drops tables, so it follows the rule of destructive
/// commands: without --yes and without a terminal it refuses (exit 2) and
/// the tables stay; --dry-run prints each U file and its SQL, newest first,
/// and changes nothing; --yes undoes.
fn undo_asks_before_it_drops(engine: &str) {
    let prefix = Prefix::new();
    let (dir, migrations) = project(engine, &prefix);
    for (v, t) in [(1, "a"), (2, "b")] {
        std::fs::write(
            migrations.join(format!("V{v}__{t}.sql")),
            format!("CREATE TABLE {t} (id INTEGER);\n"),
        )
        .unwrap();
        std::fs::write(
            migrations.join(format!("U{v}__{t}.sql")),
            format!("DROP TABLE {t};\n"),
        )
        .unwrap();
    }
    silo(dir.path()).arg("migrate").assert().success();
    assert_eq!(tables(dir.path()), ["a", "b"]);

    let out = silo(dir.path())
        .args(["undo", "orders", "--to", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to undo migrations of `orders` without --yes"),
        "{err}"
    );
    assert!(err.contains("--dry-run"), "{err}");
    assert_eq!(tables(dir.path()), ["a", "b"]);

    let out = silo(dir.path())
        .args(["undo", "orders", "--to", "0", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let (u2, u1) = (
        text.find("U2__b.sql").expect(&text),
        text.find("U1__a.sql").expect(&text),
    );
    assert!(u2 < u1, "newest first: {text}");
    assert!(text.contains("DROP TABLE b;"), "{text}");
    assert!(text.contains("DROP TABLE a;"), "{text}");
    let plan = json(silo(dir.path()).args(["undo", "orders", "--to", "0", "--dry-run", "--json"]));
    assert_eq!(plan["dry_run"], true);
    let steps: Vec<(&str, &str)> = plan["undone"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["script"].as_str().unwrap(), s["sql"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("U2__b.sql", "DROP TABLE b;\n"),
            ("U1__a.sql", "DROP TABLE a;\n")
        ]
    );
    assert_eq!(tables(dir.path()), ["a", "b"]);
    let info = json(silo(dir.path()).args(["info", "--json"]));
    assert!(
        info["services"][0]["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["state"] == "applied"),
        "{info:#}"
    );

    silo(dir.path())
        .args(["undo", "orders", "--yes"])
        .assert()
        .success();
    assert_eq!(tables(dir.path()), ["a"]);
    silo(dir.path())
        .args(["undo", "orders", "--to", "0", "--yes"])
        .assert()
        .success();
    assert!(tables(dir.path()).is_empty());
}

#[test]
fn undo_asks_before_it_drops_sqlite() {
    undo_asks_before_it_drops("sqlite");
}

#[test]
fn undo_asks_before_it_drops_postgres() {
    undo_asks_before_it_drops("postgres");
}

/// `silo undo ARGS` on a terminal (util-linux `script` gives it one), with
/// `answer` typed at the prompt: its exit code and what the terminal showed.
fn undo_on_a_terminal(dir: &Path, answer: &str) -> (Option<i32>, String) {
    use std::io::Write;
    let bin = assert_cmd::cargo::cargo_bin("silo");
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("'{}' undo orders", bin.display()),
            "/dev/null",
        ])
        .current_dir(dir)
        .env_remove("SILO_ENGINE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// On a terminal, `silo undo` shows the U files and their SQL and asks:
/// anything but yes changes nothing (exit 1); yes undoes.
#[test]
fn undo_asks_on_a_terminal() {
    let prefix = Prefix::new();
    let (dir, migrations) = project("sqlite", &prefix);
    std::fs::write(
        migrations.join("V1__a.sql"),
        "CREATE TABLE a (id INTEGER);\n",
    )
    .unwrap();
    std::fs::write(migrations.join("U1__a.sql"), "DROP TABLE a;\n").unwrap();
    silo(dir.path()).arg("migrate").assert().success();

    let (code, shown) = undo_on_a_terminal(dir.path(), "n");
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("U1__a.sql"), "{shown}");
    assert!(shown.contains("DROP TABLE a;"), "{shown}");
    assert!(shown.contains("[y/N]"), "{shown}");
    assert!(shown.contains("nothing changed"), "{shown}");
    assert_eq!(tables(dir.path()), ["a"]);

    let (code, shown) = undo_on_a_terminal(dir.path(), "y");
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("undid 1 migration(s)"), "{shown}");
    assert!(tables(dir.path()).is_empty());
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
