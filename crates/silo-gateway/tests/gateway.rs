//! The gateway end to end, in process, on real SQLite files and the real
//! PostgreSQL server: seed 003's seven services, each with its own store
//! and token.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use silo_gateway::{Gateway, GatewayConfig, router};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use sqlx::{Connection, PgConnection};
use tower::ServiceExt;

/// Seed 003's services.
const SEVEN: [&str; 7] = [
    "character",
    "campaign",
    "auth",
    "metrics",
    "catalog",
    "image_storage",
    "search",
];

struct Project {
    _dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    router: Router,
    tokens: HashMap<String, String>,
}

fn manifest(dir: &Path, prefix: &Prefix, engine: &str, names: &[&str]) -> Manifest {
    let mut text = format!("[project]\nname = \"dnd\"\n[defaults]\nengine = \"{engine}\"\n");
    for name in names {
        text.push_str(&format!(
            "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(&format!("{name}_db")),
            prefix.name(&format!("{name}_svc"))
        ));
    }
    Manifest::from_str(&text, &dir.join("silo.toml"), &Overrides::default()).unwrap()
}

/// Runs DDL or a statement as the service itself.
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

/// `(id, name)` of every row of `items`, read as the service.
async fn rows(stores: &Stores, svc: &Service) -> Vec<(i64, String)> {
    let sql = "SELECT CAST(id AS BIGINT), name FROM items ORDER BY id";
    match stores.connect_as(svc, "test").await.unwrap() {
        ServiceConnection::Postgres(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
        ServiceConnection::Sqlite(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
    }
}

const ITEMS: &str = "CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    level INTEGER,
    note TEXT,
    CHECK (level IS NULL OR level >= 0)
);
INSERT INTO items (id, name, level, note) VALUES (1, 'seed', 1, NULL);";

async fn project(engine: &str, names: &[&str]) -> Project {
    project_with(engine, names, GatewayConfig::default()).await
}

async fn project_with(engine: &str, names: &[&str], config: GatewayConfig) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let manifest = manifest(dir.path(), &prefix, engine, names);
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 4,
    });
    let mut tokens = HashMap::new();
    for svc in &manifest.services {
        let engine = stores.engine(svc).unwrap();
        engine
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
        assert!(stores.secrets().ensure_gateway_token(&svc.name).unwrap());
        assert!(!stores.secrets().ensure_gateway_token(&svc.name).unwrap());
        as_service(&stores, svc, ITEMS).await;
        let token = stores.secrets().gateway_token(&svc.name).unwrap().unwrap();
        tokens.insert(svc.name.clone(), token.expose().to_string());
    }
    let gateway = Gateway::new(&stores, &manifest.services, config).unwrap();
    assert!(gateway.skipped.is_empty(), "{:?}", gateway.skipped);
    Project {
        _dir: dir,
        prefix,
        router: router(Arc::new(gateway)),
        manifest,
        stores,
        tokens,
    }
}

impl Project {
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

    async fn post(&self, path: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    /// A call as `service`.
    async fn call(&self, service: &str, path: &str, body: Value) -> (u16, Value) {
        let auth = format!("Bearer {}", self.tokens[service]);
        self.post(path, Some(&auth), &body).await
    }

    async fn query(&self, service: &str, query: Value) -> (u16, Value) {
        let body = json!({"database": self.db(service), "query": query});
        self.call(service, "/v1/query", body).await
    }

    async fn write(&self, service: &str, operations: Value) -> (u16, Value) {
        let body = json!({"database": self.db(service), "transaction": {"operations": operations}});
        self.call(service, "/v1/write", body).await
    }

    /// The ids a query returned, in order.
    async fn ids(&self, service: &str, query: Value) -> Vec<i64> {
        let (status, body) = self.query(service, query.clone()).await;
        assert_eq!(status, 200, "{query} → {body}");
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Connections the gateway holds to `database` (PostgreSQL).
async fn gateway_sessions(database: &str) -> i64 {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'silo gateway'",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .unwrap()
}

/// Every ordered pair of the seven services: A's token naming B's
/// database is 403 and runs nothing (no row changes, and on PostgreSQL no
/// connection to B's store is even opened); A's own database works.
async fn every_pair_is_refused(engine: &str) {
    let p = project(engine, &SEVEN).await;
    for a in SEVEN {
        for b in SEVEN {
            if a == b {
                continue;
            }
            let insert = json!({"database": p.db(b), "transaction": {"operations": [
                {"type": "insert", "table": "items", "data": {"id": 99, "name": format!("from {a}")}}
            ]}});
            let (status, body) = p.call(a, "/v1/write", insert).await;
            assert_eq!(status, 403, "{a} → {b}: {body}");
            assert_eq!(code(&body), "UnauthorizedAccess");
            let delete = json!({"database": p.db(b), "transaction": {"operations": [
                {"type": "delete", "table": "items", "where": {"and": []}}
            ]}});
            assert_eq!(p.call(a, "/v1/write", delete).await.0, 403);
            let select =
                json!({"database": p.db(b), "query": {"type": "select", "table": "items"}});
            let (status, body) = p.call(a, "/v1/query", select).await;
            assert_eq!(status, 403, "{a} → {b}: {body}");
            // Refused before the body's shape is looked at.
            let junk = json!({"database": p.db(b), "query": {"nonsense": true}});
            assert_eq!(p.call(a, "/v1/query", junk).await.0, 403);
        }
    }
    if engine == "postgres" {
        for s in SEVEN {
            assert_eq!(gateway_sessions(&p.db(s)).await, 0, "{s}");
        }
    }
    for s in SEVEN {
        assert_eq!(
            rows(&p.stores, p.svc(s)).await,
            vec![(1, "seed".to_string())],
            "{s}"
        );
    }
    // Each service reaches its own store.
    for s in SEVEN {
        let (status, body) = p
            .write(
                s,
                json!([{"type": "insert", "table": "items", "data": {"id": 2, "name": s}}]),
            )
            .await;
        assert_eq!(status, 200, "{s}: {body}");
        assert_eq!(
            p.ids(s, json!({"type": "select", "table": "items"})).await,
            [1, 2]
        );
    }
    if engine == "postgres" {
        // As the service's own role, never an administrator.
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
        for s in SEVEN {
            let users: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT usename::text FROM pg_stat_activity \
                 WHERE datname = $1 AND application_name = 'silo gateway'",
            )
            .bind(p.db(s))
            .fetch_all(&mut admin)
            .await
            .unwrap();
            assert_eq!(users, [p.svc(s).role.clone()], "{s}");
        }
    }
}

#[tokio::test]
async fn every_pair_is_refused_sqlite() {
    every_pair_is_refused("sqlite").await;
}

#[tokio::test]
async fn every_pair_is_refused_postgres() {
    every_pair_is_refused("postgres").await;
}

async fn credentials_and_databases(engine: &str) {
    let p = project(engine, &["character", "campaign"]).await;
    let select = |db: &str| json!({"database": db, "query": {"type": "select", "table": "items"}});
    let body = select(&p.db("character"));
    for auth in [
        None,
        Some("Bearer"),
        Some("Bearer not-a-token"),
        Some("Basic Y2hhcmFjdGVy"),
        Some(p.tokens["character"].as_str()),
    ] {
        let (status, resp) = p.post("/v1/query", auth, &body).await;
        assert_eq!(status, 401, "{auth:?}: {resp}");
        assert_eq!(code(&resp), "Unauthenticated");
        assert!(!resp.to_string().contains(&p.tokens["character"]));
    }
    let (status, resp) = p.call("character", "/v1/query", select("nobody_db")).await;
    assert_eq!(status, 404, "{resp}");
    assert_eq!(code(&resp), "InvalidDatabase");
    let (status, resp) = p
        .call(
            "character",
            "/v1/query",
            json!({"query": {"type": "select", "table": "items"}}),
        )
        .await;
    assert_eq!(status, 400, "{resp}");
    let (status, _) = p
        .post(
            "/v1/query",
            Some(&format!("Bearer {}", p.tokens["character"])),
            &json!("x"),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn credentials_and_databases_sqlite() {
    credentials_and_databases("sqlite").await;
}

#[tokio::test]
async fn credentials_and_databases_postgres() {
    credentials_and_databases("postgres").await;
}

/// Names the store lacks are refused before SQL, and hostile names,
/// operators and values change nothing; values go in and come out as
/// written.
async fn names_and_injection(engine: &str) {
    let p = project(engine, &["character"]).await;
    let svc = p.svc("character");
    let before = rows(&p.stores, svc).await;
    let hostile = [
        "x\"; DROP TABLE items; --",
        "items; DROP TABLE items",
        "items\" WHERE 1=1; --",
        "1 OR 1=1",
        "' OR '1'='1",
        "name",
        "items.name",
        "pg_catalog.pg_authid",
        "silo_schema_history",
        "",
    ];
    for name in hostile {
        let (status, body) = p
            .query("character", json!({"type": "select", "table": name}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (400, "UnknownTable"),
            "{name}: {body}"
        );
        let (status, body) = p
            .query(
                "character",
                json!({"type": "select", "table": "items", "fields": [name]}),
            )
            .await;
        if name != "name" {
            assert_eq!(
                (status, code(&body)),
                (400, "UnknownColumn"),
                "{name}: {body}"
            );
            for q in [
                json!({"type": "select", "table": "items", "where": {"field": name, "operator": "=", "value": 1}}),
                json!({"type": "select", "table": "items", "order_by": [name]}),
            ] {
                let (status, body) = p.query("character", q).await;
                assert_eq!(
                    (status, code(&body)),
                    (400, "UnknownColumn"),
                    "{name}: {body}"
                );
            }
            for op in [
                json!({"type": "insert", "table": "items", "data": {"id": 5, "name": "n", name: 1}}),
                json!({"type": "update", "table": "items", "data": {name: 1}, "where": {"and": []}}),
                json!({"type": "delete", "table": "items", "where": {"field": name, "operator": "=", "value": 1}}),
                json!({"type": "insert", "table": "items", "data": {"id": 5, "name": "n"}, "returning": [name]}),
                json!({"type": "delete", "table": name, "where": {"and": []}}),
            ] {
                let (status, body) = p.write("character", json!([op])).await;
                assert_eq!(status, 400, "{name}: {op} → {body}");
            }
        }
        let (status, _) = p
            .query(
                "character",
                json!({"type": "select", "table": "items", "where": {"field": "name", "operator": name, "value": 1}}),
            )
            .await;
        assert_eq!(status, 400, "operator {name}");
    }
    assert_eq!(rows(&p.stores, svc).await, before);

    // Values are data: stored and matched literally.
    let values = [
        "x\"; DROP TABLE items; --",
        "'; DELETE FROM items; --",
        "1 OR 1=1",
        "' OR '1'='1",
        "$1",
        "?1",
        "%",
        "_",
        "\\",
        "Ünïcødé ✓",
        "CAST(1 AS text)",
    ];
    for (i, v) in values.iter().enumerate() {
        let id = 100 + i as i64;
        let (status, body) = p
            .write(
                "character",
                json!([{"type": "insert", "table": "items", "data": {"id": id, "name": v, "note": v}, "returning": ["name", "note"]}]),
            )
            .await;
        assert_eq!(status, 200, "{v}: {body}");
        assert_eq!(body["results"][0]["returning"][0]["name"], json!(v));
        let ids = p
            .ids(
                "character",
                json!({"type": "select", "table": "items", "where": {"field": "name", "operator": "=", "value": v}}),
            )
            .await;
        assert_eq!(ids, [id], "{v}");
    }
    let stored = rows(&p.stores, svc).await;
    assert_eq!(stored.len(), 1 + values.len());
    for (i, v) in values.iter().enumerate() {
        assert!(stored.contains(&(100 + i as i64, v.to_string())), "{v}");
    }
    // A value aimed at a number column is a value, never SQL.
    let (status, body) = p
        .query(
            "character",
            json!({"type": "select", "table": "items", "where": {"field": "level", "operator": "=", "value": "1 OR 1=1"}}),
        )
        .await;
    if status == 200 {
        assert_eq!(body["rows"], json!([]), "{body}");
    } else {
        assert_eq!((status, code(&body)), (422, "DataException"), "{body}");
    }
    let (status, body) = p
        .write(
            "character",
            json!([{"type": "delete", "table": "items", "where": {"field": "id", "operator": "in", "value": ["1) OR (1=1"]}}]),
        )
        .await;
    assert!(
        status == 422 || body["results"][0]["rows_affected"] == 0,
        "{status} {body}"
    );
    assert_eq!(rows(&p.stores, svc).await, stored);
}

#[tokio::test]
async fn names_and_injection_sqlite() {
    names_and_injection("sqlite").await;
}

#[tokio::test]
async fn names_and_injection_postgres() {
    names_and_injection("postgres").await;
}

/// A transaction is all or nothing: the third operation fails, the first
/// two are gone too; a unique violation is 409 with SQLSTATE 23505.
async fn all_or_nothing(engine: &str) {
    let p = project(engine, &["campaign"]).await;
    let svc = p.svc("campaign");
    let before = rows(&p.stores, svc).await;
    let (status, body) = p
        .write(
            "campaign",
            json!([
                {"type": "insert", "table": "items", "data": {"id": 10, "name": "ten"}},
                {"type": "update", "table": "items", "data": {"name": "renamed"}, "where": {"field": "id", "operator": "=", "value": 1}},
                {"type": "insert", "table": "items", "data": {"id": 11, "name": "ten"}}
            ]),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(code(&body), "UniqueViolation");
    assert_eq!(body["error"]["sqlstate"], "23505");
    assert_eq!(rows(&p.stores, svc).await, before);

    let cases = [
        (json!({"id": 1, "name": "again"}), 409, "23505"),
        (json!({"id": 12}), 422, "23502"),
        (json!({"id": 12, "name": "neg", "level": -1}), 422, "23514"),
    ];
    for (data, status, state) in cases {
        let (got, body) = p
            .write(
                "campaign",
                json!([{"type": "insert", "table": "items", "data": data}]),
            )
            .await;
        assert_eq!(
            (got, body["error"]["sqlstate"].as_str()),
            (status, Some(state)),
            "{body}"
        );
    }
    assert_eq!(rows(&p.stores, svc).await, before);

    // What a good transaction returns.
    let (status, body) = p
        .write(
            "campaign",
            json!([
                {"type": "insert", "table": "items", "data": [{"id": 2, "name": "two"}, {"id": 3, "name": "three", "level": 3}]},
                {"type": "update", "table": "items", "data": {"level": 7}, "where": {"field": "id", "operator": ">=", "value": 2}, "returning": ["id", "level"]},
                {"type": "upsert", "table": "items", "data": {"id": 3, "name": "THREE"}},
                {"type": "upsert", "table": "items", "data": {"id": 4, "name": "four"}, "conflict": ["id"]},
                {"type": "delete", "table": "items", "where": {"field": "id", "operator": "=", "value": 1}}
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"], 1);
    let affected: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rows_affected"].as_i64().unwrap())
        .collect();
    assert_eq!(affected, [2, 2, 1, 1, 1], "{body}");
    let mut returned: Vec<i64> = body["results"][1]["returning"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["level"].as_i64().unwrap())
        .collect();
    returned.sort();
    assert_eq!(returned, [7, 7]);
    assert_eq!(
        rows(&p.stores, svc).await,
        [(2, "two".into()), (3, "THREE".into()), (4, "four".into())]
    );
    // An update or delete without `where` is refused, not run on every row.
    let (status, _) = p
        .write("campaign", json!([{"type": "delete", "table": "items"}]))
        .await;
    assert_eq!(status, 400);
    assert_eq!(rows(&p.stores, svc).await.len(), 3);
}

#[tokio::test]
async fn all_or_nothing_sqlite() {
    all_or_nothing("sqlite").await;
}

#[tokio::test]
async fn all_or_nothing_postgres() {
    all_or_nothing("postgres").await;
}

/// Every operator of the `where` tree, on one data set.
async fn operators(engine: &str) {
    let p = project(engine, &["search"]).await;
    let (status, body) = p
        .write(
            "search",
            json!([
                {"type": "delete", "table": "items", "where": {"and": []}},
                {"type": "insert", "table": "items", "data": [
                    {"id": 1, "name": "Alpha", "level": 1, "note": "a%b"},
                    {"id": 2, "name": "beta", "level": 5},
                    {"id": 3, "name": "Gamma", "level": 10, "note": "x"},
                    {"id": 4, "name": "alphabet", "level": 5, "note": "ab"}
                ]}
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cases = [
        (
            json!({"field": "level", "operator": "=", "value": 5}),
            vec![2, 4],
        ),
        (
            json!({"field": "level", "operator": "=", "value": "5"}),
            vec![2, 4],
        ),
        (
            json!({"field": "level", "operator": "!=", "value": 5}),
            vec![1, 3],
        ),
        (
            json!({"field": "level", "operator": "<", "value": 5}),
            vec![1],
        ),
        (
            json!({"field": "level", "operator": "<=", "value": 5}),
            vec![1, 2, 4],
        ),
        (
            json!({"field": "level", "operator": ">", "value": 5}),
            vec![3],
        ),
        (
            json!({"field": "level", "operator": ">=", "value": 5}),
            vec![2, 3, 4],
        ),
        (
            json!({"field": "id", "operator": "in", "value": [1, 3, 99]}),
            vec![1, 3],
        ),
        (
            json!({"field": "id", "operator": "in", "value": []}),
            vec![],
        ),
        (
            json!({"field": "id", "operator": "not_in", "value": [1, 3]}),
            vec![2, 4],
        ),
        (
            json!({"field": "id", "operator": "not_in", "value": []}),
            vec![1, 2, 3, 4],
        ),
        (
            json!({"field": "name", "operator": "like", "value": "alpha%"}),
            vec![4],
        ),
        (
            json!({"field": "name", "operator": "like", "value": "_eta"}),
            vec![2],
        ),
        (
            json!({"field": "name", "operator": "ilike", "value": "ALPHA%"}),
            vec![1, 4],
        ),
        (
            json!({"field": "note", "operator": "like", "value": "a\\%b"}),
            vec![1],
        ),
        (
            json!({"field": "note", "operator": "is_null", "value": true}),
            vec![2],
        ),
        (json!({"field": "note", "operator": "is_null"}), vec![2]),
        (
            json!({"field": "note", "operator": "is_null", "value": false}),
            vec![1, 3, 4],
        ),
        (
            json!({"and": [{"field": "level", "operator": "=", "value": 5}, {"field": "name", "operator": "like", "value": "b%"}]}),
            vec![2],
        ),
        (
            json!({"or": [{"field": "id", "operator": "=", "value": 1}, {"field": "level", "operator": ">", "value": 5}]}),
            vec![1, 3],
        ),
        (
            json!({"not": {"field": "level", "operator": "=", "value": 5}}),
            vec![1, 3],
        ),
        (json!({"and": []}), vec![1, 2, 3, 4]),
        (json!({"or": []}), vec![]),
        (
            json!({"not": {"or": [{"field": "id", "operator": "=", "value": 1}, {"and": [{"field": "level", "operator": "=", "value": 5}, {"not": {"field": "note", "operator": "is_null"}}]}]}}),
            vec![2, 3],
        ),
    ];
    for (filter, want) in cases {
        let got = p
            .ids(
                "search",
                json!({"type": "select", "table": "items", "fields": ["id"], "where": filter, "order_by": ["id"]}),
            )
            .await;
        assert_eq!(got, want, "{filter}");
    }
    // `fields` picks the columns returned.
    let (_, body) = p
        .query("search", json!({"type": "select", "table": "items", "fields": ["name"], "where": {"field": "id", "operator": "=", "value": 3}}))
        .await;
    assert_eq!(body["rows"], json!([{"name": "Gamma"}]));
}

#[tokio::test]
async fn operators_sqlite() {
    operators("sqlite").await;
}

#[tokio::test]
async fn operators_postgres() {
    operators("postgres").await;
}

/// Following `next_cursor` returns every row exactly once, in order,
/// however the rows are sorted (ties broken by the primary key).
async fn cursor_pagination(engine: &str) {
    let p = project(engine, &["metrics"]).await;
    let data: Vec<Value> = (2..=24)
        .map(|i| json!({"id": i, "name": format!("n{i:02}"), "level": i % 4}))
        .collect();
    let (status, body) = p
        .write(
            "metrics",
            json!([{"type": "insert", "table": "items", "data": data}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for order in [
        json!([]),
        json!([{"field": "level", "direction": "desc"}]),
        json!(["level", {"field": "name", "direction": "desc"}]),
    ] {
        let mut seen = Vec::new();
        let mut levels = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut q = json!({"type": "select", "table": "items", "fields": ["id", "level"], "order_by": order, "limit": 5});
            if let Some(a) = &after {
                q["after"] = json!(a);
            }
            let (status, body) = p.query("metrics", q).await;
            assert_eq!(status, 200, "{body}");
            for r in body["rows"].as_array().unwrap() {
                seen.push(r["id"].as_i64().unwrap());
                levels.push(r["level"].as_i64().unwrap());
                assert_eq!(r.as_object().unwrap().len(), 2, "{r}");
            }
            pages += 1;
            assert!(pages <= 6, "{order}: does not end");
            match body["next_cursor"].as_str() {
                Some(c) => after = Some(c.to_string()),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, (1..=24).collect::<Vec<_>>(), "{order}");
        assert_eq!(pages, 5, "{order}");
        if order == json!([{"field": "level", "direction": "desc"}]) {
            assert!(levels.windows(2).all(|w| w[0] >= w[1]), "{levels:?}");
        }
    }
    // A cursor of another sort is refused.
    let (_, body) = p
        .query(
            "metrics",
            json!({"type": "select", "table": "items", "limit": 2}),
        )
        .await;
    let cursor = body["next_cursor"].as_str().unwrap().to_string();
    let (status, _) = p
        .query(
            "metrics",
            json!({"type": "select", "table": "items", "order_by": ["level"], "after": cursor}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn cursor_pagination_sqlite() {
    cursor_pagination("sqlite").await;
}

#[tokio::test]
async fn cursor_pagination_postgres() {
    cursor_pagination("postgres").await;
}

/// A table made after the gateway started is served without a restart.
async fn new_tables_are_seen(engine: &str) {
    let p = project(engine, &["catalog"]).await;
    assert_eq!(
        p.ids("catalog", json!({"type": "select", "table": "items"}))
            .await,
        [1]
    );
    as_service(
        &p.stores,
        p.svc("catalog"),
        "CREATE TABLE later (id INTEGER PRIMARY KEY)",
    )
    .await;
    let (status, body) = p
        .write(
            "catalog",
            json!([{"type": "insert", "table": "later", "data": {"id": 7}}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        p.ids("catalog", json!({"type": "select", "table": "later"}))
            .await,
        [7]
    );
}

#[tokio::test]
async fn new_tables_are_seen_sqlite() {
    new_tables_are_seen("sqlite").await;
}

#[tokio::test]
async fn new_tables_are_seen_postgres() {
    new_tables_are_seen("postgres").await;
}

/// A repeatable-read write that meets a concurrent update gets a
/// serialization failure (40001): it is run again and succeeds, reporting
/// its attempts; with no tries left, it is reported as such (409).
async fn serialization_failure(max_attempts: u32) -> (u16, Value) {
    let config = GatewayConfig {
        max_attempts,
        ..GatewayConfig::default()
    };
    let p = Arc::new(project_with("postgres", &["auth"], config).await);
    let db = p.db("auth");
    let admin = admin_url();
    let (server, _) = admin.rsplit_once('/').unwrap();
    let mut holder = PgConnection::connect(&format!("{server}/{db}"))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; UPDATE items SET level = 2 WHERE id = 1")
        .execute(&mut holder)
        .await
        .unwrap();
    let writer = {
        let p = p.clone();
        tokio::spawn(async move {
            let body = json!({"database": p.db("auth"), "transaction": {
            "isolation": "repeatable_read",
            "operations": [
                {"type": "update", "table": "items", "data": {"note": "gateway"},
                 "where": {"field": "id", "operator": "=", "value": 1}}
            ]}});
            p.call("auth", "/v1/write", body).await
        })
    };
    // Until the gateway's update waits for the held row lock.
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND application_name = 'silo gateway' AND wait_event_type = 'Lock'",
        )
        .bind(&db)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write never waited"
        );
        tokio::task::yield_now().await;
    }
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    writer.await.unwrap()
}

#[tokio::test]
async fn a_serialization_failure_is_retried_postgres() {
    let (status, body) = serialization_failure(3).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["attempts"], 2, "{body}");
    assert_eq!(body["results"][0]["rows_affected"], 1, "{body}");
}

#[tokio::test]
async fn a_serialization_failure_is_reported_when_tries_run_out_postgres() {
    let (status, body) = serialization_failure(1).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(code(&body), "SerializationFailure");
    assert_eq!(body["error"]["sqlstate"], "40001");
}

/// A write runs at the isolation it asks for, whatever the role's default:
/// a one-statement write (sent without `BEGIN`, as its own transaction) at
/// `read_committed`, a two-operation one at `repeatable_read`, though the
/// role defaults to `serializable`.
#[tokio::test]
async fn a_write_runs_at_the_isolation_it_asks_for_whatever_the_roles_default_postgres() {
    let p = project("postgres", &["auth"]).await;
    let svc = p.svc("auth");
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE \"{}\" SET default_transaction_isolation = 'serializable'",
        svc.role
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    as_service(
        &p.stores,
        svc,
        "CREATE TABLE isolations (id INTEGER PRIMARY KEY, \
         level TEXT NOT NULL DEFAULT current_setting('transaction_isolation'))",
    )
    .await;
    let insert = |id: i64| json!({"type": "insert", "table": "isolations", "data": {"id": id}, "returning": ["level"]});
    let (status, body) = p.write("auth", json!([insert(1)])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["returning"][0]["level"],
        "read committed"
    );
    let (status, body) = p
        .call(
            "auth",
            "/v1/write",
            json!({"database": p.db("auth"), "transaction": {
                "isolation": "repeatable_read", "operations": [insert(2), insert(3)]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for result in 0..2 {
        assert_eq!(
            body["results"][result]["returning"][0]["level"], "repeatable read",
            "{body}"
        );
    }
}
