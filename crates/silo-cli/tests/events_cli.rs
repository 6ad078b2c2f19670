//! `silo events dlq` and `silo events status` on real stores (SQLite and
//! PostgreSQL), driven through the binary. Events are published, delivered
//! and handled with silo-events' own library, as a service would.

use std::collections::HashSet;
use std::process::Output;

use serde_json::{Value, json};
use silo_events::inbox::{Backoff, Inbox};
use silo_events::relay::embedded::deliver_once;
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};

mod common;
use common::{json, silo};

const ENGINES: [&str; 2] = ["sqlite", "postgres"];

/// `orders` publishes `order.placed`, `billing` consumes it; provisioned
/// with `silo up`.
struct Project {
    dir: tempfile::TempDir,
    _prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
}

impl Project {
    fn new(engine: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let mut text = format!("[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n");
        for (name, kind) in [("orders", "publishes"), ("billing", "consumes")] {
            text.push_str(&format!(
                "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n{kind} = [\"order.placed\"]\n",
                prefix.name(name),
                prefix.name(&format!("{name}_svc")),
            ));
        }
        std::fs::write(dir.path().join("silo.toml"), &text).unwrap();
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

    fn service(&self, name: &str) -> &Service {
        self.manifest.service(name).unwrap()
    }

    fn silo(&self, args: &[&str]) -> Output {
        silo(self.dir.path()).args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        json(silo(self.dir.path()).args(args))
    }

    async fn exec(&self, name: &str, sql: &str) {
        let mut conn = self
            .stores
            .connect_as(self.service(name), "test")
            .await
            .unwrap();
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
            ServiceConnection::Sqlite(c) => sqlx::raw_sql(sql).execute(c).await.map(|_| ()),
        }
        .unwrap();
        conn.close().await;
    }

    /// Publishes `order.placed` events with these keys from `orders`.
    async fn publish(&self, keys: &[&str]) {
        let mut conn = self
            .stores
            .connect_as(self.service("orders"), "test")
            .await
            .unwrap();
        for key in keys {
            silo_events::publish(&mut conn, "order.placed", key, &json!({"key": key}))
                .await
                .unwrap();
        }
        conn.close().await;
    }

    /// Delivers until `billing` has `want` events in its inbox (bounded:
    /// on PostgreSQL another test's transaction can hold delivery back).
    async fn deliver(&self, want: usize) {
        for _ in 0..200 {
            deliver_once(
                &self.stores,
                &self.manifest,
                &silo_events::contracts::Contracts::none(),
            )
            .await
            .unwrap();
            if self.inbox_count().await >= want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("billing never got {want} events");
    }

    async fn inbox_count(&self) -> usize {
        self.state_of_all().await.len()
    }

    /// key → state of `billing`'s inbox rows.
    async fn state_of_all(&self) -> Vec<(String, String)> {
        let mut conn = self
            .stores
            .connect_as(self.service("billing"), "test")
            .await
            .unwrap();
        let sql = "SELECT key, state FROM silo_inbox ORDER BY seq";
        let rows = match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::query_as(sql).fetch_all(c).await,
            ServiceConnection::Sqlite(c) => sqlx::query_as(sql).fetch_all(c).await,
        }
        .unwrap();
        conn.close().await;
        rows
    }

    async fn state(&self, key: &str) -> Option<String> {
        self.state_of_all()
            .await
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s)
    }

    /// `billing` handles what is ready: the handler fails for `failing`
    /// keys, after two attempts for good.
    async fn handle(&self, failing: &[&str]) -> silo_events::inbox::Handled {
        let inbox = Inbox::new(&self.manifest.events)
            .with_max_attempts(2)
            .with_backoff(Backoff::NONE);
        let failing: HashSet<String> = failing.iter().map(|k| k.to_string()).collect();
        let mut conn = self
            .stores
            .connect_as(self.service("billing"), "test")
            .await
            .unwrap();
        let handled = match &mut conn {
            ServiceConnection::Postgres(c) => {
                inbox
                    .handle(c, 100, async |_, e| {
                        if failing.contains(&e.key) {
                            Err(format!("cannot bill order {}", e.key))
                        } else {
                            Ok(())
                        }
                    })
                    .await
            }
            ServiceConnection::Sqlite(c) => {
                inbox
                    .handle(c, 100, async |_, e| {
                        if failing.contains(&e.key) {
                            Err(format!("cannot bill order {}", e.key))
                        } else {
                            Ok(())
                        }
                    })
                    .await
            }
        }
        .unwrap();
        conn.close().await;
        handled
    }

    /// Makes `orders`' store unreachable (PostgreSQL: its credentials name
    /// a closed port; SQLite: its file is moved away).
    fn break_orders(&self) {
        let orders = self.service("orders");
        if orders.engine == silo_manifest::Engine::Sqlite {
            let path = orders.sqlite_path(&self.manifest.data_dir);
            std::fs::rename(&path, path.with_extension("away")).unwrap();
        } else {
            let file = self.stores.secrets().path("orders");
            let text = std::fs::read_to_string(&file).unwrap();
            let closed: String = text
                .lines()
                .map(|l| match l.split_once("_DB_PORT=") {
                    Some((var, _)) => format!("{var}_DB_PORT=1\n"),
                    None => format!("{l}\n"),
                })
                .collect();
            std::fs::write(&file, closed).unwrap();
        }
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test]
async fn dlq_lists_retries_and_drops_dead_letters() {
    for engine in ENGINES {
        let p = Project::new(engine);
        p.publish(&["a", "b"]).await;
        p.deliver(2).await;
        let handled = p.handle(&["a"]).await;
        assert_eq!((handled.dead(), handled.done), (1, 1), "{engine}");

        // Listed, with its error, as JSON and as a table.
        let doc = p.json(&["events", "dlq", "--json"]);
        let letters = doc["dead_letters"].as_array().unwrap();
        assert_eq!(letters.len(), 1, "{engine}: {doc}");
        let letter = &letters[0];
        assert_eq!(letter["service"], "billing");
        assert_eq!(letter["side"], "inbox");
        assert_eq!(letter["type"], "order.placed");
        assert_eq!(letter["key"], "a");
        assert_eq!(letter["source"], "orders");
        assert_eq!(letter["attempts"], 2);
        assert_eq!(letter["error"], "cannot bill order a");
        assert_eq!(doc["errors"], json!([]));
        let id = letter["id"].as_str().unwrap().to_string();
        let table = p.silo(&["events", "dlq", "billing"]);
        assert!(table.status.success(), "{engine}: {}", stderr(&table));
        assert!(stdout(&table).contains(&id), "{engine}");
        assert!(stdout(&table).contains("cannot bill order a"), "{engine}");
        let none = p.silo(&["events", "dlq", "orders"]);
        assert_eq!(stdout(&none).trim(), "no dead letters", "{engine}");

        // drop refuses without --yes and without a terminal; nothing changes.
        let refused = p.silo(&["events", "dlq", "drop", &id]);
        assert_eq!(refused.status.code(), Some(2), "{engine}");
        assert!(
            stderr(&refused).contains("without --yes"),
            "{engine}: {}",
            stderr(&refused)
        );
        assert_eq!(p.state("a").await.as_deref(), Some("dead"));

        // retry: pending again; the next pass delivers it.
        let retried = p.silo(&["events", "dlq", "retry", &id]);
        assert!(retried.status.success(), "{engine}: {}", stderr(&retried));
        assert_eq!(
            stdout(&retried).trim(),
            "billing: 1 dead letter(s) pending again"
        );
        assert_eq!(p.state("a").await.as_deref(), Some("pending"));
        assert_eq!(p.handle(&[]).await.done, 1, "{engine}");
        assert_eq!(p.state("a").await.as_deref(), Some("done"));
        // Nothing dead by that id any more.
        let again = p.silo(&["events", "dlq", "retry", &id]);
        assert_eq!(again.status.code(), Some(1), "{engine}");
        assert!(
            stderr(&again).contains(&format!("no dead letter {id}")),
            "{}",
            stderr(&again)
        );

        // drop --yes deletes one for good.
        p.publish(&["c"]).await;
        p.deliver(3).await;
        p.handle(&["c"]).await;
        let id = p.json(&["events", "dlq", "--json"])["dead_letters"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let dropped = p.json(&["events", "dlq", "drop", &id, "--yes", "--json"]);
        assert_eq!(
            dropped["dropped"],
            json!({"service": "billing", "side": "inbox", "id": id}),
            "{engine}"
        );
        assert_eq!(p.state("c").await, None, "{engine}");
        assert_eq!(
            p.json(&["events", "dlq", "--json"])["dead_letters"],
            json!([])
        );
    }
}

#[tokio::test]
async fn a_dead_outbox_event_is_listed_and_dropped_but_not_retried() {
    for engine in ENGINES {
        let p = Project::new(engine);
        p.publish(&["x"]).await;
        p.exec(
            "orders",
            "UPDATE silo_outbox SET state = 'dead', error = 'total: is a required property'",
        )
        .await;
        let doc = p.json(&["events", "dlq", "--json", "orders"]);
        let letter = &doc["dead_letters"][0];
        assert_eq!(letter["side"], "outbox", "{engine}: {doc}");
        assert_eq!(letter["error"], "total: is a required property");
        assert_eq!(letter["attempts"], Value::Null);
        let id = letter["id"].as_str().unwrap().to_string();

        let refused = p.silo(&["events", "dlq", "retry", &id]);
        assert_eq!(refused.status.code(), Some(1), "{engine}");
        let err = stderr(&refused);
        assert!(err.contains("its contract refused its payload"), "{err}");
        assert!(err.contains("publish a corrected event"), "{err}");

        let dropped = p.silo(&["events", "dlq", "drop", &id, "--yes"]);
        assert!(dropped.status.success(), "{engine}: {}", stderr(&dropped));
        assert_eq!(
            stdout(&dropped).trim(),
            format!("orders: dropped dead outbox event {id}")
        );
        assert_eq!(
            p.json(&["events", "dlq", "--json"])["dead_letters"],
            json!([])
        );
    }
}

#[tokio::test]
async fn status_shows_backlog_progress_and_lag_and_a_store_it_cannot_reach() {
    for engine in ENGINES {
        let p = Project::new(engine);
        p.publish(&["a", "b"]).await;
        p.deliver(2).await;
        p.handle(&["a"]).await; // a dead, b done
        p.publish(&["c", "d", "e"]).await; // not delivered: the lag

        let doc = p.json(&["events", "status", "--json"]);
        assert_eq!(doc["bus"], "embedded");
        let services = doc["services"].as_array().unwrap();
        let names: Vec<&str> = services
            .iter()
            .map(|s| s["service"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["orders", "billing"], "{engine}");
        let (orders, billing) = (&services[0], &services[1]);
        assert_eq!(orders["outbox"]["pending"], 5, "{engine}: {orders}");
        assert!(orders["outbox"]["oldest_pending_secs"].as_f64().unwrap() >= 0.0);
        assert_eq!(orders["inbox"], Value::Null);
        assert_eq!(
            billing["inbox"],
            json!({"pending": 0, "retrying": 0, "done": 1, "dead": 1}),
            "{engine}"
        );
        assert_eq!(billing["outbox"], Value::Null);
        assert_eq!(billing["lag"][0]["publisher"], "orders");
        assert_eq!(billing["lag"][0]["events"], 3, "{engine}: {billing}");

        let table = p.silo(&["events", "status"]);
        assert!(table.status.success(), "{engine}: {}", stderr(&table));
        let text = stdout(&table);
        assert!(text.contains("OUTBOX PENDING"), "{text}");
        assert!(text.contains("Delivery (embedded bus)"), "{text}");

        // One service's store gone: it is shown with its error, the other
        // still shown; the exit code is the error's.
        p.break_orders();
        let out = p.silo(&["events", "status", "--json"]);
        let want = if engine == "postgres" { 2 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "{engine}: {}", stderr(&out));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let services = doc["services"].as_array().unwrap();
        assert!(services[0]["error"].is_string(), "{engine}: {doc}");
        assert_eq!(services[0]["outbox"], Value::Null);
        assert_eq!(services[1]["inbox"]["done"], 1, "{engine}: {doc}");
        assert!(
            services[1]["lag"][0]["error"].is_string(),
            "{engine}: {doc}"
        );
        let human = p.silo(&["events", "status", "billing"]);
        assert_eq!(human.status.code(), Some(want), "{engine}");
        assert!(
            stderr(&human).contains("billing: lag behind orders:"),
            "{}",
            stderr(&human)
        );
    }
}

#[test]
fn a_service_without_its_credentials_file_is_a_setup_error() {
    for engine in ENGINES {
        let p = Project::new(engine);
        let secrets = p.dir.path().join(".silo/secrets");
        std::fs::rename(secrets.join("orders.env"), secrets.join("orders.env.away")).unwrap();
        let out = p.silo(&["events", "run", "--once"]);
        assert_eq!(out.status.code(), Some(2), "{engine}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("silo up orders"),
            "{engine}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_dead_letter_id_that_is_not_a_uuid_is_a_usage_error() {
    let p = Project::new("sqlite");
    for args in [
        &["events", "dlq", "retry", "not-a-uuid"][..],
        &["events", "dlq", "drop", "not-a-uuid", "--yes"][..],
    ] {
        let out = p.silo(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("UUID"), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let p = Project::new("sqlite");
    let out = silo(p.dir.path())
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .args(["-vv", "events", "run", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("DEBUG"), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\u{1b}'), "{:?}", stderr(&out));
}
