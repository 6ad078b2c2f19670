//! PostgreSQL backups on the real server: a store with data, indexes,
//! constraints, sequences, comments, enum types, migration history and
//! event tables goes through `pg_dump` as its own role and comes back
//! through `pg_restore` into a fresh store made the silo way, whole and
//! consistent; the swap for `--replace`; what the backup needs (no admin
//! URL) and how a wrong password fails.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use silo_backup::postgres::{self, DUMP_FILE, GLOBALS_FILE, SCHEMA_FILE};
use silo_backup::{BackupError, BackupId, BackupMeta, Dump};
use silo_manifest::{Engine, Manifest, Overrides, Service};
use silo_store::{
    Credentials, ProvisionOptions, RestoreInto, StoreError, Stores, StoresConfig, SwapOptions,
};
use silo_testkit::{Prefix, TempServer, admin_url};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

const V1: &str = "
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE SCHEMA app;
CREATE TABLE customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE CHECK (email LIKE '%@%')
);
COMMENT ON TABLE customers IS 'who buys';
COMMENT ON COLUMN customers.email IS 'where receipts go';
CREATE TABLE app.orders (
  id serial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  status status NOT NULL DEFAULT 'new',
  total numeric(10, 2) NOT NULL
);
CREATE INDEX orders_status ON app.orders (status) WHERE status <> 'shipped';
CREATE SEQUENCE invoice_no START 1000;
CREATE VIEW app.open_orders AS SELECT * FROM app.orders WHERE status <> 'shipped';
";

const V2: &str = "
ALTER TABLE customers ADD COLUMN name text;
CREATE FUNCTION app.order_count(c bigint) RETURNS bigint LANGUAGE sql STABLE
  AS $$ SELECT count(*) FROM app.orders WHERE customer_id = c $$;
";

struct Project {
    dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    admin: String,
}

impl Project {
    /// Service `orders` (publishing `order.placed`) on the server of
    /// `admin`, provisioned, migrated to version 2, its event tables made.
    async fn on(admin: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let manifest = manifest(dir.path(), &prefix, &[]);
        let stores = stores(&manifest, Some(admin));
        let svc = &manifest.services[0];
        stores
            .engine(svc)
            .unwrap()
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
        let migrations = dir.path().join(&svc.migrations);
        std::fs::create_dir_all(&migrations).unwrap();
        std::fs::write(migrations.join("V1__init.sql"), V1).unwrap();
        std::fs::write(migrations.join("V2__more.sql"), V2).unwrap();
        silo_migrate::service::migrate(
            &manifest,
            &stores,
            svc,
            &Default::default(),
            silo_migrate::LockPolicy {
                timeout: Duration::from_secs(30),
                on_wait: Arc::new(|_| {}),
                cancel: silo_migrate::Cancel::new(),
            },
            |_| {},
        )
        .await
        .unwrap();
        silo_events::ensure(&stores, svc).await.unwrap();
        Project {
            dir,
            prefix,
            manifest,
            stores,
            admin: admin.to_string(),
        }
    }

    async fn new() -> Project {
        Project::on(&admin_url()).await
    }

    fn svc(&self) -> &Service {
        &self.manifest.services[0]
    }

    fn creds(&self) -> Credentials {
        self.stores.credentials(self.svc()).unwrap()
    }
}

/// The manifest of `orders` plus `extra` services (name, database, role
/// given in full), every name prefixed.
fn manifest(dir: &Path, prefix: &Prefix, extra: &[&str]) -> Manifest {
    let mut text = format!(
        "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n\
         [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\npublishes = [\"order.placed\"]\n",
        prefix.name("orders"),
        prefix.name("orders_svc")
    );
    for name in extra {
        text.push_str(&format!(
            "[services.{name}]\ndatabase = \"{name}\"\nrole = \"{name}_svc\"\n\
             publishes = [\"order.placed\"]\n"
        ));
    }
    Manifest::from_str(&text, &dir.join("silo.toml"), &Overrides::default()).unwrap()
}

fn stores(m: &Manifest, admin: Option<&str>) -> Stores {
    Stores::new(StoresConfig {
        project: None,
        data_dir: m.data_dir.clone(),
        admin_url: admin.map(str::to_string),
        concurrency: 4,
    })
}

async fn as_service(creds: &Credentials) -> PgConnection {
    PgConnection::connect(&creds.url()).await.unwrap()
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn scalar_i64(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Data in every kind of table, and sequences moved past their start.
async fn fill(creds: &Credentials) {
    let mut c = as_service(creds).await;
    exec(
        &mut c,
        "INSERT INTO customers (email, name) SELECT 'c' || i || '@x', 'n' || i FROM generate_series(1, 50) i;
         INSERT INTO app.orders (customer_id, status, total)
           SELECT 1 + i % 50, (ARRAY['new','paid','shipped']::status[])[1 + i % 3], i * 1.5
           FROM generate_series(1, 200) i;
         SELECT nextval('invoice_no') FROM generate_series(1, 7);
         INSERT INTO silo_outbox (type, key, payload) VALUES ('order.placed', '1', '{\"id\": 1}');",
    )
    .await;
    let _ = c.close().await;
}

/// The metadata a restore is handed, from a dump.
fn meta(dump: &Dump) -> BackupMeta {
    let now = time::OffsetDateTime::now_utc();
    BackupMeta {
        format: silo_backup::meta::FORMAT,
        id: BackupId::new(now),
        project: "t".into(),
        service: "orders".into(),
        engine: Engine::Postgres,
        server_version: dump.server_version.clone(),
        migration_version: dump.migration_version.clone(),
        started_at: now,
        finished_at: now,
        size_bytes: 0,
        encrypted: false,
        reason: "manual".into(),
        files: Vec::new(),
        tables: dump.tables.clone(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every object in the store's own schemas and the schemas themselves
/// belong to `role`; PUBLIC holds nothing on the database or the schema
/// `public`; no role but `role` (and superusers) may connect.
async fn assert_silo_way(admin: &str, database: &str, role: &str) {
    let mut url = url::Url::parse(admin).unwrap();
    url.set_path(database);
    let mut c = PgConnection::connect(url.as_str()).await.unwrap();
    let foreign: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ' owned by ' || pg_get_userbyid(c.relowner)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
           AND pg_get_userbyid(c.relowner) <> $1
         UNION ALL
         SELECT 'schema ' || nspname || ' owned by ' || pg_get_userbyid(nspowner)
         FROM pg_namespace WHERE nspname <> 'information_schema' AND nspname !~ '^pg_'
           AND pg_get_userbyid(nspowner) <> $1
         UNION ALL
         SELECT 'type ' || t.typname || ' owned by ' || pg_get_userbyid(t.typowner)
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND t.typtype = 'e'
           AND pg_get_userbyid(t.typowner) <> $1",
    )
    .bind(role)
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(foreign.is_empty(), "{foreign:?}");
    let (owner, public_db, public_schema, others): (String, bool, bool, Vec<String>) =
        sqlx::query_as(
            "SELECT pg_get_userbyid(d.datdba)::text,
                EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                        WHERE a.grantee = 0),
                EXISTS (SELECT 1 FROM pg_namespace n,
                               aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                        WHERE n.nspname = 'public' AND a.grantee = 0),
                coalesce((SELECT array_agg(r.rolname::text) FROM pg_roles r
                          WHERE NOT r.rolsuper AND r.rolname <> $1 AND r.rolname !~ '^pg_'
                            AND has_database_privilege(r.oid, d.oid, 'CONNECT')), '{}')
         FROM pg_database d WHERE d.datname = current_database()",
        )
        .bind(role)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(owner, role);
    assert!(!public_db, "PUBLIC has privileges on database {database}");
    assert!(!public_schema, "PUBLIC has privileges on schema public");
    assert!(others.is_empty(), "others may connect: {others:?}");
    let _ = c.close().await;
}

#[tokio::test]
async fn round_trip_into_a_fresh_store_of_its_own() {
    round_trip(4).await;
}

#[tokio::test]
async fn round_trip_in_one_transaction_on_one_connection() {
    round_trip(1).await;
}

/// A backup restored with `pg_restore --jobs JOBS` (1: one transaction)
/// into a fresh store comes back whole, the silo way.
async fn round_trip(jobs: usize) {
    let p = Project::new().await;
    let creds = p.creds();
    fill(&creds).await;
    // Settings of the database itself, which pg_dump leaves out.
    let mut c = as_service(&creds).await;
    let db = format!("\"{}\"", p.svc().database);
    exec(
        &mut c,
        &format!(
            "ALTER DATABASE {db} SET search_path = app, public;
             ALTER DATABASE {db} SET statement_timeout = '5min';"
        ),
    )
    .await;
    let _ = c.close().await;
    let staging = tempfile::tempdir().unwrap();
    let dump = postgres::dump(&creds, staging.path()).await.unwrap();

    assert_eq!(dump.migration_version.as_deref(), Some("2"));
    assert!(
        dump.server_version.starts_with("15"),
        "{}",
        dump.server_version
    );
    assert_eq!(dump.tables["customers"], 50);
    assert_eq!(dump.tables["app.orders"], 200);
    assert_eq!(dump.tables["silo_outbox"], 1);
    assert_eq!(dump.tables["silo_schema_history"], 2);
    assert_eq!(dump.files, [DUMP_FILE, GLOBALS_FILE, SCHEMA_FILE]);
    for f in &dump.files {
        assert!(staging.path().join(f).metadata().unwrap().len() > 0, "{f}");
    }
    let globals = postgres::read_globals_file(staging.path()).await.unwrap();
    assert_eq!(globals.role.name, p.svc().role);
    assert_eq!(globals.migration_version.as_deref(), Some("2"));
    assert!(
        globals
            .database_comment
            .as_deref()
            .is_some_and(|c| c.starts_with("managed by silo: service=orders")),
        "{globals:?}"
    );
    assert!(globals.database_acl.is_some(), "{globals:?}");

    // The live store moves on after the backup: none of this comes back.
    let mut live = as_service(&creds).await;
    exec(&mut live, "INSERT INTO customers (email) VALUES ('late@x')").await;
    let live_next = scalar_i64(&mut live, "SELECT nextval('invoice_no')").await;
    let _ = live.close().await;

    let name = p.prefix.name("restored");
    let engine = p.stores.engine(p.svc()).unwrap();
    let target = engine
        .restore_target(
            p.svc(),
            RestoreInto::Named {
                name: &name,
                keep_credentials: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(target.database, name);
    assert_eq!(target.user.as_deref(), Some(format!("{name}_svc").as_str()));
    assert_ne!(target.password, creds.password, "new credentials");
    let file = p.stores.secrets().path(&name);
    assert_eq!(mode(&file), 0o600);

    postgres::restore_with(staging.path(), &meta(&dump), &target, jobs)
        .await
        .unwrap();

    assert_eq!(postgres::row_counts(&target).await.unwrap(), dump.tables);
    let recorded = postgres::read_schema_file(staging.path()).await.unwrap();
    let restored = postgres::schema(&target).await.unwrap();
    let differences = silo_store::schema::diff(&recorded, &restored);
    assert!(differences.is_empty(), "{differences:?}");
    // Counted on several connections in one snapshot, read beside the
    // schema: the same figures.
    let (counts, schema) = postgres::row_counts_and_schema(&target, jobs)
        .await
        .unwrap();
    assert_eq!(counts, dump.tables);
    assert_eq!(schema, restored);
    assert!(!recorded.enum_types.is_empty() && !recorded.functions.is_empty());

    let mut c = as_service(&target).await;
    // Sequences continue where the backup left them.
    // The live store took its next value after the backup: the restored
    // one hands out the same.
    assert_eq!(live_next, 1007);
    assert_eq!(
        scalar_i64(&mut c, "SELECT nextval('invoice_no')").await,
        1007
    );
    let id = scalar_i64(
        &mut c,
        "INSERT INTO customers (email) VALUES ('new@x') RETURNING id",
    )
    .await;
    assert_eq!(id, 51);
    let order = scalar_i64(
        &mut c,
        "INSERT INTO app.orders (customer_id, total) VALUES (51, 1) RETURNING id::bigint",
    )
    .await;
    assert_eq!(order, 201);
    // Constraints hold.
    let fk = sqlx::query("INSERT INTO app.orders (customer_id, total) VALUES (999, 1)")
        .execute(&mut c)
        .await;
    assert!(fk.is_err(), "the foreign key came back");
    let check = sqlx::query("INSERT INTO customers (email) VALUES ('no at sign')")
        .execute(&mut c)
        .await;
    assert!(check.is_err(), "the check constraint came back");
    // Comments, the enum, the history, the events.
    let comment: Option<String> =
        sqlx::query_scalar("SELECT obj_description('customers'::regclass, 'pg_class')")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(comment.as_deref(), Some("who buys"));
    let column: Option<String> =
        sqlx::query_scalar("SELECT col_description('customers'::regclass, 2)")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(column.as_deref(), Some("where receipts go"));
    assert_eq!(
        scalar_i64(
            &mut c,
            "SELECT count(*) FROM app.orders WHERE status = 'paid'::status"
        )
        .await,
        67
    );
    assert_eq!(
        silo_migrate::postgres::migration_version(&mut c)
            .await
            .unwrap()
            .as_deref(),
        Some("2")
    );
    let event: String = sqlx::query_scalar("SELECT type FROM silo_outbox")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(event, "order.placed");
    // The database's settings came back, the list as a list.
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(path, "app, public");
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(timeout, "5min");
    let _ = c.close().await;

    assert_silo_way(&p.admin, &name, &format!("{name}_svc")).await;

    // The restored store is a service's store like any: with it named in
    // the manifest, `silo audit` finds nothing wrong with it.
    let m = manifest(p.dir.path(), &p.prefix, &[&name]);
    let s = stores(&m, Some(&p.admin));
    let options = silo_audit::Options {
        code: false,
        services: vec![name.clone()],
        ..Default::default()
    };
    let report = silo_audit::audit(&m, &s, &options).await.unwrap();
    let findings: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.check != silo_audit::Check::HbaRules)
        .collect();
    assert!(findings.is_empty(), "{findings:#?}");

    // A restore that did not check out is dropped with all made for it.
    let dropped = engine.drop_restore_target(p.svc(), &target).await.unwrap();
    assert_eq!(dropped.removed.len(), 3, "{dropped:?}");
    assert!(!file.exists());
}

#[tokio::test]
async fn keeping_the_credentials_restores_under_the_services_own_role() {
    let p = Project::new().await;
    let creds = p.creds();
    fill(&creds).await;
    let staging = tempfile::tempdir().unwrap();
    let dump = postgres::dump(&creds, staging.path()).await.unwrap();
    let name = p.prefix.name("copy");
    let engine = p.stores.engine(p.svc()).unwrap();
    let target = engine
        .restore_target(
            p.svc(),
            RestoreInto::Named {
                name: &name,
                keep_credentials: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(target.user, creds.user);
    assert_eq!(target.password, creds.password);
    postgres::restore(staging.path(), &meta(&dump), &target)
        .await
        .unwrap();
    assert_eq!(postgres::row_counts(&target).await.unwrap(), dump.tables);
    assert_silo_way(&p.admin, &name, &p.svc().role).await;

    // A second restore into the same name is refused, and so is a
    // restore into a store that has data.
    let again = engine
        .restore_target(
            p.svc(),
            RestoreInto::Named {
                name: &name,
                keep_credentials: true,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(again, StoreError::AlreadyExists { .. }),
        "{again:?}"
    );
    let full = postgres::restore(staging.path(), &meta(&dump), &target)
        .await
        .unwrap_err();
    assert!(matches!(full, BackupError::NotEmpty { .. }), "{full:?}");

    // Dropping it leaves the service's role and file alone.
    engine.drop_restore_target(p.svc(), &target).await.unwrap();
    let mut c = as_service(&creds).await;
    assert_eq!(
        scalar_i64(&mut c, "SELECT count(*) FROM customers").await,
        50
    );
    let _ = c.close().await;
}

#[tokio::test]
async fn replace_swaps_the_checked_restore_in_and_keeps_the_old_store() {
    let p = Project::new().await;
    let creds = p.creds();
    fill(&creds).await;
    let staging = tempfile::tempdir().unwrap();
    let dump = postgres::dump(&creds, staging.path()).await.unwrap();
    let mut live = as_service(&creds).await;
    exec(&mut live, "DELETE FROM app.orders").await;

    let engine = p.stores.engine(p.svc()).unwrap();
    let replacement = engine
        .restore_target(p.svc(), RestoreInto::Replacement)
        .await
        .unwrap();
    assert_eq!(replacement.user.as_deref(), Some(p.svc().role.as_str()));
    postgres::restore(staging.path(), &meta(&dump), &replacement)
        .await
        .unwrap();
    assert_eq!(
        postgres::row_counts(&replacement).await.unwrap(),
        dump.tables
    );

    // The service is still connected: refused unless asked to end its
    // sessions, and nothing moved.
    let busy = engine
        .swap(p.svc(), &replacement, SwapOptions::default())
        .await
        .unwrap_err();
    match &busy {
        StoreError::InUse {
            database, own_only, ..
        } => {
            assert_eq!(database, &p.svc().database);
            assert!(own_only);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        scalar_i64(&mut live, "SELECT count(*) FROM app.orders").await,
        0
    );

    let swapped = engine
        .swap(p.svc(), &replacement, SwapOptions { terminate: true })
        .await
        .unwrap();
    assert_eq!(swapped.live, p.svc().database);
    assert_eq!(swapped.terminated, 1);
    assert!(
        swapped
            .kept
            .starts_with(&format!("{}_replaced_", p.svc().database)),
        "{swapped:?}"
    );
    assert!(
        sqlx::query("SELECT 1").execute(&mut live).await.is_err(),
        "the service's session was ended"
    );

    // The service's own credentials, unchanged, reach the restored data
    // through the checked way in (the store's marker names it).
    let conn = p.stores.connect_as(p.svc(), "test").await.unwrap();
    conn.close().await;
    let mut c = as_service(&creds).await;
    assert_eq!(
        scalar_i64(&mut c, "SELECT count(*) FROM app.orders").await,
        200
    );
    let _ = c.close().await;
    assert_silo_way(&p.admin, &p.svc().database, &p.svc().role).await;

    // The old store is kept, with what it had.
    let mut old = creds.clone();
    old.database = swapped.kept.clone();
    let mut c = as_service(&old).await;
    assert_eq!(
        scalar_i64(&mut c, "SELECT count(*) FROM app.orders").await,
        0
    );
    let _ = c.close().await;

    // `silo down` takes the kept store with the service.
    let dropped = engine.drop_store(p.svc()).await.unwrap();
    assert!(
        dropped.removed.iter().any(|r| r.contains(&swapped.kept)),
        "{dropped:?}"
    );
}

#[tokio::test]
async fn a_backup_taken_while_writing_is_one_snapshot() {
    let p = Project::new().await;
    let creds = p.creds();
    let mut c = as_service(&creds).await;
    // Two tables that always change together, and enough data that the
    // dump takes a while.
    exec(
        &mut c,
        "CREATE TABLE debit (id bigserial PRIMARY KEY, amount int NOT NULL, pad text);
         CREATE TABLE credit (id bigserial PRIMARY KEY, amount int NOT NULL, pad text);
         INSERT INTO debit (amount, pad) SELECT 1, repeat(md5(i::text), 8) FROM generate_series(1, 100000) i;
         INSERT INTO credit (amount, pad) SELECT 1, repeat(md5(i::text), 8) FROM generate_series(1, 100000) i;",
    )
    .await;
    let _ = c.close().await;

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written, creds) = (stop.clone(), written.clone(), creds.clone());
        tokio::spawn(async move {
            let mut c = as_service(&creds).await;
            while !stop.load(Ordering::Relaxed) {
                exec(
                    &mut c,
                    "BEGIN; INSERT INTO debit (amount) VALUES (1); INSERT INTO credit (amount) VALUES (1); COMMIT;",
                )
                .await;
                written.fetch_add(1, Ordering::Relaxed);
            }
            let _ = c.close().await;
        })
    };
    let wait_for = |n: u64| {
        let written = written.clone();
        async move {
            let started = Instant::now();
            while written.load(Ordering::Relaxed) < n {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the writer stalled"
                );
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    wait_for(20).await;
    let before = written.load(Ordering::Relaxed);
    let staging = tempfile::tempdir().unwrap();
    let dump = postgres::dump(&creds, staging.path()).await.unwrap();
    let after = written.load(Ordering::Relaxed);
    wait_for(after + 20).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(after > before, "the writer wrote while the dump ran");

    let debit = dump.tables["debit"];
    assert_eq!(debit, dump.tables["credit"]);
    assert!(
        debit >= 100_000 + before && debit <= 100_000 + after,
        "{debit}"
    );

    let engine = p.stores.engine(p.svc()).unwrap();
    let scratch = engine.scratch(p.svc()).await.unwrap();
    postgres::restore(staging.path(), &meta(&dump), &scratch)
        .await
        .unwrap();
    let counts: BTreeMap<String, u64> = postgres::row_counts(&scratch).await.unwrap();
    assert_eq!(counts, dump.tables, "the restore holds the snapshot's rows");
    engine.drop_scratch(&scratch).await.unwrap();
}

/// On a server that checks passwords: the backup runs with the service's
/// credentials file alone (no admin URL anywhere), and a wrong password
/// fails clearly without showing it.
#[tokio::test]
async fn a_backup_needs_only_the_services_credentials() {
    let server = TempServer::start();
    let p = Project::on(&server.admin_url()).await;
    fill(&p.creds()).await;
    // SAFETY: no test in this file reads the variable; it is removed so a
    // fallback to it could not go unnoticed.
    unsafe { std::env::remove_var("SILO_PG_ADMIN_URL") };
    let service_only = stores(&p.manifest, None);
    let creds = service_only.credentials(p.svc()).unwrap();
    assert!(creds.password.is_some());
    let staging = tempfile::tempdir().unwrap();
    let dump = postgres::dump(&creds, staging.path()).await.unwrap();
    assert_eq!(dump.tables["customers"], 50);

    let scratch = p
        .stores
        .engine(p.svc())
        .unwrap()
        .scratch(p.svc())
        .await
        .unwrap();
    postgres::restore(staging.path(), &meta(&dump), &scratch)
        .await
        .unwrap();
    assert_eq!(postgres::row_counts(&scratch).await.unwrap(), dump.tables);

    let mut wrong = creds.clone();
    wrong.password = Some(silo_store::Secret::new("not-the-password-7f3a"));
    let elsewhere = tempfile::tempdir().unwrap();
    let err = postgres::dump(&wrong, elsewhere.path()).await.unwrap_err();
    let shown = format!(
        "{err}: {} / {err:?} / {}",
        silo_store::root_cause(&err),
        miette::Diagnostic::help(&err)
            .map(|h| h.to_string())
            .unwrap_or_default()
    );
    assert!(!shown.contains("not-the-password-7f3a"), "{shown}");
    assert!(
        matches!(err, BackupError::Store(StoreError::ServiceLogin { .. })),
        "{shown}"
    );
    assert!(shown.contains("password authentication failed"), "{shown}");
    let err = postgres::restore(staging.path(), &meta(&dump), &wrong)
        .await
        .unwrap_err();
    assert!(!format!("{err:?}").contains("not-the-password-7f3a"));
}

/// A restore that fails part way leaves its target empty (one
/// transaction), and says what pg_restore said.
#[tokio::test]
async fn a_failed_restore_leaves_the_target_empty() {
    let p = Project::new().await;
    let creds = p.creds();
    fill(&creds).await;
    let staging = tempfile::tempdir().unwrap();
    let dump = postgres::dump(&creds, staging.path()).await.unwrap();
    // Cut the archive short: its table of contents reads, its data ends.
    let archive = staging.path().join(DUMP_FILE);
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() * 3 / 4]).unwrap();

    let engine = p.stores.engine(p.svc()).unwrap();
    // Side by side (`--jobs`) it fails too; what it leaves behind is
    // dropped by the restore that made the store.
    let scratch = engine.scratch(p.svc()).await.unwrap();
    let err = postgres::restore_with(staging.path(), &meta(&dump), &scratch, 4)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            BackupError::ToolFailed {
                tool: "pg_restore",
                ..
            }
        ),
        "{err:?}"
    );
    engine.drop_scratch(&scratch).await.unwrap();
    // In one transaction it leaves the store as empty as it was.
    let scratch = engine.scratch(p.svc()).await.unwrap();
    let err = postgres::restore_with(staging.path(), &meta(&dump), &scratch, 1)
        .await
        .unwrap_err();
    let BackupError::ToolFailed { tool, stderr, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*tool, "pg_restore");
    assert!(stderr.contains("pg_restore"), "{stderr}");
    let mut c = as_service(&scratch).await;
    let tables = scalar_i64(
        &mut c,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
    )
    .await;
    assert_eq!(tables, 0);
    let _ = c.close().await;
    engine.drop_scratch(&scratch).await.unwrap();
}

/// `compression` reaches pg_dump: the archive's header names the level,
/// and an uncompressed archive restores the same rows.
#[tokio::test]
async fn the_policy_compression_level_reaches_pg_dump() {
    let p = Project::new().await;
    let creds = p.creds();
    fill(&creds).await;
    let header = |dir: &Path| {
        let out = std::process::Command::new("pg_restore")
            .arg("-l")
            .arg(dir.join(DUMP_FILE))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix(';').map(str::trim))
            .find(|l| l.starts_with("Compression:"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let plain = tempfile::tempdir().unwrap();
    let dump = postgres::dump_with(&creds, plain.path(), Some(0))
        .await
        .unwrap();
    assert_eq!(header(plain.path()), "Compression: 0");
    let default = tempfile::tempdir().unwrap();
    postgres::dump(&creds, default.path()).await.unwrap();
    let default_level = header(default.path());
    assert!(
        default_level.starts_with("Compression:") && default_level != "Compression: 0",
        "{default_level:?}"
    );
    let size = |dir: &Path| std::fs::metadata(dir.join(DUMP_FILE)).unwrap().len();
    assert!(size(plain.path()) > size(default.path()));

    let engine = p.stores.engine(p.svc()).unwrap();
    let scratch = engine.scratch(p.svc()).await.unwrap();
    postgres::restore(plain.path(), &meta(&dump), &scratch)
        .await
        .unwrap();
    assert_eq!(postgres::row_counts(&scratch).await.unwrap(), dump.tables);
    engine.drop_scratch(&scratch).await.unwrap();
}
