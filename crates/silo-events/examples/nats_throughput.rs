//! How fast the nats bus moves events: a PostgreSQL outbox → JetStream
//! (the relay), then JetStream → another PostgreSQL store's inbox (the
//! delivery), with 256-byte payloads; then the latency from publish to
//! inbox with the worker running and events published at 1,000 a second
//! (`time` of the inbox row, the outbox row's `created_at`, to its
//! `received_at`, both on the server's clock).
//!
//! ```text
//! cargo run --release -p silo-events --example nats_throughput [EVENTS]
//! ```
//!
//! Uses the PostgreSQL server at `SILO_TEST_PG_ADMIN_URL` and the NATS
//! server at `SILO_NATS_URL` (defaults: the local ones), under a fresh
//! project name, and removes what it made.

use std::time::{Duration, Instant};

use silo_events::relay::nats::deliver::Delivery;
use silo_events::relay::nats::run::{self, set_up};
use silo_events::relay::nats::{NatsConfig, names, publish};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};

#[tokio::main]
async fn main() {
    let events: i64 = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("EVENTS is a number"))
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let project = format!("bench_{}", prefix.value.trim_end_matches('_'));
    let text = format!(
        "[project]\nname = \"{project}\"\n[defaults]\nengine = \"postgres\"\n[events]\nbus = \"nats\"\n\
         [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\npublishes = [\"bench.event\"]\n\
         [services.billing]\ndatabase = \"{}\"\nrole = \"{}\"\nconsumes = [\"bench.event\"]\n",
        prefix.name("orders"),
        prefix.name("orders_svc"),
        prefix.name("billing"),
        prefix.name("billing_svc"),
    );
    let manifest =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 2,
    });
    for s in &manifest.services {
        stores
            .engine(s)
            .unwrap()
            .provision(s, ProvisionOptions::default())
            .await
            .unwrap();
        silo_events::ensure(&stores, s).await.unwrap();
    }
    let orders = manifest.service("orders").unwrap();
    let billing = manifest.service("billing").unwrap();
    let mut store = stores.connect_as(orders, "bench").await.unwrap();
    publish::prepare(&mut store, orders).await.unwrap();
    let ServiceConnection::Postgres(pg) = &mut store else {
        unreachable!()
    };
    sqlx::query(
        "INSERT INTO silo_outbox (type, key, payload) \
         SELECT 'bench.event', (g % 100)::text, jsonb_build_object('pad', repeat('x', 244)) \
         FROM generate_series(1, $1) g",
    )
    .bind(events)
    .execute(&mut *pg)
    .await
    .unwrap();
    let size: i32 = sqlx::query_scalar("SELECT length(payload::text) FROM silo_outbox LIMIT 1")
        .fetch_one(&mut *pg)
        .await
        .unwrap();

    let config = NatsConfig::from_env(&manifest);
    let contracts = silo_events::contracts::Contracts::load(&manifest).unwrap();
    let all: Vec<&Service> = manifest.services.iter().collect();
    set_up(&config, &manifest, &all, true).await.unwrap();
    let bus = config.connect("orders").await.unwrap();

    let started = Instant::now();
    let mut relayed = 0;
    loop {
        let done = publish::relay_batch(&mut store, &bus, &manifest, orders, &contracts)
            .await
            .unwrap();
        assert!(done.failed.is_none(), "{done:?}");
        relayed += done.published;
        if done.read == 0 {
            break;
        }
    }
    let relay_time = started.elapsed();
    store.close().await;

    let consumer = config.connect("billing").await.unwrap();
    let mut delivery = Delivery::start(&consumer, &manifest, billing)
        .await
        .unwrap();
    let started = Instant::now();
    let mut delivered = 0;
    while delivered < relayed {
        delivered += delivery
            .step(&stores, Duration::from_millis(500))
            .await
            .unwrap()
            .total();
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "stuck at {delivered}"
        );
    }
    let deliver_time = started.elapsed();

    println!("payload        {size} bytes");
    println!(
        "relay          {relayed} events in {:.2} s: {:.0} events/s (outbox → JetStream, acked, rows deleted)",
        relay_time.as_secs_f64(),
        relayed as f64 / relay_time.as_secs_f64()
    );
    println!(
        "delivery       {delivered} events in {:.2} s: {:.0} events/s (JetStream → inbox, committed, acked)",
        deliver_time.as_secs_f64(),
        delivered as f64 / deliver_time.as_secs_f64()
    );
    drop(delivery);

    // Latency at 1,000 events a second, the worker running.
    let (stop, rx) = tokio::sync::watch::channel(false);
    let counters: Vec<_> = all.iter().map(|_| run::Counters::default()).collect();
    let worker = run::run(
        &stores,
        &manifest,
        &config,
        &contracts,
        &all,
        &counters,
        run::RunOptions::default(),
        rx,
    );
    let paced = async {
        let mut store = stores.connect_as(orders, "bench").await.unwrap();
        publish::prepare(&mut store, orders).await.unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for n in 0..5_000 {
            tick.tick().await;
            silo_events::publish(
                &mut store,
                "bench.event",
                &(n % 100).to_string(),
                &serde_json::json!({ "pad": "x".repeat(244) }),
            )
            .await
            .unwrap();
        }
        store.close().await;
        let mut inbox = stores.connect_as(billing, "bench").await.unwrap();
        let ServiceConnection::Postgres(pg) = &mut inbox else {
            unreachable!()
        };
        let want = delivered as i64 + 5_000;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM silo_inbox")
                .fetch_one(&mut *pg)
                .await
                .unwrap();
            if n >= want {
                break;
            }
            assert!(Instant::now() < deadline, "{n} of {want} delivered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (p50, p99, max): (f64, f64, f64) = sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms) \
             FROM (SELECT (extract(epoch FROM received_at - time) * 1000)::float8 AS ms \
                   FROM silo_inbox ORDER BY seq DESC LIMIT 5000) l",
        )
        .fetch_one(&mut *pg)
        .await
        .unwrap();
        inbox.close().await;
        stop.send(true).unwrap();
        (p50, p99, max)
    };
    let ((p50, p99, max), ()) = tokio::join!(paced, worker);
    println!(
        "latency        5000 events at 1000/s, publish → inbox: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );
    let _ = bus
        .js
        .delete_stream(names::stream_name(&manifest.project))
        .await;
}
