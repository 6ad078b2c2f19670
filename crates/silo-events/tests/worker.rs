//! The events worker on the embedded bus, on real SQLite files and the
//! real PostgreSQL server: which routes it runs, retention of delivered
//! outbox rows, a store that goes away and comes back, and PostgreSQL's
//! notification at commit.
//!
//! Every wait is a poll with a bound; nothing sleeps to let a race settle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use silo_events::worker::Summary;
use silo_events::worker::embedded::{CHANNEL, Plan, Worker};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ServiceConnection, Stores};
use silo_testkit::Prefix;
use tokio::sync::oneshot;

mod common;

use common::{provision, service_toml, take_away};

const ENGINES: [&str; 2] = ["sqlite", "postgres"];

/// Far above what any step takes; a failure, not a slow machine, hits it.
const BOUND: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// `orders` publishes `order.placed` (consumed by `billing` and
/// `shipping`) and `order.noted` (consumed by nobody).
const SERVICES: &[(&str, &str, &str)] = &[
    ("orders", "publishes", r#"["order.placed", "order.noted"]"#),
    ("billing", "consumes", r#"["order.placed"]"#),
    ("shipping", "consumes", r#"["order.placed"]"#),
];

struct Project {
    _dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Arc<Manifest>,
    stores: Arc<Stores>,
}

impl Project {
    async fn new(engine: &str, events: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let mut text =
            format!("[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n{events}\n");
        for (name, kind, types) in SERVICES {
            text.push_str(&service_toml(&prefix, name, &format!("{kind} = {types}")));
        }
        let (manifest, stores) = provision(dir.path(), &text).await;
        Project {
            _dir: dir,
            prefix,
            manifest: Arc::new(manifest),
            stores: Arc::new(stores),
        }
    }

    fn service(&self, name: &str) -> &Service {
        self.manifest.service(name).unwrap()
    }

    async fn connect(&self, name: &str) -> ServiceConnection {
        self.stores
            .connect_as(self.service(name), "test")
            .await
            .unwrap()
    }

    /// Publishes from `orders` with a plain INSERT, as any language would.
    async fn publish(&self, event_type: &str, key: &str, n: usize) -> String {
        let sql = "INSERT INTO silo_outbox (type, key, payload) VALUES ($1, $2, $3) \
                   RETURNING CAST(id AS TEXT)";
        let payload = format!("{{\"n\": {n}}}");
        let mut conn = self.connect("orders").await;
        let id: String = match &mut conn {
            ServiceConnection::Postgres(c) => {
                let sql = sql.replace("$3)", "CAST($3 AS jsonb))");
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(event_type)
                    .bind(key)
                    .bind(&payload)
                    .fetch_one(c)
                    .await
            }
            ServiceConnection::Sqlite(c) => {
                sqlx::query_scalar(sql)
                    .bind(event_type)
                    .bind(key)
                    .bind(&payload)
                    .fetch_one(c)
                    .await
            }
        }
        .unwrap();
        conn.close().await;
        id
    }

    /// The event ids in `consumer`'s inbox, in arrival order.
    async fn inbox(&self, consumer: &str) -> Vec<String> {
        self.strings(
            consumer,
            "SELECT CAST(event_id AS TEXT) FROM silo_inbox ORDER BY seq",
        )
        .await
    }

    /// `orders`' outbox as `id state sent`, in publish order.
    async fn outbox(&self) -> Vec<String> {
        self.strings(
            "orders",
            "SELECT CAST(id AS TEXT) || ' ' || state || ' ' || \
                    CASE WHEN sent_at IS NULL THEN '-' ELSE 'sent_at' END \
             FROM silo_outbox ORDER BY created_at, id",
        )
        .await
    }

    async fn strings(&self, service: &str, sql: &'static str) -> Vec<String> {
        let mut conn = self.connect(service).await;
        let rows = match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::query_scalar(sql).fetch_all(c).await,
            ServiceConnection::Sqlite(c) => sqlx::query_scalar(sql).fetch_all(c).await,
        }
        .unwrap();
        conn.close().await;
        rows
    }

    /// Runs the worker with `once` until each `(consumer, n)` of `want`
    /// has `n` events: on PostgreSQL, a transaction of another test on the
    /// same server can hold delivery back for a moment. Returns the events
    /// delivered and the rows retired over those runs; none may fail.
    async fn settle(&self, selected: &[&str], want: &[(&str, usize)]) -> (u64, u64) {
        let (mut delivered, mut retired) = (0, 0);
        let deadline = Instant::now() + BOUND;
        loop {
            let summary = self.once(selected).await;
            assert!(summary.failures.is_empty(), "{:?}", summary.failures);
            delivered += summary.delivered();
            retired += summary.retired;
            let mut done = true;
            for (consumer, n) in want {
                done &= self.inbox(consumer).await.len() >= *n;
            }
            if done {
                return (delivered, retired);
            }
            assert!(Instant::now() < deadline, "never delivered: {want:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    async fn once(&self, selected: &[&str]) -> Summary {
        let selected: Vec<String> = selected.iter().map(|s| s.to_string()).collect();
        let plan = Plan::new(&self.manifest, &selected);
        Worker::new(
            self.stores.clone(),
            self.manifest.clone(),
            plan,
            std::sync::Arc::new(silo_events::contracts::Contracts::none()),
        )
        .once(true)
        .run(std::future::pending())
        .await
    }
}

/// Polls `check` until it holds, for at most [`BOUND`].
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + BOUND;
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_plan_routes_into_the_selected_services_and_retires_only_with_every_consumer() {
    let text = r#"
[project]
name = "t"
[services.orders]
publishes = ["order.placed", "order.noted"]
[services.billing]
consumes = ["order.placed", "payment.made"]
[services.shipping]
consumes = ["order.placed"]
[services.payments]
publishes = ["payment.made"]
[services.audit]
publishes = ["audit.logged"]
[services.quiet]
"#;
    let manifest = Manifest::from_str(
        text,
        std::path::Path::new("/p/silo.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let routes = |plan: &Plan| -> Vec<String> {
        plan.routes
            .iter()
            .map(|r| format!("{} {}", r.label(), r.types.join(",")))
            .collect()
    };
    let publishers = |plan: &Plan| -> Vec<String> {
        plan.publishers
            .iter()
            .map(|(p, retains)| format!("{p} {}", if *retains { "retains" } else { "-" }))
            .collect()
    };

    let all = Plan::new(&manifest, &[]);
    assert_eq!(
        routes(&all),
        [
            "orders → billing order.placed",
            "orders → shipping order.placed",
            "payments → billing payment.made",
        ]
    );
    // audit's type nobody consumes: its rows are retired at once.
    assert_eq!(
        publishers(&all),
        ["orders retains", "payments retains", "audit retains"]
    );

    // A sidecar for billing pulls from its publishers; it may retire
    // payments' rows (billing is their only consumer), not orders'.
    let billing = Plan::new(&manifest, &names(&["billing"]));
    assert_eq!(
        routes(&billing),
        [
            "orders → billing order.placed",
            "payments → billing payment.made"
        ]
    );
    assert_eq!(publishers(&billing), ["orders -", "payments retains"]);

    // Both consumers of orders: orders' rows can be retired.
    let both = Plan::new(&manifest, &names(&["billing", "shipping"]));
    assert_eq!(publishers(&both), ["orders retains", "payments retains"]);

    // A publisher's own sidecar delivers nothing (consumers pull) and
    // retires nothing others still need; audit's it retires.
    assert_eq!(Plan::new(&manifest, &names(&["orders"])), Plan::default());
    let audit = Plan::new(&manifest, &names(&["audit"]));
    assert!(audit.routes.is_empty());
    assert_eq!(publishers(&audit), ["audit retains"]);
    assert_eq!(Plan::new(&manifest, &names(&["quiet"])), Plan::default());
}

/// `retention = "delete"` (the default): once both consumers have the
/// events, their rows are gone, and the type nobody consumes is gone at
/// once. A worker for one consumer retires nothing.
#[tokio::test]
async fn retention_delete_removes_what_every_consumer_has() {
    for engine in ENGINES {
        let p = Project::new(engine, "").await;
        let mut placed = Vec::new();
        for n in 0..5 {
            placed.push(p.publish("order.placed", &format!("k{}", n % 2), n).await);
        }
        p.publish("order.noted", "x", 0).await;

        // billing's sidecar: billing gets everything, nothing is retired
        // (shipping has nothing yet), not even the unconsumed type.
        let (_, retired) = p.settle(&["billing"], &[("billing", 5)]).await;
        assert_eq!(p.inbox("billing").await, placed, "{engine}");
        assert_eq!(retired, 0, "{engine}");
        assert_eq!(p.outbox().await.len(), 6, "{engine}");

        let late = p.publish("order.placed", "k0", 5).await;
        placed.push(late);
        let (delivered, mut retired) = p.settle(&[], &[("billing", 6), ("shipping", 6)]).await;
        assert_eq!(delivered, 7, "{engine}: 1 to billing, 6 to shipping");
        assert_eq!(p.inbox("billing").await, placed, "{engine}");
        assert_eq!(p.inbox("shipping").await, placed, "{engine}");
        // The last rows are retired by the run that delivered them or, if
        // another test's transaction held them back, by the next.
        if retired < 7 {
            retired += p.once(&[]).await.retired;
        }
        assert_eq!(retired, 7, "{engine}");
        assert_eq!(p.outbox().await, Vec::<String>::new(), "{engine}");
        // Nothing left to do: a second run changes nothing.
        let again = p.once(&[]).await;
        assert_eq!((again.delivered(), again.retired), (0, 0), "{engine}");
    }
}

/// `retention = "keep"`: the rows stay, `sent` with `sent_at`, and are
/// not delivered again.
#[tokio::test]
async fn retention_keep_marks_what_every_consumer_has_sent() {
    for engine in ENGINES {
        let p = Project::new(engine, "[events]\nretention = \"keep\"").await;
        let a = p.publish("order.placed", "k", 1).await;
        let noted = p.publish("order.noted", "k", 2).await;
        p.settle(&["billing"], &[("billing", 1)]).await;
        assert_eq!(
            p.outbox().await,
            [format!("{a} pending -"), format!("{noted} pending -")],
            "{engine}: billing's worker alone marks nothing"
        );
        let (_, retired) = p.settle(&[], &[("shipping", 1)]).await;
        assert_eq!(retired, 2, "{engine}");
        assert_eq!(
            p.outbox().await,
            [format!("{a} sent sent_at"), format!("{noted} sent sent_at")],
            "{engine}"
        );
        let b = p.publish("order.placed", "k", 3).await;
        let (delivered, retired) = p.settle(&[], &[("billing", 2), ("shipping", 2)]).await;
        assert_eq!(delivered, 2, "{engine}");
        assert_eq!(retired, 1, "{engine}");
        for consumer in ["billing", "shipping"] {
            assert_eq!(p.inbox(consumer).await, [a.clone(), b.clone()], "{engine}");
        }
        assert_eq!(p.outbox().await.len(), 3, "{engine}: kept");
    }
}

/// A consumer's store goes away while the worker runs: its route fails and
/// retries, the other consumer keeps receiving, the rows the absent one
/// still needs stay in the outbox; once the store is back, everything
/// arrives, once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_away_holds_back_only_its_own_route() {
    for engine in ENGINES {
        let p = Project::new(engine, "").await;
        let plan = Plan::new(&p.manifest, &[]);
        let worker = Worker::new(
            p.stores.clone(),
            p.manifest.clone(),
            plan,
            std::sync::Arc::new(silo_events::contracts::Contracts::none()),
        );
        let status = worker.status();
        let (stop, stopped) = oneshot::channel::<()>();
        let run = tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));

        let mut published = vec![p.publish("order.placed", "k", 0).await];
        until("both consumers have the first event", || async {
            p.inbox("billing").await.len() == 1 && p.inbox("shipping").await.len() == 1
        })
        .await;

        take_away(&p.manifest, &p.prefix, "billing", true).await;
        let billing = status
            .routes
            .iter()
            .find(|r| r.route.consumer == "billing")
            .unwrap();
        // (A SQLite connection open before the move still writes to the
        // moved file until the worker opens it again: wait for that.)
        until("billing's route fails", || async { billing.failing() }).await;
        for n in 1..6 {
            published.push(p.publish("order.placed", "k", n).await);
        }
        until("shipping has every event meanwhile", || async {
            p.inbox("shipping").await == published
        })
        .await;
        // Not retired: billing does not have them.
        let outbox = p.outbox().await.join("\n");
        for id in &published[1..] {
            assert!(outbox.contains(id), "{engine}: {id} kept for billing");
        }
        assert!(billing.failing(), "{engine}: still away");

        take_away(&p.manifest, &p.prefix, "billing", false).await;
        until("billing catches up", || async {
            p.inbox("billing").await.len() >= published.len()
        })
        .await;
        until("billing's route works again", || async {
            !billing.failing()
        })
        .await;
        until("delivered rows are retired", || async {
            p.outbox().await.is_empty()
        })
        .await;
        stop.send(()).unwrap();
        let summary = run.await.unwrap();
        assert!(
            summary.failures.is_empty(),
            "{engine}: {:?}",
            summary.failures
        );
        assert_eq!(summary.delivered(), 12, "{engine}: each event once to each");
        for consumer in ["billing", "shipping"] {
            assert_eq!(p.inbox(consumer).await, published, "{engine} {consumer}");
        }
    }
}

/// With `once`, a route whose store cannot be reached is not retried: it
/// is in the summary with its error, and the other route delivers.
#[tokio::test]
async fn once_reports_a_route_that_fails() {
    for engine in ENGINES {
        let p = Project::new(engine, "").await;
        let id = p.publish("order.placed", "k", 1).await;
        take_away(&p.manifest, &p.prefix, "shipping", true).await;
        let deadline = Instant::now() + BOUND;
        let summary = loop {
            let summary = p.once(&[]).await;
            if !p.inbox("billing").await.is_empty() {
                break summary;
            }
            assert!(Instant::now() < deadline, "{engine}: billing never got it");
        };
        take_away(&p.manifest, &p.prefix, "shipping", false).await;
        assert_eq!(
            summary.failures.len(),
            1,
            "{engine}: {:?}",
            summary.failures
        );
        assert_eq!(summary.failures[0].0, "orders → shipping", "{engine}");
        assert_eq!(
            p.inbox("billing").await,
            std::slice::from_ref(&id),
            "{engine}"
        );
        assert_eq!(summary.retired, 0, "{engine}: shipping still needs it");
        let (_, retired) = p.settle(&[], &[("shipping", 1)]).await;
        assert_eq!(p.inbox("shipping").await, [id], "{engine}");
        if retired == 0 {
            p.once(&[]).await;
        }
        assert_eq!(p.outbox().await, Vec::<String>::new(), "{engine}");
    }
}

/// On PostgreSQL a plain INSERT into the outbox notifies `silo_outbox` at
/// commit, which is what wakes the worker.
#[tokio::test]
async fn postgres_a_plain_insert_notifies_at_commit() {
    let p = Project::new("postgres", "").await;
    let mut listener = p
        .stores
        .listen_as(p.service("orders"), "test", CHANNEL)
        .await
        .unwrap()
        .expect("a PostgreSQL store listens");
    p.publish("order.placed", "k", 1).await;
    let note = tokio::time::timeout(BOUND, listener.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(note.channel(), CHANNEL);
    // A SQLite store has no notifications.
    let q = Project::new("sqlite", "").await;
    assert!(
        q.stores
            .listen_as(q.service("orders"), "test", CHANNEL)
            .await
            .unwrap()
            .is_none()
    );
}
