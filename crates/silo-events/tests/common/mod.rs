//! The project the events tests share: `orders` publishes
//! `order.placed`, `billing` consumes it, each store reached as its own
//! service.

#![allow(dead_code)] // each test file uses its own part

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::json;
use silo_events::inbox::{Backoff, Handled, Inbox, InboxEvent, InboxStore};
use silo_events::relay::embedded::deliver_once;
use silo_events::{EventsError, Outbox, ensure, publish};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use sqlx::{AssertSqlSafe, Row};

pub const ENGINES: [&str; 2] = ["sqlite", "postgres"];

/// `[services.<name>]` with its database and role named under `prefix`,
/// then `lines` (what it publishes or consumes, its engine...).
pub fn service_toml(prefix: &Prefix, name: &str, lines: &str) -> String {
    format!(
        "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n{lines}\n",
        prefix.name(name),
        prefix.name(&format!("{name}_svc")),
    )
}

/// Writes `text` as `dir`/silo.toml and loads it, then provisions every
/// service's store and makes its event tables, each as the service.
pub async fn provision(dir: &std::path::Path, text: &str) -> (Manifest, Stores) {
    let path = dir.join("silo.toml");
    std::fs::write(&path, text).unwrap();
    let manifest = Manifest::load(&path, &Overrides::default()).unwrap();
    let stores = stores(&manifest);
    for svc in &manifest.services {
        stores
            .engine(svc)
            .unwrap()
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
        ensure(&stores, svc).await.unwrap();
    }
    (manifest, stores)
}

/// `orders` publishes `order.placed`; `billing` consumes it and keeps what
/// it handled in its own table `seen` (`pos` counts up as rows are
/// written).
pub struct Project {
    _dir: tempfile::TempDir,
    _prefix: Prefix,
    pub manifest: Manifest,
    pub stores: Stores,
}

impl Project {
    /// Makes `name`'s store unreachable: a PostgreSQL store's credentials
    /// point at a closed port, a SQLite file is moved away. [`Project::mend`]
    /// undoes it.
    pub fn break_store(&self, name: &str) {
        self.swap(name, true);
    }

    /// Undoes [`Project::break_store`].
    pub fn mend(&self, name: &str) {
        self.swap(name, false);
    }

    fn swap(&self, name: &str, away: bool) {
        let service = self.service(name);
        let creds = self
            .stores
            .engine(service)
            .unwrap()
            .credentials(service)
            .unwrap();
        if service.engine == silo_manifest::Engine::Sqlite {
            let path = std::path::PathBuf::from(&creds.database);
            let moved = path.with_extension("away");
            let (from, to) = if away {
                (&path, &moved)
            } else {
                (&moved, &path)
            };
            std::fs::rename(from, to).unwrap();
        } else {
            let file = self.stores.secrets().path(name);
            let kept = file.with_extension("kept");
            if away {
                let text = std::fs::read_to_string(&file).unwrap();
                std::fs::write(&kept, &text).unwrap();
                let closed: String = text
                    .lines()
                    .map(|l| match l.split_once("_DB_PORT=") {
                        Some((var, _)) => format!("{var}_DB_PORT=1\n"),
                        None => format!("{l}\n"),
                    })
                    .collect();
                std::fs::write(&file, closed).unwrap();
            } else {
                std::fs::rename(&kept, &file).unwrap();
            }
        }
    }

    pub async fn new(engine: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let mut text = format!("[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n");
        for (name, kind) in [("orders", "publishes"), ("billing", "consumes")] {
            text.push_str(&service_toml(
                &prefix,
                name,
                &format!("{kind} = [\"order.placed\"]"),
            ));
        }
        let (manifest, stores) = provision(dir.path(), &text).await;
        let p = Project {
            _dir: dir,
            _prefix: prefix,
            manifest,
            stores,
        };
        let seen = if engine == "postgres" {
            "CREATE TABLE seen (pos bigserial PRIMARY KEY, event_id text NOT NULL, key text NOT NULL, n bigint NOT NULL)"
        } else {
            "CREATE TABLE seen (pos INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, key TEXT NOT NULL, n INTEGER NOT NULL)"
        };
        p.exec("billing", seen).await;
        p
    }

    pub fn service(&self, name: &str) -> &Service {
        self.manifest
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
    }

    pub async fn connect(&self, name: &str) -> ServiceConnection {
        self.stores
            .connect_as(self.service(name), "test")
            .await
            .unwrap()
    }

    pub async fn exec(&self, name: &str, sql: &str) {
        let mut conn = self.connect(name).await;
        let sql = AssertSqlSafe(sql.to_string());
        match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            ServiceConnection::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .unwrap();
        conn.close().await;
    }

    /// Rows of text from `billing`'s store.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut conn = self.connect("billing").await;
        let sql = AssertSqlSafe(sql.to_string());
        let rows: Vec<Vec<Option<String>>> = match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::query(sql)
                .fetch_all(c)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                .collect(),
            ServiceConnection::Sqlite(c) => sqlx::query(sql)
                .fetch_all(c)
                .await
                .unwrap()
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                .collect(),
        };
        conn.close().await;
        rows
    }

    /// (key, n) of `billing`'s `seen`, in the order they were written.
    pub async fn seen(&self) -> Vec<(String, i64)> {
        self.rows("SELECT key, CAST(n AS TEXT) FROM seen ORDER BY pos")
            .await
            .into_iter()
            .map(|r| {
                (
                    r[0].clone().unwrap(),
                    r[1].clone().unwrap().parse().unwrap(),
                )
            })
            .collect()
    }

    /// key → (state, attempts, last_error) of `billing`'s inbox rows of
    /// one payload `n`.
    pub async fn inbox(&self) -> BTreeMap<i64, (String, i64, Option<String>)> {
        self.rows(
            "SELECT CAST(payload AS TEXT), state, CAST(attempts AS TEXT), last_error FROM silo_inbox",
        )
        .await
        .into_iter()
        .map(|r| {
            let payload: serde_json::Value =
                serde_json::from_str(r[0].as_deref().unwrap()).unwrap();
            (
                payload["n"].as_i64().unwrap(),
                (
                    r[1].clone().unwrap(),
                    r[2].clone().unwrap().parse().unwrap(),
                    r[3].clone(),
                ),
            )
        })
        .collect()
    }

    /// Publishes `order.placed` events (key, n) from `orders`, each in its
    /// own transaction, and delivers them into `billing`'s inbox.
    pub async fn deliver(&self, events: &[(&str, i64)]) {
        let before = self.inbox().await.len();
        let mut conn = self.connect("orders").await;
        for (key, n) in events {
            publish(&mut conn, "order.placed", key, &json!({ "n": n }))
                .await
                .unwrap();
        }
        conn.close().await;
        // On PostgreSQL a transaction of another test on the server can
        // hold delivery back for a moment: a bounded number of passes.
        for _ in 0..200 {
            deliver_once(
                &self.stores,
                &self.manifest,
                &silo_events::contracts::Contracts::none(),
            )
            .await
            .unwrap();
            if self.inbox().await.len() >= before + events.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("billing never got {} events", events.len());
    }

    /// One `handle` on a fresh connection as `billing`, recording each
    /// event in `seen`; the handler fails (after writing) for events whose
    /// `n` is in `fail`.
    pub async fn handle(&self, inbox: &Inbox, limit: usize, fail: &HashSet<i64>) -> Handled {
        let mut conn = self.connect("billing").await;
        let handled = handle_on(&mut conn, inbox, limit, fail).await.unwrap();
        conn.close().await;
        handled
    }
}

/// The stores of `manifest`'s services.
pub fn stores(manifest: &Manifest) -> Stores {
    Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 2,
    })
}

/// `inbox.handle` on either engine with the test's handler: the one
/// generic handler below serves both.
pub async fn handle_on(
    conn: &mut ServiceConnection,
    inbox: &Inbox,
    limit: usize,
    fail: &HashSet<i64>,
) -> Result<Handled, EventsError> {
    match conn {
        ServiceConnection::Postgres(c) => {
            inbox
                .handle(c, limit, async |tx, e| record(tx, e, fail).await)
                .await
        }
        ServiceConnection::Sqlite(c) => {
            inbox
                .handle(c, limit, async |tx, e| record(tx, e, fail).await)
                .await
        }
    }
}

/// The test's handler, written once for both engines: a row in `seen`,
/// then a failure for the payloads in `fail`.
pub async fn record<C: InboxStore>(
    tx: &mut C,
    event: &InboxEvent,
    fail: &HashSet<i64>,
) -> Result<(), String> {
    let n = event.payload["n"].as_i64().unwrap();
    let insert = "INSERT INTO seen (event_id, key, n) VALUES ($1, $2, $3)";
    match tx.store() {
        Outbox::Postgres(c) => sqlx::query(insert)
            .bind(&event.id)
            .bind(&event.key)
            .bind(n)
            .execute(c)
            .await
            .map(|_| ()),
        Outbox::Sqlite(c) => sqlx::query(insert)
            .bind(&event.id)
            .bind(&event.key)
            .bind(n)
            .execute(c)
            .await
            .map(|_| ()),
    }
    .map_err(|e| e.to_string())?;
    if fail.contains(&n) {
        return Err(format!("refusing order {n}"));
    }
    Ok(())
}

pub fn none() -> HashSet<i64> {
    HashSet::new()
}

/// A backoff no test outlives: a failed event is not ready again while
/// the test runs.
pub const LONG: Backoff = Backoff {
    base: Duration::from_secs(3600),
    max: Duration::from_secs(3600),
};

/// Makes `consumer`'s store unreachable, and back: on PostgreSQL its
/// database refuses connections (and its sessions are ended); on SQLite
/// its folder is moved away.
pub async fn take_away(manifest: &Manifest, prefix: &Prefix, consumer: &str, away: bool) {
    let svc = manifest.service(consumer).unwrap();
    match svc.engine {
        silo_manifest::Engine::Postgres => {
            let db = prefix.name(consumer);
            let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url())
                .await
                .unwrap();
            let sql = format!(
                "ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS {}",
                if away { "false" } else { "true" }
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await
                .unwrap();
            if away {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&db)
                .execute(&mut admin)
                .await
                .unwrap();
            }
            sqlx::Connection::close(admin).await.unwrap();
        }
        silo_manifest::Engine::Sqlite => {
            let folder = svc.sqlite_path(&manifest.data_dir);
            let folder = folder.parent().unwrap();
            let moved = folder.with_extension("away");
            if away {
                std::fs::rename(folder, moved).unwrap();
            } else {
                std::fs::rename(moved, folder).unwrap();
            }
        }
    }
}

/// How [`publish_in_one_transaction`] writes its events.
#[derive(Debug, Clone, Copy)]
pub enum OneTransaction {
    /// One multi-row `INSERT ... VALUES (...), (...), ...`.
    OneStatement,
    /// One plain `INSERT` per event between `BEGIN` and `COMMIT`.
    Statements,
}

/// Publishes `count` events of `event_type` on `conn` in one transaction,
/// in plain SQL as any language would (the ids come from the store's
/// default), with keys `k0`..`k4` interleaved and payload `{"n": i}`.
/// Returns (key, n) in publish order.
pub async fn publish_in_one_transaction(
    conn: &mut ServiceConnection,
    event_type: &str,
    count: i64,
    how: OneTransaction,
) -> Vec<(String, i64)> {
    let published: Vec<(String, i64)> = (0..count).map(|n| (format!("k{}", n % 5), n)).collect();
    let row = |(key, n): &(String, i64)| format!("('{event_type}', '{key}', '{{\"n\": {n}}}')");
    let rows = published.iter().map(row);
    let insert = "INSERT INTO silo_outbox (type, key, payload) VALUES";
    let sql = match how {
        OneTransaction::OneStatement => {
            format!("{insert} {};", rows.collect::<Vec<_>>().join(", "))
        }
        OneTransaction::Statements => format!(
            "BEGIN; {} COMMIT;",
            rows.map(|r| format!("{insert} {r};"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    let sql = AssertSqlSafe(sql);
    match conn {
        ServiceConnection::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
        ServiceConnection::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(drop),
    }
    .unwrap();
    published
}

/// `inbox` (key, n in arrival order) holds every one of `published` once,
/// each key's in publish order.
pub fn assert_per_key_order(label: &str, inbox: &[(String, i64)], published: &[(String, i64)]) {
    assert_eq!(inbox.len(), published.len(), "{label}: every event once");
    let keys: std::collections::BTreeSet<&String> = published.iter().map(|(k, _)| k).collect();
    for key in keys {
        let of = |rows: &[(String, i64)]| -> Vec<i64> {
            rows.iter()
                .filter(|(k, _)| k == key)
                .map(|(_, n)| *n)
                .collect()
        };
        assert_eq!(of(inbox), of(published), "{label}: key {key}");
    }
}
