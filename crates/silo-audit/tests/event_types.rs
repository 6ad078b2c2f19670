//! The `event-types` check on real SQLite files and the real PostgreSQL
//! server: an outbox holding a type its service does not publish, or an
//! inbox holding one it does not consume, is found; declared types are
//! clean; a store that cannot be read is listed as not read.

use silo_audit::{Check, Options, Report, Severity};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};

const ENGINES: [&str; 2] = ["sqlite", "postgres"];

/// `orders` publishes `order.placed`; `billing` consumes it; `ledger`
/// neither, and is never provisioned.
struct Project {
    _dir: tempfile::TempDir,
    _prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
}

impl Project {
    async fn new(engine: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let mut text = format!("[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n");
        for (name, decl) in [
            ("orders", "publishes = [\"order.placed\"]"),
            ("billing", "consumes = [\"order.placed\"]"),
            ("ledger", ""),
        ] {
            text.push_str(&format!(
                "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n{decl}\n",
                prefix.name(name),
                prefix.name(&format!("{name}_svc")),
            ));
        }
        let manifest =
            Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default())
                .unwrap();
        let stores = Stores::new(StoresConfig {
            project: None,
            data_dir: manifest.data_dir.clone(),
            admin_url: Some(admin_url()),
            concurrency: 2,
        });
        for svc in manifest.services.iter().filter(|s| s.name != "ledger") {
            stores
                .engine(svc)
                .unwrap()
                .provision(svc, ProvisionOptions::default())
                .await
                .unwrap();
            silo_events::ensure(&stores, svc).await.unwrap();
        }
        Project {
            _dir: dir,
            _prefix: prefix,
            manifest,
            stores,
        }
    }

    fn service(&self, name: &str) -> &Service {
        self.manifest.service(name).unwrap()
    }

    /// Runs `sql` in `name`'s store as the service.
    async fn exec(&self, name: &str, sql: &str) {
        let mut conn = self
            .stores
            .connect_as(self.service(name), "test")
            .await
            .unwrap();
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            ServiceConnection::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .unwrap();
        conn.close().await;
    }

    async fn audit(&self) -> Report {
        let options = Options {
            code: false,
            ..Options::default()
        };
        silo_audit::audit(&self.manifest, &self.stores, &options)
            .await
            .unwrap()
    }
}

/// (service, message) of the `event-types` findings.
fn found(report: &Report) -> Vec<(String, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.check == Check::EventTypes)
        .map(|f| (f.service.clone(), f.message.clone()))
        .collect()
}

fn inbox_row(event_type: &str, id: &str) -> String {
    format!(
        "INSERT INTO silo_inbox (event_id, type, source, key, payload) \
         VALUES ('{id}', '{event_type}', 'orders', '1', '{{}}')"
    )
}

#[tokio::test]
async fn undeclared_types_in_an_outbox_or_an_inbox_are_found() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        // Declared types only: clean, and the unprovisioned ledger is
        // passed over, not listed as unread.
        p.exec(
            "orders",
            "INSERT INTO silo_outbox (type, key, payload) VALUES ('order.placed', '1', '{}')",
        )
        .await;
        p.exec(
            "billing",
            &inbox_row("order.placed", "0190f3c2-0000-7000-8000-000000000001"),
        )
        .await;
        let clean = p.audit().await;
        assert_eq!(found(&clean), [], "{engine}");
        assert!(
            !clean.skipped.iter().any(|s| s.check == Check::EventTypes),
            "{engine}: {:?}",
            clean.skipped
        );

        // orders publishes a type it does not declare; billing's inbox
        // holds one it does not consume.
        p.exec(
            "orders",
            "INSERT INTO silo_outbox (type, key, payload) VALUES \
             ('payment.made', '1', '{}'), ('payment.made', '2', '{}')",
        )
        .await;
        p.exec(
            "billing",
            &inbox_row("order.cancelled", "0190f3c2-0000-7000-8000-000000000002"),
        )
        .await;
        let report = p.audit().await;
        assert_eq!(
            found(&report),
            [
                (
                    "billing".to_string(),
                    "the inbox of billing holds 1 `order.cancelled` event(s), a type billing does not declare in `consumes`".to_string()
                ),
                (
                    "orders".to_string(),
                    "the outbox of orders holds 2 `payment.made` event(s), a type orders does not declare in `publishes`".to_string()
                ),
            ],
            "{engine}"
        );
        let f = report
            .findings
            .iter()
            .find(|f| f.check == Check::EventTypes && f.service == "orders")
            .unwrap();
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.location.store(),
            Some(p.service("orders").database.as_str())
        );
        assert!(!report.is_clean());

        // Declaring the type makes it clean again.
        let mut declared = p.manifest.clone();
        declared.services[0].publishes.push("payment.made".into());
        declared.services[1].consumes.push("order.cancelled".into());
        let options = Options {
            code: false,
            ..Options::default()
        };
        let report = silo_audit::audit(&declared, &p.stores, &options)
            .await
            .unwrap();
        assert_eq!(found(&report), [], "{engine}");
    }
}

#[tokio::test]
async fn a_store_that_cannot_be_read_is_listed_as_not_read() {
    let p = Project::new("sqlite").await;
    // Something that is not billing's store where its file should be.
    let path = p.service("billing").sqlite_path(&p.manifest.data_dir);
    std::fs::write(&path, b"not a database").unwrap();
    let report = p.audit().await;
    let skipped: Vec<&str> = report
        .skipped
        .iter()
        .filter(|s| s.check == Check::EventTypes)
        .map(|s| s.reason.as_str())
        .collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0].starts_with("cannot read the event tables of billing"),
        "{}",
        skipped[0]
    );
    assert!(!report.is_complete());
}
