//! The nats bus on a real nats-server of each test's own (started and
//! stopped by the test), with real SQLite files and the real PostgreSQL
//! server, each store reached as its own service.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use silo_events::contracts::Contracts;
use silo_events::publish as publish_event;
use silo_events::relay::nats::run::{Counters, RunOptions, run, set_up};
use silo_events::relay::nats::{NatsConfig, names, publish, stream};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ServiceConnection, Stores, StoresConfig};
use silo_testkit::{NatsServer, Prefix, admin_url};
use sqlx::Connection;
use tokio::sync::watch;

mod common;

use common::{
    OneTransaction, assert_per_key_order, provision, publish_in_one_transaction, service_toml,
    take_away,
};

const ENGINES: [&str; 2] = ["sqlite", "postgres"];

/// `orders` publishes `order.placed` and `order.paid`; `billing` consumes
/// both; `shipping` consumes `order.placed`; `ledger` consumes
/// `payment.made`, which nobody publishes.
struct Project {
    dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    nats: NatsConfig,
}

const SERVICES: [(&str, &str); 4] = [
    ("orders", "publishes = [\"order.placed\", \"order.paid\"]"),
    ("billing", "consumes = [\"order.placed\", \"order.paid\"]"),
    ("shipping", "consumes = [\"order.placed\"]"),
    ("ledger", "consumes = [\"payment.made\"]"),
];

impl Project {
    async fn new(engine: &str, server: &NatsServer, events: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let mut text = format!(
            "[project]\nname = \"shop\"\n[defaults]\nengine = \"{engine}\"\n[events]\nbus = \"nats\"\n{events}\n"
        );
        for (name, line) in SERVICES {
            text.push_str(&service_toml(&prefix, name, line));
        }
        let (manifest, stores) = provision(dir.path(), &text).await;
        let nats = NatsConfig::new(&manifest, server.url());
        Project {
            dir,
            prefix,
            manifest,
            stores,
            nats,
        }
    }

    fn service(&self, name: &str) -> &Service {
        self.manifest.service(name).unwrap()
    }

    fn services(&self) -> Vec<&Service> {
        self.manifest.services.iter().collect()
    }

    async fn connect(&self, name: &str) -> ServiceConnection {
        self.stores
            .connect_as(self.service(name), "test")
            .await
            .unwrap()
    }

    /// Publishes one event from `orders` in its own committed transaction.
    async fn publish(&self, event_type: &str, key: &str, n: i64) -> String {
        let mut conn = self.connect("orders").await;
        let id = publish_event(&mut conn, event_type, key, &json!({ "n": n }))
            .await
            .unwrap();
        conn.close().await;
        id.to_string()
    }

    /// Publishes `payload` as an event from `orders` in its own committed
    /// transaction.
    async fn publish_payload(&self, event_type: &str, payload: serde_json::Value) -> String {
        let mut conn = self.connect("orders").await;
        let id = publish_event(&mut conn, event_type, "k", &payload)
            .await
            .unwrap();
        conn.close().await;
        id.to_string()
    }

    /// Rows of `sql` (text columns) in `service`'s store.
    async fn rows(&self, service: &str, sql: &str) -> Vec<Vec<String>> {
        let mut conn = self.connect(service).await;
        let rows: Vec<Vec<String>> = match &mut conn {
            ServiceConnection::Postgres(c) => {
                use sqlx::Row;
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (0..r.len()).map(|i| r.get::<String, _>(i)).collect())
                    .collect()
            }
            ServiceConnection::Sqlite(c) => {
                use sqlx::Row;
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(c)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (0..r.len()).map(|i| r.get::<String, _>(i)).collect())
                    .collect()
            }
        };
        conn.close().await;
        rows
    }

    /// `consumer`'s inbox as (event id, type, key), in arrival order.
    async fn inbox(&self, consumer: &str) -> Vec<(String, String, String)> {
        self.rows(
            consumer,
            "SELECT CAST(event_id AS TEXT), type, key FROM silo_inbox ORDER BY seq",
        )
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect()
    }

    /// Polls `consumer`'s inbox until it has `want` rows or `within` has
    /// passed; returns how many it has.
    async fn wait_within(&self, consumer: &str, want: usize, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.inbox(consumer).await.len();
            if got >= want || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `consumer`'s inbox until it has `want` rows, for a bounded
    /// time.
    async fn wait_for(&self, consumer: &str, want: usize) -> Vec<(String, String, String)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let inbox = self.inbox(consumer).await;
            if inbox.len() >= want {
                return inbox;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{consumer} has {} of {want} events",
                inbox.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A worker for every service, in the background, until the guard says
/// stop.
struct Worker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// One per service, in the manifest's order.
    counters: Arc<Vec<Counters>>,
}

impl Worker {
    async fn start(p: &Arc<Project>) -> Self {
        let all = p.services();
        set_up(&p.nats, &p.manifest, &all, true).await.unwrap();
        let (stop, rx) = watch::channel(false);
        let counters: Arc<Vec<Counters>> =
            Arc::new(all.iter().map(|_| Counters::default()).collect());
        let p = p.clone();
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            let services = p.services();
            let contracts = Contracts::load(&p.manifest).unwrap();
            run(
                &p.stores,
                &p.manifest,
                &p.nats,
                &contracts,
                &services,
                &shared,
                RunOptions::default(),
                rx,
            )
            .await;
        });
        Worker {
            stop,
            task,
            counters,
        }
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the worker stops")
            .unwrap();
    }
}

/// One publisher of the concurrent tests: `count` transactions on `key`,
/// alternating `order.placed` and `order.paid`, every third one rolled
/// back. Returns (type, id) of the committed ones, in publish order, and
/// the ids of the rolled-back ones.
async fn publish_concurrently(
    p: &Project,
    key: &str,
    count: i64,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut conn = p.connect("orders").await;
    let mut committed = Vec::new();
    let mut rolled_back = Vec::new();
    for n in 0..count {
        let keep = n % 3 != 2;
        let t = if n % 2 == 0 {
            "order.placed"
        } else {
            "order.paid"
        };
        let payload = json!({ "n": n });
        let id = match &mut conn {
            ServiceConnection::Postgres(c) => {
                let mut tx = c.begin().await.unwrap();
                let id = publish_event(&mut *tx, t, key, &payload).await.unwrap();
                // Hold the open transaction a moment (not for correctness:
                // to let other commits and relay passes land inside it).
                tokio::time::sleep(Duration::from_millis(n as u64 % 4)).await;
                if keep {
                    tx.commit().await.unwrap()
                } else {
                    tx.rollback().await.unwrap()
                }
                id
            }
            ServiceConnection::Sqlite(c) => {
                let mut tx = c.begin().await.unwrap();
                let id = publish_event(&mut *tx, t, key, &payload).await.unwrap();
                tokio::time::sleep(Duration::from_millis(n as u64 % 4)).await;
                if keep {
                    tx.commit().await.unwrap()
                } else {
                    tx.rollback().await.unwrap()
                }
                id
            }
        };
        if keep {
            committed.push((t.to_string(), id.to_string()));
        } else {
            rolled_back.push(id.to_string());
        }
    }
    conn.close().await;
    (committed, rolled_back)
}

/// Each consumer's inbox holds exactly the committed events of the types
/// it consumes, once each, in per-key publish order, and no rolled-back
/// one.
fn assert_exactly_once_in_order(
    label: &str,
    inbox: &[(String, String, String)],
    published: &[(String, Vec<(String, String)>)],
    types: &[&str],
    rolled_back: &[String],
) {
    let want: usize = published
        .iter()
        .map(|(_, ids)| {
            ids.iter()
                .filter(|(t, _)| types.contains(&t.as_str()))
                .count()
        })
        .sum();
    assert_eq!(
        inbox.len(),
        want,
        "{label}: {} rows, want {want}",
        inbox.len()
    );
    let mut seen = std::collections::HashSet::new();
    for (id, _, _) in inbox {
        assert!(seen.insert(id.clone()), "{label}: {id} twice");
        assert!(
            !rolled_back.contains(id),
            "{label}: rolled back {id} arrived"
        );
    }
    for (key, ids) in published {
        let want: Vec<&String> = ids
            .iter()
            .filter(|(t, _)| types.contains(&t.as_str()))
            .map(|(_, id)| id)
            .collect();
        let got: Vec<&String> = inbox.iter().filter(|r| r.2 == *key).map(|r| &r.0).collect();
        assert_eq!(got, want, "{label}: key {key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_reach_each_consumer_once_in_per_key_order() {
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        let worker = Worker::start(&p).await;
        let publishers: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|key| {
                let p = p.clone();
                tokio::spawn(
                    async move { (key.to_string(), publish_concurrently(&p, key, 15).await) },
                )
            })
            .collect();
        let mut published = Vec::new();
        let mut rolled_back = Vec::new();
        for task in publishers {
            let (key, (committed, rb)) = task.await.unwrap();
            published.push((key, committed));
            rolled_back.extend(rb);
        }
        let total: usize = published.iter().map(|(_, ids)| ids.len()).sum();
        assert_eq!(total, 30);
        let placed = published
            .iter()
            .flat_map(|(_, ids)| ids)
            .filter(|(t, _)| t == "order.placed")
            .count();
        let billing = p.wait_for("billing", total).await;
        let shipping = p.wait_for("shipping", placed).await;
        worker.stop().await;
        assert_exactly_once_in_order(
            &format!("{engine} billing"),
            &billing,
            &published,
            &["order.placed", "order.paid"],
            &rolled_back,
        );
        assert_exactly_once_in_order(
            &format!("{engine} shipping"),
            &shipping,
            &published,
            &["order.placed"],
            &rolled_back,
        );
        assert!(p.inbox("ledger").await.is_empty());
        // Retention delete: the outbox is empty once the stream has all.
        assert!(
            p.rows("orders", "SELECT CAST(id AS TEXT) FROM silo_outbox")
                .await
                .is_empty(),
            "{engine}"
        );
        // The stream holds each committed event once.
        let conn = p.nats.connect("orders").await.unwrap();
        let mut s = conn.js.get_stream("shop").await.unwrap();
        assert_eq!(s.info().await.unwrap().state.messages, 30, "{engine}");
    }
}

/// The inbox rows carry the CloudEvents attributes, and `keep` retention
/// leaves the outbox rows marked sent.
#[tokio::test]
async fn the_envelope_reaches_the_inbox_and_keep_marks_rows_sent() {
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "retention = \"keep\"").await);
        let id = p.publish("order.placed", "k1", 7).await;
        let worker = Worker::start(&p).await;
        p.wait_for("shipping", 1).await;
        worker.stop().await;
        let row = p
            .rows(
                "shipping",
                "SELECT CAST(event_id AS TEXT), source, type, key, specversion, datacontenttype, \
                 CAST(payload AS TEXT), state FROM silo_inbox",
            )
            .await;
        assert_eq!(row.len(), 1);
        let r = &row[0];
        assert_eq!(
            (&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[7]),
            (
                &id,
                &"orders".to_string(),
                &"order.placed".to_string(),
                &"k1".to_string(),
                &"1.0".to_string(),
                &"application/json".to_string(),
                &"pending".to_string()
            ),
            "{engine}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&r[6]).unwrap(),
            json!({"n": 7})
        );
        let outbox = p
            .rows(
                "orders",
                "SELECT CAST(id AS TEXT), state FROM silo_outbox WHERE sent_at IS NOT NULL",
            )
            .await;
        assert_eq!(
            outbox,
            vec![vec![id.clone(), "sent".to_string()]],
            "{engine}"
        );
    }
}

/// The out-of-order commit (watermill #311) on the nats bus: X commits,
/// then A takes the next outbox position and stays open, B a later one and
/// commits first. While A is open the relay publishes X alone, and retires
/// X's range without touching A's or B's rows; once A commits, both reach
/// the stream and the inbox, A first.
#[tokio::test]
async fn postgres_a_later_commit_does_not_skip_an_earlier_open_transaction() {
    let server = NatsServer::start();
    let p = Arc::new(Project::new("postgres", &server, "").await);
    set_up(&p.nats, &p.manifest, &p.services(), true)
        .await
        .unwrap();
    let x_id = p.publish("order.placed", "k", 0).await;
    let mut a_conn = p.connect("orders").await;
    let ServiceConnection::Postgres(a_pg) = &mut a_conn else {
        unreachable!()
    };
    let mut a = a_pg.begin().await.unwrap();
    let a_id = publish_event(&mut *a, "order.placed", "k", &json!({"n": "a"}))
        .await
        .unwrap()
        .to_string();
    let b_id = p.publish("order.placed", "k", 2).await;
    assert!(a_id < b_id, "A's id is the earlier one");

    let bus = p.nats.connect("orders").await.unwrap();
    let mut store = p.connect("orders").await;
    publish::prepare(&mut store, p.service("orders"))
        .await
        .unwrap();
    let held = publish::relay_batch(
        &mut store,
        &bus,
        &p.manifest,
        p.service("orders"),
        &Contracts::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (held.read, held.published),
        (1, 1),
        "X alone: B is committed but A is open: {held:?}"
    );
    let pending: Vec<String> = p
        .rows(
            "orders",
            "SELECT id::text FROM silo_outbox WHERE state = 'pending' ORDER BY seq",
        )
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(pending, vec![b_id.clone()], "X retired, B kept (A is open)");

    a.commit().await.unwrap();
    a_conn.close().await;
    let done = publish::relay_batch(
        &mut store,
        &bus,
        &p.manifest,
        p.service("orders"),
        &Contracts::default(),
    )
    .await
    .unwrap();
    assert_eq!(done.published, 2, "{done:?}");
    store.close().await;
    let worker = Worker::start(&p).await;
    let shipping = p.wait_for("shipping", 3).await;
    worker.stop().await;
    let ids: Vec<String> = shipping.into_iter().map(|r| r.0).collect();
    assert_eq!(ids, vec![x_id, a_id, b_id]);
}

/// More events than one batch: the relay moves batch after batch, each
/// next one read on from the last row of the one before while its acks are
/// on their way. Every event reaches the stream once and in publish order,
/// nothing is left behind, and a second pass finds nothing.
#[tokio::test]
async fn batches_in_a_row_relay_every_event_once_in_order() {
    const N: i64 = 1234;
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        set_up(&p.nats, &p.manifest, &p.services(), true)
            .await
            .unwrap();
        let mut conn = p.connect("orders").await;
        let mut ids = Vec::new();
        for n in 0..N {
            let key = ["a", "b", "c"][n as usize % 3];
            let id = publish_event(&mut conn, "order.placed", key, &json!({ "n": n }))
                .await
                .unwrap();
            ids.push(id.to_string());
        }
        conn.close().await;
        let bus = p.nats.connect("orders").await.unwrap();
        let mut store = p.connect("orders").await;
        let done = publish::relay_batches(
            &mut store,
            &bus,
            &p.manifest,
            p.service("orders"),
            &Contracts::default(),
            publish::BATCHES_IN_A_ROW,
        )
        .await
        .unwrap();
        assert_eq!(
            (done.read, done.published, done.more, done.failed.clone()),
            (N as usize, N as u64, false, None),
            "{engine}: {done:?}"
        );
        let again = publish::relay_batch(
            &mut store,
            &bus,
            &p.manifest,
            p.service("orders"),
            &Contracts::default(),
        )
        .await
        .unwrap();
        assert_eq!(again.read, 0, "{engine}: {again:?}");
        store.close().await;
        let worker = Worker::start(&p).await;
        let shipping = p.wait_for("shipping", ids.len()).await;
        worker.stop().await;
        let got: Vec<&String> = shipping.iter().map(|r| &r.0).collect();
        assert_eq!(got, ids.iter().collect::<Vec<_>>(), "{engine}");
    }
}

/// A batch ends before the row whose payload would take it past
/// `BATCH_BYTES`, and always holds one row, however large. Batch after
/// batch, every event reaches the stream once and in order; the dead rows
/// inside a batch's range (an undeclared type, an event larger than the
/// server takes) stay dead while the rows around them are marked sent.
#[tokio::test]
async fn a_batch_stops_at_the_byte_cap_yet_relays_everything_in_order() {
    let big = publish::BATCH_BYTES as usize * 6 / 10;
    let huge = publish::BATCH_BYTES as usize + 1000;
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "retention = \"keep\"").await);
        set_up(&p.nats, &p.manifest, &p.services(), true)
            .await
            .unwrap();
        // (type, payload bytes of padding)
        let events = [
            ("order.placed", 10),
            ("order.placed", big),
            ("order.placed", big),
            ("order.placed", 10),
            ("order.refunded", 10),
            ("order.placed", 10),
            ("order.placed", huge),
            ("order.placed", 10),
        ];
        let mut ids = Vec::new();
        for (n, (event_type, pad)) in events.iter().enumerate() {
            let payload = json!({ "n": n, "pad": "x".repeat(*pad) });
            ids.push(p.publish_payload(event_type, payload).await);
        }
        let bus = p.nats.connect("orders").await.unwrap();
        let mut store = p.connect("orders").await;
        publish::prepare(&mut store, p.service("orders"))
            .await
            .unwrap();
        let mut batches = Vec::new();
        loop {
            let done = publish::relay_batch(
                &mut store,
                &bus,
                &p.manifest,
                p.service("orders"),
                &Contracts::default(),
            )
            .await
            .unwrap();
            assert_eq!(done.failed, None, "{engine}: {done:?}");
            batches.push((done.read, done.published, done.dead, done.more));
            if !done.more {
                break;
            }
            assert!(batches.len() < 10, "{engine}: {batches:?}");
        }
        store.close().await;
        // [small, big] | [big, small, undeclared, small] | [huge] | [small]
        assert_eq!(
            batches,
            vec![
                (2, 2, 0, true),
                (4, 3, 1, true),
                (1, 0, 1, true),
                (1, 1, 0, false)
            ],
            "{engine}"
        );
        let states: Vec<(String, String)> = p
            .rows(
                "orders",
                "SELECT CAST(id AS TEXT), state FROM silo_outbox ORDER BY seq",
            )
            .await
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect();
        let want: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let state = if n == 4 || n == 6 { "dead" } else { "sent" };
                (id.clone(), state.to_string())
            })
            .collect();
        assert_eq!(states, want, "{engine}");
        let worker = Worker::start(&p).await;
        let shipping = p.wait_for("shipping", 6).await;
        worker.stop().await;
        let got: Vec<&String> = shipping.iter().map(|r| &r.0).collect();
        let sent: Vec<&String> = want
            .iter()
            .filter(|(_, state)| state == "sent")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(got, sent, "{engine}");
    }
}

/// Many events of a handful of keys in one transaction, in one multi-row
/// `INSERT` and in one `INSERT` each: they reach the stream, and every
/// consumer's inbox, with each key's events in publish order (on
/// PostgreSQL they share a `txid` and mostly their ids' millisecond).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_events_of_one_transaction_reach_the_inbox_in_publish_order() {
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        let mut published = Vec::new();
        for how in [OneTransaction::OneStatement, OneTransaction::Statements] {
            let mut conn = p.connect("orders").await;
            published
                .extend(publish_in_one_transaction(&mut conn, "order.placed", 1200, how).await);
            conn.close().await;
        }
        let worker = Worker::start(&p).await;
        for consumer in ["billing", "shipping"] {
            p.wait_for(consumer, published.len()).await;
            let sql = "SELECT key, CAST(payload AS TEXT) FROM silo_inbox ORDER BY seq";
            let inbox: Vec<(String, i64)> = p
                .rows(consumer, sql)
                .await
                .into_iter()
                .map(|r| {
                    let payload: serde_json::Value = serde_json::from_str(&r[1]).unwrap();
                    (r[0].clone(), payload["n"].as_i64().unwrap())
                })
                .collect();
            assert_per_key_order(&format!("{engine} {consumer}"), &inbox, &published);
        }
        worker.stop().await;
    }
}

/// The nats-server goes away in the middle of the run and comes back on
/// the same store folder: delivery resumes, nothing is lost or doubled,
/// per-key order holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_resumes_after_the_server_restarts() {
    for engine in ENGINES {
        let mut server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        let worker = Worker::start(&p).await;
        let mut published = Vec::new();
        for n in 0..20 {
            let key = ["a", "b"][n % 2];
            published.push((key, p.publish("order.placed", key, n as i64).await));
        }
        p.wait_for("shipping", 5).await;
        server.stop();
        // Published while the server is down: they wait in the outbox.
        for n in 20..40 {
            let key = ["a", "b"][n % 2];
            published.push((key, p.publish("order.placed", key, n as i64).await));
        }
        server.start_again();
        let shipping = p.wait_for("shipping", 40).await;
        let billing = p.wait_for("billing", 40).await;
        worker.stop().await;
        for (label, inbox) in [("shipping", shipping), ("billing", billing)] {
            let ids: Vec<&String> = inbox.iter().map(|r| &r.0).collect();
            let unique: std::collections::HashSet<_> = ids.iter().collect();
            assert_eq!(unique.len(), 40, "{engine} {label}: doubled");
            for key in ["a", "b"] {
                let want: Vec<&String> = published
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, id)| id)
                    .collect();
                let got: Vec<&String> = inbox.iter().filter(|r| r.2 == key).map(|r| &r.0).collect();
                assert_eq!(got, want, "{engine} {label} key {key}");
            }
        }
    }
}

/// How long after a nats-server restart every event must have arrived:
/// well under the ack wait (30 s), after which a message the delivery
/// held and lost would come again anyway.
const RESUMED_WITHIN: Duration = Duration::from_secs(10);

/// The nats-server is killed and started again ten times while events are
/// published before, during and after each restart: after every restart
/// both consumers have every event within [`RESUMED_WITHIN`] (a delivery
/// that dropped what it held would wait out the ack wait), and in the end
/// each has every event once, in per-key order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_resumes_within_seconds_after_each_of_many_restarts() {
    for engine in ENGINES {
        let mut server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        let worker = Worker::start(&p).await;
        let mut published = Vec::new();
        let mut n = 0i64;
        let mut publish = async |p: &Project, count: usize| {
            for _ in 0..count {
                let key = ["a", "b", "c"][n as usize % 3];
                published.push((key, p.publish("order.placed", key, n).await));
                n += 1;
            }
        };
        for round in 0..10 {
            // Some on their way through the worker when the server dies,
            // some waiting in the outbox while it is down, some after.
            publish(&p, 6).await;
            server.stop();
            publish(&p, 3).await;
            server.start_again();
            let restarted = tokio::time::Instant::now();
            publish(&p, 3).await;
            let want = (round + 1) * 12;
            for consumer in ["shipping", "billing"] {
                let got = p.wait_within(consumer, want, RESUMED_WITHIN).await;
                assert!(
                    got >= want,
                    "{engine} round {round}: {consumer} has {got} of {want} events \
                     {:?} after the restart",
                    restarted.elapsed()
                );
            }
        }
        let shipping = p.wait_for("shipping", published.len()).await;
        let billing = p.wait_for("billing", published.len()).await;
        worker.stop().await;
        for (label, inbox) in [("shipping", shipping), ("billing", billing)] {
            let unique: std::collections::HashSet<_> = inbox.iter().map(|r| &r.0).collect();
            assert_eq!(
                unique.len(),
                published.len(),
                "{engine} {label}: doubled or lost"
            );
            assert_eq!(inbox.len(), published.len(), "{engine} {label}: doubled");
            for key in ["a", "b", "c"] {
                let want: Vec<&String> = published
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, id)| id)
                    .collect();
                let got: Vec<&String> = inbox.iter().filter(|r| r.2 == key).map(|r| &r.0).collect();
                assert_eq!(got, want, "{engine} {label} key {key}");
            }
        }
    }
}

/// A consumer's store goes away while the worker runs on the nats bus:
/// the other consumer keeps receiving, the absent one's messages wait in
/// the stream (unacked), and once its store is back it gets every event,
/// once and in per-key order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_goes_away_holds_back_only_its_own_delivery() {
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        let worker = Worker::start(&p).await;
        let mut published = Vec::new();
        for n in 0..10 {
            let key = ["a", "b"][n % 2];
            published.push((key, p.publish("order.placed", key, n as i64).await));
        }
        p.wait_for("billing", 10).await;
        p.wait_for("shipping", 10).await;
        take_away(&p.manifest, &p.prefix, "billing", true).await;
        for n in 10..30 {
            let key = ["a", "b"][n % 2];
            published.push((key, p.publish("order.placed", key, n as i64).await));
        }
        let shipping = p.wait_for("shipping", 30).await;
        take_away(&p.manifest, &p.prefix, "billing", false).await;
        let billing = p.wait_for("billing", 30).await;
        worker.stop().await;
        for (label, inbox) in [("shipping", shipping), ("billing", billing)] {
            let unique: std::collections::HashSet<_> = inbox.iter().map(|r| &r.0).collect();
            assert_eq!(unique.len(), 30, "{engine} {label}: doubled or lost");
            for key in ["a", "b"] {
                let want: Vec<&String> = published
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, id)| id)
                    .collect();
                let got: Vec<&String> = inbox.iter().filter(|r| r.2 == key).map(|r| &r.0).collect();
                assert_eq!(got, want, "{engine} {label} key {key}");
            }
        }
    }
}

/// How long [`postgres_a_delivery_that_cannot_write_backs_off`] counts
/// the delivery's requests while it cannot write.
const WATCHED: Duration = Duration::from_secs(3);

/// A consumer's store goes away while its delivery holds messages for it:
/// the delivery asks the server for its durables' state a handful of times
/// while it waits, backing off, instead of every few milliseconds; once
/// the store is back every event arrives. (On PostgreSQL, whose sessions
/// the test can end: a SQLite file moved away keeps taking writes on the
/// connection already open.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_delivery_that_cannot_write_backs_off() {
    {
        let engine = "postgres";
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        let worker = Worker::start(&p).await;
        let billing = p
            .manifest
            .services
            .iter()
            .position(|s| s.name == "billing")
            .unwrap();
        let billing = &worker.counters[billing];
        for n in 0..5 {
            p.publish("order.placed", "k", n).await;
        }
        p.wait_for("billing", 5).await;
        take_away(&p.manifest, &p.prefix, "billing", true).await;
        for n in 5..15 {
            p.publish("order.placed", "k", n).await;
        }
        p.wait_for("shipping", 15).await;
        // Its first write failed: it holds messages it cannot write.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while billing.errors.load(Ordering::Relaxed) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{engine}: no write failed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let before = billing.state_reads.load(Ordering::Relaxed);
        tokio::time::sleep(WATCHED).await;
        let reads = billing.state_reads.load(Ordering::Relaxed) - before;
        // Every 5 ms, it would be hundreds.
        assert!(reads <= 40, "{engine}: {reads} requests in {WATCHED:?}");
        take_away(&p.manifest, &p.prefix, "billing", false).await;
        p.wait_for("billing", 15).await;
        worker.stop().await;
    }
}

/// The ack wait of [`a_delivery_held_back_by_a_dead_workers_message_backs_off`]:
/// how long its dead worker's message holds back the ones after it.
const HELD_BACK: Duration = Duration::from_secs(4);

/// A worker pulls billing's first message and dies without acking it: the
/// messages after it wait in billing's delivery, in order, until the ack
/// wait ends and the first comes again. Meanwhile the delivery asks the
/// server for its durables' state a few dozen times, backing off, rather
/// than every few milliseconds (hundreds of times a second); then all
/// arrive, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delivery_held_back_by_a_dead_workers_message_backs_off() {
    let server = NatsServer::start();
    let mut p = Project::new("sqlite", &server, "").await;
    p.nats.ack_wait = HELD_BACK;
    let p = Arc::new(p);
    let all = p.services();
    set_up(&p.nats, &p.manifest, &all, true).await.unwrap();
    let mut ids = vec![p.publish("order.placed", "k", 0).await];
    let bus = p.nats.connect("orders").await.unwrap();
    let mut store = p.connect("orders").await;
    let relayed = publish::relay_batch(
        &mut store,
        &bus,
        &p.manifest,
        p.service("orders"),
        &Contracts::default(),
    )
    .await
    .unwrap();
    assert_eq!(relayed.published, 1);
    store.close().await;
    // The dead worker: pulls the first message and never acks it.
    let mut stolen = bus
        .js
        .get_stream("shop")
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("billing-order-placed")
        .await
        .unwrap()
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .unwrap();
    let stolen = futures::StreamExt::next(&mut stolen)
        .await
        .unwrap()
        .unwrap();
    drop(stolen);
    for n in 1..6 {
        ids.push(p.publish("order.placed", "k", n).await);
    }
    let worker = Worker::start(&p).await;
    p.wait_for("shipping", 6).await;
    let billing = p.wait_for("billing", 6).await;
    let reads = worker.counters[1].state_reads.load(Ordering::Relaxed);
    worker.stop().await;
    let got: Vec<&String> = billing.iter().map(|r| &r.0).collect();
    assert_eq!(got, ids.iter().collect::<Vec<_>>());
    assert!(
        reads <= 100,
        "{reads} requests while held back for {HELD_BACK:?}"
    );
}

/// The stream is made once and then left alone; a change of duplicate
/// window updates it; a stream of the project's name that silo did not
/// make, or one with storage JetStream cannot change, is refused.
#[tokio::test]
async fn the_stream_is_made_once_and_foreign_or_incompatible_ones_are_refused() {
    let server = NatsServer::start();
    let p = Project::new("sqlite", &server, "duplicate_window_seconds = 60").await;
    let conn = p.nats.connect("silo-admin").await.unwrap();
    use stream::Ensured;
    assert_eq!(
        stream::ensure_stream(&conn, &p.manifest).await.unwrap(),
        Ensured::Created
    );
    assert_eq!(
        stream::ensure_stream(&conn, &p.manifest).await.unwrap(),
        Ensured::Unchanged
    );
    let info = conn
        .js
        .get_stream("shop")
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.subjects, vec!["shop.>"]);
    assert_eq!(info.config.duplicate_window, Duration::from_secs(60));
    assert_eq!(
        info.config.storage,
        async_nats::jetstream::stream::StorageType::File
    );

    let mut wider = p.manifest.clone();
    wider.events.duplicate_window_secs = 300;
    assert_eq!(
        stream::ensure_stream(&conn, &wider).await.unwrap(),
        Ensured::Updated
    );
    let info = conn
        .js
        .get_stream("shop")
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(info.config.duplicate_window, Duration::from_secs(300));

    // Someone else's stream under the project's name.
    let mut other = p.manifest.clone();
    other.project = "other".into();
    conn.js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "other".into(),
            subjects: vec!["elsewhere.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let e = stream::ensure_stream(&conn, &other).await.unwrap_err();
    assert!(
        matches!(e, silo_events::relay::nats::NatsError::StreamNotOurs { .. }),
        "{e:?}"
    );

    // Another project whose name maps to the same stream name.
    let mut dotted = p.manifest.clone();
    dotted.project = "hx.p9".into();
    assert_eq!(
        stream::ensure_stream(&conn, &dotted).await.unwrap(),
        Ensured::Created
    );
    for project in ["hx_p9", "hx p9"] {
        let mut twin = p.manifest.clone();
        twin.project = project.into();
        let e = stream::ensure_stream(&conn, &twin).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("stream hx_p9 belongs to silo project `hx.p9`"),
            "{e}"
        );
    }

    // The server refuses a stream whose subjects another stream has: its
    // own words, not a guess about JetStream.
    conn.js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "squatter".into(),
            subjects: vec!["fourth.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut fourth = p.manifest.clone();
    fourth.project = "fourth".into();
    let e = stream::ensure_stream(&conn, &fourth).await.unwrap_err();
    assert!(
        matches!(e, silo_events::relay::nats::NatsError::StreamRefused { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("overlap"), "{e}");

    // silo's mark, but memory storage.
    let mut third = p.manifest.clone();
    third.project = "third".into();
    conn.js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "third".into(),
            description: Some("managed by silo: project=third".into()),
            subjects: vec!["third.>".into()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    let e = stream::ensure_stream(&conn, &third).await.unwrap_err();
    assert!(
        e.to_string().contains("storage memory; silo needs file"),
        "{e}"
    );
}

/// A message published on the bus by hand, its headers forged: the
/// delivery takes the type from the subject, the source from the manifest
/// and the dataschema from the contract, checks the payload itself, and
/// skips (and counts) what fails.
#[tokio::test]
async fn forged_headers_are_not_believed() {
    use silo_events::contracts::Contracts;
    use silo_events::relay::nats::envelope::Envelope;
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        let folder = p.manifest.contracts_dir(p.service("orders"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("order.placed.v1.json"),
            r#"{"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}"#,
        )
        .unwrap();
        let schema = Contracts::load(&p.manifest)
            .unwrap()
            .get("orders", "order.placed")
            .unwrap()
            .dataschema
            .clone();
        let worker = Worker::start(&p).await;
        let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
        let forge = |subject: &'static str, payload: &'static str| {
            let js = js.clone();
            async move {
                let id = uuid::Uuid::now_v7().to_string();
                let headers = Envelope {
                    id: id.clone(),
                    source: "billing".into(),
                    event_type: "order.paid".into(),
                    key: "k".into(),
                    time: "2026-11-27T10:00:00Z".into(),
                    dataschema: Some("https://evil.example/schema".into()),
                    headers: "{}".into(),
                    payload: payload.into(),
                }
                .to_headers();
                js.publish_with_headers(subject, headers, payload.into())
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                id
            }
        };
        let believed = forge("shop.order.placed", r#"{"n": 1}"#).await;
        forge("shop.order.placed", r#"{"n": "not a number"}"#).await;
        forge("shop.payment.made", r#"{"n": 1}"#).await;
        let genuine = p.publish("order.placed", "k", 2).await;
        let shipping = p.wait_for("shipping", 2).await;
        // billing and shipping skip the refused payload, ledger the type
        // nobody publishes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let skipped = |c: &Counters| c.skipped.load(std::sync::atomic::Ordering::Relaxed);
        while worker.counters.iter().map(skipped).sum::<u64>() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{engine}: not skipped"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let billing = p.wait_for("billing", 2).await;
        let counts: Vec<u64> = worker.counters.iter().map(skipped).collect();
        worker.stop().await;
        assert_eq!(counts, vec![0, 1, 1, 1], "{engine}");
        assert_eq!(
            shipping.iter().map(|r| &r.0).collect::<Vec<_>>(),
            vec![&believed, &genuine],
            "{engine}"
        );
        assert_eq!(billing.len(), 2, "{engine}");
        assert!(p.inbox("ledger").await.is_empty(), "{engine}");
        let row = p
            .rows(
                "shipping",
                &format!(
                    "SELECT source, type, dataschema FROM silo_inbox WHERE CAST(event_id AS TEXT) = '{believed}'"
                ),
            )
            .await;
        assert_eq!(
            row,
            vec![vec![
                "orders".to_string(),
                "order.placed".to_string(),
                schema.clone()
            ]],
            "{engine}"
        );
    }
}

/// A worker stopped while its delivery holds messages it could not write
/// (the consumer's store is away) hands them back: with an ack wait of
/// 60 s, the next worker delivers everything well before it would have
/// come again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_worker_hands_back_what_it_pulled() {
    for engine in ENGINES {
        let server = NatsServer::start();
        let mut p = Project::new(engine, &server, "").await;
        p.nats.ack_wait = Duration::from_secs(60);
        let p = Arc::new(p);
        let mut ids = Vec::new();
        for n in 0..40 {
            ids.push(p.publish("order.placed", "k", n).await);
        }
        take_away(&p.manifest, &p.prefix, "billing", true).await;
        let worker = Worker::start(&p).await;
        // billing's delivery has pulled and failed to write.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while worker.counters[1]
            .errors
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{engine}: no attempt"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker.stop().await;
        take_away(&p.manifest, &p.prefix, "billing", false).await;
        let worker = Worker::start(&p).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let billing = p.inbox("billing").await;
            if billing.len() == ids.len() {
                let got: Vec<&String> = billing.iter().map(|r| &r.0).collect();
                assert_eq!(got, ids.iter().collect::<Vec<_>>(), "{engine}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{engine}: billing has {} of {} events; the stopped worker's messages wait for the ack wait",
                billing.len(),
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worker.stop().await;
    }
}

/// Inserts an outbox row of `orders` as plain SQL would, with `key` and
/// the row's `headers` as given (bound, so any bytes go in).
async fn insert_raw(p: &Project, event_type: &str, key: &str, headers: &str) {
    let mut conn = p.connect("orders").await;
    match &mut conn {
        ServiceConnection::Postgres(c) => {
            sqlx::query(
                "INSERT INTO silo_outbox (type, key, payload, headers) VALUES ($1, $2, '{}', $3::jsonb)",
            )
            .bind(event_type)
            .bind(key)
            .bind(headers)
            .execute(c)
            .await
            .unwrap();
        }
        ServiceConnection::Sqlite(c) => {
            sqlx::query(
                "INSERT INTO silo_outbox (type, key, payload, headers) VALUES ($1, $2, '{}', $3)",
            )
            .bind(event_type)
            .bind(key)
            .bind(headers)
            .execute(c)
            .await
            .unwrap();
        }
    }
    conn.close().await;
}

/// A key (and row headers) with line breaks, a tab, quotes, `%` and
/// non-ASCII text crosses the bus percent-encoded and reaches the inbox
/// byte for byte, as on the embedded bus; it used to panic the worker.
#[tokio::test]
async fn any_key_reaches_the_inbox_intact() {
    const KEY: &str = "x\r\ny \t\"100%\" é→ %41";
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        // SQLite keeps the row's headers as written, line break and all.
        insert_raw(
            &p,
            "order.placed",
            KEY,
            "{\"trace\": \"a\\nb\",\n\"x\": \"ü\"}",
        )
        .await;
        let after = p.publish("order.placed", "plain", 1).await;
        let worker = Worker::start(&p).await;
        let shipping = p.wait_for("shipping", 2).await;
        worker.stop().await;
        assert_eq!(shipping[0].2, KEY, "{engine}");
        assert_eq!(shipping[1].0, after, "{engine}");
        let headers = p
            .rows(
                "shipping",
                "SELECT CAST(headers AS TEXT) FROM silo_inbox WHERE key <> 'plain'",
            )
            .await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&headers[0][0]).unwrap(),
            json!({"trace": "a\nb", "x": "ü"}),
            "{engine}"
        );
    }
}

/// A key too large for JetStream's headers is marked dead with the reason
/// and does not hold back the rows after it.
#[tokio::test]
async fn a_key_too_large_for_the_headers_is_dead_and_does_not_block_the_outbox() {
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "retention = \"keep\"").await);
        insert_raw(&p, "order.placed", &"k".repeat(70_000), "{}").await;
        let good = p.publish("order.placed", "k", 2).await;
        let worker = Worker::start(&p).await;
        let shipping = p.wait_for("shipping", 1).await;
        worker.stop().await;
        assert_eq!(shipping[0].0, good, "{engine}");
        let dead = p
            .rows(
                "orders",
                "SELECT error FROM silo_outbox WHERE state = 'dead'",
            )
            .await;
        assert_eq!(dead.len(), 1, "{engine}");
        assert!(
            dead[0][0].contains("JetStream stores at most 65535"),
            "{}",
            dead[0][0]
        );
    }
}

/// A row that can never be published (a type the service does not
/// declare) is marked dead with the reason and does not hold back the
/// rows after it.
#[tokio::test]
async fn an_undeclared_type_is_dead_and_does_not_block_the_outbox() {
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "retention = \"keep\"").await);
        let stray = p.publish("order.refunded", "k", 1).await;
        let good = p.publish("order.placed", "k", 2).await;
        let worker = Worker::start(&p).await;
        let shipping = p.wait_for("shipping", 1).await;
        worker.stop().await;
        assert_eq!(shipping[0].0, good);
        let dead = p
            .rows(
                "orders",
                "SELECT CAST(id AS TEXT), error FROM silo_outbox WHERE state = 'dead'",
            )
            .await;
        assert_eq!(dead.len(), 1, "{engine}");
        assert_eq!(dead[0][0], stray);
        assert!(
            dead[0][1].contains("does not declare order.refunded"),
            "{}",
            dead[0][1]
        );
    }
}

/// A payload its contract refuses never reaches the stream or an inbox:
/// it is dead in the publisher's outbox with the validation error. The
/// events around it arrive, with the contract's URI as `dataschema`; a
/// type without a contract has none.
#[tokio::test]
async fn a_payload_its_contract_refuses_is_dead_and_the_rest_carry_the_dataschema() {
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Project::new(engine, &server, "retention = \"keep\"").await;
        let contracts = p.dir.path().join("services/orders/events");
        std::fs::create_dir_all(&contracts).unwrap();
        std::fs::write(
            contracts.join("order.placed.v1.json"),
            r#"{"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}"#,
        )
        .unwrap();
        let p = Arc::new(p);
        let before = p.publish("order.placed", "k", 1).await;
        let bad = p.publish_payload("order.placed", json!({"n": "two"})).await;
        let after = p.publish("order.placed", "k", 3).await;
        let paid = p.publish("order.paid", "k", 4).await;
        let worker = Worker::start(&p).await;
        p.wait_for("billing", 3).await;
        p.wait_for("shipping", 2).await;
        worker.stop().await;

        let schema = "urn:silo:shop:order.placed:v1".to_string();
        let inbox = |rows: Vec<Vec<String>>| -> Vec<(String, String)> {
            rows.into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect()
        };
        let sql =
            "SELECT CAST(event_id AS TEXT), COALESCE(dataschema, '') FROM silo_inbox ORDER BY seq";
        assert_eq!(
            inbox(p.rows("shipping", sql).await),
            vec![
                (before.clone(), schema.clone()),
                (after.clone(), schema.clone())
            ],
            "{engine}"
        );
        assert_eq!(
            inbox(p.rows("billing", sql).await),
            vec![
                (before, schema.clone()),
                (after, schema),
                (paid, String::new())
            ],
            "{engine}"
        );
        let dead = p
            .rows(
                "orders",
                "SELECT CAST(id AS TEXT), error FROM silo_outbox WHERE state = 'dead'",
            )
            .await;
        assert_eq!(dead.len(), 1, "{engine}: {dead:?}");
        assert_eq!(dead[0][0], bad, "{engine}");
        assert!(
            dead[0][1].contains("does not match the contract of order.placed v1"),
            "{engine}: {}",
            dead[0][1]
        );
        // Never published: the stream holds the three others only.
        let conn = p.nats.connect("orders").await.unwrap();
        let mut s = conn.js.get_stream("shop").await.unwrap();
        assert_eq!(s.info().await.unwrap().state.messages, 3, "{engine}");
    }
}

/// With the outbox's notification off (as when one is lost while the
/// listener reconnects), the relay still finds the events by looking on
/// its own.
#[tokio::test]
async fn postgres_events_without_a_notification_are_still_relayed() {
    let server = NatsServer::start();
    let p = Arc::new(Project::new("postgres", &server, "").await);
    let mut conn = p.connect("orders").await;
    let ServiceConnection::Postgres(pg) = &mut conn else {
        unreachable!()
    };
    sqlx::query("ALTER TABLE silo_outbox DISABLE TRIGGER silo_outbox_notify")
        .execute(&mut *pg)
        .await
        .unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut *pg)
        .await
        .unwrap();
    conn.close().await;
    let worker = Worker::start(&p).await;
    let first = p.publish("order.placed", "k", 1).await;
    p.wait_for("shipping", 1).await;
    // The listener is connected: whatever it would have been woken for at
    // its start is behind us.
    let mut admin = sqlx::PgConnection::connect(&admin_url()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'",
        )
        .bind(&database)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if listening > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no listener");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin.close().await.unwrap();
    let second = p.publish("order.placed", "k", 2).await;
    let shipping = p.wait_for("shipping", 2).await;
    worker.stop().await;
    let ids: Vec<String> = shipping.into_iter().map(|r| r.0).collect();
    assert_eq!(ids, vec![first, second]);
}

/// Replay writes what the inbox lacks and skips what it has; with
/// reprocess it makes those pending again with their attempts reset.
#[tokio::test]
async fn replay_fills_the_gaps_and_reprocess_runs_them_again() {
    use silo_events::relay::nats::replay::{ReplayRequest, replay};
    for engine in ENGINES {
        let server = NatsServer::start();
        let p = Arc::new(Project::new(engine, &server, "").await);
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(p.publish("order.placed", "k", n).await);
        }
        let worker = Worker::start(&p).await;
        p.wait_for("shipping", 5).await;
        worker.stop().await;
        // The service handled them all, then lost one.
        let mut conn = p.connect("shipping").await;
        let sql = format!(
            "UPDATE silo_inbox SET state = 'done', attempts = 2; \
             DELETE FROM silo_inbox WHERE CAST(event_id AS TEXT) = '{}'",
            ids[2]
        );
        match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(c)
                .await
                .map(|_| ()),
            ServiceConnection::Sqlite(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(c)
                .await
                .map(|_| ()),
        }
        .unwrap();
        conn.close().await;

        let admin = p.nats.connect("silo-admin").await.unwrap();
        let request = ReplayRequest {
            event_type: "order.placed".into(),
            since: None,
            reprocess: false,
        };
        let done = replay(
            &p.stores,
            &admin,
            &p.manifest,
            p.service("shipping"),
            &request,
        )
        .await
        .unwrap();
        assert_eq!((done.read, done.written), (5, 1), "{engine}");
        let states = p
            .rows(
                "shipping",
                "SELECT CAST(event_id AS TEXT), state FROM silo_inbox ORDER BY seq",
            )
            .await;
        assert_eq!(states.len(), 5);
        assert_eq!(states[4], vec![ids[2].clone(), "pending".to_string()]);

        let again = ReplayRequest {
            reprocess: true,
            ..request.clone()
        };
        let done = replay(
            &p.stores,
            &admin,
            &p.manifest,
            p.service("shipping"),
            &again,
        )
        .await
        .unwrap();
        assert_eq!((done.read, done.written), (5, 5), "{engine}");
        let pending = p
            .rows(
                "shipping",
                "SELECT CAST(event_id AS TEXT) FROM silo_inbox WHERE state = 'pending' AND attempts = 0",
            )
            .await;
        assert_eq!(pending.len(), 5, "{engine}");

        // A type the service does not consume is refused.
        let wrong = ReplayRequest {
            event_type: "order.paid".into(),
            ..request
        };
        let e = replay(
            &p.stores,
            &admin,
            &p.manifest,
            p.service("shipping"),
            &wrong,
        )
        .await
        .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
    }
}

/// With the authorization block silo writes: each service's user can
/// publish its own types and nothing else, cannot read another service's
/// consumer or subscribe to events directly, and delivery works end to
/// end under auth.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_auth_a_service_can_publish_only_its_own_types() {
    use silo_events::relay::nats::auth::authorization_block;
    // A placeholder server to build the project on; the real one below.
    let placeholder = NatsServer::start();
    let mut p = Project::new("sqlite", &placeholder, "nats_auth = true").await;
    // `billing` also publishes a type of its own here.
    let block = authorization_block(&p.manifest).unwrap();
    let mut server = NatsServer::start_with_config(&block.text);
    drop(placeholder);
    p.nats.url = server.url();
    let p = Arc::new(p);

    // A wrong password is refused.
    let mut wrong = p.nats.clone();
    wrong.data_dir = p.dir.path().join("elsewhere");
    let e = match wrong.connect("orders").await {
        Ok(_) => panic!("connected without credentials"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("no credentials"), "{e}");

    let worker = Worker::start(&p).await;
    let orders = p.nats.connect("orders").await.unwrap();
    let billing = p.nats.connect("billing").await.unwrap();
    let admin = p.nats.connect("silo-admin").await.unwrap();

    // billing may not subscribe to events directly.
    let mut sniff = billing.client.subscribe("shop.>").await.unwrap();

    // orders publishes its own type through the relay: delivered.
    let id = p.publish("order.placed", "k", 1).await;
    let shipping = p.wait_for("shipping", 1).await;
    assert_eq!(shipping[0].0, id);
    let billing_inbox = p.wait_for("billing", 1).await;
    assert_eq!(billing_inbox[0].0, id);

    let messages = || async {
        let mut s = admin.js.get_stream("shop").await.unwrap();
        s.info().await.unwrap().state.messages
    };
    let before = messages().await;
    // orders may not publish a type it does not own, nor billing orders';
    // billing may not read shipping's consumer, pull from it, or create a
    // consumer of its own over every subject. Each refusal only shows as
    // a request that times out, so all are made at once.
    let publish_as = |conn: &silo_events::relay::nats::Connection, subject: &'static str| {
        let js = conn.js.clone();
        async move {
            match js.publish(subject, "{}".into()).await {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            }
        }
    };
    let (foreign_type, others_type, stolen, pulled, created) = tokio::join!(
        publish_as(&orders, "shop.payment.made"),
        publish_as(&billing, "shop.order.placed"),
        billing
            .js
            .get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>(
                names::durable("shipping", "order.placed"),
                "shop",
            ),
        billing.client.request(
            "$JS.API.CONSUMER.MSG.NEXT.shop.shipping-order-placed",
            "{\"batch\":1,\"no_wait\":true}".into(),
        ),
        billing.js.create_consumer_on_stream(
            async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("billing-sniffer".into()),
                filter_subject: "shop.>".into(),
                ..Default::default()
            },
            "shop",
        ),
    );
    assert!(!foreign_type, "orders published payment.made");
    assert!(!others_type, "billing published order.placed");
    assert!(stolen.is_err(), "billing read shipping's consumer");
    assert!(pulled.is_err(), "billing pulled from shipping's consumer");
    assert!(created.is_err(), "billing created a consumer");
    assert_eq!(
        messages().await,
        before,
        "the stream took a forbidden publish"
    );

    // The direct subscription never saw an event.
    let got = tokio::time::timeout(
        Duration::from_millis(300),
        futures::StreamExt::next(&mut sniff),
    )
    .await;
    assert!(!matches!(got, Ok(Some(_))), "billing read events directly");

    // A second event still flows end to end under auth.
    p.publish("order.paid", "k", 2).await;
    p.wait_for("billing", 2).await;
    worker.stop().await;

    // Replay reads the stream as the admin; the inbox has everything.
    let request = silo_events::relay::nats::replay::ReplayRequest {
        event_type: "order.paid".into(),
        since: None,
        reprocess: false,
    };
    let done = silo_events::relay::nats::replay::replay(
        &p.stores,
        &admin,
        &p.manifest,
        p.service("billing"),
        &request,
    )
    .await
    .unwrap();
    assert_eq!((done.read, done.written), (1, 0));
    // The server refused each attempt for its permissions, not by chance.
    let log = server.log();
    for refused in [
        "Publish Violation - User \"orders\", Subject \"shop.payment.made\"",
        "Publish Violation - User \"billing\", Subject \"shop.order.placed\"",
        "Subscription Violation - User \"billing\", Subject \"shop.>\"",
        "Publish Violation - User \"billing\", Subject \"$JS.API.CONSUMER.INFO.shop.shipping-order-placed\"",
        "Publish Violation - User \"billing\", Subject \"$JS.API.CONSUMER.MSG.NEXT.shop.shipping-order-placed\"",
        "Publish Violation - User \"billing\", Subject \"$JS.API.CONSUMER.CREATE.shop.billing-sniffer",
    ] {
        assert!(
            log.contains(refused),
            "no {refused:?} in the server's log:\n{log}"
        );
    }
    server.stop();
}

/// Not a test on its own: the worker the kill test runs in a process of
/// its own (this test binary again, with `SILO_TEST_NATS_WORKER` set),
/// for every service, until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_worker_child() {
    let Ok(manifest) = std::env::var("SILO_TEST_NATS_WORKER") else {
        return;
    };
    let manifest = Manifest::load(std::path::Path::new(&manifest), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 2,
    });
    let config = NatsConfig::new(&manifest, std::env::var("SILO_TEST_NATS_URL").unwrap());
    let services: Vec<&Service> = manifest.services.iter().collect();
    let counters: Vec<Counters> = services.iter().map(|_| Counters::default()).collect();
    let (_stop, rx) = watch::channel(false);
    run(
        &stores,
        &manifest,
        &config,
        &Contracts::default(),
        &services,
        &counters,
        RunOptions::default(),
        rx,
    )
    .await;
}

/// A number in `0..n` that differs from run to run.
fn random_below(n: u64) -> u64 {
    let bytes = *uuid::Uuid::now_v7().as_bytes();
    u64::from_le_bytes(bytes[8..16].try_into().unwrap()) % n
}

/// The worker killed with SIGKILL at random points, 22 times, while
/// publishers commit and roll back concurrently; started again each time.
/// In the end every committed event is in each consumer's inbox exactly
/// once, in per-key order, and no rolled-back one anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_at_random_points_loses_and_repeats_nothing() {
    const KILLS: usize = 22;
    for engine in ENGINES {
        let server = NatsServer::start();
        let mut p = Project::new(engine, &server, "").await;
        // Short, so that what a killed worker held comes back while the
        // next one runs.
        p.nats.ack_wait = Duration::from_secs(1);
        let p = Arc::new(p);
        set_up(&p.nats, &p.manifest, &p.services(), true)
            .await
            .unwrap();
        let spawn_worker = || {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "nats_worker_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("SILO_TEST_NATS_WORKER", p.dir.path().join("silo.toml"))
                .env("SILO_TEST_NATS_URL", server.url())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        // Publishers, spread over the kills.
        let publishers: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|key| {
                let p = p.clone();
                tokio::spawn(async move {
                    let mut committed = Vec::new();
                    let mut rolled_back = Vec::new();
                    for _ in 0..12 {
                        let (c, r) = publish_concurrently(&p, key, 6).await;
                        committed.extend(c);
                        rolled_back.extend(r);
                        tokio::time::sleep(Duration::from_millis(400 + random_below(800))).await;
                    }
                    (key.to_string(), committed, rolled_back)
                })
            })
            .collect();
        for _ in 0..KILLS {
            let mut child = spawn_worker();
            tokio::time::sleep(Duration::from_millis(100 + random_below(1400))).await;
            child.kill().unwrap();
            child.wait().unwrap();
        }
        // The killed workers got somewhere.
        assert!(
            !p.inbox("billing").await.is_empty(),
            "{engine}: nothing delivered"
        );
        let mut published = Vec::new();
        let mut rolled_back = Vec::new();
        for task in publishers {
            let (key, c, r) = task.await.unwrap();
            published.push((key, c));
            rolled_back.extend(r);
        }
        let total: usize = published.iter().map(|(_, ids)| ids.len()).sum();
        let placed = published
            .iter()
            .flat_map(|(_, ids)| ids)
            .filter(|(t, _)| t == "order.placed")
            .count();
        let mut last = spawn_worker();
        let billing = p.wait_for("billing", total).await;
        let shipping = p.wait_for("shipping", placed).await;
        // A moment more for anything doubled to show.
        tokio::time::sleep(Duration::from_millis(500)).await;
        last.kill().unwrap();
        last.wait().unwrap();
        let billing_now = p.inbox("billing").await;
        assert_eq!(
            billing_now, billing,
            "{engine}: billing changed after it was complete"
        );
        assert_exactly_once_in_order(
            &format!("{engine} billing"),
            &billing,
            &published,
            &["order.placed", "order.paid"],
            &rolled_back,
        );
        assert_exactly_once_in_order(
            &format!("{engine} shipping"),
            &p.inbox("shipping").await,
            &published,
            &["order.placed"],
            &rolled_back,
        );
        assert_eq!(shipping.len(), placed);
    }
}

/// The sidecar model under auth: once the admin has set the bus up, a
/// worker for `billing` alone, with only billing's own credentials (its
/// store's and its NATS user's) in its data dir, delivers billing's
/// events; before the set-up it says what to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_auth_a_sidecar_needs_only_its_own_credentials() {
    use silo_events::relay::nats::NatsError;
    use silo_events::relay::nats::auth::authorization_block;
    let placeholder = NatsServer::start();
    let mut p = Project::new("postgres", &placeholder, "nats_auth = true").await;
    let block = authorization_block(&p.manifest).unwrap();
    let server = NatsServer::start_with_config(&block.text);
    drop(placeholder);
    p.nats.url = server.url();

    // billing's sidecar: a data dir of its own with billing's files only.
    let sidecar_dir = tempfile::tempdir().unwrap();
    let secrets = sidecar_dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("nats")).unwrap();
    let from = p.manifest.data_dir.join("secrets");
    std::fs::copy(from.join("billing.env"), secrets.join("billing.env")).unwrap();
    std::fs::copy(
        from.join("nats/billing.env"),
        secrets.join("nats/billing.env"),
    )
    .unwrap();
    let mut sidecar_manifest = p.manifest.clone();
    sidecar_manifest.data_dir = sidecar_dir.path().to_path_buf();
    let sidecar_stores = Stores::new(StoresConfig {
        project: None,
        data_dir: sidecar_dir.path().to_path_buf(),
        admin_url: Some(admin_url()),
        concurrency: 2,
    });
    let sidecar_nats = NatsConfig::new(&sidecar_manifest, server.url());
    let billing = sidecar_manifest.service("billing").unwrap();

    // Before the admin has set the bus up: the sidecar says what to run.
    let e = set_up(&sidecar_nats, &sidecar_manifest, &[billing], false)
        .await
        .unwrap_err();
    assert!(matches!(e, NatsError::NotSetUp { .. }), "{e:?}");
    assert!(
        miette::Diagnostic::help(&e)
            .unwrap()
            .to_string()
            .contains("silo events nats-config --apply"),
    );
    // Its own user cannot set it up either.
    let as_billing = sidecar_nats.connect("billing").await.unwrap();
    assert!(
        stream::ensure_stream(&as_billing, &sidecar_manifest)
            .await
            .is_err()
    );

    set_up(&p.nats, &p.manifest, &p.services(), true)
        .await
        .unwrap();
    set_up(&sidecar_nats, &sidecar_manifest, &[billing], false)
        .await
        .unwrap();

    let p = Arc::new(p);
    let id = p.publish("order.placed", "k", 1).await;
    // orders' relay, from the project's data dir.
    let (stop, rx) = watch::channel(false);
    let relay = {
        let p = p.clone();
        tokio::spawn(async move {
            let orders = [p.service("orders")];
            let counters = [Counters::default()];
            run(
                &p.stores,
                &p.manifest,
                &p.nats,
                &Contracts::default(),
                &orders,
                &counters,
                RunOptions::default(),
                rx,
            )
            .await;
        })
    };
    let counters = [Counters::default()];
    let (_sidecar_stop, sidecar_rx) = watch::channel(false);
    let services = [billing];
    let contracts = Contracts::default();
    let sidecar = run(
        &sidecar_stores,
        &sidecar_manifest,
        &sidecar_nats,
        &contracts,
        &services,
        &counters,
        RunOptions::default(),
        sidecar_rx,
    );
    tokio::select! {
        _ = sidecar => unreachable!("the sidecar runs until stopped"),
        inbox = p.wait_for("billing", 1) => assert_eq!(inbox[0].0, id),
    }
    stop.send(true).unwrap();
    relay.await.unwrap();
    assert!(p.inbox("shipping").await.is_empty());
}
