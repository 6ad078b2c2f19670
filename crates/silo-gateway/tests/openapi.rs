//! The OpenAPI document at `GET /openapi.json`: it is a valid OpenAPI 3.1
//! document, it documents every route the router serves, and the examples
//! of docs/gateway.md are requests and responses it accepts.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use silo_gateway::{Gateway, GatewayConfig, openapi, router};
use silo_store::{Stores, StoresConfig};
use tower::ServiceExt;

/// Routes documented before the branch that serves them has landed; the
/// document may list them while the router does not serve them yet.
const DOCUMENTED_AHEAD: [&str; 2] = ["/metrics", "/v1/schema"];

fn document() -> Value {
    serde_json::from_str(openapi::json()).unwrap()
}

/// A router over no services: enough to see which routes exist.
fn app(dir: &Path) -> Router {
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: dir.to_path_buf(),
        admin_url: None,
        concurrency: 1,
    });
    router(Arc::new(
        Gateway::new(&stores, &[], GatewayConfig::default()).unwrap(),
    ))
}

async fn send(app: &Router, method: &str, path: &str) -> (u16, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body.to_vec())
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let meta: Value = serde_json::from_str(include_str!("data/openapi-3.1-schema.json")).unwrap();
    let validator = jsonschema::validator_for(&meta).unwrap();
    let doc = document();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    // The meta-schema refuses something that is not OpenAPI 3.1, so the
    // check above means something.
    assert!(!validator.is_valid(&json!({"openapi": "3.0.3", "info": {}})));
}

#[tokio::test]
async fn the_document_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (status, body) = send(&app(dir.path()), "GET", "/openapi.json").await;
    assert_eq!(status, 200);
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, document());
}

/// `(path, method)` of every `.route("PATH", METHOD(handler)...)` in the
/// crate's sources: the routes the router serves, read where they are
/// declared, so a route added later without documentation fails here.
fn declared_routes() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices(".route(\"") {
            let rest = &text[at + ".route(\"".len()..];
            let end = rest.find('"').unwrap();
            let route = rest[..end].to_string();
            // The method router after the path: `get(handler)`,
            // `post(handler).get(other)`, up to the next call on the router.
            let tail = &rest[end + 1..];
            let stop = [".route(", ".layer(", ".with_state(", ".merge(", ";"]
                .iter()
                .filter_map(|s| tail.find(s))
                .min()
                .unwrap_or(tail.len());
            let call = &tail[..stop];
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = call
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| !call[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                if called {
                    routes.push((route.clone(), method.to_string()));
                }
            }
        }
    }
    assert!(
        routes.len() >= 5,
        "the route scan found too little: {routes:?}"
    );
    routes
}

#[tokio::test]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let doc = document();
    let paths = doc["paths"].as_object().unwrap();
    for (route, method) in declared_routes() {
        assert!(
            paths
                .get(&route)
                .and_then(|item| item.get(&method))
                .is_some(),
            "{} {route} is served but not in the OpenAPI document (src/openapi.rs)",
            method.to_uppercase()
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path());
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            // An unserved path gets the gateway's fallback: 404
            // `UnknownRoute`. Every served route answers otherwise (401
            // without a token, or its own body).
            let (status, body) = send(&app, &method.to_uppercase(), path).await;
            let served = !unknown_route(status, &body);
            assert!(
                served || DOCUMENTED_AHEAD.contains(&path.as_str()),
                "{method} {path} is documented but not served"
            );
        }
    }
    // The probe tells a served route from an unserved one.
    let (status, body) = send(&app, "GET", "/v1/nothing").await;
    assert!(unknown_route(status, &body), "{status}");
    let (status, body) = send(&app, "GET", "/healthz").await;
    assert!(!unknown_route(status, &body), "{status}");
}

/// Whether an answer is the gateway's to a path it does not serve.
fn unknown_route(status: u16, body: &[u8]) -> bool {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    status == 404 && body["error"]["code"] == "UnknownRoute"
}

/// A validator for one component schema of the document.
fn validator(doc: &Value, name: &str) -> jsonschema::Validator {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "$ref": format!("#/components/schemas/{name}"),
    });
    jsonschema::validator_for(&schema).unwrap()
}

/// The component a JSON example of the docs is an instance of.
fn kind(example: &Value) -> Option<&'static str> {
    let has = |key: &str| example.get(key).is_some();
    Some(if has("query") {
        "QueryRequest"
    } else if has("transaction") {
        "WriteRequest"
    } else if has("action") {
        "SchemaRequest"
    } else if has("rows") {
        "QueryResponse"
    } else if has("results") {
        "WriteResponse"
    } else if has("error") {
        "ErrorBody"
    } else {
        return None;
    })
}

#[test]
fn the_examples_in_the_docs_are_valid() {
    let doc = document();
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gateway.md"),
    )
    .unwrap();
    let mut checked = Vec::new();
    for block in docs.split("```json\n").skip(1) {
        let text = &block[..block.find("```").unwrap()];
        let example: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("a JSON example of docs/gateway.md: {e}\n{text}"));
        let Some(name) = kind(&example) else {
            continue;
        };
        let errors: Vec<String> = validator(&doc, name)
            .iter_errors(&example)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name} example {example}: {errors:#?}");
        checked.push(name);
    }
    for name in ["QueryRequest", "WriteRequest", "SchemaRequest", "ErrorBody"] {
        assert!(
            checked.contains(&name),
            "docs/gateway.md has no {name} example"
        );
    }

    // The document's own request examples, too, and the gateway's parser
    // takes them: schema and code agree.
    for (path, name) in [
        ("/v1/query", "QueryRequest"),
        ("/v1/write", "WriteRequest"),
        ("/v1/schema", "SchemaRequest"),
    ] {
        let example =
            &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"];
        assert!(example.is_object(), "{path} has no example");
        assert!(validator(&doc, name).is_valid(example), "{path}: {example}");
    }
    let query =
        &doc["paths"]["/v1/query"]["post"]["requestBody"]["content"]["application/json"]["example"];
    serde_json::from_value::<silo_gateway::request::QueryRequest>(query.clone()).unwrap();
    let write =
        &doc["paths"]["/v1/write"]["post"]["requestBody"]["content"]["application/json"]["example"];
    serde_json::from_value::<silo_gateway::request::WriteRequest>(write.clone()).unwrap();
}

#[test]
fn the_schemas_refuse_what_the_parser_refuses() {
    let doc = document();
    let query = validator(&doc, "QueryRequest");
    for bad in [
        json!({"database": "d", "query": {"type": "select", "table": "t", "wher": {}}}),
        json!({"database": "d", "query": {"type": "delete", "table": "t"}}),
        json!({"database": "d", "query": {"type": "select", "table": "t",
            "where": {"field": "a", "operator": "; DROP TABLE t", "value": 1}}}),
        json!({"database": "d", "query": {"type": "select", "table": "t",
            "where": {"field": "a", "operator": "=", "value": 1, "extra": 1}}}),
    ] {
        assert!(!query.is_valid(&bad), "{bad}");
        assert!(
            serde_json::from_value::<silo_gateway::request::QueryRequest>(bad.clone()).is_err()
        );
    }
    let nested = json!({"database": "d", "query": {"type": "select", "table": "t",
        "where": {"and": [{"not": {"field": "a", "operator": "in", "value": [1]}},
                          {"or": []}]}}});
    assert!(query.is_valid(&nested));
}
