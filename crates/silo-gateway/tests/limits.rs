//! Per-service limits (`[services.<name>.gateway]`), on real SQLite files
//! and the real PostgreSQL server: each limit is enforced with its
//! documented status, code and header, and a limit on service `a` never
//! touches service `b`, which runs on the built-in defaults beside it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use serde_json::{Value, json};
use silo_gateway::{Gateway, GatewayConfig, router};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use tower::ServiceExt;

struct Project {
    _dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    gateway: Arc<Gateway>,
    router: Router,
    tokens: std::collections::HashMap<String, String>,
}

/// A response: status, headers, JSON body.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn retry_after(&self) -> Option<&str> {
        self.headers.get("retry-after").map(|v| v.to_str().unwrap())
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

const ITEMS: &str = "CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    note TEXT
);
INSERT INTO items (id, name) VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four');";

/// Services `a` (with `a_limits` as its `[services.a.gateway]` table,
/// and `a_extra` as more keys of `[services.a]`) and `b` (defaults), on
/// `engine`, each with four rows in `items`.
async fn project(engine: &str, a_limits: &str, a_extra: &str, config: GatewayConfig) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let mut text = format!("[project]\nname = \"lim\"\n[defaults]\nengine = \"{engine}\"\n");
    for name in ["a", "b"] {
        text.push_str(&format!(
            "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(&format!("{name}_db")),
            prefix.name(&format!("{name}_svc"))
        ));
        if name == "a" {
            text.push_str(a_extra);
            text.push_str(&format!("\n[services.a.gateway]\n{a_limits}\n"));
        }
    }
    let manifest =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 4,
    });
    let mut tokens = std::collections::HashMap::new();
    for svc in &manifest.services {
        stores
            .engine(svc)
            .unwrap()
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
        stores.secrets().ensure_gateway_token(&svc.name).unwrap();
        as_service(&stores, svc, ITEMS).await;
        let token = stores.secrets().gateway_token(&svc.name).unwrap().unwrap();
        tokens.insert(svc.name.clone(), token.expose().to_string());
    }
    let gateway = Arc::new(Gateway::new(&stores, &manifest.services, config).unwrap());
    assert!(gateway.skipped.is_empty(), "{:?}", gateway.skipped);
    Project {
        _dir: dir,
        prefix,
        router: router(gateway.clone()),
        gateway,
        manifest,
        stores,
        tokens,
    }
}

/// Runs SQL as the service itself.
async fn as_service(stores: &Stores, svc: &Service, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match stores.connect_as(svc, "test").await.unwrap() {
        ServiceConnection::Postgres(mut c) => {
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
        ServiceConnection::Sqlite(mut c) => {
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
    }
}

/// `(id, name)` of every row of `items`, read as the service.
async fn rows(stores: &Stores, svc: &Service) -> Vec<(i64, String)> {
    let sql = "SELECT CAST(id AS BIGINT), name FROM items ORDER BY id";
    match stores.connect_as(svc, "test").await.unwrap() {
        ServiceConnection::Postgres(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
        ServiceConnection::Sqlite(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
    }
}

impl Project {
    fn svc(&self, name: &str) -> &Service {
        self.manifest.service(name).unwrap()
    }

    fn db(&self, name: &str) -> String {
        self.prefix.name(&format!("{name}_db"))
    }

    async fn call(&self, service: &str, path: &str, body: String) -> Reply {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.tokens[service]))
            .body(Body::from(body))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn query(&self, service: &str, query: Value) -> Reply {
        let body = json!({"database": self.db(service), "query": query});
        self.call(service, "/v1/query", body.to_string()).await
    }

    async fn write(&self, service: &str, operations: Value) -> Reply {
        let body = json!({"database": self.db(service), "transaction": {"operations": operations}});
        self.call(service, "/v1/write", body.to_string()).await
    }

    async fn all(&self, service: &str) -> Reply {
        self.query(service, json!({"type": "select", "table": "items"}))
            .await
    }

    /// Waits (bounded) until `service`'s pool has every connection out.
    async fn until_pool_full(&self, service: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (in_use, size) = self.gateway.pool_use(service).unwrap();
            if in_use == size {
                return;
            }
            assert!(Instant::now() < deadline, "the pool never filled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "{reply:?}");
}

// ---- requests per second -------------------------------------------------

/// `a` may send 2 requests at once and 1 a second after that: its third
/// request in a row is 429 `RateLimited` with `Retry-After: 1`; `b`, on
/// no limit, is served all the while.
async fn rate_limit(engine: &str) {
    let p = project(
        engine,
        "requests_per_second = 1\nburst = 2",
        "",
        GatewayConfig::default(),
    )
    .await;
    let mut served = 0;
    let refused = loop {
        let reply = p.all("a").await;
        if reply.status != 200 {
            break reply;
        }
        served += 1;
        assert!(served <= 10, "the rate limit never refused");
    };
    // The burst, then (unless a second passed in between) no more.
    assert!(served >= 2, "{served}");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.code(), "RateLimited");
    assert_eq!(refused.retry_after(), Some("1"));
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`a`")
    );
    // Refused before the store: even a malformed body gets 429.
    let junk = p.call("a", "/v1/query", "not json".into()).await;
    assert_eq!(junk.status, 429, "{junk:?}");
    for _ in 0..20 {
        ok(&p.all("b").await);
    }
}

#[tokio::test]
async fn rate_limit_sqlite() {
    rate_limit("sqlite").await;
}

#[tokio::test]
async fn rate_limit_postgres() {
    rate_limit("postgres").await;
}

// ---- body size -------------------------------------------------------------

async fn body_size(engine: &str) {
    let p = project(engine, "max_body_bytes = 300", "", GatewayConfig::default()).await;
    let insert = |service: &str, note: &str| {
        json!({"database": p.db(service), "transaction": {"operations": [
            {"type": "insert", "table": "items", "data": {"id": 10, "name": "ten", "note": note}}
        ]}})
        .to_string()
    };
    let big = "x".repeat(400);
    let refused = p.call("a", "/v1/write", insert("a", &big)).await;
    assert_eq!(refused.status, 413, "{refused:?}");
    assert_eq!(refused.code(), "PayloadTooLarge");
    assert_eq!(rows(&p.stores, p.svc("a")).await.len(), 4, "nothing ran");
    ok(&p.call("a", "/v1/write", insert("a", "small")).await);
    // `b` sends the same big body on the default 1 MiB.
    ok(&p.call("b", "/v1/write", insert("b", &big)).await);
    assert_eq!(rows(&p.stores, p.svc("b")).await.len(), 5);
}

#[tokio::test]
async fn body_size_sqlite() {
    body_size("sqlite").await;
}

#[tokio::test]
async fn body_size_postgres() {
    body_size("postgres").await;
}

// ---- max_rows --------------------------------------------------------------

/// `a` reads 2 rows a query: a query without `limit` gets a page of 2 and
/// a cursor to the rest; a `limit` above 2 is refused (400
/// `LimitTooLarge`), not cut short. `b` reads all four at once.
async fn max_rows(engine: &str) {
    let p = project(engine, "max_rows = 2", "", GatewayConfig::default()).await;
    let page = p.all("a").await;
    ok(&page);
    assert_eq!(page.body["rows"].as_array().unwrap().len(), 2, "{page:?}");
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    let rest = p
        .query(
            "a",
            json!({"type": "select", "table": "items", "after": cursor}),
        )
        .await;
    ok(&rest);
    let ids: Vec<i64> = rest.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 4]);
    let refused = p
        .query("a", json!({"type": "select", "table": "items", "limit": 3}))
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.code(), "LimitTooLarge");
    assert!(
        refused.body["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("next_cursor")
    );
    ok(&p
        .query("a", json!({"type": "select", "table": "items", "limit": 2}))
        .await);
    let all = p.all("b").await;
    ok(&all);
    assert_eq!(all.body["rows"].as_array().unwrap().len(), 4);
    assert!(all.body["next_cursor"].is_null());
}

#[tokio::test]
async fn max_rows_sqlite() {
    max_rows("sqlite").await;
}

#[tokio::test]
async fn max_rows_postgres() {
    max_rows("postgres").await;
}

// ---- max_rows_affected -----------------------------------------------------

/// `a` may change 2 rows a transaction: a write past that is 422
/// `TooManyRowsAffected` and leaves the store as it was, even the
/// operations before the one that crossed the limit.
async fn max_rows_affected(engine: &str) {
    let p = project(
        engine,
        "max_rows_affected = 2",
        "",
        GatewayConfig::default(),
    )
    .await;
    let before = rows(&p.stores, p.svc("a")).await;
    let rename_all = json!([
        {"type": "update", "table": "items", "data": {"name": "renamed"}, "where": {"and": []}}
    ]);
    let refused = p.write("a", rename_all.clone()).await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(refused.code(), "TooManyRowsAffected");
    assert_eq!(rows(&p.stores, p.svc("a")).await, before);
    // An insert of one row, then an update of two: three in all.
    let mixed = json!([
        {"type": "insert", "table": "items", "data": {"id": 5, "name": "five"}},
        {"type": "update", "table": "items", "data": {"note": "n"},
         "where": {"field": "id", "operator": "<=", "value": 2}}
    ]);
    let refused = p.write("a", mixed).await;
    assert_eq!(refused.status, 422, "{refused:?}");
    assert_eq!(rows(&p.stores, p.svc("a")).await, before, "rolled back");
    // Two rows is within the limit.
    let two = p
        .write(
            "a",
            json!([{"type": "delete", "table": "items",
                "where": {"field": "id", "operator": "in", "value": [1, 2]}}]),
        )
        .await;
    ok(&two);
    assert_eq!(rows(&p.stores, p.svc("a")).await.len(), 2);
    // `b` has no limit.
    let all = p.write("b", rename_all).await;
    ok(&all);
    assert_eq!(all.body["results"][0]["rows_affected"], 4);
}

#[tokio::test]
async fn max_rows_affected_sqlite() {
    max_rows_affected("sqlite").await;
}

#[tokio::test]
async fn max_rows_affected_postgres() {
    max_rows_affected("postgres").await;
}

// ---- statement timeout -----------------------------------------------------

/// A trigger that makes every insert into `items` slow: `secs` seconds
/// of `pg_sleep` on PostgreSQL; on SQLite, which has no sleep, `steps`
/// rows of a recursive count.
fn slow_trigger(engine: &str, secs: f64, steps: u64) -> String {
    match engine {
        "postgres" => format!(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN PERFORM pg_sleep({secs}); RETURN NEW; END $$;
             CREATE TRIGGER slow BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION slow();"
        ),
        _ => format!(
            "CREATE TRIGGER slow BEFORE INSERT ON items BEGIN
             SELECT count(*) FROM (WITH RECURSIVE c(x) AS
               (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {steps}) SELECT x FROM c);
             END;"
        ),
    }
}

fn insert(id: i64) -> Value {
    json!([{"type": "insert", "table": "items", "data": {"id": id, "name": "slow"}}])
}

/// `a`'s statements may run 200 ms: a slower insert is cancelled, 504
/// `StatementTimeout` (SQLSTATE 57014), nothing is written, and its one
/// connection is free for the next request. `b` runs the same slow
/// insert to the end on the default 30 s.
async fn statement_timeout(engine: &str) {
    let p = project(
        engine,
        "statement_timeout = \"200ms\"\npool_size = 1",
        "",
        GatewayConfig::default(),
    )
    .await;
    // About a second either way, well past `a`'s 200 ms.
    let trigger = slow_trigger(engine, 1.0, 3_000_000);
    as_service(&p.stores, p.svc("a"), &trigger).await;
    as_service(&p.stores, p.svc("b"), &trigger).await;
    let started = Instant::now();
    let refused = p.write("a", insert(10)).await;
    assert_eq!(refused.status, 504, "{refused:?}");
    assert_eq!(refused.code(), "StatementTimeout");
    assert_eq!(refused.body["error"]["sqlstate"], "57014");
    let cancelled_after = started.elapsed();
    assert_eq!(rows(&p.stores, p.svc("a")).await.len(), 4);
    // Its only connection is back: the next request gets it.
    ok(&p.all("a").await);
    assert_eq!(p.gateway.pool_use("a"), Some((0, 1)));
    let started = Instant::now();
    ok(&p.write("b", insert(10)).await);
    // `b` ran the statement `a` was stopped in; had it been as slow as the
    // timeout, the test would prove nothing.
    assert!(
        started.elapsed() > cancelled_after,
        "b's insert ({:?}) was no slower than a's cancelled one ({cancelled_after:?})",
        started.elapsed()
    );
    assert_eq!(rows(&p.stores, p.svc("b")).await.len(), 5);
}

#[tokio::test]
async fn statement_timeout_sqlite() {
    statement_timeout("sqlite").await;
}

#[tokio::test]
async fn statement_timeout_postgres() {
    statement_timeout("postgres").await;
}

// ---- pool exhaustion ---------------------------------------------------------

/// `a` has one connection: while a slow write holds it, another request
/// waits `a`'s own acquire timeout (300 ms, set in silo.toml; the slow
/// write holds its connection for 3 s, so a wait of the default 5 s would
/// be served instead) and gets 503 `PoolExhausted` with `Retry-After: 1`;
/// `b`'s pool is its own and serves at once. Once the slow write ends
/// (here: at its statement timeout), `a` is served again.
async fn pool_exhausted(engine: &str) {
    let p = Arc::new(
        project(
            engine,
            "pool_size = 1\nstatement_timeout = \"3s\"\nacquire_timeout = \"300ms\"",
            "",
            GatewayConfig::default(),
        )
        .await,
    );
    as_service(
        &p.stores,
        p.svc("a"),
        &slow_trigger(engine, 60.0, 1_000_000_000_000),
    )
    .await;
    let holder = {
        let p = p.clone();
        tokio::spawn(async move { p.write("a", insert(10)).await })
    };
    p.until_pool_full("a").await;
    let refused = p.all("a").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.code(), "PoolExhausted");
    assert_eq!(refused.retry_after(), Some("1"));
    ok(&p.all("b").await);
    let held = holder.await.unwrap();
    assert_eq!(held.status, 504, "{held:?}");
    ok(&p.all("a").await);
}

#[tokio::test]
async fn pool_exhausted_sqlite() {
    pool_exhausted("sqlite").await;
}

#[tokio::test]
async fn pool_exhausted_postgres() {
    pool_exhausted("postgres").await;
}

// ---- pool size, connection_limit, overrides -------------------------------

/// The seed's 100 connections per service, on a role allowed 3: the pool
/// is capped at 3 and the gateway says so; `b` keeps the default 10.
#[tokio::test]
async fn a_pool_is_capped_by_the_roles_connection_limit_postgres() {
    let p = project(
        "postgres",
        "pool_size = 100",
        "connection_limit = 3\n",
        GatewayConfig::default(),
    )
    .await;
    assert_eq!(p.gateway.pool_use("a"), Some((0, 3)));
    assert_eq!(p.gateway.pool_use("b"), Some((0, 10)));
    assert_eq!(p.gateway.notes.len(), 1, "{:?}", p.gateway.notes);
    assert!(
        p.gateway.notes[0].contains("`a`: pool_size 100 capped at the role's connection_limit 3"),
        "{:?}",
        p.gateway.notes
    );
    ok(&p.all("a").await);
}

/// `--pool-size` and `--statement-timeout` beat silo.toml for every
/// service.
#[tokio::test]
async fn overrides_beat_the_manifest_sqlite() {
    let config = GatewayConfig {
        pool_size: Some(2),
        statement_timeout: Some(Duration::from_millis(100)),
        ..GatewayConfig::default()
    };
    let p = project(
        "sqlite",
        "pool_size = 7\nstatement_timeout = \"1m\"",
        "",
        config,
    )
    .await;
    for s in ["a", "b"] {
        assert_eq!(p.gateway.pool_use(s), Some((0, 2)));
        let limits = &p.gateway.limits(s).unwrap().values;
        assert_eq!(limits.statement_timeout, Duration::from_millis(100));
    }
    // The override is what the store enforces.
    as_service(
        &p.stores,
        p.svc("a"),
        &slow_trigger("sqlite", 0.0, 1_000_000_000_000),
    )
    .await;
    let refused = p.write("a", insert(10)).await;
    assert_eq!(refused.status, 504, "{refused:?}");
}
