//! The HTTP face: `POST /v1/query`, `POST /v1/write`, `GET /healthz`,
//! `GET /readyz`. Requests go through [`crate::dispatch`], which NATS
//! shares.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;

use crate::dispatch::{self, Operation};
use crate::error::GatewayError;
use crate::identity::Credential;
use crate::{Gateway, exec};

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

async fn query(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    run(&gw, &headers, Operation::Query, &body).await
}

async fn write(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    run(&gw, &headers, Operation::Write, &body).await
}

async fn run(gw: &Gateway, headers: &HeaderMap, operation: Operation, body: &[u8]) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    match dispatch::handle(gw, Credential::from(authorization), operation, body).await {
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
