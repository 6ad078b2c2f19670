//! Every command works on the store that exists, or refuses: the engine a
//! store was made on is remembered, and a store that is not the service's
//! own (copied, emptied) is never written.

use serde_json::Value;

mod common;
use common::{json, silo};
use silo_testkit::{Prefix, admin_url};
use sqlx::{Connection, PgConnection};

/// A project of `orders` and `billing` whose silo.toml says sqlite, with
/// prefixed names so that a PostgreSQL run never meets another test's.
fn project(prefix: &Prefix) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut text = "[project]\nname = \"t\"\n[defaults]\nengine = \"sqlite\"\n".to_string();
    for s in ["orders", "billing"] {
        text.push_str(&format!(
            "[services.{s}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(s),
            prefix.name(&format!("{s}_svc"))
        ));
        let sqlite = dir.path().join(format!("services/{s}/migrations/sqlite"));
        let postgres = dir.path().join(format!("services/{s}/migrations/postgres"));
        std::fs::create_dir_all(&sqlite).unwrap();
        std::fs::create_dir_all(&postgres).unwrap();
        std::fs::write(
            sqlite.join("V1__create.sql"),
            format!("CREATE TABLE {s}_rows (id TEXT PRIMARY KEY);\n"),
        )
        .unwrap();
        std::fs::write(
            postgres.join("V1__create.sql"),
            format!("CREATE TABLE {s}_rows (id bigint PRIMARY KEY);\n"),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("silo.toml"), text).unwrap();
    dir
}

async fn database_exists(name: &str) -> bool {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

/// stderr on one line: the report's wrapping and frame taken out.
fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Provisioned with `--engine postgres` while silo.toml says sqlite: a
/// plain `migrate` or `destroy` refuses (exit 2, naming both engines)
/// instead of applying the sqlite files to PostgreSQL or deleting the
/// credentials and leaving the databases behind. With the engine named,
/// everything works.
#[tokio::test]
async fn a_store_stays_on_the_engine_it_was_made_on() {
    let prefix = Prefix::new();
    let dir = project(&prefix);
    let dir = dir.path();
    silo(dir)
        .args(["--engine", "postgres", "up"])
        .assert()
        .success();

    for args in [
        vec!["migrate"],
        vec!["destroy", "--yes"],
        vec!["down", "orders", "--yes"],
        vec!["up"],
        vec!["info"],
        vec!["audit"],
        vec!["audit", "--live-only", "--json"],
    ] {
        let out = silo(dir).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = format!("{} {}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(
            err.contains("made on postgres") && err.contains("now says sqlite"),
            "{args:?}: {err}"
        );
        assert!(err.contains("engine = \"postgres\""), "{args:?}: {err}");
        // Every refusal carries its stable diagnostic code.
        assert!(
            err.contains("silo::store::engine-mismatch"),
            "{args:?}: {err}"
        );
    }
    // Nothing was applied, dropped or forgotten.
    assert!(database_exists(&prefix.name("orders")).await);
    assert!(dir.join(".silo/secrets/orders.env").exists());
    assert!(
        !dir.join(".silo/orders").exists(),
        "no SQLite store was made"
    );
    let info = json(silo(dir).args(["--engine", "postgres", "info", "--json"]));
    assert_eq!(info["services"][0]["migrations"][0]["state"], "pending");

    // With the credentials file (the usual record) gone, `up` still finds
    // the PostgreSQL store by its mark and refuses to make a second one.
    let record = dir.join(".silo/secrets/orders.env");
    let saved = std::fs::read(&record).unwrap();
    std::fs::remove_file(&record).unwrap();
    let out = silo(dir).args(["up", "orders"]).output().unwrap();
    let said = format!("{} {}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("made on postgres"), "{said}");
    assert!(
        !dir.join(".silo/orders").exists(),
        "no SQLite store was made"
    );
    std::fs::write(&record, saved).unwrap();

    // Named, it is the store that exists.
    silo(dir)
        .args(["--engine", "postgres", "migrate"])
        .assert()
        .success();
    let creds = json(silo(dir).args([
        "--engine",
        "postgres",
        "credentials",
        "show",
        "orders",
        "--json",
        "--reveal",
    ]));
    let mut conn = PgConnection::connect(creds["url"].as_str().unwrap())
        .await
        .unwrap();
    let id_type: String = sqlx::query_scalar(
        "SELECT data_type FROM information_schema.columns \
         WHERE table_name = 'orders_rows' AND column_name = 'id'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        id_type, "bigint",
        "the postgres files ran, not the sqlite ones"
    );
    conn.close().await.unwrap();
    silo(dir)
        .args(["--engine", "postgres", "destroy", "--yes"])
        .assert()
        .success();
    assert!(!database_exists(&prefix.name("orders")).await);
}

/// The file at `orders`' place, once replaced by a copy of `billing`'s store
/// or emptied, is refused by `migrate`, `info` and `undo`: nothing is applied
/// into it.
#[test]
fn migrate_refuses_a_store_that_is_not_the_services_own() {
    let prefix = Prefix::new();
    let dir = project(&prefix);
    let dir = dir.path();
    silo(dir).arg("up").assert().success();
    let orders = dir.join(format!(".silo/orders/{}.sqlite3", prefix.name("orders")));
    let billing = dir.join(format!(".silo/billing/{}.sqlite3", prefix.name("billing")));
    assert!(orders.exists() && billing.exists());

    let copied = std::fs::read(&billing).unwrap();
    std::fs::write(&orders, &copied).unwrap();
    let out = silo(dir).args(["migrate", "orders"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("marked as service `billing`'s"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&orders).unwrap(), copied, "nothing written");

    std::fs::write(&orders, b"").unwrap();
    for args in [vec!["migrate", "orders"], vec!["info", "orders"]] {
        let out = silo(dir).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let said = format!("{} {}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert!(said.contains("no silo mark"), "{args:?}: {said}");
    }
    assert_eq!(std::fs::metadata(&orders).unwrap().len(), 0, "still empty");
    // billing's own store is untouched and migrates.
    let doc: Value = json(silo(dir).args(["migrate", "billing", "--json"]));
    assert_eq!(doc["summary"]["failed"], 0);
}

/// The password in `orders`' credentials file: (field, URL's).
fn file_passwords(dir: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(dir.join(".silo/secrets/orders.env")).unwrap();
    let field = text
        .lines()
        .find_map(|l| l.strip_prefix("ORDERS_DB_PASSWORD="))
        .unwrap()
        .to_string();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL="))
        .unwrap();
    let url = url::Url::parse(url).unwrap();
    (field, url.password().unwrap().to_string())
}

/// Whether `password` is `role`'s, by the server's own verifier.
async fn is_role_password(role: &str, password: &str) -> bool {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let verifier: String =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
            .bind(role)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    silo_store::scram_verifies(&silo_store::Secret::new(password), &verifier).unwrap()
}

fn rewrite_password_field(dir: &std::path::Path, new: &str) {
    let path = dir.join(".silo/secrets/orders.env");
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("ORDERS_DB_PASSWORD=") {
                format!("ORDERS_DB_PASSWORD={new}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&path, text).unwrap();
}

/// A hand-edited wrong password in the credentials file is checked against
/// the server (its SCRAM verifier: the shared test server trusts local
/// logins, so a login would prove nothing) and never copied into
/// `DATABASE_URL`: the file is repaired from the password that works, and
/// when none works the role gets a new one.
#[tokio::test]
async fn up_repairs_a_wrong_password_from_what_the_server_accepts() {
    let prefix = Prefix::new();
    let dir = project(&prefix);
    let dir = dir.path();
    let role = prefix.name("orders_svc");
    silo(dir)
        .args(["--engine", "postgres", "up", "orders"])
        .assert()
        .success();
    let (good, _) = file_passwords(dir);
    assert!(is_role_password(&role, &good).await);

    rewrite_password_field(dir, "hand-edited-wrong");
    let up = json(silo(dir).args(["--engine", "postgres", "up", "orders", "--json"]));
    let changes = up["services"][0]["changes"].to_string();
    assert!(
        changes.contains("kept the one the server accepts"),
        "{up:#}"
    );
    assert_eq!(file_passwords(dir), (good.clone(), good.clone()));

    // Both fields wrong: nothing in the file logs in, so the role gets a
    // new password and the file carries it everywhere.
    let path = dir.join(".silo/secrets/orders.env");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&good, "wrong-everywhere");
    std::fs::write(&path, text).unwrap();
    let up = json(silo(dir).args(["--engine", "postgres", "up", "orders", "--json"]));
    let changes = up["services"][0]["changes"].to_string();
    assert!(changes.contains("does not log in"), "{up:#}");
    let (field, url) = file_passwords(dir);
    assert_eq!(field, url);
    assert_ne!(field, good);
    assert!(is_role_password(&role, &field).await);
    // And now all is well: a third run changes nothing.
    let up = json(silo(dir).args(["--engine", "postgres", "up", "orders", "--json"]));
    assert_eq!(up["services"][0]["outcome"], "unchanged", "{up:#}");
    silo(dir)
        .args(["--engine", "postgres", "destroy", "--yes"])
        .assert()
        .success();
}

/// Another `silo up` finds every store as it should be.
fn assert_up_changes_nothing(dir: &std::path::Path) {
    let again = json(silo(dir).args(["up", "--json"]));
    assert!(
        again["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "unchanged"),
        "{again:#}"
    );
}

/// A project of `n` services on PostgreSQL (set in silo.toml), with
/// prefixed names.
fn postgres_project(prefix: &Prefix, n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut text = "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n".to_string();
    for i in 0..n {
        let s = format!("svc{i}");
        text.push_str(&format!(
            "[services.{s}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(&s),
            prefix.name(&format!("{s}_svc"))
        ));
        let migrations = dir.path().join(format!("services/{s}/migrations"));
        std::fs::create_dir_all(&migrations).unwrap();
        std::fs::write(
            migrations.join("V1__create.sql"),
            "CREATE TABLE rows (id bigint PRIMARY KEY);\n",
        )
        .unwrap();
        std::fs::write(migrations.join("U1__create.sql"), "DROP TABLE rows;\n").unwrap();
    }
    std::fs::write(dir.path().join("silo.toml"), text).unwrap();
    dir
}

/// Databases of `prefix`: (name, open to PUBLIC: allows connections and
/// PUBLIC holds CONNECT).
async fn prefixed_databases(admin: &mut PgConnection, prefix: &Prefix) -> Vec<(String, bool)> {
    sqlx::query_as(
        "SELECT datname::text, datallowconn AND EXISTS (
             SELECT 1 FROM aclexplode(coalesce(datacl, acldefault('d', datdba))) a
             WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT')
         FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
    )
    .bind(&prefix.value)
    .fetch_all(admin)
    .await
    .unwrap()
}

/// Runs `silo ARGS` in `dir` and SIGKILLs it once `ready` says so (polled,
/// bounded) or it ends by itself. Returns whether it was killed.
async fn kill_when(
    dir: &std::path::Path,
    args: &[&str],
    mut ready: impl AsyncFnMut() -> bool,
) -> bool {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("silo"))
        .current_dir(dir)
        .env("SILO_PG_ADMIN_URL", admin_url())
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Polled with a bound of time, not of tries: under load the child may
    // take a while to start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready().await {
            let _ = child.kill();
            child.wait().unwrap();
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    let _ = child.kill();
    child.wait().unwrap();
    panic!("silo {args:?} neither finished nor reached the kill point");
}

/// `silo up` killed with SIGKILL at many points (after 0, 1, 2, ...
/// databases exist) never leaves a database PUBLIC may connect to, and the
/// next `up` finishes whatever it left: no "not created by silo", every
/// store marked and locked down, nothing left over; `destroy` then removes
/// everything.
#[tokio::test]
async fn up_killed_at_any_point_leaves_nothing_open_or_refused() {
    let prefix = Prefix::new();
    let n = 12;
    let dir = postgres_project(&prefix, n);
    let dir = dir.path();
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let mut kills = 0;
    for point in 0..=n {
        // Kill once `point` databases exist and the next one is on its way:
        // between CREATE DATABASE, marking, opening and the schema.
        let killed = kill_when(dir, &["up", "-j", "4"], async || {
            prefixed_databases(&mut admin, &prefix).await.len() > point.min(n - 1)
        })
        .await;
        kills += usize::from(killed);
        let open: Vec<String> = prefixed_databases(&mut admin, &prefix)
            .await
            .into_iter()
            .filter(|(_, open)| *open)
            .map(|(name, _)| name)
            .collect();
        assert!(open.is_empty(), "open to PUBLIC after a kill: {open:?}");
    }
    assert!(kills > 0, "no run was killed");
    let up = json(silo(dir).args(["up", "--json"]));
    assert_eq!(up["summary"]["failed"], 0, "{up:#}");
    let status = json(silo(dir).args(["status", "--json"]));
    for s in status["services"].as_array().unwrap() {
        assert_eq!(s["connects"], true, "{s:#}");
        assert_eq!(s["leftovers"], serde_json::json!([]), "{s:#}");
    }
    assert_up_changes_nothing(dir);
    silo(dir).args(["destroy", "--yes"]).assert().success();
    assert!(prefixed_databases(&mut admin, &prefix).await.is_empty());
    let roles: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)")
            .bind(&prefix.value)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(roles, 0, "every role dropped");
}

/// `silo verify` killed while its scratch database exists leaves it
/// behind: `status` reports it, and `down` removes it before the role
/// (which would otherwise fail: the role owns it).
#[tokio::test]
async fn a_killed_verify_leaves_a_scratch_store_that_status_reports_and_down_removes() {
    let prefix = Prefix::new();
    let dir = postgres_project(&prefix, 1);
    let dir = dir.path();
    silo(dir).args(["up"]).assert().success();
    silo(dir).args(["migrate"]).assert().success();
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let mut killed = false;
    for _ in 0..10 {
        killed = kill_when(dir, &["verify", "svc0"], async || {
            prefixed_databases(&mut admin, &prefix)
                .await
                .iter()
                .any(|(name, _)| name.contains("_scratch_"))
        })
        .await;
        if killed {
            break;
        }
    }
    assert!(killed, "verify never ran long enough to be killed");
    let scratch: Vec<String> = prefixed_databases(&mut admin, &prefix)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.contains("_scratch_"))
        .collect();
    assert!(!scratch.is_empty());
    let status = json(silo(dir).args(["status", "--json"]));
    let leftovers = status["services"][0]["leftovers"].to_string();
    for name in &scratch {
        assert!(leftovers.contains(name.as_str()), "{status:#}");
    }
    let human = silo(dir).arg("status").output().unwrap();
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("left by an interrupted run"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
    silo(dir).args(["down", "svc0", "--yes"]).assert().success();
    assert!(prefixed_databases(&mut admin, &prefix).await.is_empty());
}

/// A service removed from silo.toml leaves its store: `status --all` lists
/// it as an orphan (plain `status` says there are some), and `down NAME
/// --orphan --yes` drops its store, role and credentials. On both engines.
#[tokio::test]
async fn orphans_are_listed_and_dropped_on_request() {
    for engine in ["sqlite", "postgres"] {
        let prefix = Prefix::new();
        let dir = project(&prefix);
        let dir = dir.path();
        silo(dir)
            .args(["--engine", engine, "up"])
            .assert()
            .success();
        // billing leaves the manifest; orders stays.
        let manifest = std::fs::read_to_string(dir.join("silo.toml")).unwrap();
        let kept: String = manifest
            .split("[services.")
            .filter(|part| !part.starts_with("billing]"))
            .collect::<Vec<_>>()
            .join("[services.");
        std::fs::write(dir.join("silo.toml"), kept).unwrap();

        let status = json(silo(dir).args(["--engine", engine, "status", "--all", "--json"]));
        let orphans = status["orphans"].as_array().unwrap();
        assert_eq!(orphans.len(), 1, "{engine}: {status:#}");
        assert_eq!(orphans[0]["service"], "billing");
        assert_eq!(orphans[0]["engine"], engine);
        let out = silo(dir)
            .args(["--engine", engine, "status"])
            .output()
            .unwrap();
        assert!(stderr(&out).contains("1 store(s) of services silo.toml no longer names"));

        for (args, code) in [
            (vec!["down", "billing", "--yes"], 2),
            (vec!["down", "orders", "--orphan", "--yes"], 2),
            (vec!["down", "nobody", "--orphan", "--yes"], 2),
            (vec!["down", "billing", "--orphan"], 2),
        ] {
            let out = silo(dir)
                .args(["--engine", engine])
                .args(&args)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(code),
                "{engine} {args:?}: {}",
                stderr(&out)
            );
        }
        assert!(
            dir.join(".silo/secrets/billing.env").exists(),
            "nothing dropped yet"
        );
        if engine == "postgres" {
            assert!(database_exists(&prefix.name("billing")).await);
        }

        silo(dir)
            .args(["--engine", engine, "down", "billing", "--orphan", "--yes"])
            .assert()
            .success();
        assert!(!dir.join(".silo/secrets/billing.env").exists());
        assert!(!dir.join(".silo/billing").exists());
        if engine == "postgres" {
            assert!(!database_exists(&prefix.name("billing")).await);
        }
        let status = json(silo(dir).args(["--engine", engine, "status", "--all", "--json"]));
        assert_eq!(status["orphans"], serde_json::json!([]), "{status:#}");
        assert_eq!(status["services"][0]["connects"], true, "orders untouched");
        silo(dir)
            .args(["--engine", engine, "destroy", "--yes"])
            .assert()
            .success();
    }
}

/// `silo up` on SQLite killed at many points (after 0, 1, 2, ... store
/// folders exist) leaves nothing the next `up` refuses: every store ends
/// up marked as its service's, no half-made file is left, and `destroy`
/// removes everything.
#[tokio::test]
async fn sqlite_up_killed_at_any_point_is_finished_by_the_next_run() {
    let prefix = Prefix::new();
    let n = 12;
    let dir = postgres_project(&prefix, n);
    let dir = dir.path();
    let manifest = std::fs::read_to_string(dir.join("silo.toml"))
        .unwrap()
        .replace("engine = \"postgres\"", "engine = \"sqlite\"");
    std::fs::write(dir.join("silo.toml"), manifest).unwrap();
    let data = dir.join(".silo");
    let stores = |data: &std::path::Path| -> usize {
        std::fs::read_dir(data).map_or(0, |d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("svc"))
                .count()
        })
    };
    let mut kills = 0;
    for point in 0..=n {
        let killed = kill_when(dir, &["up", "-j", "2"], async || {
            stores(&data) > point.min(n - 1)
        })
        .await;
        kills += usize::from(killed);
    }
    assert!(kills > 0, "no run was killed");
    let up = json(silo(dir).args(["up", "--json"]));
    assert_eq!(up["summary"]["failed"], 0, "{up:#}");
    let status = json(silo(dir).args(["status", "--json"]));
    for s in status["services"].as_array().unwrap() {
        assert_eq!(s["connects"], true, "{s:#}");
        assert_eq!(s["leftovers"], serde_json::json!([]), "{s:#}");
    }
    silo(dir).args(["destroy", "--yes"]).assert().success();
    assert_eq!(stores(&data), 0, "every store folder removed");
}

/// Markers name the project: a project copied from another (its
/// credentials files included) cannot drop the other's store as an orphan,
/// and two projects naming the same database on one server cannot share it.
#[tokio::test]
async fn another_projects_store_is_never_taken_or_dropped() {
    let prefix = Prefix::new();
    let first = project(&prefix);
    let manifest = std::fs::read_to_string(first.path().join("silo.toml")).unwrap();
    silo(first.path())
        .args(["--engine", "postgres", "up"])
        .assert()
        .success();

    // A copy of the project under another name, without `billing`.
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .args(["-a", &format!("{}/.", first.path().display())])
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let kept: String = manifest
        .replace("name = \"t\"", "name = \"copy\"")
        .split("[services.")
        .filter(|part| !part.starts_with("billing]"))
        .collect::<Vec<_>>()
        .join("[services.");
    std::fs::write(copy.path().join("silo.toml"), kept).unwrap();
    let out = silo(copy.path())
        .args([
            "--engine", "postgres", "down", "billing", "--orphan", "--yes",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("belongs to silo project `t`, not `copy`"),
        "{}",
        stderr(&out)
    );
    assert!(
        database_exists(&prefix.name("billing")).await,
        "not dropped"
    );

    // The copy's `orders` names the first project's database: `up` refuses
    // to take it over.
    let up = json(silo(copy.path()).args(["--engine", "postgres", "up", "orders", "--json"]));
    assert_eq!(up["summary"]["failed"], 1, "{up:#}");
    assert!(
        up["services"][0]
            .to_string()
            .contains("belongs to silo project `t`"),
        "{up:#}"
    );
    silo(first.path())
        .args(["--engine", "postgres", "status"])
        .assert()
        .success();
    silo(first.path())
        .args(["--engine", "postgres", "destroy", "--yes"])
        .assert()
        .success();
}

/// Two `silo up` at once on one project take turns per store (an advisory
/// lock on the server) instead of failing on each other's catalog changes:
/// both succeed, and a third run finds nothing to change.
#[tokio::test]
async fn two_ups_at_once_take_turns() {
    let prefix = Prefix::new();
    let dir = postgres_project(&prefix, 8);
    let dir = dir.path();
    let bin = assert_cmd::cargo::cargo_bin("silo");
    let spawn = || {
        std::process::Command::new(&bin)
            .current_dir(dir)
            .env("SILO_PG_ADMIN_URL", admin_url())
            .env_remove("SILO_ENGINE")
            .env_remove("SILO_DATA_DIR")
            .args(["up", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_up_changes_nothing(dir);
    silo(dir).args(["destroy", "--yes"]).assert().success();
}

/// A service whose own login the server refuses (a wrong password in its
/// credentials file, on a server that checks passwords) is a failed
/// operation with the repair to make (exit 1), not an unreachable server
/// (2); `silo up` repairs it and `migrate` then runs.
#[test]
fn a_refused_service_login_is_exit_1_with_the_repair() {
    let server = silo_testkit::TempServer::start();
    let prefix = Prefix::new();
    let dir = project(&prefix);
    let dir = dir.path();
    let run = |args: &[&str]| {
        let mut c = silo(dir);
        c.env("SILO_PG_ADMIN_URL", server.admin_url())
            .args(["--engine", "postgres"])
            .args(args);
        c
    };
    run(&["up", "orders"]).assert().success();
    let path = dir.join(".silo/secrets/orders.env");
    let (good, _) = file_passwords(dir);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&good, "wrong-password");
    std::fs::write(&path, text).unwrap();
    for args in [vec!["migrate", "orders"], vec!["info", "orders"]] {
        let out = run(&args).output().unwrap();
        let said = format!("{} {}", String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.contains("refused service `orders`'s own login"),
            "{said}"
        );
        assert!(said.contains("silo up orders"), "{said}");
        assert!(!said.contains("wrong-password"), "{said}");
    }
    run(&["up", "orders"]).assert().success();
    run(&["migrate", "orders"]).assert().success();
}

/// A store a killed run left marked but closed to connections is reported
/// by `status` and opened by the next `up`.
#[tokio::test]
async fn a_store_left_closed_is_reported_and_opened() {
    let prefix = Prefix::new();
    let dir = postgres_project(&prefix, 1);
    let dir = dir.path();
    silo(dir).arg("up").assert().success();
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
        prefix.name("svc0")
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let status = json(silo(dir).args(["status", "--json"]));
    assert!(
        status["services"][0]["leftovers"]
            .to_string()
            .contains("left closed to connections"),
        "{status:#}"
    );
    let up = json(silo(dir).args(["up", "--json"]));
    assert!(
        up["services"][0]["changes"]
            .to_string()
            .contains("opened database"),
        "{up:#}"
    );
    let status = json(silo(dir).args(["status", "--json"]));
    assert_eq!(status["services"][0]["connects"], true, "{status:#}");
    assert_eq!(status["services"][0]["leftovers"], serde_json::json!([]));
    silo(dir).args(["destroy", "--yes"]).assert().success();
}

/// `up` creates the event tables of a service that publishes, says so the
/// first time only, and leaves a service that neither publishes nor
/// consumes alone; `schema dump` does not show them.
#[tokio::test]
async fn up_creates_the_event_tables_once() {
    for engine in ["sqlite", "postgres"] {
        let prefix = Prefix::new();
        let dir = project(&prefix);
        let dir = dir.path();
        let manifest = std::fs::read_to_string(dir.join("silo.toml"))
            .unwrap()
            .replace(
                "[services.orders]\n",
                "[services.orders]\npublishes = [\"order.placed\"]\n",
            );
        std::fs::write(dir.join("silo.toml"), manifest).unwrap();

        let first = json(silo(dir).args(["--engine", engine, "up", "--json"]));
        let changes = |doc: &Value, service: &str| {
            doc["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["service"] == service)
                .unwrap()["changes"]
                .to_string()
        };
        assert!(
            changes(&first, "orders").contains("created the event tables"),
            "{engine}: {first}"
        );
        assert!(
            !changes(&first, "billing").contains("event tables"),
            "{engine}: {first}"
        );

        let second = json(silo(dir).args(["--engine", engine, "up", "--json"]));
        assert_eq!(second["summary"]["unchanged"], 2, "{engine}: {second}");
        assert!(
            !second.to_string().contains("event tables"),
            "{engine}: {second}"
        );

        let out = silo(dir)
            .args(["--engine", engine, "migrate"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{engine}: {}", stderr(&out));
        let dump = json(silo(dir).args(["--engine", engine, "schema", "dump", "orders", "--json"]));
        let text = dump["schema"].to_string();
        assert!(text.contains("orders_rows"), "{engine}: {text}");
        assert!(!text.contains("silo_"), "{engine}: {text}");
    }
}

/// A credentials file silo cannot read is never overwritten: `up` refuses
/// it with what to do, and once it is moved away `up` writes a new one.
/// `status` with the server down says why on stderr, with the hint.
#[test]
fn an_unreadable_credentials_file_is_refused_with_the_way_out() {
    let prefix = Prefix::new();
    let dir = postgres_project(&prefix, 1);
    let dir = dir.path();
    silo(dir).arg("up").assert().success();
    let record = dir.join(".silo/secrets/svc0.env");
    std::fs::write(&record, "garbage\n").unwrap();
    let out = silo(dir).arg("up").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(said.contains("is not a silo credentials file"), "{said}");
    assert!(said.contains("move it away"), "{said}");
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "garbage\n");
    std::fs::rename(&record, dir.join("moved.env")).unwrap();
    silo(dir).arg("up").assert().success();
    silo(dir).arg("status").assert().success();

    let out = silo(dir)
        .env(
            "SILO_PG_ADMIN_URL",
            "postgres://postgres@127.0.0.1:1/postgres",
        )
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(said.contains("svc0: cannot connect"), "{said}");
    assert!(said.contains("check that the server is running"), "{said}");
    silo(dir).args(["destroy", "--yes"]).assert().success();
}
