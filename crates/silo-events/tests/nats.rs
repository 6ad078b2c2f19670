//! The nats bus on a real nats-server of each test's own (started and
//! stopped by the test), with real SQLite files and the real PostgreSQL
//! server, each store reached as its own service.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use silo_events::publish as publish_event;
use silo_events::relay::nats::run::{Counters, RunOptions, run, set_up};
use silo_events::relay::nats::{NatsConfig, names, publish, stream};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ServiceConnection, Stores, StoresConfig};
use silo_testkit::{NatsServer, Prefix, admin_url};
use sqlx::Connection;
use tokio::sync::watch;

mod common;

use common::{provision, service_toml, take_away};

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
}

impl Worker {
    async fn start(p: &Arc<Project>) -> Self {
        let all = p.services();
        set_up(&p.nats, &p.manifest, &all, true).await.unwrap();
        let (stop, rx) = watch::channel(false);
        let p = p.clone();
        let task = tokio::spawn(async move {
            let services = p.services();
            let counters: Vec<Counters> = services.iter().map(|_| Counters::default()).collect();
            run(
                &p.stores,
                &p.manifest,
                &p.nats,
                &services,
                &counters,
                RunOptions::default(),
                rx,
            )
            .await;
        });
        Worker { stop, task }
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

/// The out-of-order commit (watermill #311) on the nats bus: A takes the
/// earlier outbox position and stays open, B a later one and commits
/// first. While A is open the relay publishes neither; once A commits,
/// both reach the stream and the inbox, A first.
#[tokio::test]
async fn postgres_a_later_commit_does_not_skip_an_earlier_open_transaction() {
    let server = NatsServer::start();
    let p = Arc::new(Project::new("postgres", &server, "").await);
    set_up(&p.nats, &p.manifest, &p.services(), true)
        .await
        .unwrap();
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
    let held = publish::relay_batch(&mut store, &bus, &p.manifest, p.service("orders"))
        .await
        .unwrap();
    assert_eq!(held.read, 0, "B is committed but A is open: {held:?}");

    a.commit().await.unwrap();
    a_conn.close().await;
    let done = publish::relay_batch(&mut store, &bus, &p.manifest, p.service("orders"))
        .await
        .unwrap();
    assert_eq!(done.published, 2, "{done:?}");
    store.close().await;
    let worker = Worker::start(&p).await;
    let shipping = p.wait_for("shipping", 2).await;
    worker.stop().await;
    let ids: Vec<String> = shipping.into_iter().map(|r| r.0).collect();
    assert_eq!(ids, vec![a_id, b_id]);
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
    let sidecar = run(
        &sidecar_stores,
        &sidecar_manifest,
        &sidecar_nats,
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
