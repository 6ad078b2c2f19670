//! `/v1/schema` and the database events, end to end on real SQLite files
//! and the real PostgreSQL server: a migration sent through the gateway is
//! the one `silo migrate` would run from a file, and events are in the
//! outbox exactly when their write committed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use silo_gateway::{Gateway, GatewayConfig, router};
use silo_manifest::{Manifest, Overrides, Service};
use silo_migrate::{Cancel, LockPolicy, State};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use sqlx::{Connection, PgConnection};
use tower::ServiceExt;

struct Project {
    dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    router: Router,
    token: String,
}

const SERVICE: &str = "character";

/// Every event type the gateway writes.
const ALL_EVENTS: [&str; 6] = [
    "storage.db.write_complete",
    "storage.db.transaction_complete",
    "storage.db.error",
    "storage.db.deadlock",
    "storage.db.migration_complete",
    "storage.schema.version_change",
];

fn manifest(dir: &Path, prefix: &Prefix, engine: &str, publishes: &[&str]) -> Manifest {
    let publishes: Vec<String> = publishes.iter().map(|t| format!("\"{t}\"")).collect();
    let text = format!(
        "[project]\nname = \"dnd\"\n[defaults]\nengine = \"{engine}\"\n\
         [services.{SERVICE}]\ndatabase = \"{}\"\nrole = \"{}\"\npublishes = [{}]\n",
        prefix.name("character_db"),
        prefix.name("character_svc"),
        publishes.join(", ")
    );
    std::fs::write(dir.join("silo.toml"), &text).unwrap();
    Manifest::from_str(&text, &dir.join("silo.toml"), &Overrides::default()).unwrap()
}

/// Runs SQL as the service itself.
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

/// One text column of every row `sql` returns, read as the service.
async fn texts(stores: &Stores, svc: &Service, sql: &str) -> Vec<String> {
    match stores.connect_as(svc, "test").await.unwrap() {
        ServiceConnection::Postgres(mut c) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
        ServiceConnection::Sqlite(mut c) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_all(&mut c)
                .await
                .unwrap()
        }
    }
}

async fn project(engine: &str, publishes: &[&str], config: GatewayConfig) -> Project {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let manifest = manifest(dir.path(), &prefix, engine, publishes);
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 4,
    });
    let svc = &manifest.services[0];
    stores
        .engine(svc)
        .unwrap()
        .provision(svc, ProvisionOptions::default())
        .await
        .unwrap();
    silo_events::ensure(&stores, svc).await.unwrap();
    stores.secrets().ensure_gateway_token(&svc.name).unwrap();
    let token = stores.secrets().gateway_token(&svc.name).unwrap().unwrap();
    let gateway = Gateway::new(&stores, &manifest.services, config).unwrap();
    assert!(gateway.skipped.is_empty(), "{:?}", gateway.skipped);
    Project {
        dir,
        prefix,
        router: router(Arc::new(gateway)),
        manifest,
        stores,
        token: token.expose().to_string(),
    }
}

fn policy() -> LockPolicy {
    LockPolicy {
        timeout: Duration::from_secs(10),
        on_wait: Arc::new(|_| {}),
        cancel: Cancel::new(),
    }
}

impl Project {
    fn svc(&self) -> &Service {
        &self.manifest.services[0]
    }

    fn db(&self) -> String {
        self.prefix.name("character_db")
    }

    async fn call(&self, path: &str, body: Value) -> (u16, Value) {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.token))
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn schema(&self, body: Value) -> (u16, Value) {
        let mut body = body;
        body["database"] = json!(self.db());
        self.call("/v1/schema", body).await
    }

    async fn write(&self, operations: Value) -> (u16, Value) {
        let body = json!({"database": self.db(), "transaction": {"operations": operations}});
        self.call("/v1/write", body).await
    }

    /// Writes a migration file into the service's folder, as a developer
    /// would.
    fn file(&self, name: &str, sql: &str) {
        let dir = self.manifest.migrations_dir(self.svc());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), sql).unwrap();
    }

    /// `silo info`'s states, by script.
    async fn info(&self) -> Vec<(String, State)> {
        silo_migrate::service::info(&self.manifest, &self.stores, self.svc(), policy())
            .await
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.script, e.state))
            .collect()
    }

    /// The outbox's event types, oldest first.
    async fn events(&self) -> Vec<String> {
        texts(
            &self.stores,
            self.svc(),
            "SELECT type FROM silo_outbox ORDER BY seq",
        )
        .await
    }

    /// The payloads of the outbox's events of `event_type`, oldest first.
    async fn payloads(&self, event_type: &str) -> Vec<Value> {
        let sql = format!(
            "SELECT CAST(payload AS TEXT) FROM silo_outbox WHERE type = '{event_type}' ORDER BY seq"
        );
        texts(&self.stores, self.svc(), &sql)
            .await
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

const SPELLS_UP: &str = "CREATE TABLE spells (id INTEGER PRIMARY KEY, name TEXT NOT NULL);";
const SPELLS_DOWN: &str = "DROP TABLE spells;";

/// A migration through the gateway is the file `silo migrate` would run:
/// `silo info` sees it applied, the same file on disk matches its
/// checksum, `silo migrate` then has nothing to do, and `silo undo` runs
/// its `down`.
async fn gateway_and_migrate_agree(engine: &str) {
    let p = project(engine, &[], GatewayConfig::default()).await;
    p.file(
        "V1__init.sql",
        "CREATE TABLE items (id INTEGER PRIMARY KEY);",
    );
    let steps = silo_migrate::service::migrate(
        &p.manifest,
        &p.stores,
        p.svc(),
        &Default::default(),
        policy(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(steps.len(), 1);

    let (status, body) = p
        .schema(json!({"action": "migrate", "description": "add spells",
            "migrations": [{"up": SPELLS_UP, "down": SPELLS_DOWN}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "2", "the next after the store's V1");
    assert_eq!(body["applied"][0]["script"], "V2__add_spells.sql");
    // The catalog was refreshed: the new table is served at once.
    let (status, body) = p
        .write(json!([{"type": "insert", "table": "spells", "data": {"id": 1, "name": "light"}}]))
        .await;
    assert_eq!(status, 200, "{body}");

    // Sent again: already applied, nothing runs.
    let (status, body) = p
        .schema(
            json!({"action": "migrate", "version": "2", "description": "add spells",
            "migrations": [{"up": SPELLS_UP, "down": SPELLS_DOWN}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], json!([]));

    let (status, body) = p.schema(json!({"action": "status"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "2");
    let row = &body["history"][1];
    assert_eq!(row["script"], "V2__add_spells.sql");
    assert_eq!(row["description"], "add spells");
    assert_eq!(row["type"], "versioned");
    assert_eq!(row["success"], true);

    // `silo info` sees it (applied by a newer checkout: no file yet) ...
    assert_eq!(
        p.info().await,
        [
            ("V1__init.sql".to_string(), State::Applied),
            ("V2__add_spells.sql".to_string(), State::Future),
        ]
    );
    // ... and the same file on disk is the same migration.
    p.file("V2__add_spells.sql", SPELLS_UP);
    assert_eq!(
        p.info().await,
        [
            ("V1__init.sql".to_string(), State::Applied),
            ("V2__add_spells.sql".to_string(), State::Applied),
        ]
    );
    let steps = silo_migrate::service::migrate(
        &p.manifest,
        &p.stores,
        p.svc(),
        &Default::default(),
        policy(),
        |_| {},
    )
    .await
    .unwrap();
    assert!(steps.is_empty(), "{steps:?}");

    // `silo undo` runs the `down` the gateway kept.
    let undone = silo_migrate::service::undo(
        &p.manifest,
        &p.stores,
        p.svc(),
        &Default::default(),
        policy(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(undone[0].script, "U2__add_spells.sql");
    let (status, body) = p
        .write(json!([{"type": "insert", "table": "spells", "data": {"id": 2, "name": "dark"}}]))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "UnknownTable");
    drop(p.dir);
}

/// A changed migration, a refused one, a failing one and a malformed
/// request: each answered with its own error, and nothing recorded.
async fn refusals(engine: &str) {
    let p = project(engine, &[], GatewayConfig::default()).await;
    let (status, body) = p
        .schema(json!({"action": "migrate", "version": 1, "migrations": [{"up": SPELLS_UP}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"][0]["script"], "V1__gateway.sql");

    let changed = json!({"action": "migrate", "version": "1",
        "migrations": [{"up": "CREATE TABLE other (id INTEGER);"}]});
    let (status, body) = p.schema(changed.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(code(&body), "ChecksumMismatch");
    let mut validate = changed;
    validate["action"] = json!("validate");
    let (status, body) = p.schema(validate).await;
    assert_eq!((status, code(&body)), (409, "ChecksumMismatch"), "{body}");

    let (status, body) = p
        .schema(json!({"action": "validate", "version": "1", "migrations": [
            {"up": SPELLS_UP}, {"up": "CREATE TABLE next (id INTEGER);"}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let states: Vec<&str> = body["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["applied", "pending"]);

    let (status, body) = p
        .schema(json!({"action": "migrate", "migrations": [
            {"up": "CREATE TABLE t2 (id INTEGER);\nCOMMIT;\nCREATE TABLE t3 (id INTEGER);"}]}))
        .await;
    assert_eq!((status, code(&body)), (409, "MigrationRefused"), "{body}");

    let (status, body) = p
        .schema(json!({"action": "migrate", "migrations": [
            {"up": "CREATE TABLE t2 (id INTEGER);\nINSERT INTO no_such_table VALUES (1);"}]}))
        .await;
    assert_eq!((status, code(&body)), (422, "MigrationFailed"), "{body}");
    assert_eq!(body["error"]["sqlstate"], "42P01", "{body}");

    let (status, body) = p
        .schema(json!({"action": "migrate", "migrations": [
            {"up": "SELECT 1;", "version": "5"}, {"up": "SELECT 2;", "version": "5.0"}]}))
        .await;
    assert_eq!((status, code(&body)), (400, "BadRequest"), "{body}");

    // Only V1 is in the history; t2 was rolled back.
    let (_, body) = p.schema(json!({"action": "status"})).await;
    assert_eq!(body["history"].as_array().unwrap().len(), 1, "{body}");
    let (status, _) = p
        .write(json!([{"type": "insert", "table": "t2", "data": {"id": 1}}]))
        .await;
    assert_eq!(status, 400);
}

/// A store whose migration lock is held: the request waits as `silo
/// migrate` does, then answers `MigrationLocked`. Two requests at once
/// take turns: of two different migrations under one version, one wins
/// and the other is a checksum mismatch; the same one twice is applied
/// once.
async fn concurrent_requests(engine: &str) {
    let config = GatewayConfig {
        acquire_timeout: Some(Duration::from_millis(300)),
        ..GatewayConfig::default()
    };
    let p = project(engine, &[], config).await;
    // Hold the lock the engine takes: the advisory lock on PostgreSQL, the
    // write lock on SQLite.
    let mut holder = p.stores.connect_as(p.svc(), "test").await.unwrap();
    match &mut holder {
        ServiceConnection::Postgres(c) => {
            sqlx::raw_sql(
                "SELECT pg_advisory_lock(hashtextextended('silo:migrate:' || current_database(), 0))",
            )
            .execute(&mut *c)
            .await
            .unwrap();
        }
        ServiceConnection::Sqlite(c) => {
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut *c)
                .await
                .unwrap();
        }
    }
    let (status, body) = p
        .schema(json!({"action": "migrate", "migrations": [{"up": SPELLS_UP}]}))
        .await;
    assert_eq!((status, code(&body)), (409, "MigrationLocked"), "{body}");
    holder.close().await;

    let a = json!({"action": "migrate", "version": "1", "migrations": [{"up": SPELLS_UP}]});
    let b = json!({"action": "migrate", "version": "1",
        "migrations": [{"up": "CREATE TABLE potions (id INTEGER);"}]});
    let slow = GatewayConfig::default();
    let p2 = Project {
        router: router(Arc::new(
            Gateway::new(&p.stores, &p.manifest.services, slow).unwrap(),
        )),
        ..p
    };
    let ((sa, ba), (sb, bb)) = tokio::join!(p2.schema(a), p2.schema(b));
    let mut outcomes = [(sa, code(&ba).to_string()), (sb, code(&bb).to_string())];
    outcomes.sort();
    assert_eq!(
        outcomes,
        [(200, String::new()), (409, "ChecksumMismatch".to_string())],
        "{ba} {bb}"
    );
    // The same migration twice at once: one applies it, the other waits
    // for the lock and finds it applied.
    let c = json!({"action": "migrate", "version": "2", "migrations": [{"up": "SELECT 2;"}]});
    let ((sc, bc), (sd, bd)) = tokio::join!(p2.schema(c.clone()), p2.schema(c));
    assert_eq!((sc, sd), (200, 200), "{bc} {bd}");
    let mut applied = [
        bc["applied"].as_array().unwrap().len(),
        bd["applied"].as_array().unwrap().len(),
    ];
    applied.sort();
    assert_eq!(applied, [0, 1], "{bc} {bd}");
    let (_, body) = p2.schema(json!({"action": "status"})).await;
    let scripts: Vec<&str> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["script"].as_str().unwrap())
        .collect();
    assert_eq!(scripts, ["V1__gateway.sql", "V2__gateway.sql"], "{body}");
    // A lower version after a higher one is refused, as `silo migrate`
    // refuses it without --out-of-order.
    let (status, body) = p2
        .schema(json!({"action": "migrate", "version": "1.5", "migrations": [{"up": "SELECT 1;"}]}))
        .await;
    assert_eq!((status, code(&body)), (409, "MigrationRefused"), "{body}");
}

const ITEMS: &str =
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n INTEGER);
INSERT INTO items (id, name, n) VALUES (1, 'one', 0), (2, 'two', 0);";

/// Events are in the outbox exactly when their write committed: a write's
/// events with it, a failed write's none but its error event; a
/// migration's in its transaction. Each payload matches the shipped
/// contract, adopted as a service adopts it (a copy in its contracts
/// folder), and carries no row value.
async fn events_follow_commits(engine: &str) {
    let p = project(engine, &ALL_EVENTS, GatewayConfig::default()).await;
    let contracts = p.manifest.contracts_dir(p.svc());
    std::fs::create_dir_all(&contracts).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/contracts")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, contracts.join(path.file_name().unwrap())).unwrap();
    }
    as_service(&p.stores, p.svc(), ITEMS).await;

    let (status, body) = p
        .write(json!([
            {"type": "insert", "table": "items", "data": {"id": 3, "name": "secret-value"}},
            {"type": "update", "table": "items", "data": {"n": 5}, "where": {"field": "id", "operator": "<", "value": 3}}
        ]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        p.events().await,
        [
            "storage.db.write_complete",
            "storage.db.write_complete",
            "storage.db.transaction_complete"
        ]
    );
    let writes = p.payloads("storage.db.write_complete").await;
    assert_eq!(writes[0]["table"], "items");
    assert_eq!(writes[0]["operation"], "insert");
    assert_eq!(writes[0]["rows"], 1);
    assert_eq!(writes[1]["operation"], "update");
    assert_eq!(writes[1]["rows"], 2);
    assert_eq!(writes[0]["database"], json!(p.db()));
    let tx = &p.payloads("storage.db.transaction_complete").await[0];
    assert_eq!(
        (tx["operations"].clone(), tx["rows"].clone()),
        (json!(2), json!(3))
    );

    // The third operation fails: nothing of the write stays, and only the
    // error is told.
    let (status, body) = p
        .write(json!([
            {"type": "insert", "table": "items", "data": {"id": 4, "name": "four"}},
            {"type": "update", "table": "items", "data": {"n": 9}, "where": {"field": "id", "operator": "=", "value": 1}},
            {"type": "insert", "table": "items", "data": {"id": 5, "name": "four"}}
        ]))
        .await;
    assert_eq!((status, code(&body)), (409, "UniqueViolation"), "{body}");
    assert_eq!(p.events().await.len(), 4);
    let errors = p.payloads("storage.db.error").await;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["sqlstate"], "23505");
    assert_eq!(errors[0]["tables"], json!(["items"]));
    assert_eq!(errors[0]["retried"], false);
    assert_eq!(p.payloads("storage.db.write_complete").await.len(), 2);

    let (status, body) = p
        .schema(json!({"action": "migrate", "description": "add spells",
            "migrations": [{"up": SPELLS_UP, "down": SPELLS_DOWN}]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let done = p.payloads("storage.db.migration_complete").await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["script"], "V1__add_spells.sql");
    let mut changes = p.payloads("storage.schema.version_change").await;
    // Each event names the request it tells of (its X-Request-Id).
    for change in &mut changes {
        let id = change.as_object_mut().unwrap().remove("request_id");
        assert!(id.is_some_and(|id| id.is_string()), "{change}");
    }
    assert_eq!(
        changes,
        [json!({"database": p.db(), "from": null, "to": "1"})]
    );
    // A migration the store refuses tells its error, and nothing else.
    let (status, _) = p
        .schema(
            json!({"action": "migrate", "migrations": [{"up": "INSERT INTO nowhere VALUES (1);"}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(p.events().await.len(), 7);
    let errors = p.payloads("storage.db.error").await;
    assert_eq!(errors.len(), 2, "{errors:?}");
    let failed = &errors[1];
    assert_eq!(
        (&failed["operation"], &failed["code"], &failed["tables"]),
        (&json!("schema"), &json!("MigrationFailed"), &json!([])),
        "{failed}"
    );
    assert!(failed["sqlstate"].is_string(), "{failed}");
    assert_eq!(p.payloads("storage.db.migration_complete").await.len(), 1);

    // Every payload is one its contract takes, and none holds a value.
    let loaded = silo_events::contracts::Contracts::load(&p.manifest).unwrap();
    let sql = "SELECT CAST(payload AS TEXT) || '|' || type FROM silo_outbox";
    for row in texts(&p.stores, p.svc(), sql).await {
        let (payload, event_type) = row.rsplit_once('|').unwrap();
        assert!(
            !payload.contains("secret-value") && !payload.contains("four"),
            "{payload}"
        );
        let verdict = silo_events::contracts::check(&loaded, SERVICE, event_type, payload);
        assert!(
            matches!(
                verdict,
                silo_events::contracts::Verdict::Deliver {
                    dataschema: Some(_)
                }
            ),
            "{event_type}: {verdict:?}"
        );
    }
}

/// A service gets only the types it lists in `publishes`.
async fn only_published_types(engine: &str) {
    let p = project(
        engine,
        &["storage.db.write_complete"],
        GatewayConfig::default(),
    )
    .await;
    as_service(&p.stores, p.svc(), ITEMS).await;
    let (status, _) = p
        .write(json!([{"type": "insert", "table": "items", "data": {"id": 3, "name": "three"}}]))
        .await;
    assert_eq!(status, 200);
    let (status, _) = p
        .write(json!([{"type": "insert", "table": "items", "data": {"id": 4, "name": "three"}}]))
        .await;
    assert_eq!(status, 409);
    let (status, _) = p
        .schema(json!({"action": "migrate", "migrations": [{"up": SPELLS_UP}]}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(p.events().await, ["storage.db.write_complete"]);
}

/// A real deadlock on PostgreSQL, with one try allowed: the write is
/// refused as `Deadlock` and told as `storage.db.deadlock`, with no write
/// event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_is_told() {
    let config = GatewayConfig {
        max_attempts: 1,
        ..GatewayConfig::default()
    };
    let p = project("postgres", &ALL_EVENTS, config).await;
    as_service(&p.stores, p.svc(), ITEMS).await;
    let url = admin_url();
    let db_url = format!("{}/{}", &url[..url.rfind('/').unwrap()], p.db());
    // The other side of the deadlock waits long before it checks for one,
    // so the gateway's transaction (checking after the default second) is
    // the one PostgreSQL breaks.
    let mut other = PgConnection::connect(&db_url).await.unwrap();
    sqlx::raw_sql("SET deadlock_timeout = '30s'; BEGIN; UPDATE items SET n = 1 WHERE id = 2")
        .execute(&mut other)
        .await
        .unwrap();
    let mut watch = PgConnection::connect(&db_url).await.unwrap();
    let gateway = p.write(json!([
        {"type": "update", "table": "items", "data": {"n": 2}, "where": {"field": "id", "operator": "=", "value": 1}},
        {"type": "update", "table": "items", "data": {"n": 2}, "where": {"field": "id", "operator": "=", "value": 2}}
    ]));
    let closing = async {
        // Wait (bounded) until the gateway's transaction waits for our lock.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'silo gateway' AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watch)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway never waited"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sqlx::raw_sql("UPDATE items SET n = 1 WHERE id = 1; COMMIT")
            .execute(&mut other)
            .await
            .unwrap();
    };
    let ((status, body), ()) = tokio::join!(gateway, closing);
    assert_eq!((status, code(&body)), (409, "Deadlock"), "{body}");
    assert_eq!(p.events().await, ["storage.db.deadlock"]);
    let told = &p.payloads("storage.db.deadlock").await[0];
    assert_eq!(told["sqlstate"], "40P01");
    assert_eq!(
        (told["attempt"].clone(), told["retried"].clone()),
        (json!(1), json!(false))
    );
}

#[tokio::test]
async fn events_follow_commits_sqlite() {
    events_follow_commits("sqlite").await;
}

#[tokio::test]
async fn events_follow_commits_postgres() {
    events_follow_commits("postgres").await;
}

#[tokio::test]
async fn only_published_types_sqlite() {
    only_published_types("sqlite").await;
}

#[tokio::test]
async fn only_published_types_postgres() {
    only_published_types("postgres").await;
}

#[tokio::test]
async fn gateway_and_migrate_agree_sqlite() {
    gateway_and_migrate_agree("sqlite").await;
}

#[tokio::test]
async fn gateway_and_migrate_agree_postgres() {
    gateway_and_migrate_agree("postgres").await;
}

#[tokio::test]
async fn refusals_sqlite() {
    refusals("sqlite").await;
}

#[tokio::test]
async fn refusals_postgres() {
    refusals("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_sqlite() {
    concurrent_requests("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_postgres() {
    concurrent_requests("postgres").await;
}
