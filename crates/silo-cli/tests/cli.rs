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
    let doc = json(silo(dir).args(["--engine", engine, "credentials", "show", service, "--json"]));
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
    let doc = json(&mut run(&["credentials", "show", svc, "--json"]));
    let old = doc["url"].as_str().unwrap().to_string();
    let old_password = doc["password"].as_str().unwrap().to_string();
    PgConnection::connect(&old)
        .await
        .expect("first password works");

    let out = run(&["credentials", "rotate", svc]).output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&old_password));

    let doc = json(&mut run(&["credentials", "show", svc, "--json"]));
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
    for args in [&["status"][..], &["credentials", "show", svc][..]] {
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
