//! The gateway over NATS request/reply, in process, against the real
//! nats-server on 4222 (each test under a project name of its own, so
//! subjects never meet) and, for per-service NATS users, a throwaway
//! server running the authorization block silo writes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{HeaderMap, RequestErrorKind};
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use silo_events::relay::nats::{NatsConfig, names};
use silo_gateway::nats::{self, NatsListener, NatsOptions, NatsStats};
use silo_gateway::{Gateway, GatewayConfig, router};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{NatsServer, Prefix, admin_url};
use sqlx::{Connection, PgConnection};
use tokio::sync::oneshot;
use tower::ServiceExt;

/// The shared server the other tests use.
const SHARED_NATS: &str = "nats://127.0.0.1:4222";

/// A bound for every poll.
const PATIENCE: Duration = Duration::from_secs(30);

const ITEMS: &str = "CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    level INTEGER
);
INSERT INTO items (id, name, level) VALUES (1, 'seed', 1);";

struct Project {
    _dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    gateway: Arc<Gateway>,
    tokens: HashMap<String, String>,
}

/// Services `names` on `engine` under a project name of their own; `events`
/// goes in the manifest's `[events]`.
async fn project(engine: &str, names: &[&str], events: &str, config: GatewayConfig) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let mut text = format!(
        "[project]\nname = \"{}\"\n[defaults]\nengine = \"{engine}\"\n[events]\n{events}\n",
        prefix.name("dnd")
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
        admin_url: Some(admin_url()),
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
    let gateway = Arc::new(Gateway::new(&stores, &manifest.services, config).unwrap());
    Project {
        _dir: dir,
        prefix,
        manifest,
        stores,
        gateway,
        tokens,
    }
}

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

/// `(id, name, level)` of every row of `items`, read as the service.
async fn rows(stores: &Stores, svc: &Service) -> Vec<(i64, String, Option<i64>)> {
    let sql = "SELECT CAST(id AS BIGINT), name, CAST(level AS BIGINT) FROM items ORDER BY id";
    match stores.connect_as(svc, "test").await.unwrap() {
        ServiceConnection::Postgres(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
        ServiceConnection::Sqlite(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
    }
}

/// A running NATS face; dropping the sender drains it.
struct Running {
    stats: Arc<NatsStats>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(p: &Project, url: &str, concurrency: usize) -> Running {
        let options = NatsOptions {
            bus: NatsConfig::new(&p.manifest, url),
            concurrency,
        };
        let listener = NatsListener::bind(&options).await.unwrap();
        assert_eq!(
            listener.subjects(),
            format!("{}_db.<service>.<operation>", p.prefix.name("dnd"))
        );
        let stats = listener.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let gateway = p.gateway.clone();
        let task = tokio::spawn(async move {
            nats::serve(listener, gateway, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Running {
            stats,
            stop: Some(stop),
            task,
        }
    }

    fn stop(&mut self) {
        self.stop.take();
    }
}

impl Project {
    fn svc(&self, name: &str) -> &Service {
        self.manifest.service(name).unwrap()
    }

    fn db(&self, name: &str) -> String {
        self.prefix.name(&format!("{name}_db"))
    }

    fn subject(&self, service: &str, operation: &str) -> String {
        names::gateway_subject(&self.manifest.project, service, operation)
    }

    /// An HTTP call through the same gateway, for comparison.
    async fn http(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = router(self.gateway.clone()).oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }
}

/// One request: the `Silo-Status`, the body, and the reply's headers.
async fn request(
    client: &async_nats::Client,
    subject: String,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value, HeaderMap) {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            nats::AUTHORIZATION_HEADER,
            format!("Bearer {token}").as_str(),
        );
    }
    let reply = client
        .request_with_headers(subject, headers, body.into())
        .await
        .unwrap();
    let headers = reply.headers.clone().unwrap_or_default();
    let status = headers
        .get(nats::STATUS_HEADER)
        .expect("every reply carries its status")
        .as_str()
        .parse()
        .unwrap();
    let body = serde_json::from_slice(&reply.payload).unwrap();
    (status, body, headers)
}

async fn client(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(PATIENCE))
        .connect(url)
        .await
        .unwrap()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn update(db: &str, level: i64) -> Value {
    json!({"database": db, "transaction": {"operations": [
        {"type": "update", "table": "items", "data": {"level": level},
         "where": {"field": "id", "operator": "=", "value": 1}}
    ]}})
}

/// Query and write over NATS give what HTTP gives, errors included; a
/// token of one service naming another's database is 403 and runs
/// nothing; no token is 401; an oversize body 413; an unknown operation
/// 404.
#[tokio::test]
async fn nats_answers_as_http_does() {
    // Every service's body limit, so the gateway's largest is 4 KiB.
    let limits = "\n[defaults.gateway]\nmax_body_bytes = 4096";
    let p = project(
        "sqlite",
        &["character", "campaign"],
        limits,
        GatewayConfig::default(),
    )
    .await;
    let mut running = Running::start(&p, SHARED_NATS, 8).await;
    let nc = client(SHARED_NATS).await;
    let tok = |s: &str| p.tokens[s].clone();
    let send = |service: &str, op: &str, token: Option<String>, body: &Value| {
        let subject = p.subject(service, op);
        let body = body.to_string().into_bytes();
        let nc = nc.clone();
        async move { request(&nc, subject, token.as_deref(), body).await }
    };

    let insert = json!({"database": p.db("character"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 2, "name": "over nats"}}
    ]}});
    let (status, body, headers) = send("character", "write", Some(tok("character")), &insert).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.get("Nats-Service-Error-Code").is_none());
    let select = json!({"database": p.db("character"), "query": {"type": "select", "table": "items", "order_by": ["id"]}});
    let (status, over_nats, _) = send("character", "query", Some(tok("character")), &select).await;
    assert_eq!(status, 200, "{over_nats}");
    let (status, over_http) = p.http("/v1/query", &tok("character"), &select).await;
    assert_eq!((status, &over_http), (200, &over_nats));
    assert_eq!(over_nats["rows"].as_array().unwrap().len(), 2);

    // The same error, the same body.
    let dup = json!({"database": p.db("character"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 3, "name": "seed"}}
    ]}});
    let (status, over_nats, headers) =
        send("character", "write", Some(tok("character")), &dup).await;
    assert_eq!(status, 409, "{over_nats}");
    assert_eq!(
        headers.get("Nats-Service-Error-Code").unwrap().as_str(),
        "409"
    );
    assert_eq!(
        headers.get("Nats-Service-Error").unwrap().as_str(),
        "UniqueViolation"
    );
    // The same body but for the request id, which each request gets anew.
    let without_id = |mut body: Value| {
        let id = body["error"]
            .as_object_mut()
            .and_then(|e| e.remove("request_id"));
        assert!(id.is_some_and(|id| id.is_string()), "{body}");
        body
    };
    let (status, over_http) = p.http("/v1/write", &tok("character"), &dup).await;
    assert_eq!(
        (status, without_id(over_http)),
        (409, without_id(over_nats))
    );

    // character's token naming campaign's database, on either subject.
    let foreign = json!({"database": p.db("campaign"), "transaction": {"operations": [
        {"type": "delete", "table": "items", "where": {"and": []}}
    ]}});
    for subject_service in ["character", "campaign"] {
        let (status, body, headers) =
            send(subject_service, "write", Some(tok("character")), &foreign).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(code(&body), "UnauthorizedAccess");
        assert_eq!(
            headers.get("Nats-Service-Error-Code").unwrap().as_str(),
            "403"
        );
    }
    assert_eq!(
        rows(&p.stores, p.svc("campaign")).await,
        vec![(1, "seed".to_string(), Some(1))]
    );

    let (status, body, _) = send("character", "query", None, &select).await;
    assert_eq!((status, code(&body)), (401, "Unauthenticated"), "{body}");
    let (status, body, _) = send("character", "query", Some("nope".into()), &select).await;
    assert_eq!((status, code(&body)), (401, "Unauthenticated"), "{body}");
    let (status, body, _) = send("character", "drop", Some(tok("character")), &select).await;
    assert_eq!((status, code(&body)), (404, "UnknownOperation"), "{body}");
    let big = json!({"database": p.db("character"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 4, "name": "x".repeat(5000)}}
    ]}});
    let (status, body, _) = send("character", "write", Some(tok("character")), &big).await;
    assert_eq!((status, code(&body)), (413, "PayloadTooLarge"), "{body}");
    assert_eq!(rows(&p.stores, p.svc("character")).await.len(), 2);
    // Refused before dispatch, and counted all the same.
    let metrics = p.gateway.metrics();
    for line in [
        r#"silo_gateway_requests_total{service="character",operation="write",outcome="PayloadTooLarge"} 1"#,
        r#"silo_gateway_requests_total{service="character",operation="none",outcome="UnknownOperation"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }

    running.stop();
    running.task.await.unwrap();
    assert_eq!(running.stats.answered(), running.stats.taken());
}

/// Sessions of the gateway on `database` waiting for a lock.
async fn waiting(admin: &mut PgConnection, database: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
         AND application_name = 'silo gateway' AND wait_event_type = 'Lock'",
    )
    .bind(database)
    .fetch_one(admin)
    .await
    .unwrap()
}

/// A transaction on `database` (as the administrator) holding row 1 of
/// `items`: the gateway's updates of it wait until it ends.
async fn hold_row(database: &str) -> PgConnection {
    let admin = admin_url();
    let (server, _) = admin.rsplit_once('/').unwrap();
    let mut holder = PgConnection::connect(&format!("{server}/{database}"))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; UPDATE items SET level = 0 WHERE id = 1")
        .execute(&mut holder)
        .await
        .unwrap();
    holder
}

/// Polls `check` until it holds, for at most [`PATIENCE`].
async fn until<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With `--nats-concurrency 2` and ten connections per store, six writes
/// that all wait for one row lock: two run (and wait in the store), the
/// gateway takes one more message off the subscription and holds it,
/// and the other three stay with the server. When the lock goes, all six
/// are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_is_bounded_postgres() {
    let p = project("postgres", &["metrics"], "", GatewayConfig::default()).await;
    let running = Running::start(&p, SHARED_NATS, 2).await;
    let nc = client(SHARED_NATS).await;
    let db = p.db("metrics");
    let mut holder = hold_row(&db).await;
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let (nc, subject) = (nc.clone(), p.subject("metrics", "write"));
            let (token, body) = (p.tokens["metrics"].clone(), update(&db, 10 + i));
            tokio::spawn(async move {
                request(&nc, subject, Some(&token), body.to_string().into_bytes()).await
            })
        })
        .collect();
    let stats = running.stats.clone();
    until("two writes wait and a third is held", async || {
        waiting(&mut admin, &db).await >= 2 && stats.taken() >= 3
    })
    .await;
    assert_eq!(stats.in_flight(), 2);
    assert_eq!(stats.taken(), 3);
    assert_eq!(waiting(&mut admin, &db).await, 2);
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    for call in calls {
        let (status, body, _) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(stats.answered(), 6);
}

/// Shutdown drains: the writes already taken finish and are answered, a
/// request after the drain finds no gateway, and `serve` returns only
/// once the taken ones are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_answers_what_it_took_and_takes_nothing_more_postgres() {
    let p = project("postgres", &["search"], "", GatewayConfig::default()).await;
    let mut running = Running::start(&p, SHARED_NATS, 8).await;
    let nc = client(SHARED_NATS).await;
    let db = p.db("search");
    let token = p.tokens["search"].clone();
    let mut holder = hold_row(&db).await;
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let (nc, subject) = (nc.clone(), p.subject("search", "write"));
            let (token, body) = (token.clone(), update(&db, 20 + i));
            tokio::spawn(async move {
                request(&nc, subject, Some(&token), body.to_string().into_bytes()).await
            })
        })
        .collect();
    until("three writes wait", async || {
        waiting(&mut admin, &db).await == 3
    })
    .await;
    running.stop();
    let select = json!({"database": db, "query": {"type": "select", "table": "items"}}).to_string();
    // Queries do not wait for the row lock: answered until the drain has
    // reached the server, then nobody is there.
    until("the subscription is gone", async || {
        let mut headers = HeaderMap::new();
        headers.insert(
            nats::AUTHORIZATION_HEADER,
            format!("Bearer {token}").as_str(),
        );
        match nc
            .request_with_headers(p.subject("search", "query"), headers, select.clone().into())
            .await
        {
            Ok(_) => false,
            Err(e) => {
                assert!(matches!(e.kind(), RequestErrorKind::NoResponders), "{e}");
                true
            }
        }
    })
    .await;
    assert!(
        !running.task.is_finished(),
        "serve returned with writes in flight"
    );
    assert_eq!(running.stats.in_flight(), 3);
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    for call in calls {
        let (status, body, _) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::timeout(PATIENCE, &mut running.task)
        .await
        .expect("serve returns once drained")
        .unwrap();
    let level = rows(&p.stores, p.svc("search")).await[0].2.unwrap();
    assert!((20..23).contains(&level), "{level}");
}

/// Under `[events] nats_auth`, on a server running silo's authorization
/// block: the gateway connects as its own user, a service's NATS user is
/// its identity (no token needed, and a token does not change who it is),
/// it still reaches only its own database, and the server refuses its
/// requests on another service's subject before any gateway sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_auth_the_nats_user_is_the_caller() {
    use silo_events::relay::nats::auth::authorization_block;
    let p = project(
        "sqlite",
        &["character", "campaign"],
        "bus = \"nats\"\nnats_auth = true",
        GatewayConfig::default(),
    )
    .await;
    let block = authorization_block(&p.manifest).unwrap();
    assert!(block.users.iter().any(|u| u == names::GATEWAY_USER));
    let server = NatsServer::start_with_config(&block.text);
    let running = Running::start(&p, &server.url(), 8).await;
    let bus = NatsConfig::new(&p.manifest, server.url());
    let character = bus.connect("character").await.unwrap().client;
    let send = |subject: String, token: Option<String>, body: &Value| {
        let body = body.to_string().into_bytes();
        let nc = character.clone();
        async move { request(&nc, subject, token.as_deref(), body).await }
    };

    // No token: the NATS user says who it is.
    let own = json!({"database": p.db("character"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 2, "name": "as a nats user"}}
    ]}});
    let (status, body, _) = send(p.subject("character", "write"), None, &own).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(rows(&p.stores, p.svc("character")).await.len(), 2);

    // campaign's token on character's connection is still character.
    let foreign = json!({"database": p.db("campaign"), "transaction": {"operations": [
        {"type": "delete", "table": "items", "where": {"and": []}}
    ]}});
    let campaign_token = Some(p.tokens["campaign"].clone());
    let (status, body, _) = send(p.subject("character", "write"), campaign_token, &foreign).await;
    assert_eq!((status, code(&body)), (403, "UnauthorizedAccess"), "{body}");

    // character publishing on campaign's subject: the server drops it.
    // A request after it on the same connection is answered, so had the
    // first reached a gateway it would have been taken before.
    let taken = running.stats.taken();
    let inbox = character.new_inbox();
    character
        .publish_with_reply(
            p.subject("campaign", "write"),
            inbox,
            foreign.to_string().into(),
        )
        .await
        .unwrap();
    let (status, _, _) = send(
        p.subject("character", "query"),
        None,
        &json!({
            "database": p.db("character"), "query": {"type": "select", "table": "items"}
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(running.stats.taken(), taken + 1);
    assert_eq!(
        rows(&p.stores, p.svc("campaign")).await,
        vec![(1, "seed".to_string(), Some(1))]
    );
}
