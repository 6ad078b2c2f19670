//! `silo events run`, the real binary on real stores: killed with SIGKILL
//! at random points while services publish, it loses, repeats and
//! reorders nothing; stopped with SIGTERM it exits 0 with its summary;
//! `--metrics-addr` serves its Prometheus metrics.
//!
//! Every wait is a poll with a bound; nothing sleeps to let a race settle.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use silo_manifest::{Manifest, Overrides};
use silo_store::{ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use sqlx::Connection;

mod common;
use common::silo;

/// Far above what any step takes; a failure, not a slow machine, hits it.
const BOUND: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(20);

/// `orders` publishes `order.placed`; `billing` and `shipping` consume it.
/// `engines` gives each service's engine.
struct Project {
    dir: tempfile::TempDir,
    _prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
}

impl Project {
    async fn new(engines: [(&str, &str); 3]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let mut text = String::from("[project]\nname = \"t\"\n");
        for (name, engine) in engines {
            let kind = if name == "orders" {
                "publishes"
            } else {
                "consumes"
            };
            text.push_str(&format!(
                "[services.{name}]\nengine = \"{engine}\"\ndatabase = \"{}\"\nrole = \"{}\"\n\
                 {kind} = [\"order.placed\"]\n",
                prefix.name(name),
                prefix.name(&format!("{name}_svc")),
            ));
        }
        std::fs::write(dir.path().join("silo.toml"), text).unwrap();
        silo(dir.path()).arg("up").assert().success();
        let manifest =
            Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
        let stores = Stores::new(StoresConfig {
            project: Some(manifest.project.clone()),
            data_dir: manifest.data_dir.clone(),
            admin_url: Some(admin_url()),
            concurrency: 2,
        });
        Project {
            dir,
            _prefix: prefix,
            manifest,
            stores,
        }
    }

    async fn connect(&self, name: &str) -> ServiceConnection {
        let svc = self.manifest.service(name).unwrap();
        self.stores.connect_as(svc, "test").await.unwrap()
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

    /// `consumer`'s inbox as `key id`, in arrival order.
    async fn inbox(&self, consumer: &str) -> Vec<String> {
        self.strings(
            consumer,
            "SELECT key || ' ' || CAST(event_id AS TEXT) FROM silo_inbox ORDER BY seq",
        )
        .await
    }

    async fn outbox_rows(&self) -> usize {
        self.strings("orders", "SELECT CAST(id AS TEXT) FROM silo_outbox")
            .await
            .len()
    }
}

/// Publishes `count` events on `key` from `orders`, one transaction each
/// with a plain INSERT, every fourth one rolled back. Returns `key id` of
/// the committed ones, in publish order, and the rolled-back ids.
async fn publish(
    p: &Project,
    key: &str,
    count: usize,
    pace: Duration,
) -> (Vec<String>, Vec<String>) {
    let (mut committed, mut rolled_back) = (Vec::new(), Vec::new());
    for n in 0..count {
        // A connection per transaction, as short-lived clients do: on
        // SQLite, the close of the last connection to a file checkpoints
        // and deletes its WAL, which must never happen under the worker's.
        let mut conn = p.connect("orders").await;
        let payload = format!("{{\"n\": {n}}}");
        let keep = n % 4 != 3;
        let id: String = match &mut conn {
            ServiceConnection::Postgres(c) => {
                let mut tx = c.begin().await.unwrap();
                let id = sqlx::query_scalar(
                    "INSERT INTO silo_outbox (type, key, payload) \
                     VALUES ('order.placed', $1, CAST($2 AS jsonb)) RETURNING CAST(id AS TEXT)",
                )
                .bind(key)
                .bind(&payload)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                if keep {
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
                id
            }
            ServiceConnection::Sqlite(c) => {
                let mut tx = c.begin().await.unwrap();
                let id = sqlx::query_scalar(
                    "INSERT INTO silo_outbox (type, key, payload) \
                     VALUES ('order.placed', $1, $2) RETURNING id",
                )
                .bind(key)
                .bind(&payload)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                if keep {
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
                id
            }
        };
        conn.close().await;
        if keep {
            committed.push(format!("{key} {id}"));
        } else {
            rolled_back.push(id);
        }
        // Spread the publishing over the kill loop, so workers start with
        // events waiting and are killed amid their batches (not for
        // correctness).
        tokio::time::sleep(pace).await;
    }
    (committed, rolled_back)
}

/// A small xorshift generator: the kill points, reproducible from the
/// seed printed on failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// A running `silo events run`, its stderr collected as it comes.
struct Worker {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Worker {
    /// Waits (bounded) until the worker says it runs: its signal handlers
    /// are in place from then on.
    async fn started(&self) {
        let deadline = Instant::now() + BOUND;
        while !self.stderr.lock().unwrap().contains("silo events run: ") {
            assert!(Instant::now() < deadline, "the worker never started");
            tokio::time::sleep(POLL).await;
        }
    }
}

fn worker(dir: &Path, args: &[&str]) -> Worker {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("silo"))
        .current_dir(dir)
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .env_remove("RUST_LOG")
        .env("SILO_PG_ADMIN_URL", admin_url())
        .args(["events", "run"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Worker { child, stderr }
}

fn signal(worker: &Worker, signal: &str) {
    let child = &worker.child;
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {}", child.id());
}

/// Waits (bounded) for the exit; returns the code (`None`: killed by a
/// signal), stdout and stderr.
async fn finish(worker: Worker) -> (Option<i32>, String, String) {
    let Worker { mut child, stderr } = worker;
    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("silo events run did not exit");
        }
        tokio::time::sleep(POLL).await;
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    // The reader ends with the pipe.
    let deadline = Instant::now() + BOUND;
    while Arc::strong_count(&stderr) > 1 {
        assert!(Instant::now() < deadline, "stderr stayed open");
        tokio::time::sleep(POLL).await;
    }
    let err = stderr.lock().unwrap().clone();
    (status.code(), out, err)
}

/// Publishes from three concurrent publishers while the worker is killed
/// with SIGKILL at random points 24 times and started again; then a last
/// worker runs until everything arrived and is stopped with SIGTERM. Every
/// committed event is in each consumer's inbox exactly once, in per-key
/// publish order; no rolled-back event is anywhere; the delivered rows
/// left the outbox.
async fn kill_story(engines: [(&str, &str); 3]) {
    const KILLS: usize = 24;
    let p = Arc::new(Project::new(engines).await);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let context = format!("{engines:?}, seed {seed}");
    let publishers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|key| {
            let p = p.clone();
            tokio::spawn(async move { publish(&p, key, 40, Duration::from_millis(60)).await })
        })
        .collect();

    let mut rng = Rng(seed);
    for round in 0..KILLS {
        let child = worker(p.dir.path(), &[]);
        if round % 2 == 0 {
            // Anywhere: from before the worker reached a store to well
            // into its batches.
            tokio::time::sleep(Duration::from_millis(rng.next(250))).await;
        } else {
            // Amid deliveries: once an inbox grew (or after a while, when
            // nothing was waiting), then a moment more.
            let before = p.inbox("billing").await.len() + p.inbox("shipping").await.len();
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline
                && p.inbox("billing").await.len() + p.inbox("shipping").await.len() == before
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.next(20))).await;
        }
        signal(&child, "KILL");
        let (code, _, err) = finish(child).await;
        assert_eq!(code, None, "{context}: killed, not exited: {err}");
    }

    let mut committed = Vec::new();
    let mut rolled_back = Vec::new();
    for task in publishers {
        let (c, r) = task.await.unwrap();
        committed.push(c);
        rolled_back.extend(r);
    }
    let all: usize = committed.iter().map(Vec::len).sum();
    assert_eq!(all, 90, "{context}");

    let last = worker(p.dir.path(), &[]);
    last.started().await;
    let deadline = Instant::now() + BOUND;
    loop {
        let mut done = p.outbox_rows().await == 0;
        for consumer in ["billing", "shipping"] {
            done &= p.inbox(consumer).await.len() >= all;
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "{context}: never delivered");
        tokio::time::sleep(POLL).await;
    }
    signal(&last, "TERM");
    let (code, out, err) = finish(last).await;
    assert_eq!(code, Some(0), "{context}: {err}");
    assert!(out.starts_with("stopped: delivered "), "{context}: {out}");

    for (service, engine) in engines {
        if engine != "sqlite" {
            continue;
        }
        let check = p.strings(service, "PRAGMA integrity_check").await;
        assert_eq!(check, ["ok"], "{context} {service}: the store is sound");
    }
    for consumer in ["billing", "shipping"] {
        let inbox = p.inbox(consumer).await;
        assert_eq!(inbox.len(), all, "{context} {consumer}: exactly once");
        for keyed in &committed {
            let key = keyed[0].split(' ').next().unwrap();
            let got: Vec<&String> = inbox
                .iter()
                .filter(|e| e.split(' ').next() == Some(key))
                .collect();
            let want: Vec<&String> = keyed.iter().collect();
            assert_eq!(got, want, "{context} {consumer}: key {key} in order");
        }
        for id in &rolled_back {
            assert!(
                !inbox.iter().any(|e| e.ends_with(id.as_str())),
                "{context} {consumer}: rolled-back {id} delivered"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_repeats_nothing_sqlite() {
    kill_story([
        ("orders", "sqlite"),
        ("billing", "sqlite"),
        ("shipping", "sqlite"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_repeats_nothing_postgres() {
    kill_story([
        ("orders", "postgres"),
        ("billing", "postgres"),
        ("shipping", "postgres"),
    ])
    .await;
}

/// A PostgreSQL publisher, a SQLite consumer and a PostgreSQL one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_repeats_nothing_across_engines() {
    kill_story([
        ("orders", "postgres"),
        ("billing", "sqlite"),
        ("shipping", "postgres"),
    ])
    .await;
}

/// `GET /metrics` at `port`, the body.
fn scrape(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

/// The value of the sample of `name` whose labels include each of
/// `labels` (`key="value"`).
fn sample(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// After a delivery the metrics endpoint serves the delivered, published
/// and retired counts, the backlog and lag, and the batch latency
/// histogram; SIGTERM then stops the worker with exit 0 and its summary.
#[tokio::test]
async fn metrics_are_served_and_sigterm_stops_with_a_summary() {
    let p = Project::new([
        ("orders", "sqlite"),
        ("billing", "sqlite"),
        ("shipping", "sqlite"),
    ])
    .await;
    let (committed, _) = publish(&p, "k", 4, Duration::ZERO).await;
    assert_eq!(committed.len(), 3);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = worker(p.dir.path(), &["--metrics-addr", &addr]);
    child.started().await;
    let route = |consumer: &str| {
        [
            "publisher=\"orders\"".to_string(),
            format!("consumer=\"{consumer}\""),
        ]
    };
    let deadline = Instant::now() + BOUND;
    let body = loop {
        if let Some(body) = scrape(port) {
            let delivered = |c: &str| {
                let labels = route(c);
                let mut labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                labels.push("type=\"order.placed\"");
                sample(&body, "silo_events_delivered_total", &labels)
            };
            let retired = sample(
                &body,
                "silo_events_retired_total",
                &["publisher=\"orders\""],
            );
            if delivered("billing") == Some(3.0)
                && delivered("shipping") == Some(3.0)
                && retired == Some(3.0)
            {
                break body;
            }
        }
        assert!(Instant::now() < deadline, "the metrics never showed it");
        tokio::time::sleep(POLL).await;
    };
    let orders = ["publisher=\"orders\"", "type=\"order.placed\""];
    assert_eq!(
        sample(&body, "silo_events_published_total", &orders),
        Some(3.0),
        "{body}"
    );
    for consumer in ["billing", "shipping"] {
        let labels = route(consumer);
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert_eq!(
            sample(&body, "silo_events_backlog", &labels),
            Some(0.0),
            "{body}"
        );
        assert_eq!(
            sample(&body, "silo_events_lag_seconds", &labels),
            Some(0.0),
            "{body}"
        );
        assert_eq!(
            sample(&body, "silo_events_route_up", &labels),
            Some(1.0),
            "{body}"
        );
        let batches = sample(&body, "silo_events_batch_seconds_count", &labels).unwrap();
        assert!(batches >= 1.0, "{body}");
        let mut le = labels.clone();
        le.push("le=\"+Inf\"");
        assert_eq!(
            sample(&body, "silo_events_batch_seconds_bucket", &le),
            Some(batches),
            "{body}"
        );
    }
    assert!(
        body.contains("# TYPE silo_events_delivered_total counter"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE silo_events_batch_seconds histogram"),
        "{body}"
    );

    // A dead row (as a refused payload leaves) is counted. (Of a type
    // nobody consumes: keeping dead rows out of delivery is the read
    // path's business, not the worker's.)
    let mut conn = p.connect("orders").await;
    let ServiceConnection::Sqlite(c) = &mut conn else {
        unreachable!()
    };
    sqlx::query(
        "INSERT INTO silo_outbox (type, key, payload, state, error) \
         VALUES ('order.refused', 'k', '{}', 'dead', 'refused')",
    )
    .execute(&mut *c)
    .await
    .unwrap();
    conn.close().await;
    let deadline = Instant::now() + BOUND;
    loop {
        let body = scrape(port).unwrap_or_default();
        let refused = ["publisher=\"orders\"", "type=\"order.refused\""];
        if sample(&body, "silo_events_outbox_dead", &refused) == Some(1.0) {
            assert_eq!(
                sample(&body, "silo_events_dead_total", &refused),
                Some(1.0),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the dead row never showed");
        tokio::time::sleep(POLL).await;
    }

    signal(&child, "TERM");
    let (code, out, err) = finish(child).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out, "stopped: delivered 6 events on 2 routes, retired 3 outbox rows\n",
        "{err}"
    );
}

/// `--once` delivers what is ready and exits 0 with its summary (or, with
/// `--json`, the same as JSON); an unknown service is a usage error; a
/// port taken is refused up front.
#[tokio::test]
async fn once_delivers_and_exits() {
    let p = Project::new([
        ("orders", "sqlite"),
        ("billing", "sqlite"),
        ("shipping", "sqlite"),
    ])
    .await;
    publish(&p, "k", 2, Duration::ZERO).await;
    silo(p.dir.path())
        .args(["events", "run", "--once"])
        .assert()
        .success()
        .stdout("done: delivered 4 events on 2 routes, retired 2 outbox rows\n");
    assert_eq!(p.inbox("billing").await.len(), 2);
    // billing's sidecar: only the route into billing.
    publish(&p, "k", 1, Duration::ZERO).await;
    silo(p.dir.path())
        .args(["events", "run", "--once", "billing"])
        .assert()
        .success()
        .stdout("done: delivered 1 event on 1 route, retired 0 outbox rows\n");
    assert_eq!(p.inbox("shipping").await.len(), 2);
    // The same summary as JSON.
    let doc = common::json(silo(p.dir.path()).args(["events", "run", "--once", "--json"]));
    assert_eq!(
        doc,
        serde_json::json!({
            "bus": "embedded",
            "once": true,
            "delivered": 1,
            "retired": 1,
            "failing": 0,
            "routes": [
                {"publisher": "orders", "consumer": "billing", "delivered": 0},
                {"publisher": "orders", "consumer": "shipping", "delivered": 1},
            ],
        })
    );
    silo(p.dir.path())
        .args(["events", "run", "--once", "nosuch"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("unknown service `nosuch`"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    silo(p.dir.path())
        .args(["events", "run", "--metrics-addr", &addr])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("cannot serve metrics"));
}

/// The worker connects to each store with the service's own credentials
/// file alone: on PostgreSQL it runs with no admin URL set.
#[tokio::test]
async fn the_worker_on_postgres_needs_no_admin_url() {
    let p = Project::new([
        ("orders", "postgres"),
        ("billing", "postgres"),
        ("shipping", "postgres"),
    ])
    .await;
    publish(&p, "k", 2, Duration::ZERO).await;
    silo(p.dir.path())
        .env_remove("SILO_PG_ADMIN_URL")
        .args(["events", "run", "--once"])
        .assert()
        .success()
        .stdout("done: delivered 4 events on 2 routes, retired 2 outbox rows\n");
    assert_eq!(p.inbox("billing").await.len(), 2);
    assert_eq!(p.inbox("shipping").await.len(), 2);
}

/// What no retry can fix stops the worker before it starts: a PostgreSQL
/// store never provisioned (no credentials file) is exit 2 with the fix.
#[test]
fn a_store_never_provisioned_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n\
         [services.orders]\npublishes = [\"order.placed\"]\n\
         [services.billing]\nconsumes = [\"order.placed\"]\n",
    )
    .unwrap();
    silo(dir.path())
        .env_remove("SILO_PG_ADMIN_URL")
        .args(["events", "run"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "service `orders` has no credentials",
        ))
        .stderr(predicates::str::contains("run `silo up orders`"));
}

/// A SQLite client that opens and closes a connection per transaction (so
/// each close may be the file's last, which checkpoints and deletes the
/// WAL) publishes while the worker runs for a while, opening connections
/// of its own: every store stays sound and the worker reports no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_sqlite_clients_beside_the_worker_leave_the_stores_sound() {
    let p = Arc::new(
        Project::new([
            ("orders", "sqlite"),
            ("billing", "sqlite"),
            ("shipping", "sqlite"),
        ])
        .await,
    );
    let run = worker(p.dir.path(), &[]);
    run.started().await;
    // An application in another language, with its own SQLite library,
    // straight to the file: CPython's sqlite3, a connection per insert.
    let file = p
        .manifest
        .service("orders")
        .unwrap()
        .sqlite_path(&p.manifest.data_dir);
    let all = 200;
    let script = format!(
        "import sqlite3, time\n\
         for n in range({all}):\n\
         \x20   c = sqlite3.connect({file:?}, timeout=30)\n\
         \x20   c.execute(\"INSERT INTO silo_outbox (type, key, payload) VALUES ('order.placed', 'k', '{{}}')\")\n\
         \x20   c.commit()\n\
         \x20   c.close()\n\
         \x20   time.sleep(0.01)\n"
    );
    let app = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .await
        .expect("python3 (part of the machine) runs");
    assert!(
        app.status.success(),
        "{}",
        String::from_utf8_lossy(&app.stderr)
    );
    let deadline = Instant::now() + BOUND;
    while p.inbox("billing").await.len() < all || p.inbox("shipping").await.len() < all {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(POLL).await;
    }
    signal(&run, "TERM");
    let (code, _, err) = finish(run).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("WARN"), "{err}");
    for service in ["orders", "billing", "shipping"] {
        let check = p.strings(service, "PRAGMA integrity_check").await;
        assert_eq!(check, ["ok"], "{service}: the store is sound");
    }
}
