//! What operators see of the gateway, on real stores and real sockets:
//! metrics, the audit log, request ids, a shutdown that lets a write in
//! flight commit, and TLS.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use silo_gateway::audit::Target;
use silo_gateway::{AuditLog, Gateway, GatewayConfig, ServeOptions, Stopped, Tls, serve_with};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use sqlx::{Connection, PgConnection};
use tokio::net::TcpListener;

const ITEMS: &str = "CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    level INTEGER,
    note TEXT
);
INSERT INTO items (id, name, level, note) VALUES (1, 'seed', 1, NULL);";

struct Project {
    dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    tokens: HashMap<String, String>,
}

/// Services `names` on `engine`, provisioned, each with the `items` table
/// and a gateway token.
async fn project(engine: &str, names: &[&str]) -> Project {
    project_with(engine, names, "", admin_url()).await
}

/// As [`project`], with `gateway` as every service's `[defaults.gateway]`,
/// on the PostgreSQL server `admin` reaches.
async fn project_with(engine: &str, names: &[&str], gateway: &str, admin: String) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let mut text = format!(
        "[project]\nname = \"ops\"\n[defaults]\nengine = \"{engine}\"\n[defaults.gateway]\n{gateway}\n"
    );
    for name in names {
        text.push_str(&format!(
            "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(&format!("{name}_db")),
            prefix.name(&format!("{name}_svc"))
        ));
    }
    let manifest =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin),
        concurrency: 4,
    });
    let mut tokens = HashMap::new();
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
    Project {
        dir,
        prefix,
        manifest,
        stores,
        tokens,
    }
}

impl Project {
    fn gateway(&self) -> Gateway {
        Gateway::new(
            &self.stores,
            &self.manifest.services,
            GatewayConfig::default(),
        )
        .unwrap()
    }

    fn svc(&self, name: &str) -> &Service {
        self.manifest
            .services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
    }

    fn db(&self, name: &str) -> String {
        self.prefix.name(&format!("{name}_db"))
    }

    fn bearer(&self, name: &str) -> String {
        format!("Bearer {}", self.tokens[name])
    }
}

async fn as_service(stores: &Stores, svc: &Service, sql: &str) {
    match stores.connect_as(svc, "test").await.unwrap() {
        ServiceConnection::Postgres(mut c) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut c)
                .await
                .unwrap();
        }
        ServiceConnection::Sqlite(mut c) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

/// An HTTP answer: status, lower-cased headers, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One HTTP/1.1 exchange on `stream` (`Connection: close`).
fn exchange(
    mut stream: impl Read + Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Answer> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no answer: {text:?}"),
        )
    })?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// One plain HTTP exchange with the gateway at `addr`, off the runtime.
async fn http(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
) -> Answer {
    tokio::task::spawn_blocking(move || {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        exchange(stream, method, path, &headers, &body).unwrap()
    })
    .await
    .unwrap()
}

/// A gateway served on a free loopback port until the returned sender
/// fires.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<Stopped>>,
}

async fn start(gateway: Arc<Gateway>, options: ServeOptions) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(
        listener,
        gateway,
        async {
            let _ = rx.await;
        },
        options,
    ));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

impl Running {
    fn shutdown(&mut self) {
        let _ = self.stop.take().unwrap().send(());
    }

    /// Waits (bounded) until a new connection to the gateway is refused.
    async fn wait_refused(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::net::TcpStream::connect(self.addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "the gateway still takes connections"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The value of the exposition line that starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_per_service_operation_and_outcome() {
    let p = project("sqlite", &["orders", "billing"]).await;
    let gw = Arc::new(p.gateway());
    let other = Arc::new(p.gateway());
    let mut run = start(gw.clone(), ServeOptions::default()).await;
    let query = json!({"database": p.db("orders"), "query": {"type": "select", "table": "items"}});
    for _ in 0..3 {
        let a = http(
            run.addr,
            "POST",
            "/v1/query",
            vec![("Authorization", p.bearer("orders"))],
            query.to_string(),
        )
        .await;
        assert_eq!(a.status, 200, "{a:?}");
    }
    let write = json!({"database": p.db("orders"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": [{"id": 2, "name": "b"}, {"id": 3, "name": "c"}]}
    ]}});
    let a = http(
        run.addr,
        "POST",
        "/v1/write",
        vec![("Authorization", p.bearer("orders"))],
        write.to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let unknown =
        json!({"database": p.db("billing"), "query": {"type": "select", "table": "nope"}});
    let a = http(
        run.addr,
        "POST",
        "/v1/query",
        vec![("Authorization", p.bearer("billing"))],
        unknown.to_string(),
    )
    .await;
    assert_eq!(a.status, 400, "{a:?}");
    let a = http(run.addr, "POST", "/v1/write", vec![], write.to_string()).await;
    assert_eq!(a.status, 401, "{a:?}");

    let m = http(run.addr, "GET", "/metrics", vec![], String::new()).await;
    assert_eq!(m.status, 200);
    assert!(m.headers["content-type"].starts_with("text/plain"), "{m:?}");
    let text = &m.body;
    let count = |labels: &str| sample(text, &format!("silo_gateway_requests_total{{{labels}}}"));
    assert_eq!(
        count(r#"service="orders",operation="query",outcome="ok""#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        count(r#"service="orders",operation="write",outcome="ok""#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"service="billing",operation="query",outcome="UnknownTable""#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"service="",operation="write",outcome="Unauthenticated""#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            text,
            r#"silo_gateway_request_duration_seconds_count{service="orders",operation="query"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            text,
            r#"silo_gateway_request_duration_seconds_bucket{service="orders",operation="query",le="+Inf"}"#
        ),
        Some(3.0),
        "{text}"
    );
    for svc in ["orders", "billing"] {
        let size = format!(r#"silo_gateway_pool_size{{service="{svc}"}}"#);
        assert_eq!(sample(text, &size), Some(10.0), "{text}");
        let busy = format!(r#"silo_gateway_pool_connections{{service="{svc}",state="busy"}}"#);
        assert_eq!(sample(text, &busy), Some(0.0), "{text}");
    }
    // The connection opened for the requests waits in the pool.
    let idle = r#"silo_gateway_pool_connections{service="orders",state="idle"}"#;
    assert_eq!(sample(text, idle), Some(1.0), "{text}");
    // Another gateway in the same process counts nothing of this one's.
    let theirs = other.metrics();
    assert!(!theirs.contains("silo_gateway_requests_total{"), "{theirs}");

    run.shutdown();
    assert_eq!(run.task.await.unwrap().unwrap(), Stopped::Drained);
}

/// What the HTTP layer refuses before a request reaches an operation (a
/// body over every service's limit, a path or method the gateway does not
/// serve) is answered with the gateway's JSON error, echoes the request
/// id, and is counted and audited like every other request.
#[tokio::test]
async fn refusals_before_an_operation_are_answered_counted_and_audited() {
    let p = project_with("sqlite", &["orders"], "max_body_bytes = 512", admin_url()).await;
    let path = p.dir.path().join("audit.jsonl");
    let gw = Arc::new(
        p.gateway()
            .with_audit_log(AuditLog::open(&Target::File(path.clone())).unwrap()),
    );
    let mut run = start(gw.clone(), ServeOptions::default()).await;
    let big = json!({"database": p.db("orders"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 2, "name": "x".repeat(600)}}
    ]}});
    let too_large = http(
        run.addr,
        "POST",
        "/v1/write",
        vec![
            ("Authorization", p.bearer("orders")),
            ("X-Request-Id", "too-large".into()),
        ],
        big.to_string(),
    )
    .await;
    assert_eq!(too_large.status, 413, "{too_large:?}");
    assert_eq!(too_large.json()["error"]["code"], "PayloadTooLarge");
    assert_eq!(too_large.json()["error"]["request_id"], "too-large");
    assert_eq!(too_large.headers["x-request-id"], "too-large");
    let unknown = http(
        run.addr,
        "POST",
        "/v1/nothing",
        vec![("Authorization", p.bearer("orders"))],
        "{}".into(),
    )
    .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    assert_eq!(unknown.json()["error"]["code"], "UnknownRoute");
    assert!(unknown.headers.contains_key("x-request-id"), "{unknown:?}");
    let wrong = http(run.addr, "GET", "/v1/query", vec![], String::new()).await;
    assert_eq!(wrong.status, 405, "{wrong:?}");
    assert_eq!(wrong.json()["error"]["code"], "MethodNotAllowed");
    // Nothing of the oversize write ran.
    let all = json!({"database": p.db("orders"), "query": {"type": "select", "table": "items"}});
    let rows = http(
        run.addr,
        "POST",
        "/v1/query",
        vec![("Authorization", p.bearer("orders"))],
        all.to_string(),
    )
    .await;
    assert_eq!(
        rows.json()["rows"].as_array().map(Vec::len),
        Some(1),
        "{rows:?}"
    );

    let m = http(run.addr, "GET", "/metrics", vec![], String::new()).await;
    let count = |labels: &str| sample(&m.body, &format!("silo_gateway_requests_total{{{labels}}}"));
    assert_eq!(
        count(r#"service="orders",operation="write",outcome="PayloadTooLarge""#),
        Some(1.0),
        "{}",
        m.body
    );
    assert_eq!(
        count(r#"service="orders",operation="none",outcome="UnknownRoute""#),
        Some(1.0),
        "{}",
        m.body
    );
    assert_eq!(
        count(r#"service="",operation="query",outcome="MethodNotAllowed""#),
        Some(1.0),
        "{}",
        m.body
    );
    run.shutdown();
    assert_eq!(run.task.await.unwrap().unwrap(), Stopped::Drained);
    gw.close();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["operation"].as_str().unwrap(),
                l["outcome"]["code"].as_str().unwrap(),
                l["service"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("write", "PayloadTooLarge", "orders"),
            ("none", "UnknownRoute", "orders"),
            ("query", "MethodNotAllowed", "-"),
            ("query", "ok", "orders"),
        ],
        "{text}"
    );
    assert_eq!(lines[0]["request_id"], "too-large");
    assert_eq!(lines[0]["outcome"]["status"], 413);
    assert!(!text.contains(&"x".repeat(600)), "{text}");
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_made_otherwise_and_echoed() {
    let p = project("sqlite", &["orders"]).await;
    let mut run = start(Arc::new(p.gateway()), ServeOptions::default()).await;
    let bad = json!({"database": p.db("orders"), "query": {"type": "select", "table": "nope"}});
    let a = http(
        run.addr,
        "POST",
        "/v1/query",
        vec![
            ("Authorization", p.bearer("orders")),
            ("X-Request-Id", "trace-42".into()),
        ],
        bad.to_string(),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.headers["x-request-id"], "trace-42");
    assert_eq!(a.json()["error"]["request_id"], "trace-42", "{a:?}");

    let long = "x".repeat(200);
    for presented in [Some(long.as_str()), Some("has space"), None] {
        let mut headers = vec![("Authorization", p.bearer("orders"))];
        if let Some(id) = presented {
            headers.push(("X-Request-Id", id.to_string()));
        }
        let a = http(run.addr, "POST", "/v1/query", headers, bad.to_string()).await;
        let id = &a.headers["x-request-id"];
        assert_eq!(uuid_version(id), Some(7), "{presented:?} → {id} ({a:?})");
        assert_eq!(a.json()["error"]["request_id"], id.as_str());
    }
    // Every route echoes one, a success carries it in the header only.
    let ok = json!({"database": p.db("orders"), "query": {"type": "select", "table": "items"}});
    let a = http(
        run.addr,
        "POST",
        "/v1/query",
        vec![
            ("Authorization", p.bearer("orders")),
            ("X-Request-Id", "ok-1".into()),
        ],
        ok.to_string(),
    )
    .await;
    assert_eq!(
        (a.status, a.headers["x-request-id"].as_str()),
        (200, "ok-1")
    );
    let h = http(run.addr, "GET", "/healthz", vec![], String::new()).await;
    assert!(h.headers.contains_key("x-request-id"), "{h:?}");
    run.shutdown();
    run.task.await.unwrap().unwrap();
}

/// The version digit of a UUID's text form.
fn uuid_version(id: &str) -> Option<u32> {
    let parts: Vec<&str> = id.split('-').collect();
    (parts.len() == 5 && id.len() == 36)
        .then(|| parts[2].chars().next().and_then(|c| c.to_digit(16)))
        .flatten()
}

#[tokio::test]
async fn the_audit_log_names_each_request_and_holds_no_values_or_tokens() {
    let p = project("sqlite", &["orders", "billing"]).await;
    let path = p.dir.path().join("audit.jsonl");
    let gw = Arc::new(
        p.gateway()
            .with_audit_log(AuditLog::open(&Target::File(path.clone())).unwrap()),
    );
    let mut run = start(gw.clone(), ServeOptions::default()).await;
    let secret_value = "value-that-must-not-be-logged";
    let write = json!({"database": p.db("orders"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 2, "name": secret_value}},
        {"type": "update", "table": "items", "data": {"note": secret_value},
         "where": {"field": "id", "operator": "in", "value": [1, 2]}}
    ]}});
    let w = http(
        run.addr,
        "POST",
        "/v1/write",
        vec![
            ("Authorization", p.bearer("orders")),
            ("X-Request-Id", "audit-write".into()),
        ],
        write.to_string(),
    )
    .await;
    assert_eq!(w.status, 200, "{w:?}");
    let query = json!({"database": p.db("orders"), "query": {"type": "select", "table": "items",
        "where": {"field": "name", "operator": "=", "value": secret_value}}});
    let q = http(
        run.addr,
        "POST",
        "/v1/query",
        vec![("Authorization", p.bearer("orders"))],
        query.to_string(),
    )
    .await;
    assert_eq!(q.status, 200, "{q:?}");
    let made_id = q.headers["x-request-id"].clone();
    // Another service's database, a unique violation quoting the value,
    // and a wrong token.
    let cross = json!({"database": p.db("billing"), "query": {"type": "select", "table": "items"}});
    let c = http(
        run.addr,
        "POST",
        "/v1/query",
        vec![("Authorization", p.bearer("orders"))],
        cross.to_string(),
    )
    .await;
    assert_eq!(c.status, 403);
    let u = http(
        run.addr,
        "POST",
        "/v1/write",
        vec![("Authorization", p.bearer("orders"))],
        write.to_string(),
    )
    .await;
    assert_eq!(u.status, 409, "{u:?}");
    let bogus = "Bearer token-that-must-not-be-logged";
    let x = http(
        run.addr,
        "POST",
        "/v1/query",
        vec![("Authorization", bogus.into())],
        query.to_string(),
    )
    .await;
    assert_eq!(x.status, 401);

    run.shutdown();
    assert_eq!(run.task.await.unwrap().unwrap(), Stopped::Drained);
    gw.close();

    let text = std::fs::read_to_string(&path).unwrap();
    for forbidden in [
        secret_value,
        "token-that-must-not-be-logged",
        p.tokens["orders"].as_str(),
        p.tokens["billing"].as_str(),
    ] {
        assert!(!text.contains(forbidden), "{forbidden} in {text}");
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    let w = &lines[0];
    assert_eq!(w["request_id"], "audit-write");
    assert_eq!(w["transport"], "http");
    assert_eq!(w["service"], "orders");
    assert_eq!(w["operation"], "write");
    assert_eq!(w["tables"], json!(["items"]));
    assert_eq!(w["rows"], 3, "{w}");
    assert_eq!(w["outcome"], json!({"status": 200, "code": "ok"}));
    assert!(w["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(w["time"].as_str().unwrap().ends_with('Z'), "{w}");
    let q = &lines[1];
    assert_eq!(
        (q["operation"].as_str(), q["rows"].as_u64()),
        (Some("query"), Some(1))
    );
    assert_eq!(q["request_id"].as_str(), Some(made_id.as_str()));
    let c = &lines[2];
    assert_eq!(
        c["outcome"],
        json!({"status": 403, "code": "UnauthorizedAccess"})
    );
    assert_eq!(
        (c["service"].as_str(), &c["rows"]),
        (Some("orders"), &Value::Null)
    );
    assert_eq!(lines[3]["outcome"]["code"], "UniqueViolation");
    let x = &lines[4];
    assert_eq!(x["service"], Value::Null);
    assert_eq!(
        x["outcome"],
        json!({"status": 401, "code": "Unauthenticated"})
    );
    assert_eq!(x["tables"], json!([]));
}

/// Where a gateway write waits on a row lock that `blocker` holds.
async fn waiting_on_a_lock(database: &str) -> bool {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1
         AND application_name = 'silo gateway' AND wait_event_type = 'Lock'",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    n > 0
}

/// A connection as `svc` that holds row 1 of `items` locked until it
/// commits.
async fn lock_row_one(p: &Project, svc: &str) -> PgConnection {
    let ServiceConnection::Postgres(mut c) = p.stores.connect_as(p.svc(svc), "test").await.unwrap()
    else {
        panic!("postgres expected");
    };
    sqlx::raw_sql("BEGIN; UPDATE items SET note = 'blocker' WHERE id = 1")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

/// Starts a write of row 1 through the gateway and waits (bounded) until
/// it is in flight, blocked on the row lock.
async fn write_in_flight(p: &Project, addr: SocketAddr) -> tokio::task::JoinHandle<Answer> {
    let body = json!({"database": p.db("orders"), "transaction": {"operations": [
        {"type": "update", "table": "items", "data": {"level": 7},
         "where": {"field": "id", "operator": "=", "value": 1}}
    ]}});
    let write = tokio::spawn(http(
        addr,
        "POST",
        "/v1/write",
        vec![("Authorization", p.bearer("orders"))],
        body.to_string(),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !waiting_on_a_lock(&p.db("orders")).await {
        assert!(
            Instant::now() < deadline,
            "the write never reached the store"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    write
}

async fn level_of_row_one(p: &Project) -> (Option<i64>, Option<String>) {
    let ServiceConnection::Postgres(mut c) =
        p.stores.connect_as(p.svc("orders"), "test").await.unwrap()
    else {
        panic!("postgres expected");
    };
    sqlx::query_as("SELECT CAST(level AS BIGINT), note FROM items WHERE id = 1")
        .fetch_one(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn shutdown_lets_a_write_in_flight_commit_and_refuses_new_connections() {
    let p = project("postgres", &["orders"]).await;
    let mut run = start(Arc::new(p.gateway()), ServeOptions::default()).await;
    let mut blocker = lock_row_one(&p, "orders").await;
    let write = write_in_flight(&p, run.addr).await;

    run.shutdown();
    run.wait_refused().await;
    assert!(!run.task.is_finished(), "stopped before the write finished");
    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();

    let answer = write.await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["results"][0]["rows_affected"], 1);
    assert_eq!(run.task.await.unwrap().unwrap(), Stopped::Drained);
    assert_eq!(
        level_of_row_one(&p).await,
        (Some(7), Some("blocker".to_string()))
    );
}

#[tokio::test]
async fn a_request_past_the_drain_timeout_is_left_and_said_so() {
    let p = project("postgres", &["orders"]).await;
    let options = ServeOptions {
        drain_timeout: Duration::from_millis(200),
        tls: None,
    };
    let mut run = start(Arc::new(p.gateway()), options).await;
    let mut blocker = lock_row_one(&p, "orders").await;
    let write = write_in_flight(&p, run.addr).await;
    run.shutdown();
    let stopped = tokio::time::timeout(Duration::from_secs(20), &mut run.task)
        .await
        .expect("serve_with returns after the drain timeout")
        .unwrap()
        .unwrap();
    assert_eq!(stopped, Stopped::DrainTimedOut);
    assert!(!write.is_finished());
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();
    assert_eq!(write.await.unwrap().status, 200);
}

/// A self-signed certificate for `localhost` and its key, as PEM files in
/// `dir`; the key file gets `mode`.
fn certificate(dir: &Path, mode: u32) -> (std::path::PathBuf, std::path::PathBuf, String) {
    use std::os::unix::fs::PermissionsExt;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
    (cert, key, made.cert.pem())
}

/// One HTTPS exchange with `addr`, trusting only `ca_pem`.
fn https(addr: SocketAddr, ca_pem: &str, path: &str) -> std::io::Result<Answer> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = std::net::TcpStream::connect(addr)?;
    exchange(rustls::StreamOwned::new(conn, tcp), "GET", path, &[], "")
}

#[tokio::test]
async fn tls_serves_https_and_refuses_a_key_every_user_can_read() {
    let p = project("sqlite", &["orders"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = certificate(dir.path(), 0o644);
    let e = Tls::from_pem_files(&cert, &key).unwrap_err();
    let diag: &dyn miette::Diagnostic = &e;
    assert_eq!(diag.code().unwrap().to_string(), "silo::gateway::tls");
    assert!(
        diag.help().unwrap().to_string().contains("chmod 600"),
        "{e}"
    );

    let (cert, key, ca2) = certificate(dir.path(), 0o600);
    assert_ne!(ca, ca2);
    let tls = Tls::from_pem_files(&cert, &key).unwrap();
    let options = ServeOptions {
        tls: Some(tls),
        ..ServeOptions::default()
    };
    let mut run = start(Arc::new(p.gateway()), options).await;
    let addr = run.addr;
    let a = tokio::task::spawn_blocking(move || https(addr, &ca2, "/readyz").unwrap())
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["services"]["orders"], "ok");
    // A client that trusts another certificate is refused, and so is
    // plain HTTP on the TLS port.
    let refused = tokio::task::spawn_blocking(move || https(addr, &ca, "/healthz"))
        .await
        .unwrap();
    assert!(refused.is_err(), "{refused:?}");
    let plain = tokio::task::spawn_blocking(move || {
        exchange(
            std::net::TcpStream::connect(addr).unwrap(),
            "GET",
            "/healthz",
            &[],
            "",
        )
    })
    .await
    .unwrap();
    assert!(plain.map(|a| a.status).unwrap_or(0) != 200);
    run.shutdown();
    assert_eq!(run.task.await.unwrap().unwrap(), Stopped::Drained);
}

/// `Gateway::reload` (SIGHUP in the CLI) takes a rotated gateway token and
/// a rotated password without a restart: the old token gets 401 and the
/// new one is served; a connection made after the password rotation
/// fails until the reload, and succeeds after it. On a server of the
/// test's own that checks passwords (the shared one trusts loopback).
#[tokio::test]
async fn a_reload_takes_rotated_tokens_and_passwords_postgres() {
    let server = silo_testkit::TempServer::start();
    let p = project_with("postgres", &["orders"], "", server.admin_url()).await;
    let gw = Arc::new(p.gateway());
    let mut run = start(gw.clone(), ServeOptions::default()).await;
    let query = json!({"database": p.db("orders"), "query": {"type": "select", "table": "items"}});
    let ask = |bearer: String| {
        http(
            run.addr,
            "POST",
            "/v1/query",
            vec![("Authorization", bearer)],
            query.to_string(),
        )
    };
    let old = p.bearer("orders");
    assert_eq!(ask(old.clone()).await.status, 200);

    p.stores.secrets().replace_gateway_token("orders").unwrap();
    let new = format!(
        "Bearer {}",
        p.stores
            .secrets()
            .gateway_token("orders")
            .unwrap()
            .unwrap()
            .expose()
    );
    assert_ne!(new, old);
    // Until the reload the gateway knows the old token only.
    assert_eq!(ask(new.clone()).await.status, 401);

    // A new password, and the service's open sessions ended, so the next
    // request needs a new connection.
    let svc = p.svc("orders");
    p.stores.engine(svc).unwrap().rotate(svc).await.unwrap();
    let mut admin = PgConnection::connect(&server.admin_url()).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(&svc.role)
        .execute(&mut admin)
        .await
        .unwrap();
    // The first request meets the ended session (57P01), which leaves the
    // pool; the next needs a new connection, which the server refuses
    // with the old password.
    let ended = ask(old.clone()).await;
    assert_eq!(ended.json()["error"]["sqlstate"], "57P01", "{ended:?}");
    let refused = ask(old.clone()).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.json()["error"]["code"], "StoreUnavailable");
    assert!(
        refused
            .body
            .contains("refused service `orders`'s own login"),
        "{refused:?}"
    );

    let notes = gw.reload(&p.stores);
    assert!(notes.is_empty(), "{notes:?}");
    let a = ask(old.clone()).await;
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (401, json!("Unauthenticated")),
        "{a:?}"
    );
    let a = ask(new).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["rows"].as_array().map(Vec::len), Some(1), "{a:?}");

    run.shutdown();
    assert_eq!(run.task.await.unwrap().unwrap(), Stopped::Drained);
}
