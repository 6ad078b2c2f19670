//! One entry for every transport. HTTP and NATS both hand the caller's
//! credential, the operation and the raw body to [`handle`]; everything a
//! request goes through (authentication, routing, parsing, the store) is
//! here once, so the two faces cannot drift apart.
//!
//! Each request is checked in this order, and stops at the first failure:
//! the credential (401), the caller's own rate limit (429) and body size
//! (413), the body as JSON (400), the database it names
//! (404 unknown, 403 another service's: no connection to that store is
//! taken), the request's shape (400), its table and column names against
//! the caller's catalog (400), and only then the store.
//!
//! Every answer, success or failure, is counted in the gateway's metrics
//! and written to its audit log here, so no transport can skip either.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::audit::{Entry, Outcome};
use crate::error::GatewayError;
use crate::identity::Credential;
use crate::request::{QueryRequest, WriteRequest};
use crate::schema::SchemaRequest;
use crate::{Gateway, Served, events, exec, schema};

/// What a transport knows about a request besides its credential and body.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// `"http"` or `"nats"`.
    pub transport: &'static str,
    /// The request's id ([`crate::request_id`]): echoed to the caller, put
    /// in error bodies and audit lines.
    pub request_id: &'a str,
}

/// The operations of seed 003 that the gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Query,
    Write,
    Schema,
}

impl Operation {
    /// Every operation, in the order the docs list them.
    pub const ALL: [Operation; 3] = [Operation::Query, Operation::Write, Operation::Schema];

    /// The name used in URLs (`/v1/<name>`), NATS subjects and logs.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Query => "query",
            Operation::Write => "write",
            Operation::Schema => "schema",
        }
    }

    /// The operation a URL segment or subject token names.
    pub fn from_name(name: &str) -> Option<Self> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Runs one request: `credential` is what the caller offers as proof of
/// who it is, `body` the request's JSON. The answer is the response's
/// JSON, encoded once here (a transport sends it as it is). A transport
/// answers an error with [`GatewayError::body_for`] `ctx.request_id`.
pub async fn handle(
    gateway: &Gateway,
    ctx: &RequestContext<'_>,
    credential: Credential<'_>,
    operation: Operation,
    body: &[u8],
) -> Result<Vec<u8>, GatewayError> {
    let arrived = SystemTime::now();
    let started = Instant::now();
    let mut seen = Seen::default();
    let result = run(gateway, ctx, credential, operation, body, &mut seen).await;
    let outcome = match &result {
        Ok(_) => Outcome {
            status: 200,
            code: "ok",
        },
        Err(e) => Outcome::of(e),
    };
    record(
        gateway,
        ctx,
        operation.name(),
        arrived,
        started,
        seen,
        outcome,
    );
    result
}

/// Counts and audits a request a transport refused before [`handle`]
/// could take it (a body over every service's limit, a route or method
/// the gateway does not serve), then returns `error` for the transport to
/// answer. `operation` is the operation's name, or `"none"` for a route
/// that names none. The caller is named when its credential holds.
pub fn refused(
    gateway: &Gateway,
    ctx: &RequestContext<'_>,
    credential: Credential<'_>,
    operation: &'static str,
    error: GatewayError,
) -> GatewayError {
    let arrived = SystemTime::now();
    let started = Instant::now();
    let seen = Seen {
        service: gateway.authenticate(credential).ok(),
        ..Seen::default()
    };
    record(
        gateway,
        ctx,
        operation,
        arrived,
        started,
        seen,
        Outcome::of(&error),
    );
    error
}

/// One answer in the metrics and the audit log.
fn record(
    gateway: &Gateway,
    ctx: &RequestContext<'_>,
    operation: &'static str,
    arrived: SystemTime,
    started: Instant,
    seen: Seen<'_>,
    outcome: Outcome,
) {
    let took = started.elapsed();
    gateway
        .metrics
        .request(seen.service.unwrap_or(""), operation, outcome.code, took);
    if let Some(audit) = &gateway.audit {
        audit.record(Entry {
            time: arrived,
            request_id: ctx.request_id.to_string(),
            transport: ctx.transport,
            service: seen.service.map(str::to_string),
            operation,
            tables: seen.tables,
            rows: seen.rows,
            duration_ms: took.as_secs_f64() * 1000.0,
            outcome,
        });
    }
}

/// What a request turned out to touch, as far as it got: names and
/// counts for the metrics and the audit log, never values.
#[derive(Default)]
struct Seen<'g> {
    service: Option<&'g str>,
    tables: Vec<String>,
    rows: Option<u64>,
}

impl Seen<'_> {
    fn table(&mut self, table: &str) {
        if !self.tables.iter().any(|t| t == table) {
            self.tables.push(table.to_string());
        }
    }
}

async fn run<'g>(
    gateway: &'g Gateway,
    ctx: &RequestContext<'_>,
    credential: Credential<'_>,
    operation: Operation,
    body: &[u8],
    seen: &mut Seen<'g>,
) -> Result<Vec<u8>, GatewayError> {
    match operation {
        Operation::Query => {
            let (served, req) = admit::<QueryRequest>(gateway, credential, body, operation, seen)?;
            seen.table(&req.query.table);
            let response = exec::query(served, &req).await?;
            seen.rows = Some(response.rows.len() as u64);
            encode(&response)
        }
        Operation::Write => {
            let (served, req) = admit::<WriteRequest>(gateway, credential, body, operation, seen)?;
            for op in &req.transaction.operations {
                seen.table(&op.table);
            }
            let events = events::events_for(served).with_request_id(Some(ctx.request_id));
            let response = exec::write(served, &gateway.config, &req, &events).await?;
            seen.rows = Some(response.results.iter().map(|r| r.rows_affected).sum());
            encode(&response)
        }
        Operation::Schema => {
            let (served, req) = admit::<SchemaRequest>(gateway, credential, body, operation, seen)?;
            let mut hook = events::MigrationEvents {
                events: events::events_for(served).with_request_id(Some(ctx.request_id)),
            };
            encode(&schema::run(served, &req, &mut hook).await?)
        }
    }
}

/// A request body's address: the database it names and the operation it
/// says it is, read from the typed request.
pub(crate) trait Addressed {
    fn database(&self) -> &str;
    fn operation(&self) -> Option<&str>;
}

impl Addressed for QueryRequest {
    fn database(&self) -> &str {
        &self.database
    }
    fn operation(&self) -> Option<&str> {
        self.operation.as_deref()
    }
}

impl Addressed for WriteRequest {
    fn database(&self) -> &str {
        &self.database
    }
    fn operation(&self) -> Option<&str> {
        self.operation.as_deref()
    }
}

impl Addressed for SchemaRequest {
    fn database(&self) -> &str {
        &self.database
    }
    fn operation(&self) -> Option<&str> {
        self.operation.as_deref()
    }
}

/// The caller, its store, and its request parsed, in the order above.
fn admit<'g, T: DeserializeOwned + Addressed>(
    gateway: &'g Gateway,
    credential: Credential<'_>,
    body: &[u8],
    operation: Operation,
    seen: &mut Seen<'g>,
) -> Result<(&'g Arc<Served>, T), GatewayError> {
    let caller = gateway.authenticate(credential)?;
    seen.service = Some(caller);
    // The caller's own limits, before any work is spent on its request.
    if let Some(own) = gateway.served.get(caller) {
        own.limits.admit()?;
        own.limits.check_body(body.len())?;
    }
    // A well-formed request is parsed once, straight into its type. Any
    // body that does not parse takes the step-by-step path below, whose
    // checks come in the documented order and name what is wrong.
    if let Ok(request) = serde_json::from_slice::<T>(body) {
        let served = gateway.route(caller, request.database())?;
        if let Some(op) = request.operation()
            && op != operation.name()
        {
            return Err(wrong_operation(operation));
        }
        return Ok((served, request));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::bad_request(format!("the body is not JSON: {e}")))?;
    let database = value
        .get("database")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::bad_request("the request names no `database`"))?;
    let served = gateway.route(caller, database)?;
    if let Some(op) = value.get("operation")
        && op.as_str() != Some(operation.name())
    {
        return Err(wrong_operation(operation));
    }
    let request = serde_json::from_value(value)
        .map_err(|e| GatewayError::bad_request(format!("the request is malformed: {e}")))?;
    Ok((served, request))
}

fn wrong_operation(operation: Operation) -> GatewayError {
    GatewayError::bad_request(format!(
        "this endpoint runs `\"operation\":\"{}\"`",
        operation.name()
    ))
}

/// The response as JSON, straight from its type (no intermediate tree).
fn encode(response: &impl serde::Serialize) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(response)
        .map_err(|e| GatewayError::internal(format!("could not encode the response: {e}")))
}
