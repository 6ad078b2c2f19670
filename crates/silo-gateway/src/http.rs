//! The HTTP face: `POST /v1/query`, `/v1/write`, `/v1/schema`, `GET /healthz`,
//! `GET /readyz`, `GET /metrics`, `GET /openapi.json`. Requests go through
//! [`crate::dispatch`], which NATS shares. Every response carries `X-Request-Id`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::json;

use crate::dispatch::{self, Operation, RequestContext};
use crate::error::GatewayError;
use crate::identity::Credential;
use crate::{Gateway, exec, request_id};

/// The content type of every JSON answer (as `axum::Json` sets it).
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A request's id, put in its extensions by [`tag`].
#[derive(Debug, Clone)]
struct RequestId(Arc<str>);

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let response = (self.status, axum::Json(self.body())).into_response();
        with_retry_after(response, &self)
    }
}

/// `Retry-After` on an answer to a refusal that names when to come back
/// (rate limit, pool exhausted).
fn with_retry_after(mut response: Response, e: &GatewayError) -> Response {
    if let Some(seconds) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
}

/// The gateway's routes.
pub fn router(gateway: Arc<Gateway>) -> Router {
    // The largest any service may send; each service's own limit is
    // checked once the caller is known (crate::dispatch).
    let limit = gateway.max_body_bytes();
    Router::new()
        .route("/v1/query", post(query))
        .route("/v1/write", post(write))
        .route("/v1/schema", post(schema))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(tag))
        .with_state(gateway)
}

/// Gives every request its id (the caller's when sane, else a new one)
/// and echoes it on the response, whatever route or rejection answers.
async fn tag(mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok());
    let id: Arc<str> = request_id::accept(presented).into();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(request_id::HEADER, value);
    }
    resp
}

async fn query(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(&gw, &id, &headers, Operation::Query, body).await
}

async fn write(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(&gw, &id, &headers, Operation::Write, body).await
}

async fn schema(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    run(&gw, &id, &headers, Operation::Schema, body).await
}

async fn run(
    gw: &Gateway,
    id: &RequestId,
    headers: &HeaderMap,
    operation: Operation,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ctx = RequestContext {
        transport: "http",
        request_id: &id.0,
    };
    let credential = credential(headers);
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            // Over the largest limit of any service (the HTTP layer stops
            // reading there), or a body that broke off.
            let error = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                GatewayError::payload_too_large(gw.max_body_bytes())
            } else {
                GatewayError::bad_request(format!("the body could not be read: {rejection}"))
            };
            let error = dispatch::refused(gw, &ctx, credential, operation.name(), error);
            return answer_error(&error, &id.0);
        }
    };
    match dispatch::handle(gw, &ctx, credential, operation, &body).await {
        Ok(json) => ([(header::CONTENT_TYPE, JSON)], json).into_response(),
        Err(e) => answer_error(&e, &id.0),
    }
}

/// The caller's credential: its `Authorization` header, if any.
fn credential(headers: &HeaderMap) -> Credential<'_> {
    Credential::from(
        headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("")),
    )
}

/// `e` as the gateway's JSON error body naming `request_id`.
fn answer_error(e: &GatewayError, request_id: &str) -> Response {
    with_retry_after(
        (e.status, axum::Json(e.body_for(request_id))).into_response(),
        e,
    )
}

/// A path the gateway does not serve: 404 `UnknownRoute`, counted and
/// audited like every request.
async fn unknown_route(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let message = format!("the gateway serves no `{method} {}`", uri.path());
    refuse_route(
        &gw,
        &id,
        &headers,
        &uri,
        StatusCode::NOT_FOUND,
        "UnknownRoute",
        message,
    )
}

/// A served path asked with another method: 405 `MethodNotAllowed`.
async fn wrong_method(
    State(gw): State<Arc<Gateway>>,
    Extension(id): Extension<RequestId>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let message = format!("`{}` does not take {method}", uri.path());
    let status = StatusCode::METHOD_NOT_ALLOWED;
    refuse_route(
        &gw,
        &id,
        &headers,
        &uri,
        status,
        "MethodNotAllowed",
        message,
    )
}

/// The answer to a request no route takes: the error, with a hint naming
/// the operations, counted and audited under the operation its path
/// names (`none` for a path that names none).
fn refuse_route(
    gw: &Gateway,
    id: &RequestId,
    headers: &HeaderMap,
    uri: &Uri,
    status: StatusCode,
    code: &'static str,
    message: String,
) -> Response {
    let error = GatewayError::new(status, code, message).with_hint(
        "the operations are POST /v1/query, /v1/write and /v1/schema; \
         GET /openapi.json describes them",
    );
    let operation = uri
        .path()
        .strip_prefix("/v1/")
        .and_then(Operation::from_name)
        .map_or("none", Operation::name);
    let ctx = RequestContext {
        transport: "http",
        request_id: &id.0,
    };
    let error = dispatch::refused(gw, &ctx, credential(headers), operation, error);
    answer_error(&error, &id.0)
}

/// The OpenAPI document ([`crate::openapi`]), built once.
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::json(),
    )
        .into_response()
}

/// Prometheus text (see [`crate::prometheus`]).
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        gw.metrics(),
    )
        .into_response()
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
