//! The event tables on real stores: every story runs on SQLite and on the
//! real PostgreSQL server, as the service's own role.

use serde_json::json;
use silo_events::{Ensured, EventsError, ensure, publish};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use sqlx::Connection;
use uuid::Uuid;

const ENGINES: [&str; 2] = ["sqlite", "postgres"];

/// A provisioned project whose `orders` service publishes and whose
/// `ledger` service neither publishes nor consumes.
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
        let text = format!(
            "[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n\
             [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\npublishes = [\"order.placed\"]\n\
             [services.ledger]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name("orders"),
            prefix.name("orders_svc"),
            prefix.name("ledger"),
            prefix.name("ledger_svc"),
        );
        let manifest =
            Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default())
                .unwrap();
        let stores = Stores::new(StoresConfig {
            project: None,
            data_dir: manifest.data_dir.clone(),
            admin_url: Some(admin_url()),
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
        Project {
            _dir: dir,
            _prefix: prefix,
            manifest,
            stores,
        }
    }

    fn service(&self, name: &str) -> &Service {
        self.manifest
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
    }

    fn orders(&self) -> &Service {
        self.service("orders")
    }

    async fn connect(&self, name: &str) -> ServiceConnection {
        self.stores
            .connect_as(self.service(name), "test")
            .await
            .unwrap()
    }

    /// Runs one statement on `orders`' store, as the service.
    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        let mut conn = self.connect("orders").await;
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            ServiceConnection::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
    }

    /// The text of one value from `orders`' store.
    async fn text(&self, name: &str, sql: &str) -> Option<String> {
        let mut conn = self.connect(name).await;
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::query_scalar(sql).fetch_optional(c).await,
            ServiceConnection::Sqlite(c) => sqlx::query_scalar(sql).fetch_optional(c).await,
        }
        .unwrap()
    }

    async fn outbox_count(&self) -> i64 {
        self.text("orders", "SELECT CAST(count(*) AS TEXT) FROM silo_outbox")
            .await
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The names of silo's event tables in a store.
    async fn event_tables(&self, name: &str) -> String {
        let sql = if self.service(name).engine == silo_manifest::Engine::Postgres {
            "SELECT coalesce(string_agg(tablename, ',' ORDER BY tablename), '') FROM pg_tables \
             WHERE tablename IN ('silo_outbox', 'silo_inbox', 'silo_events_state')"
        } else {
            "SELECT coalesce(group_concat(name, ','), '') FROM (SELECT name FROM sqlite_master \
             WHERE name IN ('silo_outbox', 'silo_inbox', 'silo_events_state') ORDER BY name)"
        };
        self.text(name, sql).await.unwrap()
    }
}

/// A UUID of version 7 and the RFC 9562 variant.
fn is_v7(id: &str) -> bool {
    Uuid::parse_str(id)
        .is_ok_and(|u| u.get_version_num() == 7 && u.get_variant() == uuid::Variant::RFC4122)
}

#[tokio::test]
async fn ensure_creates_the_tables_once_and_only_where_needed() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let first = ensure(&p.stores, p.orders()).await.unwrap();
        assert_eq!(first, Ensured::Created, "{engine}");
        assert_eq!(first.change().as_deref(), Some("created the event tables"));
        assert_eq!(
            p.event_tables("orders").await,
            "silo_events_state,silo_inbox,silo_outbox",
            "{engine}"
        );
        let second = ensure(&p.stores, p.orders()).await.unwrap();
        assert_eq!(second, Ensured::Unchanged, "{engine}");
        assert_eq!(second.change(), None);

        // A service that neither publishes nor consumes gets nothing.
        let ledger = ensure(&p.stores, p.service("ledger")).await.unwrap();
        assert_eq!(ledger, Ensured::NotNeeded, "{engine}");
        assert_eq!(p.event_tables("ledger").await, "", "{engine}");
    }
}

#[tokio::test]
async fn postgres_event_objects_are_owned_by_the_service_role() {
    let p = Project::new("postgres").await;
    ensure(&p.stores, p.orders()).await.unwrap();
    let role = p.orders().role.clone();
    let owners = p
        .text(
            "orders",
            "SELECT string_agg(DISTINCT pg_get_userbyid(c.relowner)::text, ',') FROM pg_class c \
             WHERE c.relname LIKE 'silo\\_%' AND c.relname <> 'silo_schema_history'",
        )
        .await
        .unwrap();
    assert_eq!(owners, role);
    let functions = p
        .text(
            "orders",
            "SELECT string_agg(proname || '=' || pg_get_userbyid(proowner), ',' ORDER BY proname) \
             FROM pg_proc WHERE proname IN ('silo_publish', 'silo_uuid_v7')",
        )
        .await
        .unwrap();
    assert_eq!(
        functions,
        format!("silo_publish={role},silo_uuid_v7={role}")
    );
}

#[tokio::test]
async fn a_plain_sql_insert_publishes_and_gets_a_uuid_v7() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        ensure(&p.stores, p.orders()).await.unwrap();
        p.exec(
            "INSERT INTO silo_outbox (type, key, payload) \
             VALUES ('order.placed', '42', '{\"total\": 3}')",
        )
        .await
        .unwrap();
        let id = p
            .text("orders", "SELECT CAST(id AS TEXT) FROM silo_outbox")
            .await
            .unwrap();
        assert!(is_v7(&id), "{engine}: {id}");
        let headers = p
            .text("orders", "SELECT CAST(headers AS TEXT) FROM silo_outbox")
            .await
            .unwrap();
        assert_eq!(headers, "{}", "{engine}");
        // A payload that is not JSON is refused by the store itself.
        let bad = p
            .exec("INSERT INTO silo_outbox (type, key, payload) VALUES ('order.placed', '1', 'not json')")
            .await;
        assert!(bad.is_err(), "{engine}");
        assert_eq!(p.outbox_count().await, 1, "{engine}");

        // Many defaults: all UUID v7, all different.
        let many = (0..64)
            .map(|i| format!("('order.placed', '{i}', '{{}}')"))
            .collect::<Vec<_>>()
            .join(", ");
        p.exec(&format!(
            "INSERT INTO silo_outbox (type, key, payload) VALUES {many}"
        ))
        .await
        .unwrap();
        let sql = if engine == "postgres" {
            "SELECT string_agg(id::text, ',') FROM silo_outbox"
        } else {
            "SELECT group_concat(id, ',') FROM silo_outbox"
        };
        let ids = p.text("orders", sql).await.unwrap();
        let ids: std::collections::BTreeSet<_> = ids.split(',').collect();
        assert_eq!(ids.len(), 65, "{engine}");
        assert!(ids.iter().all(|id| is_v7(id)), "{engine}: {ids:?}");
    }
}

#[tokio::test]
async fn sqlite_refuses_outbox_rows_with_blob_columns_or_an_id_that_is_no_uuid() {
    let p = Project::new("sqlite").await;
    ensure(&p.stores, p.orders()).await.unwrap();
    for values in [
        "(X'00ff', '1', '{}')",
        "('order.placed', X'00ff', '{}')",
        "('order.placed', '1', X'7b7d')",
    ] {
        let bad = p
            .exec(&format!(
                "INSERT INTO silo_outbox (type, key, payload) VALUES {values}"
            ))
            .await;
        assert!(bad.is_err(), "{values} was accepted");
    }
    let bad = p
        .exec("INSERT INTO silo_outbox (type, key, payload, headers) VALUES ('order.placed', '1', '{}', X'7b7d')")
        .await;
    assert!(bad.is_err(), "a BLOB header was accepted");
    // An id of its own must still be a UUID: a PostgreSQL consumer's inbox
    // and the bus take it as one.
    let bad = p
        .exec("INSERT INTO silo_outbox (id, type, key, payload) VALUES ('order-1', 'order.placed', '1', '{}')")
        .await;
    assert!(bad.is_err(), "an id that is no UUID was accepted");
    p.exec("INSERT INTO silo_outbox (id, type, key, payload) VALUES ('0190a4a2-7b1c-7cde-8f00-0123456789AB', 'order.placed', '1', '{}')")
        .await
        .unwrap();
    // A number is still made text by the column's affinity.
    p.exec("INSERT INTO silo_outbox (type, key, payload) VALUES ('order.placed', 42, '{}')")
        .await
        .unwrap();
    assert_eq!(p.outbox_count().await, 2);
}

#[tokio::test]
async fn silo_publish_inserts_a_row_on_postgres() {
    let p = Project::new("postgres").await;
    ensure(&p.stores, p.orders()).await.unwrap();
    let id = p
        .text(
            "orders",
            "SELECT silo_publish('order.placed', '7', '{\"total\": 1}')::text",
        )
        .await
        .unwrap();
    assert!(is_v7(&id), "{id}");
    let row = p
        .text(
            "orders",
            "SELECT type || '|' || key || '|' || payload::text || '|' || \
             (txid = txid) FROM silo_outbox",
        )
        .await
        .unwrap();
    assert_eq!(row, "order.placed|7|{\"total\": 1}|true");
    let stored = p
        .text("orders", "SELECT id::text FROM silo_outbox")
        .await
        .unwrap();
    assert_eq!(stored, id);
}

#[tokio::test]
async fn publish_commits_and_rolls_back_with_the_callers_transaction() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        ensure(&p.stores, p.orders()).await.unwrap();
        let payload = json!({"order": 1, "total": 9.5});
        let mut conn = p.connect("orders").await;
        let (rolled_back, committed) = match &mut conn {
            ServiceConnection::Postgres(c) => {
                let mut tx = c.begin().await.unwrap();
                let a = publish(&mut *tx, "order.placed", "1", &payload)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let b = publish(&mut *tx, "order.placed", "2", &payload)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                (a, b)
            }
            ServiceConnection::Sqlite(c) => {
                let mut tx = c.begin().await.unwrap();
                let a = publish(&mut *tx, "order.placed", "1", &payload)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let b = publish(&mut *tx, "order.placed", "2", &payload)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                (a, b)
            }
        };
        conn.close().await;
        assert_eq!(rolled_back.get_version_num(), 7);
        assert_eq!(p.outbox_count().await, 1, "{engine}");
        let row = p
            .text(
                "orders",
                "SELECT CAST(id AS TEXT) || '|' || key FROM silo_outbox",
            )
            .await
            .unwrap();
        assert_eq!(row, format!("{committed}|2"), "{engine}");
        let stored: serde_json::Value = serde_json::from_str(
            &p.text("orders", "SELECT CAST(payload AS TEXT) FROM silo_outbox")
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(stored, payload, "{engine}");

        // The engine-neutral connection publishes too (autocommit).
        let mut conn = p.connect("orders").await;
        publish(&mut conn, "order.placed", "3", &payload)
            .await
            .unwrap();
        conn.close().await;
        assert_eq!(p.outbox_count().await, 2, "{engine}");
    }
}

#[tokio::test]
async fn the_inbox_refuses_an_unknown_state_and_a_duplicate_event() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        ensure(&p.stores, p.orders()).await.unwrap();
        let id = Uuid::now_v7();
        let insert = |state: &str| {
            format!(
                "INSERT INTO silo_inbox (event_id, type, source, key, payload, state) \
                 VALUES ('{id}', 'order.placed', 'shop', '1', '{{}}', '{state}')"
            )
        };
        let unknown = p.exec(&insert("lost")).await.unwrap_err();
        assert!(
            unknown.to_string().to_lowercase().contains("check"),
            "{engine}: {unknown}"
        );
        p.exec(&insert("pending")).await.unwrap();
        let duplicate = p.exec(&insert("pending")).await;
        assert!(duplicate.is_err(), "{engine}: one row per event id");
        let row = p
            .text(
                "orders",
                "SELECT state || '|' || CAST(attempts AS TEXT) FROM silo_inbox",
            )
            .await
            .unwrap();
        assert_eq!(row, "pending|0", "{engine}");
    }
}

#[tokio::test]
async fn a_newer_format_is_refused() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        ensure(&p.stores, p.orders()).await.unwrap();
        p.exec("UPDATE silo_events_state SET format = 99")
            .await
            .unwrap();
        let err = ensure(&p.stores, p.orders()).await.unwrap_err();
        assert!(
            matches!(
                err,
                EventsError::NewerFormat {
                    found: 99,
                    supported: 2,
                    ..
                }
            ),
            "{engine}: {err:?}"
        );
        assert_eq!(err.exit_code(), 1);
        // Nothing was touched.
        let format = p
            .text(
                "orders",
                "SELECT CAST(format AS TEXT) FROM silo_events_state",
            )
            .await
            .unwrap();
        assert_eq!(format, "99", "{engine}");
    }
}

#[tokio::test]
async fn schema_snapshots_leave_the_event_objects_out() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.exec("CREATE TABLE orders (id integer PRIMARY KEY)")
            .await
            .unwrap();
        ensure(&p.stores, p.orders()).await.unwrap();
        let mut conn = p.connect("orders").await;
        let schema = match &mut conn {
            ServiceConnection::Postgres(c) => {
                silo_store::schema::snapshot_postgres(c).await.unwrap()
            }
            ServiceConnection::Sqlite(c) => silo_store::schema::snapshot_sqlite(c).await.unwrap(),
        };
        conn.close().await;
        let dump = schema.to_string();
        assert!(dump.contains("orders"), "{engine}: {dump}");
        assert!(!dump.contains("silo_"), "{engine}: {dump}");
        assert!(schema.functions.is_empty(), "{engine}: {dump}");
        let names: Vec<_> = schema.tables.iter().map(|t| t.name.clone()).collect();
        assert_eq!(names.len(), 1, "{engine}: {names:?}");
        assert!(names[0].ends_with("orders"), "{engine}: {names:?}");
    }
}

#[tokio::test]
async fn two_ensures_at_once_take_turns() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let (a, b) = tokio::join!(ensure(&p.stores, p.orders()), ensure(&p.stores, p.orders()));
        let mut outcomes = [a.unwrap(), b.unwrap()];
        outcomes.sort_by_key(|o| *o == Ensured::Unchanged);
        assert_eq!(outcomes, [Ensured::Created, Ensured::Unchanged], "{engine}");
    }
}
