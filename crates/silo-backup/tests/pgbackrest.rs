//! `method = "pgbackrest"`: point-in-time recovery of a service's own
//! server with the real `pgbackrest` binary, against throwaway servers
//! that archive their WAL into a repository in a temporary folder.
//!
//! Without pgBackRest installed the tests say why and skip, except under
//! CI (`CI` set), where they fail: `scripts/ensure-prereqs.sh` installs it.

use std::path::Path;
use std::time::Duration;

use silo_backup::BackupError;
use silo_backup::pgbackrest::{Pgbackrest, RestoreRequest, Retention, ServerAccess, wait_archived};
use silo_manifest::PgbackrestSettings;
use silo_testkit::TempServer;
use sqlx::{Connection, PgConnection};

fn pgbackrest_or_skip(test: &str) -> bool {
    let found = std::process::Command::new(
        std::env::var("SILO_PGBACKREST").unwrap_or_else(|_| "pgbackrest".into()),
    )
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

/// The stanza of a server whose data folder is `pg_data`, its repository
/// in `repository`.
fn stanza(repository: &Path, pg_data: &Path) -> Pgbackrest {
    Pgbackrest::new(
        &PgbackrestSettings {
            repository: repository.to_path_buf(),
            pg_data: pg_data.to_path_buf(),
            stanza: "battles".into(),
        },
        Retention::Count(2),
    )
    .unwrap()
}

/// A throwaway server archiving into the stanza of `repository`: the two
/// lines an operator adds, as [`Pgbackrest::server_settings_text`] gives
/// them.
fn archiving_server(repository: &Path) -> (TempServer, Pgbackrest) {
    let mut pgbackrest = None;
    let server = TempServer::start_configured(|data| {
        // The data folder exists (initdb made it): the stanza can be
        // made for it, and its settings written in postgresql.conf.
        let p = stanza(repository, data);
        let settings = p.server_settings_text();
        pgbackrest = Some(p);
        settings
    });
    (server, pgbackrest.unwrap())
}

async fn connect(server: &TempServer) -> PgConnection {
    PgConnection::connect(&server.admin_url()).await.unwrap()
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_to_a_time_brings_back_what_was_committed_before_it_and_nothing_after() {
    let test = "restore_to_a_time_brings_back_what_was_committed_before_it_and_nothing_after";
    if !pgbackrest_or_skip(test) {
        return;
    }
    let repository = tempfile::Builder::new()
        .prefix("silo-pgbackrest-")
        .tempdir()
        .unwrap();
    let (server, pgbackrest) = archiving_server(repository.path());

    // What silo reads from the service's URL: the socket, and that the
    // server runs on the manifest's pg_data.
    let (access, facts) = ServerAccess::discover(&server.admin_url(), &server.data_dir())
        .await
        .unwrap();
    assert_eq!(facts.archive_mode, "on");
    assert_eq!(facts.archive_command, pgbackrest.archive_command());
    assert_eq!(access.port, server.port);

    let config = pgbackrest.config_path();
    pgbackrest.stanza_create(&access).await.unwrap();
    pgbackrest.check(&access).await.unwrap();
    let meta = std::fs::metadata(&config).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains(&server.password),
        "the password is not in the config file"
    );

    let mut conn = connect(&server).await;
    exec(
        &mut conn,
        "CREATE TABLE fights (id int PRIMARY KEY, batch text NOT NULL);\
         INSERT INTO fights SELECT g, 'A' FROM generate_series(1, 100) g",
    )
    .await;

    let full = pgbackrest.backup(&access, None).await.unwrap();
    assert_eq!(full.kind, "full", "the first backup is a full one");

    exec(
        &mut conn,
        "INSERT INTO fights SELECT g, 'B' FROM generate_series(101, 150) g",
    )
    .await;
    // T from the server's own clock, after B committed and before C.
    let target: String = sqlx::query_scalar(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    exec(
        &mut conn,
        "INSERT INTO fights SELECT g, 'C' FROM generate_series(151, 170) g",
    )
    .await;
    let segment: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    wait_archived(&mut conn, &segment, Duration::from_secs(60))
        .await
        .unwrap();
    conn.close().await.unwrap();

    let listed = pgbackrest.info().await.unwrap();
    assert_eq!(listed.backups, vec![full.clone()]);

    // Into a new data folder, as the server's OS user.
    let copy_dir = TempServer::folder();
    let restored = pgbackrest
        .restore(&RestoreRequest {
            target_time: &target,
            into: &copy_dir.path().join("data"),
            replace: false,
        })
        .await
        .unwrap();
    assert_eq!(restored.backup, full.label);
    assert!(
        !restored.archives,
        "a copy beside the live server does not archive"
    );

    let copy = TempServer::start_in(copy_dir, server.password.clone());
    let mut conn = connect(&copy).await;
    // The copy replays up to T, then promotes itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let recovering: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if !recovering {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the restored copy did not promote: {}",
            copy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let batches: Vec<(String, i64)> =
        sqlx::query_as("SELECT batch, count(*) FROM fights GROUP BY batch ORDER BY batch")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        batches,
        vec![("A".to_string(), 100), ("B".to_string(), 50)],
        "rows A and B are back, C (after T) is not"
    );
    let archive_mode: String = sqlx::query_scalar("SHOW archive_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(archive_mode, "off");
    conn.close().await.unwrap();
    // Both servers stop when `copy` and `server` drop, on a panic too.
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_over_a_running_servers_data_directory_is_refused() {
    let test = "a_restore_over_a_running_servers_data_directory_is_refused";
    if !pgbackrest_or_skip(test) {
        return;
    }
    let repository = tempfile::tempdir().unwrap();
    let (server, pgbackrest) = archiving_server(repository.path());
    let before = std::fs::read_dir(server.data_dir()).unwrap().count();

    for replace in [false, true] {
        let err = pgbackrest
            .restore(&RestoreRequest {
                target_time: "2026-11-28 05:10:00+00",
                into: &server.data_dir(),
                replace,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BackupError::RestoreRefused { reason, .. } if reason.contains("is running on")),
            "replace = {replace}: {err:?}"
        );
    }
    // Nothing was touched, and the server still answers.
    assert_eq!(
        std::fs::read_dir(server.data_dir()).unwrap().count(),
        before
    );
    let mut conn = connect(&server).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);

    // A folder with files in it is not a restore target without replace.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("keep.txt"), "mine").unwrap();
    let err = pgbackrest
        .restore(&RestoreRequest {
            target_time: "2026-11-28 05:10:00+00",
            into: other.path(),
            replace: false,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackupError::RestoreRefused { reason, .. } if reason.contains("is not empty")),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read_to_string(other.path().join("keep.txt")).unwrap(),
        "mine"
    );
}
