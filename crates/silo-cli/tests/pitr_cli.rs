//! `method = "pgbackrest"` through the real binary: `silo backup setup`
//! prints the server's archiving lines, `silo backup` and `silo backup
//! list` run and list pgBackRest backups, and `silo restore --to-time
//! --into` brings back a server as it was at a time, against a throwaway
//! server archiving into a repository in a temporary folder.
//!
//! Without pgBackRest installed the test says why and skips, except under
//! CI (`CI` set), where it fails.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use silo_testkit::TempServer;
use sqlx::{Connection, PgConnection};

mod common;
use common::{json, silo};

const BOUND: Duration = Duration::from_secs(60);

// A test's own note on stderr, not the CLI's output.
#[allow(clippy::disallowed_macros)]
fn pgbackrest_or_skip(test: &str) -> bool {
    let found = std::process::Command::new("pgbackrest")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: pgbackrest is not installed (apt-get install pgbackrest)");
        }
        eprintln!("skipping {test}: pgbackrest is not installed (apt-get install pgbackrest)");
    }
    found
}

fn manifest(dir: &Path, pg_data: &Path, repository: &Path) {
    std::fs::write(
        dir.join("silo.toml"),
        format!(
            "[project]\nname = \"t\"\n\
             [services.battles]\nengine = \"postgres\"\nisolation = \"instance\"\nurl_env = \"BATTLES_PG_URL\"\n\
             [services.battles.backup]\nmethod = \"pgbackrest\"\npg_data = \"{}\"\nrepository = \"{}\"\nkeep = 2\n\
             [services.orders]\nengine = \"sqlite\"\n",
            pg_data.display(),
            repository.display()
        ),
    )
    .unwrap();
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_backup_list_and_restore_to_a_time() {
    let test = "setup_backup_list_and_restore_to_a_time";
    if !pgbackrest_or_skip(test) {
        return;
    }
    let project = tempfile::tempdir().unwrap();
    let repository = tempfile::tempdir().unwrap();
    let dir = project.path();

    // The operator's way: `silo backup setup` prints the two lines, they
    // go into the server's postgresql.conf before it starts.
    let server = TempServer::start_configured(|pg_data| {
        manifest(dir, pg_data, repository.path());
        let mut setup = silo(dir);
        setup.args(["backup", "setup", "battles", "--json"]);
        let doc = json(&mut setup);
        assert_eq!(doc["archiving"]["ok"], false, "{doc}");
        assert_eq!(doc["server_settings"]["archive_mode"], "on", "{doc}");
        let command = doc["server_settings"]["archive_command"].as_str().unwrap();
        assert!(command.contains("--config="), "{command}");
        format!("archive_mode = on\narchive_command = '{command}'\n")
    });
    let url = server.admin_url();
    let silo = |args: &[&str]| {
        let mut c = silo(dir);
        c.args(args).env("BATTLES_PG_URL", &url);
        c
    };
    let out = silo(&["backup", "setup", "battles"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("checked: the stanza exists"));

    let mut conn = PgConnection::connect(&url).await.unwrap();
    exec(
        &mut conn,
        "CREATE TABLE fights (id int PRIMARY KEY, batch text NOT NULL);\
         INSERT INTO fights SELECT g, 'A' FROM generate_series(1, 10) g",
    )
    .await;
    let doc = json(&mut silo(&["backup", "battles", "--json"]));
    let row = &doc["backups"][0];
    assert_eq!(row["ok"], true, "{doc}");
    assert_eq!(row["method"], "pgbackrest");
    assert_eq!(row["backup"]["kind"], "full");
    let label = row["backup"]["label"].as_str().unwrap().to_string();

    exec(&mut conn, "INSERT INTO fights VALUES (11, 'B')").await;
    let target: String = sqlx::query_scalar(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    exec(&mut conn, "INSERT INTO fights VALUES (12, 'C')").await;
    let segment: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let archived: Option<String> =
            sqlx::query_scalar("SELECT last_archived_wal FROM pg_stat_archiver")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if archived.is_some_and(|a| a >= segment) {
            break;
        }
        assert!(started.elapsed() < BOUND, "{segment} was not archived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.close().await.unwrap();

    // Listed beside the SQLite service's (none), in one document.
    let doc = json(&mut silo(&["backup", "list", "--json"]));
    let services: Vec<&Value> = doc["services"].as_array().unwrap().iter().collect();
    let battles = services
        .iter()
        .find(|s| s["service"] == "battles")
        .unwrap_or_else(|| panic!("{doc}"));
    assert_eq!(battles["backups"][0]["label"], label.as_str(), "{doc}");
    assert!(services.iter().any(|s| s["service"] == "orders"), "{doc}");

    // Over the running server's data directory: refused.
    let out = silo(&[
        "restore",
        "battles",
        "--to-time",
        &target,
        "--into",
        &server.data_dir().display().to_string(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is running on"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The dump drill does not take pgBackRest services.
    let out = silo(&["backup", "verify", "battles"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Without a time, and a time without its offset: usage errors.
    let out = silo(&["restore", "battles", "--into", "/tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = silo(&["restore", "orders", "--to-time", &target])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = silo(&[
        "restore",
        "battles",
        "--to-time",
        "2026-11-28 05:10:00",
        "--into",
        "/tmp/x",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let copy_dir = TempServer::folder();
    let into = copy_dir.path().join("data");
    let doc = json(&mut silo(&[
        "restore",
        "battles",
        "--to-time",
        &target,
        "--into",
        &into.display().to_string(),
        "--json",
    ]));
    assert_eq!(doc["restored"]["backup"], label.as_str(), "{doc}");

    let copy = TempServer::start_in(copy_dir, server.password.clone());
    let mut conn = PgConnection::connect(&copy.admin_url()).await.unwrap();
    let started = Instant::now();
    loop {
        let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if !recovering {
            break;
        }
        assert!(started.elapsed() < BOUND, "no promotion: {}", copy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<i32> = sqlx::query_scalar("SELECT id FROM fights ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, (1..=11).collect::<Vec<_>>(), "A and B, not C");
    conn.close().await.unwrap();
}
