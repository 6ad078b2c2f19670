//! Contracts at delivery, on real SQLite files and on the real PostgreSQL
//! server: a payload its contract refuses reaches no inbox and is dead in
//! the publisher's outbox with the reason; the events around it are
//! delivered in order, with the contract's `dataschema`.

use serde_json::json;
use silo_events::contracts::{self, Contracts, Verdict};
use silo_events::publish;
use silo_events::relay::embedded::deliver_once;
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ServiceConnection, Stores};
use silo_testkit::Prefix;

mod common;

use common::{provision, service_toml};

const ENGINES: [&str; 2] = ["sqlite", "postgres"];

const ORDER_PLACED_V1: &str = r#"{
  "type": "object",
  "required": ["n"],
  "properties": {
    "n": {"type": "integer"},
    "currency": {"type": "string", "default": "EUR"}
  }
}
"#;

/// `orders` publishes `order.placed` (with a contract) and `order.noted`
/// (without); `billing` consumes both, `shipping` only `order.placed`.
struct Project {
    _dir: tempfile::TempDir,
    _prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
}

impl Project {
    async fn new(engine: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let prefix = Prefix::new();
        let mut text = format!("[project]\nname = \"t\"\n[defaults]\nengine = \"{engine}\"\n");
        for (name, lists) in [
            ("orders", "publishes = [\"order.placed\", \"order.noted\"]"),
            ("billing", "consumes = [\"order.placed\", \"order.noted\"]"),
            ("shipping", "consumes = [\"order.placed\"]"),
        ] {
            text.push_str(&service_toml(&prefix, name, lists));
        }
        let events = dir.path().join("services/orders/events");
        std::fs::create_dir_all(&events).unwrap();
        std::fs::write(events.join("order.placed.v1.json"), ORDER_PLACED_V1).unwrap();
        let (manifest, stores) = provision(dir.path(), &text).await;
        Project {
            _dir: dir,
            _prefix: prefix,
            manifest,
            stores,
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

    async fn publish(&self, event_type: &str, payload: serde_json::Value) -> String {
        let mut conn = self.connect("orders").await;
        let id = publish(&mut conn, event_type, "k", &payload).await.unwrap();
        conn.close().await;
        id.to_string()
    }

    /// `consumer`'s inbox as (event id, dataschema), in arrival order.
    async fn inbox(&self, consumer: &str) -> Vec<(String, Option<String>)> {
        let sql = "SELECT CAST(event_id AS TEXT), dataschema FROM silo_inbox ORDER BY seq";
        let mut conn = self.connect(consumer).await;
        let rows = match &mut conn {
            ServiceConnection::Postgres(c) => sqlx::query_as(sql).fetch_all(c).await,
            ServiceConnection::Sqlite(c) => sqlx::query_as(sql).fetch_all(c).await,
        }
        .unwrap();
        conn.close().await;
        rows
    }

    /// The outbox row `id`'s (state, error), read as the publisher.
    async fn outbox_row(&self, id: &str) -> (String, Option<String>) {
        let mut conn = self.connect("orders").await;
        let row = match &mut conn {
            ServiceConnection::Postgres(c) => {
                sqlx::query_as("SELECT state, error FROM silo_outbox WHERE id = $1::uuid")
                    .bind(id)
                    .fetch_one(c)
                    .await
            }
            ServiceConnection::Sqlite(c) => {
                sqlx::query_as("SELECT state, error FROM silo_outbox WHERE id = $1")
                    .bind(id)
                    .fetch_one(c)
                    .await
            }
        }
        .unwrap();
        conn.close().await;
        row
    }
}

#[tokio::test]
async fn a_refused_payload_is_dead_in_the_outbox_and_reaches_no_inbox() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let contracts = Contracts::load(&p.manifest).unwrap();
        let first = p.publish("order.placed", json!({"n": 1})).await;
        let bad = p.publish("order.placed", json!({"n": "two"})).await;
        // A missing field with a default counts as given.
        let third = p
            .publish("order.placed", json!({"n": 3, "currency": "SEK"}))
            .await;
        let fourth = p.publish("order.placed", json!({"n": 4})).await;
        let noted = p.publish("order.noted", json!("anything")).await;

        // Bounded: on PostgreSQL a transaction of another test can hold
        // delivery back for a moment.
        let mut refused = 0;
        for _ in 0..200 {
            let pass = deliver_once(&p.stores, &p.manifest, &contracts)
                .await
                .unwrap();
            refused += pass.pairs.iter().map(|pair| pair.refused).sum::<u64>();
            if p.inbox("billing").await.len() >= 4 && p.inbox("shipping").await.len() >= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let schema = Some("urn:silo:t:order.placed:v1".to_string());
        assert_eq!(
            p.inbox("billing").await,
            vec![
                (first.clone(), schema.clone()),
                (third.clone(), schema.clone()),
                (fourth.clone(), schema.clone()),
                (noted.clone(), None),
            ],
            "{engine}"
        );
        assert_eq!(
            p.inbox("shipping").await,
            vec![
                (first.clone(), schema.clone()),
                (third.clone(), schema.clone()),
                (fourth.clone(), schema.clone()),
            ],
            "{engine}"
        );
        // Refused once, by the first consumer's pass; the second never
        // reads a dead row.
        assert_eq!(refused, 1, "{engine}");
        let (state, error) = p.outbox_row(&bad).await;
        assert_eq!(state, "dead", "{engine}");
        let error = error.unwrap();
        assert!(
            error.contains("order.placed v1 (services/orders/events/order.placed.v1.json)"),
            "{engine}: {error}"
        );
        assert!(
            error.contains(r#"at /n: "two" is not of type "integer""#),
            "{engine}: {error}"
        );
        assert_eq!(p.outbox_row(&first).await.0, "pending", "{engine}");

        // Later passes deliver it to no one either.
        let again = deliver_once(&p.stores, &p.manifest, &contracts)
            .await
            .unwrap();
        assert_eq!(
            (
                again.total(),
                again.pairs.iter().map(|x| x.refused).sum::<u64>()
            ),
            (0, 0)
        );
        assert_eq!(p.inbox("billing").await.len(), 4, "{engine}");
    }
}

#[tokio::test]
async fn a_dead_row_stays_undelivered_even_under_a_contract_that_would_pass_it() {
    for engine in ENGINES {
        let p = Project::new(engine).await;
        let bad = p.publish("order.placed", json!({"n": "two"})).await;
        let strict = Contracts::load(&p.manifest).unwrap();
        // Passes until the relay reads it (on PostgreSQL a transaction of
        // another test on the server can hold it back for a moment).
        for _ in 0..200 {
            deliver_once(&p.stores, &p.manifest, &strict).await.unwrap();
            if p.outbox_row(&bad).await.0 == "dead" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(p.outbox_row(&bad).await.0, "dead", "{engine}");
        // With no contracts at all the row is still dead: not delivered.
        let after = p.publish("order.placed", json!({"n": 5})).await;
        for _ in 0..200 {
            deliver_once(&p.stores, &p.manifest, &Contracts::none())
                .await
                .unwrap();
            if !p.inbox("shipping").await.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(p.inbox("shipping").await, vec![(after, None)], "{engine}");
    }
}

#[test]
fn check_is_one_call_for_any_relay() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("services/orders/events");
    std::fs::create_dir_all(&events).unwrap();
    std::fs::write(events.join("order.placed.v1.json"), ORDER_PLACED_V1).unwrap();
    let manifest = Manifest::from_str(
        "[project]\nname = \"t\"\n[services.orders]\npublishes = [\"order.placed\", \"order.noted\"]\n",
        &dir.path().join("silo.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let c = Contracts::load(&manifest).unwrap();
    assert_eq!(
        contracts::check(&c, "orders", "order.placed", r#"{"n": 1}"#),
        Verdict::Deliver {
            dataschema: Some("urn:silo:t:order.placed:v1".into())
        }
    );
    assert_eq!(
        contracts::check(&c, "orders", "order.noted", r#"{"n": "x"}"#),
        Verdict::Deliver { dataschema: None }
    );
    let Verdict::Refuse { reason } = contracts::check(&c, "orders", "order.placed", "{}") else {
        panic!("an empty object has no n");
    };
    assert_eq!(
        reason,
        r#"the payload does not match the contract of order.placed v1 (services/orders/events/order.placed.v1.json): at the root: "n" is a required property"#
    );
    // JSON the store accepts, nested deeper than the check reads: said so.
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let Verdict::Refuse { reason } = contracts::check(&c, "orders", "order.placed", &deep) else {
        panic!("too deep to check");
    };
    assert!(reason.contains("nested more than 128"), "{reason}");
    assert!(!reason.contains("not JSON"), "{reason}");
}
