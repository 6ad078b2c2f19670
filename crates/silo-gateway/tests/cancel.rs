//! A client that goes away in the middle of a write: the request's future
//! is dropped between `BEGIN` and `COMMIT`. The connection it held must
//! never serve another request, or the next caller would run inside the
//! half-done transaction (and could commit it).

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use silo_gateway::{Gateway, GatewayConfig, router};
use silo_manifest::{Manifest, Overrides};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use sqlx::{Connection, PgConnection};
use tower::ServiceExt;

const ITEMS: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO items (id, name) VALUES (1, 'seed');";

/// How long any wait for the server to reach a state may take.
const BOUND: Duration = Duration::from_secs(20);

fn post(path: &str, token: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// The gateway's sessions on `database` in `state` (`pg_stat_activity`),
/// and how many of them wait on a lock.
async fn sessions(admin: &mut PgConnection, database: &str, state: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock')
         FROM pg_stat_activity
         WHERE datname = $1 AND application_name = 'silo gateway' AND state = $2",
    )
    .bind(database)
    .bind(state)
    .fetch_one(admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_dropped_write_never_returns_its_connection_to_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let database = prefix.name("character_db");
    let text = format!(
        "[project]\nname = \"dnd\"\n[defaults]\nengine = \"postgres\"\n\
         [services.character]\ndatabase = \"{database}\"\nrole = \"{}\"\n",
        prefix.name("character_svc")
    );
    let manifest =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 1,
    });
    let svc = &manifest.services[0];
    stores
        .engine(svc)
        .unwrap()
        .provision(svc, ProvisionOptions::default())
        .await
        .unwrap();
    stores.secrets().ensure_gateway_token(&svc.name).unwrap();
    let token = stores.secrets().gateway_token(&svc.name).unwrap().unwrap();
    let token = token.expose().to_string();
    let ServiceConnection::Postgres(mut own) = stores.connect_as(svc, "test").await.unwrap() else {
        panic!("a PostgreSQL store");
    };
    sqlx::raw_sql(ITEMS).execute(&mut own).await.unwrap();

    // One connection, so the next request gets the same one if it was
    // wrongly put back.
    let config = GatewayConfig {
        pool_size: Some(1),
        ..GatewayConfig::default()
    };
    let app = router(Arc::new(
        Gateway::new(&stores, &manifest.services, config).unwrap(),
    ));

    // Hold row 1 so the write's second operation waits on its lock, with
    // the first operation's insert already done inside the transaction.
    sqlx::raw_sql("BEGIN; SELECT * FROM items WHERE id = 1 FOR UPDATE")
        .execute(&mut own)
        .await
        .unwrap();
    let write = json!({"database": database, "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 2, "name": "half"}},
        {"type": "update", "table": "items", "data": {"name": "changed"},
         "where": {"field": "id", "operator": "=", "value": 1}}
    ]}});
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    {
        let mut request = pin!(app.clone().oneshot(post("/v1/write", &token, &write)));
        let started = Instant::now();
        loop {
            tokio::select! {
                biased;
                done = &mut request => panic!("the write finished while row 1 was held: {done:?}"),
                _ = tokio::task::yield_now() => {}
            }
            if sessions(&mut admin, &database, "active").await.1 == 1 {
                break;
            }
            assert!(started.elapsed() < BOUND, "the write never waited on row 1");
        }
        // The client goes away: the request's future is dropped here,
        // between the insert and the COMMIT.
    }
    sqlx::raw_sql("ROLLBACK").execute(&mut own).await.unwrap();

    // The abandoned session ends (the server sees its socket closed) and
    // never lingers idle in a transaction.
    let started = Instant::now();
    loop {
        let (active, _) = sessions(&mut admin, &database, "active").await;
        let (idle_in_tx, _) = sessions(&mut admin, &database, "idle in transaction").await;
        if active == 0 && idle_in_tx == 0 {
            break;
        }
        assert!(
            started.elapsed() < BOUND,
            "the dropped write's session is still there"
        );
        tokio::task::yield_now().await;
    }

    // The next request on the service: a fresh connection, outside any
    // transaction, that does not see the abandoned insert.
    let query = json!({"database": database, "query": {"type": "select", "table": "items",
        "order_by": ["id"]}});
    let resp = app
        .clone()
        .oneshot(post("/v1/query", &token, &query))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["rows"], json!([{"id": 1, "name": "seed"}]), "{body}");
    assert_eq!(
        sessions(&mut admin, &database, "idle in transaction")
            .await
            .0,
        0
    );
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM items ORDER BY id")
        .fetch_all(&mut own)
        .await
        .unwrap();
    assert_eq!(names, ["seed"]);
    drop(own);
    drop(admin);
}
