//! The HTTP face: `POST /v1/query`, `POST /v1/write`, `GET /healthz`,
//! `GET /readyz`.
//!
//! Each request is checked in this order, and stops at the first failure:
//! the credential (401), the body as JSON (400), the database it names
//! (404 unknown, 403 another service's: no connection to that store is
//! taken), the request's shape (400), its table and column names against
//! the caller's catalog (400), and only then the store.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::error::GatewayError;
use crate::request::{QueryRequest, WriteRequest};
use crate::{Gateway, Served, exec};

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.config.body_limit;
    Router::new()
        .route("/v1/query", post(query))
        .route("/v1/write", post(write))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

/// Serves `gateway` on `listener` until `shutdown` completes, then stops
/// taking connections and lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(gateway))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The caller, its store, and its request parsed, in the order above.
fn admit<'g, T: DeserializeOwned>(
    gateway: &'g Gateway,
    headers: &HeaderMap,
    body: &[u8],
    operation: &str,
) -> Result<(&'g Arc<Served>, T), GatewayError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let caller = gateway.identities.authenticate(authorization)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("the body is not JSON: {e}")))?;
    let database = value
        .get("database")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::bad_request("the request names no `database`"))?;
    let served = gateway.route(caller, database)?;
    if let Some(op) = value.get("operation")
        && op.as_str() != Some(operation)
    {
        return Err(GatewayError::bad_request(format!(
            "this endpoint runs `\"operation\":\"{operation}\"`"
        )));
    }
    let request = serde_json::from_value(value)
        .map_err(|e| GatewayError::bad_request(format!("the request is malformed: {e}")))?;
    Ok((served, request))
}

async fn query(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let (served, req) = admit::<QueryRequest>(&gw, &headers, &body, "query")?;
        exec::query(served, &gw.config, &req).await
    }
    .await;
    match result {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn write(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let (served, req) = admit::<WriteRequest>(&gw, &headers, &body, "write")?;
        exec::write(served, &gw.config, &req).await
    }
    .await;
    match result {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready when every served store answers as its service.
async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let mut services = serde_json::Map::new();
    let mut ready = true;
    for name in gw.services() {
        let served = &gw.served[name];
        let state = match exec::ping(served).await {
            Ok(()) => json!("ok"),
            Err(e) => {
                ready = false;
                json!(e.message)
            }
        };
        services.insert(name.to_string(), state);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ready { "ready" } else { "not ready" }, "services": services});
    (status, axum::Json(body)).into_response()
}
