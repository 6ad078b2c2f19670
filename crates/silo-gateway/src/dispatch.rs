//! One entry for every transport. HTTP and NATS both hand the caller's
//! credential, the operation and the raw body to [`handle`]; everything a
//! request goes through (authentication, routing, parsing, the store) is
//! here once, so the two faces cannot drift apart.
//!
//! Each request is checked in this order, and stops at the first failure:
//! the credential (401), the body as JSON (400), the database it names
//! (404 unknown, 403 another service's: no connection to that store is
//! taken), the request's shape (400), its table and column names against
//! the caller's catalog (400), and only then the store.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::GatewayError;
use crate::identity::Credential;
use crate::request::{QueryRequest, WriteRequest};
use crate::{Gateway, Served, exec};

/// The operations of seed 003 that the gateway runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Query,
    Write,
}

impl Operation {
    /// Every operation, in the order the docs list them.
    pub const ALL: [Operation; 2] = [Operation::Query, Operation::Write];

    /// The name used in URLs (`/v1/<name>`), NATS subjects and logs.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Query => "query",
            Operation::Write => "write",
        }
    }

    /// The operation a URL segment or subject token names.
    pub fn from_name(name: &str) -> Option<Self> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }
}

/// Runs one request: `credential` is what the caller offers as proof of
/// who it is, `body` the request's JSON.
pub async fn handle(
    gateway: &Gateway,
    credential: Credential<'_>,
    operation: Operation,
    body: &[u8],
) -> Result<Value, GatewayError> {
    match operation {
        Operation::Query => {
            let (served, req) = admit::<QueryRequest>(gateway, credential, body, operation)?;
            to_value(exec::query(served, &gateway.config, &req).await?)
        }
        Operation::Write => {
            let (served, req) = admit::<WriteRequest>(gateway, credential, body, operation)?;
            to_value(exec::write(served, &gateway.config, &req).await?)
        }
    }
}

/// The caller, its store, and its request parsed, in the order above.
fn admit<'g, T: DeserializeOwned>(
    gateway: &'g Gateway,
    credential: Credential<'_>,
    body: &[u8],
    operation: Operation,
) -> Result<(&'g Arc<Served>, T), GatewayError> {
    let caller = gateway.identities.authenticate(credential)?;
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
        return Err(GatewayError::bad_request(format!(
            "this endpoint runs `\"operation\":\"{}\"`",
            operation.name()
        )));
    }
    let request = serde_json::from_value(value)
        .map_err(|e| GatewayError::bad_request(format!("the request is malformed: {e}")))?;
    Ok((served, request))
}

fn to_value(response: impl serde::Serialize) -> Result<Value, GatewayError> {
    serde_json::to_value(response)
        .map_err(|e| GatewayError::internal(format!("could not encode the response: {e}")))
}
