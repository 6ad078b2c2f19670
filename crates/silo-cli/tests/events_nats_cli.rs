//! `silo events nats-config` and `silo events replay`, on a nats-server
//! of the test's own.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{json, silo};
use silo_events::relay::nats::NatsConfig;
use silo_events::relay::nats::run::{Counters, RunOptions, run};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{Stores, StoresConfig};
use silo_testkit::{NatsServer, Prefix, admin_url};

fn project(prefix: &Prefix, events: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        format!(
            "[project]\nname = \"shop\"\n[events]\n{events}\n\
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
        stderr(&out).contains("generated credentials for silo-admin, orders, billing"),
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
        "done: published 1, delivered 1, dead 0"
    );
    assert_eq!(
        sqlite_column(dir, &prefix, "billing", "SELECT event_id FROM silo_inbox"),
        vec![id.to_string()]
    );
    assert!(sqlite_column(dir, &prefix, "orders", "SELECT id FROM silo_outbox").is_empty());
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
