//! The `silo` binary end to end, against real SQLite files and the real
//! PostgreSQL server (plus a password-checking server of the test's own).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{json, silo};
use silo_manifest::{Manifest, Overrides};
use silo_testkit::{Prefix, TempServer, admin_url};
use sqlx::{Connection, PgConnection};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A project folder holding the battlescope example's services, with every
/// database and role prefixed so parallel tests never meet on the server.
fn battlescope(prefix: &Prefix) -> (tempfile::TempDir, Manifest) {
    let example = Manifest::load(
        &examples().join("battlescope/silo.toml"),
        &Overrides::default(),
    )
    .expect("the battlescope example loads");
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("[project]\nname = \"{}\"\n", example.project);
    for s in &example.services {
        text.push_str(&format!(
            "[services.{}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            s.name,
            prefix.name(&s.database),
            prefix.name(&s.role)
        ));
    }
    let path = dir.path().join("silo.toml");
    std::fs::write(&path, text).unwrap();
    let m = Manifest::load(&path, &Overrides::default()).unwrap();
    assert_eq!(m.services.len(), 5);
    (dir, m)
}

fn outcomes(doc: &Value) -> Vec<String> {
    doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap().to_string())
        .collect()
}

fn credentials_url(dir: &Path, engine: &str, service: &str) -> String {
    let doc = json(silo(dir).args([
        "--engine",
        engine,
        "credentials",
        "show",
        service,
        "--reveal",
        "--json",
    ]));
    doc["url"].as_str().unwrap().to_string()
}

fn sqlstate(e: sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.code().unwrap_or_default().to_string(),
        other => panic!("expected a database error, got {other}"),
    }
}

#[tokio::test]
async fn battlescope_on_postgres_is_isolated_pair_by_pair() {
    let prefix = Prefix::new();
    let (dir, m) = battlescope(&prefix);
    let dir = dir.path();

    let up = json(silo(dir).args(["--engine", "postgres", "up", "--json"]));
    assert_eq!(outcomes(&up), vec!["created"; 5], "{up:#}");

    // Own store: connect and create a table.
    let urls: Vec<String> = m
        .services
        .iter()
        .map(|s| credentials_url(dir, "postgres", &s.name))
        .collect();
    for url in &urls {
        let mut conn = PgConnection::connect(url)
            .await
            .expect("own store connects");
        sqlx::raw_sql("CREATE TABLE probe (id bigint PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .expect("the service can create tables in its own database");
    }

    // Every other store: refused with PostgreSQL's own permission error.
    let mut pairs = 0;
    for (i, role_owner) in m.services.iter().enumerate() {
        for (j, store_owner) in m.services.iter().enumerate() {
            if i == j {
                continue;
            }
            let url = urls[i].replace(
                &format!("/{}", role_owner.database),
                &format!("/{}", store_owner.database),
            );
            let err = PgConnection::connect(&url)
                .await
                .expect_err("a service must not reach another service's database");
            let message = err.to_string();
            assert_eq!(sqlstate(err), "42501", "{message}");
            assert!(
                message.contains("permission denied for database"),
                "{message}"
            );
            pairs += 1;
        }
    }
    assert_eq!(pairs, 20);

    // PUBLIC has no CONNECT on any of them.
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    for s in &m.services {
        let public: bool =
            sqlx::query_scalar("SELECT has_database_privilege('public', $1, 'CONNECT')")
                .bind(&s.database)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        assert!(!public, "PUBLIC can connect to {}", s.database);
    }

    // A second up changes nothing.
    let again = json(silo(dir).args(["--engine", "postgres", "up", "--json"]));
    assert_eq!(outcomes(&again), vec!["unchanged"; 5], "{again:#}");
    assert_eq!(again["summary"]["unchanged"], 5);

    // down removes exactly one service; the others still work.
    let gone = &m.services[2];
    silo(dir)
        .args(["--engine", "postgres", "down", &gone.name, "--yes"])
        .assert()
        .success();
    let status = json(silo(dir).args(["--engine", "postgres", "status", "--json"]));
    for row in status["services"].as_array().unwrap() {
        let is_gone = row["service"] == gone.name.as_str();
        assert_eq!(row["exists"], !is_gone, "{row}");
        assert_eq!(row["connects"], !is_gone, "{row}");
    }
    assert!(
        !dir.join(".silo/secrets")
            .join(format!("{}.env", gone.name))
            .exists()
    );
    for (s, url) in m.services.iter().zip(&urls) {
        if s.name != gone.name {
            PgConnection::connect(url)
                .await
                .expect("the others still connect");
        }
    }
    silo(dir)
        .args(["--engine", "postgres", "destroy", "--yes"])
        .assert()
        .success();
}

#[tokio::test]
async fn rotate_retires_the_old_password() {
    let server = TempServer::start();
    let prefix = Prefix::new();
    let (dir, m) = battlescope(&prefix);
    let dir = dir.path();
    let svc = &m.services[0].name;
    let run = |args: &[&str]| {
        let mut c = silo(dir);
        c.env("SILO_PG_ADMIN_URL", server.admin_url())
            .args(["--engine", "postgres"])
            .args(args);
        c
    };
    run(&["up", svc]).assert().success();
    let doc = json(&mut run(&[
        "credentials",
        "show",
        svc,
        "--reveal",
        "--json",
    ]));
    let old = doc["url"].as_str().unwrap().to_string();
    let old_password = doc["password"].as_str().unwrap().to_string();
    PgConnection::connect(&old)
        .await
        .expect("first password works");

    let out = run(&["credentials", "rotate", svc]).output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&old_password));

    let doc = json(&mut run(&[
        "credentials",
        "show",
        svc,
        "--reveal",
        "--json",
    ]));
    let new = doc["url"].as_str().unwrap().to_string();
    let new_password = doc["password"].as_str().unwrap().to_string();
    assert_ne!(old_password, new_password);
    let err = PgConnection::connect(&old)
        .await
        .expect_err("old password refused");
    assert_eq!(sqlstate(err), "28P01");
    PgConnection::connect(&new)
        .await
        .expect("new password works");

    // Neither status nor the human credentials view prints a password.
    for args in [
        &["status"][..],
        &["credentials", "show", svc][..],
        &["credentials", "show", svc, "--json"][..],
    ] {
        let out = run(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !text.contains(&new_password),
            "{args:?} printed the password"
        );
    }
}

#[test]
fn battlescope_on_sqlite_has_private_files_and_drops_one() {
    let prefix = Prefix::new();
    let (dir, m) = battlescope(&prefix);
    let dir = dir.path();
    let up = json(silo(dir).args(["up", "--json"]));
    assert_eq!(outcomes(&up), vec!["created"; 5]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let files: Vec<PathBuf> = m
        .services
        .iter()
        .map(|s| s.sqlite_path(&dir.join(".silo")))
        .collect();
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
        assert_eq!(mode(f.parent().unwrap()), 0o700);
    }
    assert_eq!(
        outcomes(&json(silo(dir).args(["up", "--json"]))),
        vec!["unchanged"; 5]
    );

    silo(dir)
        .args(["down", &m.services[0].name, "--yes"])
        .assert()
        .success();
    assert!(!files[0].exists());
    assert!(files[1..].iter().all(|f| f.exists()));
}

#[test]
fn destruction_needs_yes() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    silo(dir.path()).arg("up").assert().success();
    let out = silo(dir.path()).args(["down", "orders"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without --yes"));
    let out = silo(dir.path()).arg("destroy").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(dir.path().join(".silo/orders/orders.sqlite3").exists());
}

#[test]
fn init_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--example", "orion"])
        .assert()
        .success();
    assert!(dir.path().join("silo.toml").exists());
    let out = silo(dir.path())
        .args(["init", "--example", "orion"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    silo(dir.path())
        .args(["init", "--example", "orion", "--force"])
        .assert()
        .success();
}

#[test]
fn every_example_initialises_and_loads() {
    for example in ["battlescope", "orion", "capsule"] {
        let dir = tempfile::tempdir().unwrap();
        silo(dir.path())
            .args(["init", "--example", example])
            .assert()
            .success();
        let m = Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
        for s in &m.services {
            assert!(
                m.migrations_dir(s).is_dir(),
                "{example}: {} has no migrations folder",
                s.name
            );
        }
    }
}

#[test]
fn manifest_errors_point_at_the_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        "[project]\nname = \"p\"\n[services.a]\ndatabase = \"x\"\n[services.b]\ndatabase = \"x\"\n",
    )
    .unwrap();
    let out = silo(dir.path()).arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("silo.toml:6:12: services `a` and `b` both use database `x`"),
        "{err}"
    );
}

#[test]
fn unknown_service_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    let out = silo(dir.path()).args(["up", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown service `nope`"));
}

#[test]
fn missing_admin_url_exits_2_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    let out = silo(dir.path())
        .env_remove("SILO_PG_ADMIN_URL")
        .args(["--engine", "postgres", "up"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set SILO_PG_ADMIN_URL"));
}

#[test]
fn connect_opens_the_client_as_the_service() {
    let prefix = Prefix::new();
    let (dir, m) = battlescope(&prefix);
    let dir = dir.path();
    let svc = &m.services[1];
    silo(dir)
        .args(["--engine", "postgres", "up", &svc.name])
        .assert()
        .success();
    let out = silo(dir)
        .args(["--engine", "postgres", "connect", &svc.name, "--"])
        .args(["-XAtc", "SELECT current_user || ' ' || current_database()"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} {}", svc.role, svc.database)
    );

    // Another service on SQLite (a store stays on the engine it was made on).
    let other = &m.services[2];
    silo(dir).args(["up", &other.name]).assert().success();
    let out = silo(dir)
        .args(["connect", &other.name, "--", "PRAGMA application_id;"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        silo_store::sqlite::APPLICATION_ID.to_string()
    );
    silo(dir)
        .args(["--engine", "postgres", "down", &svc.name, "--yes"])
        .assert()
        .success();
}

#[test]
fn init_with_a_repeated_or_invalid_service_writes_nothing_and_exits_2() {
    for args in [
        &["--service", "a", "--service", "a"][..],
        &["--service", "a", "--service", "Bad-Name"][..],
        // A role name over PostgreSQL's 63 bytes, found by validating the
        // manifest before writing it.
        &["--service", &"x".repeat(60)][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = silo(dir.path()).arg("init").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} wrote something"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = silo(dir.path())
        .args(["init", "--service", "a", "--service", "a"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--service `a` is given twice"), "{err}");
}

#[test]
fn init_quotes_the_project_name() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--name", "we\"ird\\name", "--service", "a"])
        .assert()
        .success();
    let m = Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    assert_eq!(m.project, "we\"ird\\name");
}

/// `data_dir = "."` would put a `.gitignore` of `*` over the project (git
/// then ignores silo.toml) and make the project folder 0700.
#[test]
fn a_data_dir_holding_the_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        root.join("silo.toml"),
        "[project]\nname = \"p\"\n[defaults]\ndata_dir = \".\"\n[services.a]\n",
    )
    .unwrap();
    let out = silo(root).arg("up").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("silo.toml:4:12: the data dir `.` holds the project folder"),
        "{err}"
    );

    std::fs::write(
        root.join("silo.toml"),
        "[project]\nname = \"p\"\n[services.a]\n",
    )
    .unwrap();
    for (flag, env) in [(Some("."), None), (None, Some(".."))] {
        let mut cmd = silo(root);
        if let Some(dir) = flag {
            cmd.args(["--data-dir", dir]);
        }
        if let Some(dir) = env {
            cmd.env("SILO_DATA_DIR", dir);
        }
        let out = cmd.arg("up").output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = flat(&out.stderr);
        assert!(err.contains("holds the project folder"), "{err}");
    }
    assert!(!root.join(".gitignore").exists());
    assert_eq!(mode(root), 0o755);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A data dir that exists already is the user's: silo leaves its mode and
/// puts no `.gitignore` over it; the folders silo makes inside it are
/// private and carry the `.gitignore` themselves.
#[test]
fn an_existing_data_dir_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.path().join("notes.txt"), "mine").unwrap();
    silo(dir.path())
        .args(["--data-dir", data.path().to_str().unwrap(), "up"])
        .assert()
        .success();
    assert_eq!(mode(data.path()), 0o755);
    assert!(!data.path().join(".gitignore").exists());
    for inner in ["secrets", "orders"] {
        let inner = data.path().join(inner);
        assert_eq!(mode(&inner), 0o700, "{}", inner.display());
        assert!(
            std::fs::read_to_string(inner.join(".gitignore"))
                .unwrap()
                .contains("*\n")
        );
    }
    // down removes the store folder silo made, its .gitignore included.
    silo(dir.path())
        .args([
            "--data-dir",
            data.path().to_str().unwrap(),
            "down",
            "orders",
            "--yes",
        ])
        .assert()
        .success();
    assert!(!data.path().join("orders").exists());
    assert!(data.path().join("notes.txt").exists());

    // A data dir silo creates is silo's: private, and out of git.
    silo(dir.path()).arg("up").assert().success();
    assert_eq!(mode(&dir.path().join(".silo")), 0o700);
    assert!(dir.path().join(".silo/.gitignore").exists());
}

#[test]
fn a_mysql_admin_url_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    let out = silo(dir.path())
        .env(
            "SILO_PG_ADMIN_URL",
            "mysql://root:hunter2@127.0.0.1:3306/app",
        )
        .args(["--engine", "postgres", "up"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("`mysql://` is not a PostgreSQL URL"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

/// Runs silo with its stdout a pipe whose reader has already gone, as in
/// `silo ... | head` once head has read enough.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    std::process::Command::new(assert_cmd::cargo::cargo_bin("silo"))
        .current_dir(dir)
        .env("SILO_PG_ADMIN_URL", admin_url())
        .env_remove("SILO_ENGINE")
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
        .wait_with_output()
        .unwrap()
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    let migrations = dir.path().join("services/orders/migrations");
    std::fs::write(
        migrations.join("V1__t.sql"),
        "CREATE TABLE t (id INTEGER);\n",
    )
    .unwrap();
    std::fs::write(migrations.join("U1__t.sql"), "DROP TABLE t;\n").unwrap();
    silo(dir.path()).arg("up").assert().success();
    for args in [
        &["lint", "--explain"][..],
        &["verify", "orders", "--json"][..],
        &["status"][..],
        &["info", "--json"][..],
    ] {
        let out = with_closed_stdout(dir.path(), args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

/// A SQLite store that cannot be opened is a failed operation (exit 1)
/// with a hint about the file, not an unreachable server.
#[test]
fn an_unopenable_sqlite_store_gets_a_file_hint_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    silo(root)
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    silo(root).arg("up").assert().success();
    let file = root.join(".silo/orders/orders.sqlite3");

    // Not a file at all.
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let out = silo(root).args(["migrate", "orders"]).output().unwrap();
    let err = flat(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot open the SQLite store"), "{err}");
    assert!(
        err.contains("must be a SQLite file that silo created"),
        "{err}"
    );
    assert!(!err.contains("server is running"), "{err}");
    std::fs::remove_dir(&file).unwrap();

    // A file this user may not open. Root may open anything, so as root
    // the store is opened by another user, as a service account would.
    silo(root).args(["up", "--adopt"]).assert().success();
    let mut cmd = std::process::Command::new(if is_root() { "setpriv" } else { "env" });
    if is_root() {
        // The other user needs to reach the project and read its secrets
        // file; the store file itself stays root's, mode 0600.
        for p in [
            root,
            &root.join(".silo"),
            &root.join(".silo/orders"),
            &root.join(".silo/secrets"),
        ] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(
            root.join(".silo/secrets/orders.env"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    } else {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let out = cmd
        .arg(assert_cmd::cargo::cargo_bin("silo"))
        .args(["migrate", "orders"])
        .current_dir(root)
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_ENGINE")
        .output()
        .unwrap();
    let err = flat(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(err.contains("this user may not read and write"), "{err}");
    assert!(!err.contains("server is running"), "{err}");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A service role refused CONNECT on its own database: the server was
/// reached, so exit 1, and the hint is about privileges, not about the
/// server running. The message is the server's, without "at line N" (a
/// line of the server's C source that sqlx appends).
#[test]
fn a_privilege_error_gets_a_privilege_hint_and_exit_1() {
    let prefix = Prefix::new();
    let dir = tempfile::tempdir().unwrap();
    let (db, role) = (prefix.name("orders"), prefix.name("orders_svc"));
    std::fs::write(
        dir.path().join("silo.toml"),
        format!(
            "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n\
             [services.orders]\ndatabase = \"{db}\"\nrole = \"{role}\"\n"
        ),
    )
    .unwrap();
    let migrations = dir.path().join("services/orders/migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("V1__t.sql"),
        "CREATE TABLE t (id bigint);\n",
    )
    .unwrap();
    silo(dir.path()).arg("up").assert().success();
    let psql = |db: &str, sql: &str| {
        let mut url = url::Url::parse(&admin_url()).unwrap();
        url.set_path(db);
        let out = std::process::Command::new("psql")
            .args([
                "-XqAt",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url.as_str(),
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    psql(
        "postgres",
        &format!("REVOKE CONNECT ON DATABASE \"{db}\" FROM \"{role}\""),
    );
    let out = silo(dir.path())
        .args(["migrate", "orders"])
        .output()
        .unwrap();
    let err = flat(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied for database"), "{err}");
    assert!(
        err.contains("`silo up` restores a service's own grants"),
        "{err}"
    );
    assert!(!err.contains("server is running"), "{err}");
    assert!(!err.contains(" at line "), "{err}");

    // Inside its database: the history table cannot be created.
    silo(dir.path()).arg("up").assert().success();
    psql(
        &db,
        &format!(
            "ALTER SCHEMA public OWNER TO postgres; REVOKE ALL ON SCHEMA public FROM \"{role}\""
        ),
    );
    let out = silo(dir.path())
        .args(["migrate", "orders"])
        .output()
        .unwrap();
    let err = flat(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied for schema public"), "{err}");
    assert!(!err.contains(" at line "), "{err}");
    assert!(
        err.contains("`silo up` restores its ownership and grants"),
        "{err}"
    );
    // The JSON document carries the same cause, the same way.
    let doc = json(silo(dir.path()).args(["migrate", "orders", "--json"]));
    let error = doc["services"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("permission denied for schema public"),
        "{error}"
    );
    assert!(!error.contains(" at line "), "{error}");

    // And `silo up` does restore them.
    silo(dir.path()).arg("up").assert().success();
    silo(dir.path())
        .args(["migrate", "orders"])
        .assert()
        .success();
    silo(dir.path())
        .args(["destroy", "--yes"])
        .assert()
        .success();
}

/// stderr with miette's line wrapping and frame undone, for `contains`.
fn flat(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// stderr closed too (`silo ... 2>&1 | head -1` once head has gone):
/// commands whose reports and summaries go to stderr finish with their own
/// exit code instead of panicking (101).
#[test]
fn a_closed_stderr_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    for (args, code) in [
        (&["up"][..], 0),
        (&["up", "nobody"][..], 2),
        (&["migrate"][..], 0),
        (&["down", "orders"][..], 2),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("silo"))
            .current_dir(dir.path())
            .env("SILO_PG_ADMIN_URL", admin_url())
            .env_remove("SILO_ENGINE")
            .args(args)
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}

/// `silo --engine postgres init` writes the engine into silo.toml, where a
/// store's engine belongs, for a new manifest and for an example.
#[test]
fn init_writes_the_engine_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["--engine", "postgres", "init", "--service", "orders"])
        .assert()
        .success();
    let text = std::fs::read_to_string(dir.path().join("silo.toml")).unwrap();
    assert!(text.contains("\nengine = \"postgres\"\n"), "{text}");
    let m = Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    assert_eq!(m.services[0].engine, silo_manifest::Engine::Postgres);

    let example = dir.path().join("bs");
    silo(dir.path())
        .args([
            "--engine",
            "postgres",
            "init",
            "--example",
            "battlescope",
            "--dir",
        ])
        .arg(&example)
        .assert()
        .success();
    let m = Manifest::load(&example.join("silo.toml"), &Overrides::default()).unwrap();
    assert!(
        m.services
            .iter()
            .all(|s| s.engine == silo_manifest::Engine::Postgres)
    );
}

/// With `--json`, a command that refuses or fails before it has a result
/// still prints one JSON document on stdout: the error, its code, help and
/// exit code.
#[test]
fn a_refusal_with_json_is_a_json_document() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--service", "orders"])
        .assert()
        .success();
    for (args, code) in [
        (&["info", "nosuch", "--json"][..], 2),
        (&["undo", "orders", "--json"][..], 2),
        (&["lint", "--format", "json", "services/nowhere"][..], 2),
    ] {
        let out = silo(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(doc["error"]["exit_code"], code, "{doc:#}");
        assert!(
            doc["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}
