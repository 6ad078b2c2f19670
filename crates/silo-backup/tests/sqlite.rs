//! Backups of real SQLite stores: round trips, a backup while the service
//! writes, damaged backups and backups of another service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use silo_backup::backup::{self, Request};
use silo_backup::restore::{self, Target};
use silo_backup::{BackupError, BackupMeta, Destination};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, Stores, StoresConfig};
use sqlx::{Connection, SqliteConnection};

const SCHEMA: &str = "
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    amount INTEGER NOT NULL CHECK (amount > 0),
    note BLOB
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 100;
CREATE TABLE ledger_a (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE ledger_b (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
CREATE TRIGGER orders_touch AFTER INSERT ON orders BEGIN
    UPDATE customers SET name = coalesce(name, 'buyer') WHERE id = NEW.customer_id;
END;
";

/// A provisioned project of services `orders` (which publishes events and
/// has one migration applied) and `billing`.
struct Project {
    _dir: tempfile::TempDir,
    manifest: Manifest,
    stores: Stores,
}

impl Project {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = "[project]\nname = \"t\"\n[defaults]\nengine = \"sqlite\"\n\
                    [services.orders]\npublishes = [\"order.placed\"]\n\
                    [services.billing]\n";
        let manifest =
            Manifest::from_str(text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
        let stores = Stores::new(StoresConfig {
            project: Some("t".into()),
            data_dir: manifest.data_dir.clone(),
            admin_url: None,
            concurrency: 2,
        });
        for svc in &manifest.services {
            stores
                .engine(svc)
                .unwrap()
                .provision(svc, ProvisionOptions::default())
                .await
                .unwrap();
        }
        let p = Project {
            _dir: dir,
            manifest,
            stores,
        };
        let orders = p.service("orders");
        let migrations = p.manifest.migrations_dir(orders);
        std::fs::create_dir_all(&migrations).unwrap();
        std::fs::write(migrations.join("V1__schema.sql"), SCHEMA).unwrap();
        let files = silo_migrate::discover(&migrations, orders.engine).unwrap();
        let prepared = silo_migrate::prepare(&files, orders).unwrap();
        let policy = silo_migrate::LockPolicy {
            timeout: Duration::from_secs(10),
            on_wait: Arc::new(|_| {}),
            cancel: silo_migrate::Cancel::new(),
        };
        let mut target = silo_migrate::connect::open(&p.stores, orders, policy)
            .await
            .unwrap();
        silo_migrate::migrate(
            target.as_mut(),
            &prepared,
            &silo_migrate::MigrateOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
        drop(target);
        silo_events::ensure(&p.stores, orders).await.unwrap();
        p
    }

    fn service(&self, name: &str) -> &Service {
        self.manifest
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
    }

    fn data_dir(&self) -> &Path {
        &self.manifest.data_dir
    }

    fn destination(&self, service: &str) -> Destination {
        Destination::resolve(None, &self.manifest.root, self.data_dir(), service).unwrap()
    }

    fn store_path(&self, service: &str) -> PathBuf {
        self.service(service).sqlite_path(self.data_dir())
    }

    async fn connect(&self, path: &Path) -> SqliteConnection {
        SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap()
    }

    async fn backup(&self, service: &str) -> Result<BackupMeta, BackupError> {
        let staging = self.data_dir().join("backups/.staging");
        backup::take(
            &self.stores,
            self.service(service),
            &self.destination(service),
            &Request {
                project: "t",
                reason: "manual",
                staging_root: &staging,
            },
        )
        .await
    }

    async fn restore(
        &self,
        service: &str,
        from: &str,
        id: Option<&BackupMeta>,
        into: Target,
    ) -> Result<restore::Restored, BackupError> {
        restore::restore(
            &self.stores,
            self.service(service),
            &self.destination(from),
            &restore::Request {
                backup: id.map(|m| m.id.clone()),
                from_service: from,
                into,
                data_dir: self.data_dir(),
                keep_credentials: false,
                terminate: false,
                jobs: 2,
            },
        )
        .await
    }
}

async fn fill(conn: &mut SqliteConnection) {
    sqlx::raw_sql(
        "INSERT INTO customers (id, email) VALUES (1, 'a@x'), (2, 'b@x');
         INSERT INTO orders (customer_id, amount, note) VALUES (1, 50, x'00ff10'), (2, 150, NULL), (1, 7, x'');",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    silo_events::publish(
        &mut *conn,
        "order.placed",
        "1",
        &serde_json::json!({"order": 1}),
    )
    .await
    .unwrap();
}

async fn dump_rows(conn: &mut SqliteConnection, sql: &str) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

const SNAPSHOT_QUERIES: [&str; 4] = [
    "SELECT id || ',' || email || ',' || coalesce(name, '-') FROM customers ORDER BY id",
    "SELECT id || ',' || customer_id || ',' || amount || ',' || coalesce(hex(note), '-') FROM orders ORDER BY id",
    "SELECT version || ',' || script || ',' || success FROM silo_schema_history ORDER BY installed_rank",
    "SELECT type || ',' || key || ',' || payload FROM silo_outbox ORDER BY id",
];

#[tokio::test]
async fn a_round_trip_brings_back_data_schema_history_and_events() {
    let p = Project::new().await;
    let live = p.store_path("orders");
    let mut conn = p.connect(&live).await;
    fill(&mut conn).await;
    let mut before = Vec::new();
    for q in SNAPSHOT_QUERIES {
        before.push(dump_rows(&mut conn, q).await);
    }
    conn.close().await.unwrap();

    let meta = p.backup("orders").await.unwrap();
    assert_eq!(meta.service, "orders");
    assert_eq!(meta.migration_version.as_deref(), Some("1"));
    assert_eq!(meta.tables["orders"], 3);
    assert_eq!(meta.tables["customers"], 2);
    assert_eq!(meta.tables["silo_schema_history"], 1);
    assert_eq!(meta.tables["silo_outbox"], 1);
    let names: Vec<&str> = meta.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["store.sqlite3", "schema.json"]);
    assert_eq!(
        meta.size_bytes,
        meta.files.iter().map(|f| f.size).sum::<u64>()
    );
    assert!(meta.started_at <= meta.finished_at);

    let listing = p.destination("orders").list().await.unwrap();
    assert_eq!(listing.backups, std::slice::from_ref(&meta));
    assert!(listing.broken.is_empty());

    let restored = p
        .restore("orders", "orders", None, Target::New("copy".into()))
        .await
        .unwrap();
    assert_eq!(restored.backup, meta.id);
    let copy = PathBuf::from(&restored.store);
    assert_eq!(copy, live.with_file_name("copy.sqlite3"));
    let mut conn = p.connect(&copy).await;
    for (q, want) in SNAPSHOT_QUERIES.iter().zip(&before) {
        assert_eq!(&dump_rows(&mut conn, q).await, want, "{q}");
    }
    // Constraints, indexes and triggers came back and work.
    let dup = sqlx::query("INSERT INTO customers (id, email) VALUES (9, 'a@x')")
        .execute(&mut conn)
        .await;
    assert!(dup.is_err(), "the unique constraint holds");
    let bad = sqlx::query("INSERT INTO orders (customer_id, amount) VALUES (1, 0)")
        .execute(&mut conn)
        .await;
    assert!(bad.is_err(), "the check constraint holds");
    let orphan = sqlx::query("INSERT INTO orders (customer_id, amount) VALUES (77, 5)")
        .execute(&mut conn)
        .await;
    assert!(orphan.is_err(), "the foreign key holds");
    let index: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'orders_customer'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(index, ["orders_customer"]);
    conn.close().await.unwrap();
    // The copy is a store of the service (its mark), private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // The drill restores into a scratch store and drops it.
    let drilled = restore::verify(
        &p.stores,
        p.service("orders"),
        &p.destination("orders"),
        None,
        p.data_dir(),
    )
    .await
    .unwrap();
    assert!(
        !Path::new(&drilled.store).exists(),
        "the scratch store is dropped"
    );
    assert!(silo_store::sqlite::scratch_files(live.parent().unwrap()).is_empty());

    // Restoring into an existing name is refused.
    let again = p
        .restore("orders", "orders", None, Target::New("copy".into()))
        .await
        .unwrap_err();
    assert!(matches!(again, BackupError::TargetExists { .. }), "{again}");
}

/// A writer keeps `ledger_a` and `ledger_b` the same size, one row in each
/// per transaction, while backups are taken: each backup holds the same
/// number of rows in both.
#[tokio::test]
async fn a_backup_while_the_service_writes_is_one_consistent_snapshot() {
    let p = Project::new().await;
    let live = p.store_path("orders");
    let mut conn = p.connect(&live).await;
    // Enough rows that a copy takes a moment.
    sqlx::raw_sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO customers (id, email, name) SELECT i, 'c' || i, hex(randomblob(64)) FROM n;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            sqlx::raw_sql("PRAGMA busy_timeout = 10000")
                .execute(&mut conn)
                .await
                .unwrap();
            let mut i = 0i64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let mut tx = conn.begin().await.unwrap();
                sqlx::query("INSERT INTO ledger_a (n) VALUES (?)")
                    .bind(i)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO ledger_b (n) VALUES (?)")
                    .bind(i)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                written.store(i as u64, Ordering::SeqCst);
            }
            conn.close().await.unwrap();
        })
    };
    // The writer is under way before the first backup starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while written.load(Ordering::SeqCst) < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never wrote"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut metas = Vec::new();
    for _ in 0..3 {
        let before = written.load(Ordering::SeqCst);
        let meta = p.backup("orders").await.unwrap();
        let after = written.load(Ordering::SeqCst);
        assert!(after > before, "the writer kept writing during the backup");
        assert_eq!(meta.tables["ledger_a"], meta.tables["ledger_b"], "{meta:?}");
        assert!(meta.tables["ledger_a"] >= before);
        metas.push(meta);
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    for (n, meta) in metas.iter().enumerate() {
        let restored = p
            .restore(
                "orders",
                "orders",
                Some(meta),
                Target::New(format!("snap{n}")),
            )
            .await
            .unwrap();
        let mut conn = p.connect(Path::new(&restored.store)).await;
        let (a, b): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM ledger_a), (SELECT count(*) FROM ledger_b)",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a as u64, meta.tables["ledger_a"]);
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
        conn.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_flipped_byte_is_refused_naming_the_file() {
    let p = Project::new().await;
    let mut conn = p.connect(&p.store_path("orders")).await;
    fill(&mut conn).await;
    conn.close().await.unwrap();
    let meta = p.backup("orders").await.unwrap();

    let file = p
        .data_dir()
        .join("backups/orders")
        .join(meta.id.as_str())
        .join("store.sqlite3");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();

    let err = p
        .restore("orders", "orders", None, Target::New("copy".into()))
        .await
        .unwrap_err();
    match &err {
        BackupError::Damaged { file, .. } => assert_eq!(file, "store.sqlite3"),
        other => panic!("expected Damaged, got {other}"),
    }
    assert!(err.to_string().contains("store.sqlite3"), "{err}");
    assert!(
        !p.store_path("orders")
            .with_file_name("copy.sqlite3")
            .exists()
    );

    let err = restore::verify(
        &p.stores,
        p.service("orders"),
        &p.destination("orders"),
        Some(meta.id.clone()),
        p.data_dir(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, BackupError::Damaged { file, .. } if file == "store.sqlite3"),
        "{err}"
    );

    // A file cut short is refused the same way.
    let schema = file.with_file_name("schema.json");
    let text = std::fs::read(&schema).unwrap();
    std::fs::write(&schema, &text[..text.len() - 1]).unwrap();
    std::fs::write(&file, {
        bytes[at] ^= 0x01;
        &bytes
    })
    .unwrap();
    let err = p
        .restore("orders", "orders", None, Target::Scratch)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackupError::Damaged { file, .. } if file == "schema.json"),
        "{err}"
    );
}

#[tokio::test]
async fn a_backup_of_another_service_is_refused_unless_asked_for() {
    let p = Project::new().await;
    let mut conn = p.connect(&p.store_path("orders")).await;
    fill(&mut conn).await;
    conn.close().await.unwrap();
    let meta = p.backup("orders").await.unwrap();

    // billing pointed at orders' backups (a shared destination, say).
    let refused = restore::restore(
        &p.stores,
        p.service("billing"),
        &p.destination("orders"),
        &restore::Request {
            backup: Some(meta.id.clone()),
            from_service: "billing",
            into: Target::Replace,
            data_dir: p.data_dir(),
            keep_credentials: false,
            terminate: false,
            jobs: 2,
        },
    )
    .await
    .unwrap_err();
    match &refused {
        BackupError::OtherService { found, service, .. } => {
            assert_eq!((found.as_str(), service.as_str()), ("orders", "billing"));
        }
        other => panic!("expected OtherService, got {other}"),
    }
    let help = miette::Diagnostic::help(&refused).unwrap().to_string();
    assert!(help.contains("--from-service orders"), "{help}");

    // On purpose: restored into billing's store, and marked billing's.
    let restored = p
        .restore("billing", "orders", Some(&meta), Target::Replace)
        .await
        .unwrap();
    assert_eq!(restored.from_service, "orders");
    let previous = PathBuf::from(restored.previous.unwrap());
    assert!(previous.exists(), "the old store is kept");
    let mut conn = match p
        .stores
        .connect_as(p.service("billing"), "test")
        .await
        .unwrap()
    {
        silo_store::ServiceConnection::Sqlite(c) => c,
        other => panic!("{other:?}"),
    };
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 3);
    conn.close().await.unwrap();
}

async fn restore_from(
    p: &Project,
    service: &str,
    destination: &Destination,
    from: &str,
) -> Result<restore::Restored, BackupError> {
    restore::restore(
        &p.stores,
        p.service(service),
        destination,
        &restore::Request {
            backup: None,
            from_service: from,
            into: Target::Scratch,
            data_dir: p.data_dir(),
            keep_credentials: false,
            terminate: false,
            jobs: 2,
        },
    )
    .await
}

#[tokio::test]
async fn only_complete_backups_are_listed_and_broken_ones_are_reported() {
    let p = Project::new().await;
    let meta = p.backup("orders").await.unwrap();
    let dest = p.data_dir().join("backups/orders");
    // A killed backup: files, no meta.json.
    let killed = dest.join("20200101T000000Z-0000");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(killed.join("store.sqlite3"), b"half").unwrap();
    // A broken one: meta.json that does not parse.
    let broken = dest.join("20200102T000000Z-0000");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("meta.json"), b"{not json").unwrap();
    // Not a backup at all.
    std::fs::create_dir_all(dest.join("notes")).unwrap();

    let listing = p.destination("orders").list().await.unwrap();
    assert_eq!(listing.backups, std::slice::from_ref(&meta));
    assert_eq!(listing.broken.len(), 1);
    assert_eq!(listing.broken[0].0, "20200102T000000Z-0000");

    // The newest good backup is chosen; deleting removes it entirely.
    let chosen = restore_from(&p, "orders", &p.destination("orders"), "orders")
        .await
        .unwrap();
    assert_eq!(chosen.backup, meta.id);
    p.destination("orders").delete(&meta.id).await.unwrap();
    assert!(!dest.join(meta.id.as_str()).exists());
    assert!(
        p.destination("orders")
            .list()
            .await
            .unwrap()
            .backups
            .is_empty()
    );
}

/// A restored store whose rows differ from what the backup recorded is
/// refused, and removed.
#[tokio::test]
async fn a_restore_that_does_not_match_the_records_is_refused() {
    let p = Project::new().await;
    let mut conn = p.connect(&p.store_path("orders")).await;
    fill(&mut conn).await;
    conn.close().await.unwrap();
    let mut meta = p.backup("orders").await.unwrap();
    meta.tables.insert("orders".into(), 4);
    let path = p
        .data_dir()
        .join("backups/orders")
        .join(meta.id.as_str())
        .join("meta.json");
    std::fs::write(&path, meta.to_json()).unwrap();

    let err = p
        .restore("orders", "orders", None, Target::New("copy".into()))
        .await
        .unwrap_err();
    match &err {
        BackupError::Mismatch { differences, .. } => {
            assert_eq!(differences, &["table orders has 3 rows, the backup 4"]);
        }
        other => panic!("expected Mismatch, got {other}"),
    }
    assert!(
        !p.store_path("orders")
            .with_file_name("copy.sqlite3")
            .exists()
    );
}

#[tokio::test]
async fn a_backup_with_a_damaged_index_is_refused_at_restore() {
    let p = Project::new().await;
    let mut conn = p.connect(&p.store_path("orders")).await;
    fill(&mut conn).await;
    conn.close().await.unwrap();
    let mut meta = p.backup("orders").await.unwrap();

    // The index's definition no longer matches its entries: every page and
    // record is well formed (the quick check at backup time passes such a
    // file), but the index disagrees with its table. The checksums are
    // taken again, as if the file had been damaged before the backup
    // recorded them.
    let folder = p.data_dir().join("backups/orders").join(meta.id.as_str());
    let file = folder.join("store.sqlite3");
    let mut copy = p.connect(&file).await;
    sqlx::raw_sql(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_master SET sql = replace(sql, '(customer_id)', '(amount)')
           WHERE name = 'orders_customer';
         PRAGMA writable_schema = OFF;
         PRAGMA journal_mode = DELETE;",
    )
    .execute(&mut copy)
    .await
    .unwrap();
    copy.close().await.unwrap();
    let (size, sha256) = silo_backup::digest::file(&file).await.unwrap();
    let entry = meta
        .files
        .iter_mut()
        .find(|f| f.name == "store.sqlite3")
        .unwrap();
    entry.size = size;
    entry.sha256 = sha256;
    std::fs::write(folder.join("meta.json"), meta.to_json()).unwrap();

    let err = p
        .restore("orders", "orders", None, Target::New("copy".into()))
        .await
        .unwrap_err();
    match &err {
        BackupError::RestoreIntegrity { id, report } => {
            assert_eq!(id, meta.id.as_str());
            assert!(report.contains("orders_customer"), "{report}");
        }
        other => panic!("expected RestoreIntegrity, got {other}"),
    }
    assert_eq!(
        miette::Diagnostic::code(&err).unwrap().to_string(),
        "silo::backup::restore_integrity"
    );
    assert!(
        !p.store_path("orders")
            .with_file_name("copy.sqlite3")
            .exists()
    );

    let err = restore::verify(
        &p.stores,
        p.service("orders"),
        &p.destination("orders"),
        Some(meta.id.clone()),
        p.data_dir(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, BackupError::RestoreIntegrity { .. }),
        "{err}"
    );
}
