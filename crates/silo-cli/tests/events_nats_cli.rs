//! `silo events nats-config` and `silo events replay`, on a nats-server
//! of the test's own.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{json, silo};
use silo_events::contracts::Contracts;
use silo_events::relay::nats::NatsConfig;
use silo_events::relay::nats::run::{Counters, RunOptions, run};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{Stores, StoresConfig};
use silo_testkit::{NatsServer, Prefix, admin_url};

fn project(prefix: &Prefix, events: &str) -> tempfile::TempDir {
    project_on(prefix, "sqlite", events)
}

/// [`project`] with its stores on `engine`.
fn project_on(prefix: &Prefix, engine: &str, events: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        format!(
            "[project]\nname = \"shop\"\n[defaults]\nengine = \"{engine}\"\n[events]\n{events}\n\
             [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\npublishes = [\"order.placed\"]\n\
             [services.billing]\ndatabase = \"{}\"\nrole = \"{}\"\nconsumes = [\"order.placed\"]\n",
            prefix.name("orders"),
            prefix.name("orders_svc"),
            prefix.name("billing"),
            prefix.name("billing_svc"),
        ),
    )
    .unwrap();
    silo(dir.path()).arg("up").assert().success();
    dir
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `sql` on a service's SQLite store.
fn sqlite(dir: &Path, prefix: &Prefix, service: &str, sql: &str) {
    let path = dir.join(format!(".silo/{service}/{}.sqlite3", prefix.name(service)));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    });
}

/// The worker with `--once` semantics, from the library: relays and
/// delivers what is ready, then returns.
fn run_once(dir: &Path, url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let manifest = Manifest::load(&dir.join("silo.toml"), &Overrides::default()).unwrap();
        let stores = Stores::new(StoresConfig {
            project: None,
            data_dir: manifest.data_dir.clone(),
            admin_url: Some(admin_url()),
            concurrency: 2,
        });
        let config = NatsConfig::new(&manifest, url);
        let services: Vec<&Service> = manifest.services.iter().collect();
        let counters: Vec<Counters> = services.iter().map(|_| Counters::default()).collect();
        let (_stop, rx) = tokio::sync::watch::channel(false);
        run(
            &stores,
            &manifest,
            &config,
            &Contracts::default(),
            &services,
            &counters,
            RunOptions { once: true },
            rx,
        )
        .await;
    });
}

#[test]
fn nats_config_writes_one_stable_private_block_and_apply_sets_the_bus_up() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"\nnats_auth = true");
    let dir = dir.path();
    let out = silo(dir)
        .args(["events", "nats-config", "--out", "auth.conf"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrote the authorization block to auth.conf"));
    assert!(
        stderr(&out)
            .contains("generated credentials for silo-admin, silo-gateway, orders, billing"),
        "{}",
        stderr(&out)
    );
    let block = std::fs::read_to_string(dir.join("auth.conf")).unwrap();
    let mode = std::fs::metadata(dir.join("auth.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for user in ["silo-admin", "orders", "billing"] {
        let creds =
            std::fs::read_to_string(dir.join(format!(".silo/secrets/nats/{user}.env"))).unwrap();
        let password = creds
            .lines()
            .find_map(|l| l.strip_prefix("NATS_PASSWORD="))
            .unwrap();
        assert!(
            !block.contains(password),
            "{user}'s password is in the block"
        );
        assert!(block.contains(&format!("user: \"{user}\"")));
    }

    // Again: nothing changes.
    let out = silo(dir)
        .args(["events", "nats-config", "--out", "auth.conf"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("auth.conf is up to date"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("generated"));
    assert_eq!(
        std::fs::read_to_string(dir.join("auth.conf")).unwrap(),
        block
    );

    // On a server with that block, --apply makes the stream and the
    // consumers as silo-admin, once.
    let server = NatsServer::start_with_config(&block);
    let apply = || {
        silo(dir)
            .env("SILO_NATS_URL", server.url())
            .args(["events", "nats-config", "--out", "auth.conf", "--apply"])
            .output()
            .unwrap()
    };
    let out = apply();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("created the stream shop"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("created the consumer billing-order-placed"));
    let out = apply();
    assert!(stderr(&out).contains("the stream and the consumers were up to date"));

    // Without a server, --apply is exit 2 with the way out.
    let out = silo(dir)
        .env("SILO_NATS_URL", "nats://127.0.0.1:1")
        .args(["events", "nats-config", "--out", "auth.conf", "--apply"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("could not be reached"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("nats-server"), "{}", stderr(&out));
}

#[test]
fn replay_refills_an_inbox_from_the_stream() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"");
    let dir = dir.path();
    let server = NatsServer::start();
    let id = "0190a4a2-7b1c-7cde-8f00-0123456789ab";
    sqlite(
        dir,
        &prefix,
        "orders",
        &format!(
            "INSERT INTO silo_outbox (id, type, key, payload) VALUES ('{id}', 'order.placed', 'k', '{{\"n\":1}}')"
        ),
    );
    silo(dir)
        .env("SILO_NATS_URL", server.url())
        .args(["events", "nats-config", "--out", "auth.conf", "--apply"])
        .assert()
        .success();
    run_once(dir, &server.url());
    // billing had it, then lost it.
    sqlite(dir, &prefix, "billing", "DELETE FROM silo_inbox");

    let replay = |args: &[&str]| {
        let mut c = silo(dir);
        c.env("SILO_NATS_URL", server.url())
            .args(["events", "replay", "billing"])
            .args(args);
        c
    };
    let doc = json(&mut replay(&["--type", "order.placed", "--json"]));
    assert_eq!(doc["read"], 1, "{doc}");
    assert_eq!(doc["written"], 1, "{doc}");
    let doc = json(&mut replay(&["--type", "order.placed", "--json"]));
    assert_eq!(doc["written"], 0, "{doc}");
    let out = replay(&["--type", "order.placed", "--reprocess"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 new or pending again"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A type billing does not consume, a bad time: exit 2.
    let out = replay(&["--type", "order.paid"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("billing does not consume order.paid"));
    let out = replay(&["--type", "order.placed", "--since", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not an RFC 3339 time"));

    // A time JetStream cannot hold is refused, not read as the whole
    // history; an hour from now replays nothing, a time long past all.
    let out = replay(&["--type", "order.placed", "--since", "2999-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("2262-04-11"), "{}", stderr(&out));
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let doc = json(&mut replay(&[
        "--type",
        "order.placed",
        "--since",
        &later,
        "--json",
    ]));
    assert_eq!(doc["read"], 0, "{doc}");
    let doc = json(&mut replay(&[
        "--type",
        "order.placed",
        "--since",
        "2000-01-01T00:00:00Z",
        "--json",
    ]));
    assert_eq!(doc["read"], 1, "{doc}");
}

#[test]
fn replay_needs_the_nats_bus() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "");
    let out = silo(dir.path())
        .args(["events", "replay", "billing", "--type", "order.placed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reads the nats bus's stream"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("`embedded`"), "{}", stderr(&out));
}

/// Rows of a one-column query on a service's SQLite store.
fn sqlite_column(dir: &Path, prefix: &Prefix, service: &str, sql: &str) -> Vec<String> {
    let path = dir.join(format!(".silo/{service}/{}.sqlite3", prefix.name(service)));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut c)
            .await
            .unwrap()
    })
}

#[test]
fn run_once_on_the_nats_bus_moves_what_is_ready() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"");
    let dir = dir.path();
    let server = NatsServer::start();
    let id = "0190a4a2-7b1c-7cde-8f00-0123456789ab";
    sqlite(
        dir,
        &prefix,
        "orders",
        &format!(
            "INSERT INTO silo_outbox (id, type, key, payload) VALUES ('{id}', 'order.placed', 'k', '{{\"n\":1}}')"
        ),
    );
    let out = silo(dir)
        .env("SILO_NATS_URL", server.url())
        .args(["events", "run", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("created the stream shop"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "done: published 1, delivered 1, dead 0, skipped 0"
    );
    assert_eq!(
        sqlite_column(dir, &prefix, "billing", "SELECT event_id FROM silo_inbox"),
        vec![id.to_string()]
    );
    assert!(sqlite_column(dir, &prefix, "orders", "SELECT id FROM silo_outbox").is_empty());
}

/// Publishes `payload` on `subject` as a plain NATS message (no silo
/// headers), into the stream.
fn publish_raw(url: &str, subject: &'static str, payload: &'static str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        js.publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
}

/// A message on a consumed type's subject that is no silo event is acked
/// and left out; `--once` counts it as skipped, in the line and in
/// `--json` (for its service).
#[test]
fn run_once_counts_what_it_skipped() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"");
    let dir = dir.path();
    let server = NatsServer::start();
    let run = |json: bool| {
        let mut cmd = silo(dir);
        cmd.env("SILO_NATS_URL", server.url())
            .args(["events", "run", "--once"]);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    // The stream and the durables first, so the message lands in them.
    let out = run(false);
    assert!(out.status.success(), "{}", stderr(&out));
    publish_raw(&server.url(), "shop.order.placed", "not an event");
    let id = "0190a4a2-7b1c-7cde-8f00-0123456789ac";
    sqlite(
        dir,
        &prefix,
        "orders",
        &format!(
            "INSERT INTO silo_outbox (id, type, key, payload) VALUES ('{id}', 'order.placed', 'k', '{{\"n\":1}}')"
        ),
    );
    let out = run(true);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "bus": "nats",
            "once": true,
            "published": 1,
            "delivered": 1,
            "dead": 0,
            "skipped": 1,
            "errors": 0,
            "services": [
                {"service": "orders", "published": 1, "delivered": 0, "dead": 0, "skipped": 0, "errors": 0},
                {"service": "billing", "published": 0, "delivered": 1, "dead": 0, "skipped": 1, "errors": 0},
            ],
        })
    );
    assert!(
        stderr(&out).contains("skipping the message"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sqlite_column(dir, &prefix, "billing", "SELECT event_id FROM silo_inbox"),
        vec![id.to_string()]
    );
    // Acked: a later run does not see it again, only the new one.
    publish_raw(&server.url(), "shop.order.placed", "{}");
    let out = run(false);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "done: published 0, delivered 0, dead 0, skipped 1"
    );
}

/// Whether the server at `url` has a stream `name`.
fn has_stream(url: &str, name: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        js.get_stream(name).await.is_ok()
    })
}

/// On the nats bus `silo destroy` removes the project's stream, with its
/// events and durables, besides the stores; `silo down` leaves it (the
/// other services' events are in it).
#[test]
fn destroy_removes_the_stream_and_down_leaves_it() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"");
    let dir = dir.path();
    let server = NatsServer::start();
    let run = |args: &[&str]| {
        silo(dir)
            .env("SILO_NATS_URL", server.url())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["events", "run", "--once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(has_stream(&server.url(), "shop"));
    let out = run(&["down", "billing", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(has_stream(&server.url(), "shop"), "down leaves the stream");
    let out = run(&["destroy", "--yes", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["stream"],
        serde_json::json!({"name": "shop", "removed": true, "error": null})
    );
    assert!(!has_stream(&server.url(), "shop"), "destroy removes it");
    let out = run(&["destroy", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stream shop: absent"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_sidecar_under_auth_says_to_set_the_bus_up_first() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"\nnats_auth = true");
    let dir = dir.path();
    silo(dir)
        .args(["events", "nats-config", "--out", "auth.conf"])
        .assert()
        .success();
    let server =
        NatsServer::start_with_config(&std::fs::read_to_string(dir.join("auth.conf")).unwrap());
    let out = silo(dir)
        .env("SILO_NATS_URL", server.url())
        .args(["events", "run", "billing", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the stream shop does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("nats-config --apply"),
        "{}",
        stderr(&out)
    );
    silo(dir)
        .env("SILO_NATS_URL", server.url())
        .args(["events", "nats-config", "--out", "auth.conf", "--apply"])
        .assert()
        .success();
    let out = silo(dir)
        .env("SILO_NATS_URL", server.url())
        .args(["events", "run", "billing", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A connection to a service's PostgreSQL store with the URL its
/// credentials file holds: as the service.
async fn postgres_as(dir: &Path, service: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let env = std::fs::read_to_string(dir.join(format!(".silo/secrets/{service}.env"))).unwrap();
    let url = env
        .lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL="))
        .unwrap();
    sqlx::PgConnection::connect(url).await.unwrap()
}

/// One sidecar per service on PostgreSQL, as in production: each with a
/// data dir of its own that holds its own credentials file and nothing
/// else, the bus, and no admin URL. orders' relays its outbox to the
/// stream; billing's delivers into its inbox.
#[tokio::test]
async fn a_sidecar_on_postgres_needs_only_its_own_credentials_and_the_bus() {
    use sqlx::Connection;
    let prefix = Prefix::new();
    let project = project_on(&prefix, "postgres", "bus = \"nats\"");
    let dir = project.path();
    let server = NatsServer::start();
    let id = "0190a4a2-7b1c-7cde-8f00-0123456789ab";
    let mut orders = postgres_as(dir, "orders").await;
    sqlx::query(
        "INSERT INTO silo_outbox (id, type, key, payload) \
         VALUES ($1::uuid, 'order.placed', 'k', '{\"n\":1}')",
    )
    .bind(id)
    .execute(&mut orders)
    .await
    .unwrap();

    let sidecar = |service: &str| {
        let data = tempfile::tempdir().unwrap();
        let secrets = data.path().join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::copy(
            dir.join(format!(".silo/secrets/{service}.env")),
            secrets.join(format!("{service}.env")),
        )
        .unwrap();
        let out = silo(dir)
            .env_remove("SILO_PG_ADMIN_URL")
            .env("SILO_NATS_URL", server.url())
            .arg("--data-dir")
            .arg(data.path())
            .args(["events", "run", service, "--once"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{service}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        sidecar("orders"),
        "done: published 1, delivered 0, dead 0, skipped 0"
    );
    assert_eq!(
        sidecar("billing"),
        "done: published 0, delivered 1, dead 0, skipped 0"
    );

    let mut billing = postgres_as(dir, "billing").await;
    let inbox: Vec<(String, String)> =
        sqlx::query_as("SELECT event_id::text, source FROM silo_inbox")
            .fetch_all(&mut billing)
            .await
            .unwrap();
    assert_eq!(inbox, [(id.to_string(), "orders".to_string())]);
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM silo_outbox")
        .fetch_one(&mut orders)
        .await
        .unwrap();
    assert_eq!(outbox, 0, "the relayed row is retired");
    orders.close().await.unwrap();
    billing.close().await.unwrap();

    // A sidecar without its service's credentials file is refused before
    // it starts: exit 2, and what to run.
    let empty = tempfile::tempdir().unwrap();
    let out = silo(dir)
        .env_remove("SILO_PG_ADMIN_URL")
        .env("SILO_NATS_URL", server.url())
        .arg("--data-dir")
        .arg(empty.path())
        .args(["events", "run", "billing", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("service `billing` has no credentials"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("silo up"), "{}", stderr(&out));
}

/// `GET /metrics` at `port`, the body.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
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

/// On the nats bus the worker serves the embedded bus's metric names: the
/// counts equal what reached the inbox, the backlog drops to 0 and both
/// the relay and the delivery are up; SIGTERM then stops it with exit 0.
#[test]
fn metrics_on_the_nats_bus_count_what_was_delivered() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"");
    let dir = dir.path();
    let server = NatsServer::start();
    for n in 0..3 {
        sqlite(
            dir,
            &prefix,
            "orders",
            &format!(
                "INSERT INTO silo_outbox (type, key, payload) VALUES ('order.placed', 'k', '{{\"n\":{n}}}')"
            ),
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = dir.join("worker.log");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("silo"))
        .current_dir(dir)
        .env_remove("SILO_ENGINE")
        .env_remove("SILO_DATA_DIR")
        .env_remove("SILO_MANIFEST")
        .env_remove("RUST_LOG")
        .env("SILO_PG_ADMIN_URL", admin_url())
        .env("SILO_NATS_URL", server.url())
        .args([
            "events",
            "run",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let route = ["publisher=\"orders\"", "consumer=\"billing\""];
    let placed = [
        "publisher=\"orders\"",
        "consumer=\"billing\"",
        "type=\"order.placed\"",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let body = loop {
        if let Some(body) = scrape(port)
            && sample(&body, "silo_events_delivered_total", &placed) == Some(3.0)
            && sample(&body, "silo_events_backlog", &route) == Some(0.0)
        {
            break body;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the metrics never showed it: {:?}\n{}",
                scrape(port),
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let inbox = sqlite_column(dir, &prefix, "billing", "SELECT event_id FROM silo_inbox");
    assert_eq!(inbox.len(), 3);
    let orders = ["publisher=\"orders\"", "type=\"order.placed\""];
    for name in ["silo_events_published_total", "silo_events_retired_total"] {
        assert_eq!(sample(&body, name, &orders), Some(3.0), "{name}\n{body}");
    }
    for part in [
        ["publisher=\"orders\"", "consumer=\"\""],
        ["publisher=\"\"", "consumer=\"billing\""],
    ] {
        assert_eq!(
            sample(&body, "silo_events_route_up", &part),
            Some(1.0),
            "{part:?}\n{body}"
        );
        assert!(
            sample(&body, "silo_events_batch_seconds_count", &part).is_some_and(|n| n >= 1.0),
            "{part:?}\n{body}"
        );
    }
    assert_eq!(
        sample(&body, "silo_events_errors_total", &[]),
        None,
        "{body}"
    );
    let ok = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("silo events run did not stop");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(
        out.trim(),
        "stopped: published 3, delivered 3, dead 0, skipped 0"
    );
}

/// On the nats bus `silo events status` shows a consumer's lag from its
/// durables: the events in the stream not yet in its inbox.
#[test]
fn status_on_the_nats_bus_shows_the_durables_lag() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"");
    let dir = dir.path();
    let server = NatsServer::start();
    let run = |args: &[&str]| {
        let out = silo(dir)
            .env("SILO_NATS_URL", server.url())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    let lag = || {
        let doc = json(
            silo(dir)
                .env("SILO_NATS_URL", server.url())
                .args(["events", "status", "--json"]),
        );
        let billing = doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["service"] == "billing")
            .unwrap()
            .clone();
        billing["lag"].clone()
    };
    // The stream and billing's durable.
    run(&["events", "run", "--once"]);
    for n in 0..2 {
        sqlite(
            dir,
            &prefix,
            "orders",
            &format!(
                "INSERT INTO silo_outbox (type, key, payload) VALUES ('order.placed', 'k', '{{\"n\":{n}}}')"
            ),
        );
    }
    // orders' relay only: in the stream, not in billing's inbox.
    run(&["events", "run", "orders", "--once"]);
    assert_eq!(
        lag(),
        serde_json::json!([{"publisher": "orders", "events": 2, "oldest_secs": null}])
    );
    run(&["events", "run", "--once"]);
    assert_eq!(
        lag(),
        serde_json::json!([{"publisher": "orders", "events": 0, "oldest_secs": null}])
    );
    let table = silo(dir)
        .env("SILO_NATS_URL", server.url())
        .args(["events", "status"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Delivery (nats bus"), "{text}");
}

/// An event whose id is already in the consumer's inbox from another
/// source (a service forwarding an upstream id) is not delivered, and the
/// worker says so, naming the id and both sources, on either bus.
#[test]
fn an_event_id_from_another_source_is_reported_on_both_buses() {
    for bus in ["embedded", "nats"] {
        let prefix = Prefix::new();
        let dir = project(&prefix, &format!("bus = \"{bus}\""));
        let dir = dir.path();
        let server = NatsServer::start();
        let id = "0190a4a2-7b1c-7cde-8f00-0123456789ab";
        sqlite(
            dir,
            &prefix,
            "billing",
            &format!(
                "INSERT INTO silo_inbox (event_id, type, source, key, payload) VALUES ('{id}', 'order.placed', 'upstream', 'k', '{{}}')"
            ),
        );
        sqlite(
            dir,
            &prefix,
            "orders",
            &format!(
                "INSERT INTO silo_outbox (id, type, key, payload) VALUES ('{id}', 'order.placed', 'k', '{{\"n\":1}}')"
            ),
        );
        let out = silo(dir)
            .env("SILO_NATS_URL", server.url())
            .args(["events", "run", "--once"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{bus}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "event {id} from orders was not delivered to billing: its inbox already holds event {id} from upstream"
            )),
            "{bus}: {err}"
        );
        assert_eq!(
            sqlite_column(dir, &prefix, "billing", "SELECT source FROM silo_inbox"),
            vec!["upstream".to_string()],
            "{bus}"
        );
    }
}

#[test]
fn a_service_without_its_nats_credentials_is_a_setup_error() {
    let prefix = Prefix::new();
    let dir = project(&prefix, "bus = \"nats\"\nnats_auth = true");
    let dir = dir.path();
    silo(dir)
        .args(["events", "nats-config", "--out", "auth.conf"])
        .assert()
        .success();
    let server =
        NatsServer::start_with_config(&std::fs::read_to_string(dir.join("auth.conf")).unwrap());
    silo(dir)
        .env("SILO_NATS_URL", server.url())
        .args(["events", "nats-config", "--out", "auth.conf", "--apply"])
        .assert()
        .success();
    let nats = dir.join(".silo/secrets/nats");
    std::fs::rename(nats.join("billing.env"), nats.join("billing.env.away")).unwrap();
    let out = silo(dir)
        .env("SILO_NATS_URL", server.url())
        .args(["events", "run", "billing", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nats-config"), "{}", stderr(&out));
}
