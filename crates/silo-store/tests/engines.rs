//! One story per engine behaviour, run on SQLite and on the real PostgreSQL
//! server (and, where passwords matter, on a scram-sha-256 server of the
//! test's own).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{Outcome, ProvisionOptions, SecretsDir, StoreError, Stores, StoresConfig};
use silo_testkit::{Prefix, TempServer, admin_url};
use sqlx::{Connection, PgConnection};

/// A manifest of `names` on `engine`, with every database and role
/// prefixed so tests on the shared server never collide.
fn manifest(dir: &Path, prefix: &Prefix, engine: &str, names: &[&str]) -> Manifest {
    let mut text = format!("[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n");
    for name in names {
        text.push_str(&format!(
            "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(name),
            prefix.name(&format!("{name}_svc"))
        ));
    }
    Manifest::from_str(&text, &dir.join("silo.toml"), &Overrides::default()).unwrap()
}

fn stores(m: &Manifest, admin: &str) -> Stores {
    Stores::new(StoresConfig {
        project: None,
        data_dir: m.data_dir.clone(),
        admin_url: Some(admin.to_string()),
        concurrency: 4,
    })
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// up twice: created, then unchanged; the service's own credentials
/// connect; drop removes everything.
async fn lifecycle(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let m = manifest(dir.path(), &prefix, engine, &["orders"]);
    let stores = stores(&m, &admin_url());
    let svc = &m.services[0];
    let e = stores.engine(svc).unwrap();

    let first = e.provision(svc, ProvisionOptions::default()).await.unwrap();
    assert_eq!(first.outcome, Outcome::Created, "{first:?}");
    let second = e.provision(svc, ProvisionOptions::default()).await.unwrap();
    assert_eq!(second.outcome, Outcome::Unchanged, "{second:?}");
    assert!(second.changes.is_empty());

    let status = e.status(svc).await.unwrap();
    assert!(status.exists && status.connects, "{status:?}");
    assert!(status.size_bytes.unwrap() > 0);

    let secrets_dir = SecretsDir::new(&m.data_dir);
    let secrets = secrets_dir.path("orders");
    assert_eq!(mode(&secrets), 0o600);
    assert_eq!(mode(secrets_dir.dir()), 0o700);
    let text = std::fs::read_to_string(&secrets).unwrap();
    assert!(text.contains("DATABASE_URL="));

    let dropped = e.drop_store(svc).await.unwrap();
    assert!(!dropped.removed.is_empty());
    assert!(!secrets.exists());
    let status = e.status(svc).await.unwrap();
    assert!(!status.exists);
}

#[tokio::test]
async fn lifecycle_sqlite() {
    lifecycle("sqlite").await;
}

#[tokio::test]
async fn lifecycle_postgres() {
    lifecycle("postgres").await;
}

#[tokio::test]
async fn sqlite_files_are_private_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let m = manifest(dir.path(), &prefix, "sqlite", &["orders", "billing"]);
    let stores = stores(&m, &admin_url());
    for svc in &m.services {
        stores
            .engine(svc)
            .unwrap()
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
    }
    let orders = &m.services[0];
    let file = orders.sqlite_path(&m.data_dir);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    assert_eq!(mode(&m.data_dir), 0o700);
    let mut conn = silo_store::sqlite::open(&file).await.unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    drop(conn);

    // A loosened file is tightened again, and that is a change.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let again = stores
        .engine(orders)
        .unwrap()
        .provision(orders, ProvisionOptions::default())
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Updated);
    assert_eq!(mode(&file), 0o600);

    // Dropping one service leaves the other's file alone.
    stores
        .engine(orders)
        .unwrap()
        .drop_store(orders)
        .await
        .unwrap();
    assert!(!file.exists());
    assert!(m.services[1].sqlite_path(&m.data_dir).exists());
}

#[tokio::test]
async fn sqlite_foreign_file_is_not_adopted_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let m = manifest(dir.path(), &prefix, "sqlite", &["orders"]);
    let svc = &m.services[0];
    let file = svc.sqlite_path(&m.data_dir);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"").unwrap();
    let stores = stores(&m, &admin_url());
    let e = stores.engine(svc).unwrap();
    let err = e
        .provision(svc, ProvisionOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotManaged { .. }), "{err}");
    let err = e.drop_store(svc).await.unwrap_err();
    assert!(matches!(err, StoreError::NotManaged { .. }), "{err}");
    assert!(file.exists());
    let adopted = e
        .provision(svc, ProvisionOptions { adopt: true })
        .await
        .unwrap();
    assert_eq!(adopted.outcome, Outcome::Updated);
}

async fn exec(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_unmarked_database_is_not_adopted_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let m = manifest(dir.path(), &prefix, "postgres", &["orders"]);
    let svc = &m.services[0];
    exec(
        &admin_url(),
        &format!("CREATE DATABASE \"{}\"", svc.database),
    )
    .await;

    let stores = stores(&m, &admin_url());
    let e = stores.engine(svc).unwrap();
    let err = e
        .provision(svc, ProvisionOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotManaged { kind: "database", name } if *name == svc.database),
        "{err}"
    );
    // Refused before anything was made: no role either.
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let roles: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname = $1")
        .bind(&svc.role)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(roles, 0);

    let err = e.drop_store(svc).await.unwrap_err();
    assert!(matches!(err, StoreError::NotManaged { .. }), "{err}");
    let exists: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&svc.database)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(exists, 1, "an unmarked database must survive drop");

    // --adopt takes it over: owner, marker, privileges.
    let adopted = e
        .provision(svc, ProvisionOptions { adopt: true })
        .await
        .unwrap();
    assert_eq!(adopted.outcome, Outcome::Updated, "{adopted:?}");
    let (owner, comment): (String, Option<String>) = sqlx::query_as(
        "SELECT pg_get_userbyid(datdba)::text, shobj_description(oid, 'pg_database')
         FROM pg_database WHERE datname = $1",
    )
    .bind(&svc.database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(owner, svc.role);
    assert_eq!(comment.as_deref(), Some("managed by silo: service=orders"));
    assert!(e.status(svc).await.unwrap().connects);
}

#[tokio::test]
async fn postgres_database_of_another_service_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let m = manifest(dir.path(), &prefix, "postgres", &["orders"]);
    let svc = &m.services[0];
    exec(
        &admin_url(),
        &format!("CREATE DATABASE \"{}\"", svc.database),
    )
    .await;
    exec(
        &admin_url(),
        &format!(
            "COMMENT ON DATABASE \"{}\" IS 'managed by silo: service=billing'",
            svc.database
        ),
    )
    .await;
    let stores = stores(&m, &admin_url());
    let err = stores
        .engine(svc)
        .unwrap()
        .provision(svc, ProvisionOptions { adopt: true })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ManagedByOther { owner, .. } if owner == "billing"),
        "{err}"
    );
}

#[tokio::test]
async fn postgres_drift_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let m = manifest(dir.path(), &prefix, "postgres", &["orders"]);
    let svc = &m.services[0];
    let stores = stores(&m, &admin_url());
    let e = stores.engine(svc).unwrap();
    e.provision(svc, ProvisionOptions::default()).await.unwrap();
    exec(
        &admin_url(),
        &format!(
            "GRANT CONNECT ON DATABASE \"{db}\" TO PUBLIC; ALTER ROLE \"{role}\" CREATEDB",
            db = svc.database,
            role = svc.role
        ),
    )
    .await;
    let fixed = e.provision(svc, ProvisionOptions::default()).await.unwrap();
    assert_eq!(fixed.outcome, Outcome::Updated);
    assert_eq!(fixed.changes.len(), 2, "{:?}", fixed.changes);
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let (public, createdb): (bool, bool) = sqlx::query_as(
        "SELECT has_database_privilege('public', $1, 'CONNECT'),
                (SELECT rolcreatedb FROM pg_roles WHERE rolname = $2)",
    )
    .bind(&svc.database)
    .bind(&svc.role)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(!public && !createdb);
    let again = e.provision(svc, ProvisionOptions::default()).await.unwrap();
    assert_eq!(again.outcome, Outcome::Unchanged);
}

fn url_with_password(creds: &silo_store::Credentials, password: &str) -> String {
    format!(
        "postgres://{}:{password}@{}:{}/{}",
        creds.user.as_deref().unwrap(),
        creds.host.as_deref().unwrap(),
        creds.port.unwrap(),
        creds.database
    )
}

/// On a server that checks passwords: the generated password logs in, a
/// wrong one is refused, and rotation retires the old one.
#[tokio::test]
async fn postgres_rotation_on_a_password_checking_server() {
    let server = TempServer::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let m = manifest(dir.path(), &prefix, "postgres", &["orders"]);
    let svc = &m.services[0];
    let stores = stores(&m, &server.admin_url());
    let e = stores.engine(svc).unwrap();
    e.provision(svc, ProvisionOptions::default()).await.unwrap();

    let old = e.credentials(svc).unwrap();
    let old_url = old.url();
    PgConnection::connect(&old_url)
        .await
        .expect("generated password works");
    let wrong = PgConnection::connect(&url_with_password(&old, "wrong")).await;
    assert_sqlstate(wrong, "28P01");

    e.rotate(svc).await.unwrap();
    let new = e.credentials(svc).unwrap();
    assert_ne!(new.password, old.password);
    PgConnection::connect(&new.url())
        .await
        .expect("new password works");
    assert_sqlstate(PgConnection::connect(&old_url).await, "28P01");
    assert!(e.status(svc).await.unwrap().connects);
}

fn assert_sqlstate<T: std::fmt::Debug>(result: Result<T, sqlx::Error>, code: &str) {
    match result {
        Err(sqlx::Error::Database(db)) => assert_eq!(db.code().as_deref(), Some(code), "{db}"),
        other => panic!("expected SQLSTATE {code}, got {other:?}"),
    }
}

/// `instance` isolation: one service on a server of its own, one on the
/// shared server; each service's credentials work only on its own server.
#[tokio::test]
async fn instance_isolation_keeps_services_on_their_own_servers() {
    let server = TempServer::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let var = format!("SILO_TEST_{}URL", prefix.value.to_uppercase());
    // SAFETY: the variable name is unique to this test.
    unsafe { std::env::set_var(&var, server.admin_url()) };
    let text = format!(
        "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n\
         [services.ledger]\nisolation = \"instance\"\nurl_env = \"{var}\"\ndatabase = \"{}\"\nrole = \"{}\"\n\
         [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\n",
        prefix.name("ledger"),
        prefix.name("ledger_svc"),
        prefix.name("orders"),
        prefix.name("orders_svc"),
    );
    let m =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = stores(&m, &admin_url());
    let (ledger, orders): (&Service, &Service) = (&m.services[0], &m.services[1]);
    for svc in [ledger, orders] {
        let e = stores.engine(svc).unwrap();
        e.provision(svc, ProvisionOptions::default()).await.unwrap();
        assert!(e.status(svc).await.unwrap().connects);
    }
    let ledger_creds = stores.engine(ledger).unwrap().credentials(ledger).unwrap();
    assert_eq!(ledger_creds.port, Some(server.port));
    let orders_creds = stores.engine(orders).unwrap().credentials(orders).unwrap();
    assert_eq!(orders_creds.port, Some(5432));

    // The ledger role does not exist on the shared server, and the orders
    // role does not exist on the ledger's server.
    let mut shared = PgConnection::connect(&admin_url()).await.unwrap();
    let mut own = PgConnection::connect(&server.admin_url()).await.unwrap();
    let count = "SELECT count(*) FROM pg_roles WHERE rolname = $1";
    let n: i64 = sqlx::query_scalar(count)
        .bind(&ledger.role)
        .fetch_one(&mut shared)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = sqlx::query_scalar(count)
        .bind(&orders.role)
        .fetch_one(&mut own)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // The orders credentials pointed at the ledger's server are refused
    // (its role is unknown there: password authentication fails).
    let mut crossed = orders_creds.clone();
    crossed.port = Some(server.port);
    crossed.database = ledger.database.clone();
    assert_sqlstate(PgConnection::connect(&crossed.url()).await, "28P01");

    for svc in [ledger, orders] {
        stores.engine(svc).unwrap().drop_store(svc).await.unwrap();
    }
}

/// `connect_as` on SQLite refuses whatever is at the store's path but the
/// service's own store, and leaves it as it was: a file that is not a
/// database, an empty one, a foreign database (its journal mode too: only
/// the service's own store is put in WAL mode), another service's store;
/// a missing file says so.
#[tokio::test]
async fn sqlite_connect_as_refuses_what_is_not_the_services_store() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let m = manifest(dir.path(), &prefix, "sqlite", &["orders", "billing"]);
    let stores = stores(&m, &admin_url());
    let (orders, billing) = (&m.services[0], &m.services[1]);
    for svc in [orders, billing] {
        stores
            .engine(svc)
            .unwrap()
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
    }
    let file = orders.sqlite_path(&m.data_dir);
    let own = std::fs::read(&file).unwrap();
    fn refused(found: Option<&str>) -> impl Fn(Result<silo_store::ServiceConnection, StoreError>) {
        move |r| match r {
            Err(StoreError::NotServiceStore { found: f, .. }) => assert_eq!(f.as_deref(), found),
            other => panic!("{other:?}"),
        }
    }

    std::fs::write(
        &file,
        b"not a database at all, but long enough to be read as one",
    )
    .unwrap();
    refused(None)(stores.connect_as(orders, "test").await);
    std::fs::write(&file, b"").unwrap();
    refused(None)(stores.connect_as(orders, "test").await);
    assert_eq!(std::fs::read(&file).unwrap(), b"", "left as it was");

    std::fs::remove_file(&file).unwrap();
    {
        let mut foreign =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", file.display()))
                .await
                .unwrap();
        sqlx::raw_sql("PRAGMA journal_mode = DELETE; CREATE TABLE t (x)")
            .execute(&mut foreign)
            .await
            .unwrap();
        foreign.close().await.unwrap();
    }
    refused(None)(stores.connect_as(orders, "test").await);
    let mut foreign = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut foreign)
        .await
        .unwrap();
    foreign.close().await.unwrap();
    assert_eq!(mode, "delete", "a foreign file keeps its journal mode");

    std::fs::copy(billing.sqlite_path(&m.data_dir), &file).unwrap();
    refused(Some("billing"))(stores.connect_as(orders, "test").await);

    std::fs::remove_file(&file).unwrap();
    let err = stores.connect_as(orders, "test").await.unwrap_err();
    assert!(matches!(err, StoreError::OpenFile { .. }), "{err}");

    std::fs::write(&file, own).unwrap();
    stores
        .connect_as(orders, "test")
        .await
        .unwrap()
        .close()
        .await;
}
