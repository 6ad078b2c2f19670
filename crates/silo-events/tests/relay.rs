//! The embedded bus's delivery step, on real SQLite files and on the real
//! PostgreSQL server, each store reached as its own service.

use serde_json::json;
use silo_events::contracts::Contracts;
use silo_events::relay::embedded::{self, Delivered};
use silo_events::{EventsError, ensure, publish};
use silo_manifest::{Manifest, Service};
use silo_store::{ServiceConnection, Stores};
use silo_testkit::Prefix;
use sqlx::Connection;
use uuid::Uuid;

mod common;

use common::{
    OneTransaction, assert_per_key_order, provision, publish_in_one_transaction, service_toml,
};

const ENGINES: [&str; 2] = ["sqlite", "postgres"];

/// One delivery pass; these projects have no contracts (tests/contracts.rs
/// has them).
async fn deliver_once(stores: &Stores, manifest: &Manifest) -> Result<Delivered, EventsError> {
    embedded::deliver_once(stores, manifest, &Contracts::none()).await
}

/// `orders` publishes `order.placed`; `billing` and `shipping` consume it;
/// `ledger` consumes only `payment.made`.
struct Project {
    _dir: tempfile::TempDir,
    _prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
}

impl Project {
    async fn new(engine: &str) -> Self {
        Self::with_engines(engine, &[]).await
    }

    /// Like [`Project::new`], with some services on another engine.
    async fn with_engines(engine: &str, others: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let mut text = format!("[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n");
        for (name, kind, types) in [
            ("orders", "publishes", "order.placed"),
            ("billing", "consumes", "order.placed"),
            ("shipping", "consumes", "order.placed"),
            ("ledger", "consumes", "payment.made"),
        ] {
            let engine = match others.iter().find(|(s, _)| *s == name) {
                Some((_, other)) => format!("\nengine = \"{other}\""),
                None => String::new(),
            };
            text.push_str(&service_toml(
                &prefix,
                name,
                &format!("{kind} = [\"{types}\"]{engine}"),
            ));
        }
        let (manifest, stores) = provision(dir.path(), &text).await;
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

    async fn connect(&self, name: &str) -> ServiceConnection {
        self.stores
            .connect_as(self.service(name), "test")
            .await
            .unwrap()
    }

    /// Publishes one event from `orders` in its own committed transaction.
    async fn publish(&self, key: &str, n: i64) -> Uuid {
        let mut conn = self.connect("orders").await;
        let id = publish(&mut conn, "order.placed", key, &json!({ "n": n }))
            .await
            .unwrap();
        conn.close().await;
        id
    }

    /// `consumer`'s inbox as (event id, source, key, payload), in arrival
    /// order.
    async fn inbox(&self, consumer: &str) -> Vec<(String, String, String, serde_json::Value)> {
        let sql = "SELECT CAST(event_id AS TEXT), source, key, CAST(payload AS TEXT) \
                   FROM silo_inbox ORDER BY seq";
        let mut conn = self.connect(consumer).await;
        let rows: Vec<(String, String, String, String)> = match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::query_as(sql).fetch_all(c).await,
            ServiceConnection::Sqlite(c) => sqlx::query_as(sql).fetch_all(c).await,
        }
        .unwrap();
        conn.close().await;
        rows.into_iter()
            .map(|(id, src, key, p)| (id, src, key, serde_json::from_str(&p).unwrap()))
            .collect()
    }

    async fn inbox_ids(&self, consumer: &str) -> Vec<String> {
        self.inbox(consumer)
            .await
            .into_iter()
            .map(|r| r.0)
            .collect()
    }

    /// Runs `deliver_once` until `consumer` has `want` events, a bounded
    /// number of times: on PostgreSQL, a transaction of another test on
    /// the same server can hold delivery back for a moment.
    async fn deliver_until(&self, consumer: &str, want: usize) -> u64 {
        let mut total = 0;
        for _ in 0..200 {
            total += deliver_once(&self.stores, &self.manifest)
                .await
                .unwrap()
                .total();
            if self.inbox(consumer).await.len() >= want {
                return total;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{consumer} never got {want} events");
    }
}

#[tokio::test]
async fn a_committed_event_reaches_each_consumer_once() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let id = p.publish("42", 1).await.to_string();
        p.deliver_until("billing", 1).await;
        p.deliver_until("shipping", 1).await;
        for consumer in ["billing", "shipping"] {
            let inbox = p.inbox(consumer).await;
            assert_eq!(
                inbox,
                vec![(id.clone(), "orders".into(), "42".into(), json!({"n": 1}))],
                "{engine} {consumer}"
            );
        }
        // Nothing new: a second pass adds nothing.
        let again = deliver_once(&p.stores, &p.manifest).await.unwrap();
        assert_eq!(again.total(), 0, "{engine}: {again:?}");
        assert_eq!(p.inbox("billing").await.len(), 1, "{engine}");
        assert_eq!(p.inbox("shipping").await.len(), 1, "{engine}");
        // A service that does not consume the type gets nothing.
        assert!(p.inbox("ledger").await.is_empty(), "{engine}");
    }
}

#[tokio::test]
async fn a_rolled_back_publish_never_arrives() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let mut conn = p.connect("orders").await;
        let rolled_back = match &mut conn {
            ServiceConnection::Postgres(c) => {
                let mut tx = c.begin().await.unwrap();
                let id = publish(&mut *tx, "order.placed", "1", &json!({}))
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                id
            }
            ServiceConnection::Sqlite(c) => {
                let mut tx = c.begin().await.unwrap();
                let id = publish(&mut *tx, "order.placed", "1", &json!({}))
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                id
            }
        };
        conn.close().await;
        let committed = p.publish("2", 2).await.to_string();
        p.deliver_until("billing", 1).await;
        p.deliver_until("shipping", 1).await;
        for consumer in ["billing", "shipping"] {
            let ids = p.inbox_ids(consumer).await;
            assert_eq!(ids, vec![committed.clone()], "{engine} {consumer}");
            assert!(!ids.contains(&rolled_back.to_string()));
        }
    }
}

#[tokio::test]
async fn per_key_order_is_kept_across_passes() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let mut published = Vec::new();
        for n in 0..12 {
            let key = ["a", "b", "c"][n as usize % 3];
            published.push((key, p.publish(key, n).await.to_string()));
            // A pass in the middle: the cursor carries on from there.
            if n == 5 {
                deliver_once(&p.stores, &p.manifest).await.unwrap();
            }
        }
        p.deliver_until("billing", 12).await;
        p.deliver_until("shipping", 12).await;
        for consumer in ["billing", "shipping"] {
            let inbox = p.inbox(consumer).await;
            assert_eq!(inbox.len(), 12, "{engine} {consumer}");
            for key in ["a", "b", "c"] {
                let want: Vec<_> = published
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, id)| id.clone())
                    .collect();
                let got: Vec<_> = inbox
                    .iter()
                    .filter(|r| r.2 == key)
                    .map(|r| r.0.clone())
                    .collect();
                assert_eq!(got, want, "{engine} {consumer} key {key}");
            }
        }
        assert!(p.inbox("ledger").await.is_empty(), "{engine}");
    }
}

/// The out-of-order commit (watermill #311): A takes the earlier outbox
/// position and stays open, B takes a later one and commits first. While A
/// is open nothing from either is delivered (the cursor must not pass A);
/// once A commits, both arrive, A first, none lost.
#[tokio::test]
async fn postgres_a_later_commit_does_not_skip_an_earlier_open_transaction() {
    let p = Project::new("postgres").await;
    let mut a_conn = p.connect("orders").await;
    let ServiceConnection::Postgres(a_pg) = &mut a_conn else {
        unreachable!()
    };
    let mut a = a_pg.begin().await.unwrap();
    let a_id = publish(&mut *a, "order.placed", "k", &json!({"n": "a"}))
        .await
        .unwrap()
        .to_string();
    let b_id = p.publish("k", 2).await.to_string();
    assert!(a_id < b_id, "A's id is the earlier one");

    // B is committed, but A is still running: neither may go.
    let held = deliver_once(&p.stores, &p.manifest).await.unwrap();
    assert_eq!(held.total(), 0, "{held:?}");
    assert!(p.inbox("billing").await.is_empty());
    assert!(p.inbox("shipping").await.is_empty());

    a.commit().await.unwrap();
    a_conn.close().await;
    p.deliver_until("billing", 2).await;
    p.deliver_until("shipping", 2).await;
    for consumer in ["billing", "shipping"] {
        assert_eq!(
            p.inbox_ids(consumer).await,
            vec![a_id.clone(), b_id.clone()],
            "{consumer}"
        );
    }
    assert_eq!(
        deliver_once(&p.stores, &p.manifest).await.unwrap().total(),
        0
    );
}

/// Many events of a handful of keys in one transaction, in one multi-row
/// `INSERT` and in one `INSERT` each: every consumer gets each key's
/// events in publish order. On PostgreSQL they share a `txid` and mostly
/// their ids' millisecond (the rest of an id is random), so only the
/// order the rows were inserted in tells them apart; more of them than a
/// batch holds, so a cursor stops inside the transaction.
#[tokio::test]
async fn the_events_of_one_transaction_arrive_in_publish_order() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let mut published = Vec::new();
        for how in [OneTransaction::OneStatement, OneTransaction::Statements] {
            let mut conn = p.connect("orders").await;
            published
                .extend(publish_in_one_transaction(&mut conn, "order.placed", 1200, how).await);
            conn.close().await;
        }
        for consumer in ["billing", "shipping"] {
            p.deliver_until(consumer, published.len()).await;
            let inbox: Vec<(String, i64)> = p
                .inbox(consumer)
                .await
                .into_iter()
                .map(|(_, _, key, payload)| (key, payload["n"].as_i64().unwrap()))
                .collect();
            assert_per_key_order(&format!("{engine} {consumer}"), &inbox, &published);
        }
    }
}

#[tokio::test]
async fn postgres_names_the_open_transaction_that_holds_committed_events_back() {
    let p = Project::new("postgres").await;
    let mut a_conn = p.connect("orders").await;
    let ServiceConnection::Postgres(a_pg) = &mut a_conn else {
        unreachable!()
    };
    let mut a = a_pg.begin().await.unwrap();
    publish(&mut *a, "order.placed", "k", &json!({"n": "a"}))
        .await
        .unwrap();
    p.publish("k", 2).await;

    let mut source = p.connect("orders").await;
    let held = silo_events::relay::backlog::held_back(&mut source, p.service("orders"))
        .await
        .unwrap()
        .expect("B waits behind A");
    assert_eq!(held.rows, 1, "only B is committed: {held:?}");
    assert!(held.xids_behind >= 1, "{held:?}");
    // pg_stat_activity shows every backend's pid and database to any role.
    assert!(held.holder.is_some(), "{held:?}");
    a.commit().await.unwrap();
    a_conn.close().await;

    // SQLite has nothing to hold back.
    let q = Project::new("sqlite").await;
    q.publish("k", 1).await;
    let mut source = q.connect("orders").await;
    let held = silo_events::relay::backlog::held_back(&mut source, q.service("orders"))
        .await
        .unwrap();
    assert_eq!(held, None);
}

/// A store of format 1 (before the cursor table) is upgraded by `ensure`.
#[tokio::test]
async fn ensure_upgrades_format_1_with_the_cursor_table() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let mut conn = p.connect("billing").await;
        let sql = "DROP TABLE silo_inbox_cursor; UPDATE silo_events_state SET format = 1";
        match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            ServiceConnection::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .unwrap();
        conn.close().await;
        let done = ensure(&p.stores, p.service("billing")).await.unwrap();
        assert_eq!(done, silo_events::Ensured::Upgraded { from: 1 }, "{engine}");
        p.publish("1", 1).await;
        p.deliver_until("billing", 1).await;
    }
}

/// Tables of format 2 made by an earlier build, before the outbox's and
/// the cursor's `seq` (the outbox then ordered by `(txid, id)`), are
/// completed by `ensure`, and delivery goes on from the cursor without
/// repeating anything.
#[tokio::test]
async fn ensure_completes_format_2_tables_made_before_the_seq_columns() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let first = p.publish("k", 1).await.to_string();
        let second = p.publish("k", 2).await.to_string();
        p.deliver_until("billing", 2).await;
        if engine == "postgres" {
            exec_as(
                &p,
                "orders",
                "ALTER TABLE silo_outbox DROP COLUMN seq; \
                 CREATE INDEX silo_outbox_txid_id ON silo_outbox (txid, id); \
                 CREATE INDEX silo_outbox_pending ON silo_outbox (txid, id) WHERE state = 'pending'",
            )
            .await;
        }
        exec_as(
            &p,
            "billing",
            "ALTER TABLE silo_inbox_cursor DROP COLUMN seq",
        )
        .await;

        let orders = ensure(&p.stores, p.service("orders")).await.unwrap();
        let billing = ensure(&p.stores, p.service("billing")).await.unwrap();
        let completed = silo_events::Ensured::Upgraded { from: 2 };
        assert_eq!(billing, completed, "{engine}");
        if engine == "postgres" {
            assert_eq!(orders, completed);
            let indexes: Vec<String> = match &mut p.connect("orders").await {
                ServiceConnection::Postgres(c) => sqlx::query_scalar(
                    "SELECT indexname::text FROM pg_indexes \
                     WHERE tablename = 'silo_outbox' ORDER BY indexname",
                )
                .fetch_all(c)
                .await
                .unwrap(),
                ServiceConnection::Sqlite(_) => unreachable!(),
            };
            assert_eq!(
                indexes,
                [
                    "silo_outbox_dead",
                    "silo_outbox_pending_txid_seq",
                    "silo_outbox_pkey",
                    "silo_outbox_txid_seq"
                ]
            );
        } else {
            assert_eq!(orders, silo_events::Ensured::Unchanged);
        }
        let again = ensure(&p.stores, p.service("billing")).await.unwrap();
        assert_eq!(again, silo_events::Ensured::Unchanged, "{engine}");

        let third = p.publish("k", 3).await.to_string();
        p.deliver_until("billing", 3).await;
        assert_eq!(
            p.inbox_ids("billing").await,
            vec![first, second, third],
            "{engine}: nothing twice"
        );
    }
}

/// The cursor lives in the consumer's own store, at the last event it
/// holds; and even with the cursor lost, the inbox's unique event id keeps
/// a second delivery out.
#[tokio::test]
async fn the_cursor_is_in_the_consumers_store_and_a_lost_cursor_duplicates_nothing() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        p.publish("1", 1).await;
        let last = p.publish("2", 2).await.to_string();
        p.deliver_until("billing", 2).await;
        p.deliver_until("shipping", 2).await;
        let cursor_sql = "SELECT source || '|' || event_id FROM silo_inbox_cursor";
        let mut conn = p.connect("billing").await;
        let cursor: Vec<String> = match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::query_scalar(cursor_sql).fetch_all(c).await,
            ServiceConnection::Sqlite(c) => sqlx::query_scalar(cursor_sql).fetch_all(c).await,
        }
        .unwrap();
        assert_eq!(cursor, vec![format!("orders|{last}")], "{engine}");
        let forget = "DELETE FROM silo_inbox_cursor";
        match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::query(forget).execute(c).await.map(|_| ()),
            ServiceConnection::Sqlite(c) => sqlx::query(forget).execute(c).await.map(|_| ()),
        }
        .unwrap();
        conn.close().await;
        let before = p.inbox("billing").await;
        let again = deliver_once(&p.stores, &p.manifest).await.unwrap();
        assert_eq!(again.total(), 0, "{engine}: {again:?}");
        assert_eq!(p.inbox("billing").await, before, "{engine}");
        assert_eq!(p.inbox("shipping").await.len(), 2, "{engine}");
    }
}

/// One publisher of the concurrent test: `count` transactions on `key`,
/// every third one rolled back, each holding its row a moment before it
/// ends so other publishers and the relay run in between. Returns the
/// committed ids in publish order.
async fn publish_concurrently(p: &Project, key: &str, count: i64) -> Vec<String> {
    let mut conn = p.connect("orders").await;
    let mut committed = Vec::new();
    for n in 0..count {
        let keep = n % 3 != 2;
        let id = match &mut conn {
            ServiceConnection::Postgres(c) => {
                let mut tx = c.begin().await.unwrap();
                let id = publish(&mut *tx, "order.placed", key, &json!({ "n": n }))
                    .await
                    .unwrap();
                // Hold the open transaction a moment (not for correctness:
                // to let other commits and relay passes land inside it).
                tokio::time::sleep(std::time::Duration::from_millis(n as u64 % 4)).await;
                if keep {
                    tx.commit().await.unwrap()
                } else {
                    tx.rollback().await.unwrap()
                }
                id
            }
            ServiceConnection::Sqlite(c) => {
                let mut tx = c.begin().await.unwrap();
                let id = publish(&mut *tx, "order.placed", key, &json!({ "n": n }))
                    .await
                    .unwrap();
                // Hold the open transaction a moment (not for correctness:
                // to let other commits and relay passes land inside it).
                tokio::time::sleep(std::time::Duration::from_millis(n as u64 % 4)).await;
                if keep {
                    tx.commit().await.unwrap()
                } else {
                    tx.rollback().await.unwrap()
                }
                id
            }
        };
        if keep {
            committed.push(id.to_string());
        }
    }
    conn.close().await;
    committed
}

/// Publishers in concurrent transactions (tasks of their own, on several
/// threads) while the relay runs: every committed event reaches each
/// consumer once, in per-key order, and no rolled-back one arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_while_delivering_lose_and_repeat_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    for engine in ENGINES {
        let p = Arc::new(Project::new(engine).await);
        let done = Arc::new(AtomicBool::new(false));
        let relay = {
            let (p, done) = (p.clone(), done.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    deliver_once(&p.stores, &p.manifest).await.unwrap();
                }
            })
        };
        let publishers: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|key| {
                let p = p.clone();
                tokio::spawn(async move { (key, publish_concurrently(&p, key, 15).await) })
            })
            .collect();
        let mut published = Vec::new();
        for task in publishers {
            published.push(task.await.unwrap());
        }
        done.store(true, Ordering::SeqCst);
        relay.await.unwrap();
        let want: usize = published.iter().map(|(_, ids)| ids.len()).sum();
        assert_eq!(want, 30, "{engine}");
        for consumer in ["billing", "shipping"] {
            p.deliver_until(consumer, want).await;
            let inbox = p.inbox(consumer).await;
            assert_eq!(inbox.len(), want, "{engine} {consumer}");
            for (key, ids) in &published {
                let got: Vec<_> = inbox
                    .iter()
                    .filter(|r| r.2 == *key)
                    .map(|r| r.0.clone())
                    .collect();
                assert_eq!(&got, ids, "{engine} {consumer} key {key}");
            }
        }
    }
}

/// Stores on different engines: a PostgreSQL publisher delivers into a
/// SQLite consumer's inbox and a SQLite publisher into a PostgreSQL one.
#[tokio::test]
async fn delivery_crosses_engines() {
    for (engine, other) in [("postgres", "sqlite"), ("sqlite", "postgres")] {
        let p = Project::with_engines(engine, &[("billing", other)]).await;
        assert_eq!(p.service("billing").engine.to_string(), other);
        let first = p.publish("1", 1).await.to_string();
        p.deliver_until("billing", 1).await;
        let second = p.publish("1", 2).await.to_string();
        p.deliver_until("billing", 2).await;
        p.deliver_until("shipping", 2).await;
        for consumer in ["billing", "shipping"] {
            assert_eq!(
                p.inbox_ids(consumer).await,
                vec![first.clone(), second.clone()],
                "{engine} -> {consumer}"
            );
        }
        let again = deliver_once(&p.stores, &p.manifest).await.unwrap();
        assert_eq!(again.total(), 0, "{engine}: {again:?}");
    }
}

/// Runs `sql` on `service`'s store as the service.
async fn exec_as(p: &Project, service: &str, sql: &str) {
    let mut conn = p.connect(service).await;
    match &mut conn {
        ServiceConnection::Postgres(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(c)
            .await
            .map(drop),
        ServiceConnection::Sqlite(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(c)
            .await
            .map(drop),
    }
    .unwrap();
    conn.close().await;
}

#[tokio::test]
async fn a_sqlite_publisher_put_back_from_a_backup_still_delivers_new_events() {
    let p = Project::new("sqlite").await;
    for n in 0..5 {
        p.publish("k", n).await;
    }
    p.deliver_until("billing", 5).await;
    let file = p.service("orders").sqlite_path(&p.manifest.data_dir);
    let backup = file.with_extension("backup");
    exec_as(&p, "orders", &format!("VACUUM INTO '{}'", backup.display())).await;
    for n in 5..10 {
        p.publish("k", n).await;
    }
    p.deliver_until("billing", 10).await;

    // The store goes back to the backup: its outbox counts on from 5, below
    // billing's cursor at 10.
    std::fs::rename(&backup, &file).unwrap();
    let mut later = Vec::new();
    for n in 100..103 {
        later.push(p.publish("k", n).await.to_string());
    }
    p.deliver_until("billing", 13).await;
    let ids = p.inbox_ids("billing").await;
    assert_eq!(ids.len(), 13, "nothing twice: {ids:?}");
    assert_eq!(ids[10..], later[..], "the new events, in order");
}

#[tokio::test]
async fn a_sqlite_publisher_put_back_from_a_backup_that_counts_past_the_cursor_again_delivers_everything()
 {
    let p = Project::new("sqlite").await;
    for n in 0..10 {
        p.publish("k", n).await;
    }
    p.deliver_until("billing", 10).await;
    let file = p.service("orders").sqlite_path(&p.manifest.data_dir);
    let backup = file.with_extension("backup");
    exec_as(&p, "orders", &format!("VACUUM INTO '{}'", backup.display())).await;
    for n in 10..110 {
        p.publish("k", n).await;
    }
    p.deliver_until("billing", 110).await;

    // Back to the backup (seq 10), then more events than the cursor is
    // ahead by before the relay looks: the counter is past the cursor again.
    std::fs::rename(&backup, &file).unwrap();
    let mut later = Vec::new();
    for n in 1000..1150 {
        later.push(p.publish("k", n).await.to_string());
    }
    deliver_once(&p.stores, &p.manifest).await.unwrap();
    for consumer in ["billing", "shipping"] {
        let ids = p.inbox_ids(consumer).await;
        assert_eq!(ids.len(), 260, "{consumer}: every new event, nothing twice");
        assert_eq!(
            ids[110..],
            later[..],
            "{consumer}: the new events, in order"
        );
    }
}

#[tokio::test]
async fn a_cursor_of_another_origin_or_ahead_of_the_counter_starts_over() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let first = p.publish("k", 1).await.to_string();
        p.deliver_until("billing", 1).await;

        // As if the publisher were restored into another cluster.
        exec_as(
            &p,
            "billing",
            "UPDATE silo_inbox_cursor SET origin = 'elsewhere'",
        )
        .await;
        let second = p.publish("k", 2).await.to_string();
        p.deliver_until("billing", 2).await;
        assert_eq!(
            p.inbox_ids("billing").await,
            vec![first.clone(), second.clone()],
            "{engine}"
        );

        // As if its counter had gone back below the cursor.
        exec_as(
            &p,
            "billing",
            "UPDATE silo_inbox_cursor SET position = 9000000000000",
        )
        .await;
        let third = p.publish("k", 3).await.to_string();
        p.deliver_until("billing", 3).await;
        assert_eq!(
            p.inbox_ids("billing").await,
            vec![first, second, third],
            "{engine}: started over, nothing twice"
        );
    }
}
