//! Signed JWTs as gateway credentials (`[gateway.jwt]`), in process, on
//! real SQLite files and the real PostgreSQL server: a valid token acts as
//! the service its claim names, every failed check is 401 and says which,
//! and a token of A naming B's database is 403 and runs nothing.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use silo_gateway::{Gateway, GatewayConfig, JwtAuth, router};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, ServiceConnection, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};
use tower::ServiceExt;

const SECRET: &[u8] = b"a shared secret of 32 bytes or more, for tests only";

struct Project {
    _dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    router: Router,
    /// `character`'s opaque gateway token.
    token: String,
}

/// `character` and `campaign`, each with a table `items` holding one row,
/// and `[gateway.jwt]` as `jwt` says; `key` is the verifying key's bytes,
/// `files` are written beside silo.toml first.
async fn project(engine: &str, jwt: &str, key: &[u8], files: &[(&str, &[u8])]) -> Project {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let prefix = Prefix::new();
    let mut text = format!("[project]\nname = \"dnd\"\n[defaults]\nengine = \"{engine}\"\n");
    for name in ["character", "campaign"] {
        text.push_str(&format!(
            "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(&format!("{name}_db")),
            prefix.name(&format!("{name}_svc"))
        ));
    }
    text.push_str(jwt);
    let manifest =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 4,
    });
    for svc in &manifest.services {
        stores
            .engine(svc)
            .unwrap()
            .provision(svc, ProvisionOptions::default())
            .await
            .unwrap();
        stores.secrets().ensure_gateway_token(&svc.name).unwrap();
        as_service(
            &stores,
            svc,
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             INSERT INTO items (id, name) VALUES (1, 'seed');",
        )
        .await;
    }
    let token = stores
        .secrets()
        .gateway_token("character")
        .unwrap()
        .unwrap()
        .expose()
        .to_string();
    let settings = manifest.gateway_jwt.as_ref().expect("[gateway.jwt]");
    let config = GatewayConfig {
        jwt: Some(JwtAuth::new(settings, key).unwrap()),
        ..GatewayConfig::default()
    };
    let gateway = Gateway::new(&stores, &manifest.services, config).unwrap();
    assert!(gateway.skipped.is_empty(), "{:?}", gateway.skipped);
    Project {
        _dir: dir,
        prefix,
        router: router(Arc::new(gateway)),
        manifest,
        stores,
        token,
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

/// The names in `items`, read in the store as the service itself.
async fn names(p: &Project, service: &str) -> Vec<String> {
    let svc = p.manifest.service(service).unwrap();
    let sql = "SELECT name FROM items ORDER BY id";
    match p.stores.connect_as(svc, "test").await.unwrap() {
        ServiceConnection::Postgres(mut c) => sqlx::query_scalar(sql).fetch_all(&mut c).await,
        ServiceConnection::Sqlite(mut c) => sqlx::query_scalar(sql).fetch_all(&mut c).await,
    }
    .unwrap()
}

impl Project {
    fn db(&self, name: &str) -> String {
        self.prefix.name(&format!("{name}_db"))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
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

    /// A select on `database`'s `items` with `token`.
    async fn select(&self, token: &str, database: &str) -> (u16, Value) {
        let body =
            json!({"database": self.db(database), "query": {"type": "select", "table": "items"}});
        self.post("/v1/query", token, body).await
    }

    /// The 401 message `token` gets; it never holds the token.
    async fn refused(&self, token: &str) -> String {
        let (status, body) = self.select(token, "character").await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "Unauthenticated", "{body}");
        let text = body.to_string();
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!text.contains(part), "{text}");
        }
        body["error"]["message"].as_str().unwrap().to_string()
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs256(claims: Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

/// An unsigned token (`alg: none`).
fn unsigned(claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(&json!({"alg": "none", "typ": "JWT"})),
        part(claims)
    )
}

const HS256_TABLE: &str = "[gateway.jwt]\nalgorithm = \"HS256\"\nissuer = \"https://auth.test\"\naudience = \"silo\"\nleeway = \"5s\"\n";

async fn hs256_tokens(engine: &str) {
    let p = project(engine, HS256_TABLE, SECRET, &[]).await;
    let claims = |extra: Value| {
        let mut c = json!({"service": "character", "iss": "https://auth.test", "aud": "silo", "exp": now() + 600});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };

    // A valid token reads its own service's store.
    let good = hs256(claims(json!({})), SECRET);
    let (status, body) = p.select(&good, "character").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["name"], "seed", "{body}");
    // `sub` names the service when `service` is absent.
    let mut by_sub = claims(json!({"sub": "campaign"}));
    by_sub.as_object_mut().unwrap().remove("service");
    assert_eq!(p.select(&hs256(by_sub, SECRET), "campaign").await.0, 200);
    // The opaque token keeps working beside JWTs.
    assert_eq!(p.select(&p.token, "character").await.0, 200);

    // A's JWT naming B's database: 403, and nothing runs in B's store.
    let insert = json!({"database": p.db("campaign"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 2, "name": "from character"}}
    ]}});
    let (status, body) = p.post("/v1/write", &good, insert).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "UnauthorizedAccess");
    assert_eq!(names(&p, "campaign").await, ["seed"]);
    assert_eq!(p.select(&good, "campaign").await.0, 403);
    // A's own write goes through.
    let insert = json!({"database": p.db("character"), "transaction": {"operations": [
        {"type": "insert", "table": "items", "data": {"id": 2, "name": "own"}}
    ]}});
    assert_eq!(p.post("/v1/write", &good, insert).await.0, 200);
    assert_eq!(names(&p, "character").await, ["seed", "own"]);

    // Each failed check is 401 and says which.
    let cases = [
        (
            hs256(claims(json!({"exp": now() - 60})), SECRET),
            "has expired",
        ),
        (
            hs256(claims(json!({"nbf": now() + 600})), SECRET),
            "not valid yet",
        ),
        (
            hs256(claims(json!({"iss": "https://evil.test"})), SECRET),
            "issuer",
        ),
        (hs256(claims(json!({"aud": "other"})), SECRET), "audience"),
        (
            hs256(
                claims(json!({})),
                b"another secret of 32 bytes or more, not ours",
            ),
            "signature does not verify",
        ),
        (unsigned(&claims(json!({}))), "signed with `none`"),
        (
            hs256(claims(json!({"service": "nobody"})), SECRET),
            "names no service this gateway serves",
        ),
        (hs256(claims(json!({"service": 7})), SECRET), "not a string"),
    ];
    for (token, says) in cases {
        let message = p.refused(&token).await;
        assert!(message.contains(says), "{says}: {message}");
    }
    let mut no_exp = claims(json!({}));
    no_exp.as_object_mut().unwrap().remove("exp");
    let message = p.refused(&hs256(no_exp, SECRET)).await;
    assert!(message.contains("no `exp` claim"), "{message}");
    let mut no_claim = claims(json!({}));
    no_claim.as_object_mut().unwrap().remove("service");
    let message = p.refused(&hs256(no_claim, SECRET)).await;
    assert!(message.contains("no `service` or `sub` claim"), "{message}");
    // Within the leeway, a just-expired token still counts.
    let (status, _) = p
        .select(
            &hs256(claims(json!({"exp": now() - 1})), SECRET),
            "character",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(names(&p, "character").await, ["seed", "own"]);
    assert_eq!(names(&p, "campaign").await, ["seed"]);
}

#[tokio::test]
async fn hs256_tokens_sqlite() {
    hs256_tokens("sqlite").await;
}

#[tokio::test]
async fn hs256_tokens_postgres() {
    hs256_tokens("postgres").await;
}

/// A P-256 key pair made by the openssl CLI: (PKCS#8 private PEM, public
/// PEM).
fn key_pair(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        private.to_str().unwrap(),
    ]);
    run(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (
        std::fs::read(private).unwrap(),
        std::fs::read(public).unwrap(),
    )
}

async fn es256_tokens(engine: &str) {
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = key_pair(keys.path());
    let table =
        "[gateway.jwt]\nalgorithm = \"ES256\"\npublic_key = \"issuer.pem\"\nclaim = \"svc\"\n";
    let p = project(engine, table, &public, &[("issuer.pem", &public)]).await;
    let claims = json!({"svc": "character", "exp": now() + 600});
    let es256 = |claims: &Value, key: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            claims,
            &EncodingKey::from_ec_pem(key).unwrap(),
        )
        .unwrap()
    };

    let good = es256(&claims, &private);
    let (status, body) = p.select(&good, "character").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(p.select(&good, "campaign").await.0, 403);

    // Key confusion: HS256 with the public key's bytes as the secret.
    let confused = hs256(claims.clone(), &public);
    let message = p.refused(&confused).await;
    assert!(
        message.contains("signed with `HS256`, but the gateway accepts ES256 only"),
        "{message}"
    );
    let message = p.refused(&unsigned(&claims)).await;
    assert!(message.contains("signed with `none`"), "{message}");
    // Another issuer's key.
    let (other, _) = key_pair(tempfile::tempdir().unwrap().path());
    let message = p.refused(&es256(&claims, &other)).await;
    assert!(message.contains("signature does not verify"), "{message}");
    // `claim = "svc"`: `sub` alone does not name the service.
    let message = p
        .refused(&es256(
            &json!({"sub": "character", "exp": now() + 600}),
            &private,
        ))
        .await;
    assert!(message.contains("no `svc` claim"), "{message}");
    assert_eq!(names(&p, "character").await, ["seed"]);
}

#[tokio::test]
async fn es256_tokens_sqlite() {
    es256_tokens("sqlite").await;
}

#[tokio::test]
async fn es256_tokens_postgres() {
    es256_tokens("postgres").await;
}

#[test]
fn weak_or_wrong_keys_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[project]\nname = \"p\"\n[services.a]\n[gateway.jwt]\nalgorithm = \"HS256\"\n";
    let m = Manifest::from_str(text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let settings = m.gateway_jwt.unwrap();
    let e = JwtAuth::new(&settings, b"short").unwrap_err();
    assert!(e.to_string().contains("at least 32 bytes"), "{e}");
    assert!(!format!("{:?}", JwtAuth::new(&settings, SECRET).unwrap()).contains("shared secret"));
    std::fs::write(dir.path().join("k.pem"), "not a key").unwrap();
    let text = "[project]\nname = \"p\"\n[services.a]\n[gateway.jwt]\nalgorithm = \"ES256\"\npublic_key = \"k.pem\"\n";
    let m = Manifest::from_str(text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let e = JwtAuth::new(&m.gateway_jwt.unwrap(), b"not a key").unwrap_err();
    assert!(e.to_string().contains("PEM"), "{e}");
}
