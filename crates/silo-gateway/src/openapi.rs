//! The OpenAPI 3.1 document served at `GET /openapi.json`, generated from
//! the request, response and error types themselves (utoipa), so the
//! document cannot drift from what the gateway parses and answers.
//!
//! Paths are described here, on bodiless functions, rather than on the
//! handlers in [`crate::http`]: routes for features still being built
//! (`/v1/schema`, `/metrics`) are documented before they are served, and
//! `tests/openapi.rs` checks every served route against this list.

use std::borrow::Cow;
use std::sync::OnceLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder, Schema,
};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::{ErrorBody, ErrorFields};
use crate::request::{
    Direction, IsolationLevel, Operation as WriteOperation, OperationKind, OperationResult,
    Operator, OrderBy, QueryRequest, QueryResponse, Select, SelectKind, Transaction, Where,
    WriteRequest, WriteResponse,
};

/// The document, built once.
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document as JSON, built once (what `GET /openapi.json` sends).
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().expect("the document encodes as JSON"))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "silo gateway",
        description = "Seed 003's storage service: each service's queries, writes and \
            migrations, run on its own store as its own database role. The caller's \
            bearer token names the service; a request naming another service's \
            database is refused with 403 before anything runs."
    ),
    paths(query, write, schema, healthz, readyz, metrics, openapi_json),
    components(schemas(
        QueryRequest,
        Select,
        SelectKind,
        OrderBy,
        Direction,
        Where,
        WriteRequest,
        Transaction,
        IsolationLevel,
        WriteOperation,
        OperationKind,
        QueryResponse,
        WriteResponse,
        OperationResult,
        SchemaRequest,
        SchemaAction,
        Migration,
        ErrorBody,
        ErrorFields,
    )),
    modifiers(&Security, &Errors),
    security(("bearer" = []))
)]
struct ApiDoc;

/// `Authorization: Bearer <SILO_GATEWAY_TOKEN>` (or a JWT naming the
/// service, where the manifest configures one).
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The error responses every `/v1/` operation can give, added once here
/// instead of repeated on each path (docs/gateway.md holds the SQLSTATE →
/// status map they come from).
struct Errors;

/// Status, and when the gateway gives it.
const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "The body is not JSON, is malformed, or names a table or column the caller's store lacks",
    ),
    ("401", "No credential, or one no service holds"),
    (
        "403",
        "The database is another service's (`UnauthorizedAccess`); nothing ran",
    ),
    ("404", "No service has this database (`InvalidDatabase`)"),
    (
        "413",
        "The body is larger than the service's limit, or than any service's (`PayloadTooLarge`)",
    ),
    (
        "409",
        "Unique or foreign key violation, serialization failure or deadlock (after retries)",
    ),
    (
        "422",
        "Not-null or check violation, or a value of the wrong type",
    ),
    (
        "429",
        "The service sent more requests per second than its limit",
    ),
    (
        "500",
        "The store failed in a way the gateway did not expect",
    ),
    (
        "503",
        "Every connection of the service is busy, or its store is unreachable",
    ),
    ("504", "The statement ran past the service's timeout"),
];

impl Modify for Errors {
    fn modify(&self, doc: &mut Document) {
        let error = |description: &str| -> RefOr<Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let Some(op): Option<&mut Operation> = item.post.as_mut() else {
                continue;
            };
            for (status, description) in ERRORS {
                op.responses
                    .responses
                    .entry((*status).to_string())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

/// The `where` tree: a comparison, or `and`/`or` of a list of trees, or
/// `not` of one tree.
impl PartialSchema for Where {
    fn schema() -> RefOr<Schema> {
        let closed = |builder: ObjectBuilder| {
            builder
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
        };
        let list = || ArrayBuilder::new().items(Ref::from_schema_name("Where"));
        let operators: Vec<&str> = Operator::ALL.iter().map(|(name, _)| *name).collect();
        let compare = closed(ObjectBuilder::new())
            .description(Some(
                "A comparison. `value` is a list for `in`/`not_in`, a string pattern for \
                 `like`/`ilike`, `true`/`false`/absent for `is_null`, and one plain value \
                 otherwise (compare with null through `is_null`).",
            ))
            .property("field", ObjectBuilder::new().schema_type(Type::String))
            .property(
                "operator",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(operators)),
            )
            .property(
                "value",
                ObjectBuilder::new().schema_type(SchemaType::AnyValue),
            )
            .required("field")
            .required("operator");
        let and = closed(ObjectBuilder::new())
            .description(Some("Every condition holds (`{\"and\":[]}` is every row)."))
            .property("and", list())
            .required("and");
        let or = closed(ObjectBuilder::new())
            .description(Some("At least one condition holds."))
            .property("or", list())
            .required("or");
        let not = closed(ObjectBuilder::new())
            .description(Some("The condition does not hold."))
            .property("not", Ref::from_schema_name("Where"))
            .required("not");
        OneOfBuilder::new()
            .item(compare)
            .item(and)
            .item(or)
            .item(not)
            .into()
    }
}

impl ToSchema for Where {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Where")
    }
}

/// `POST /v1/schema` (seed 003 §11.3): migrations sent by the service for
/// its own store, run through silo's migration engine.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the body; the route parses it itself
struct SchemaRequest {
    /// `"schema"` when given (the seed's messages carry it).
    operation: Option<String>,
    database: String,
    action: SchemaAction,
    /// The version the migrations bring the store to (`migrate`).
    version: Option<String>,
    description: Option<String>,
    /// The migrations, in order (`migrate`, `validate`).
    #[schema(default = json!([]))]
    migrations: Option<Vec<Migration>>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum SchemaAction {
    /// Apply what the store lacks.
    Migrate,
    /// Report the store's applied versions.
    Status,
    /// Check the migrations against the store's history without applying.
    Validate,
}

/// One migration: the SQL that applies it and the SQL that undoes it.
#[derive(ToSchema)]
#[allow(dead_code)]
struct Migration {
    up: String,
    down: Option<String>,
}

/// Runs a `select` of one of the caller's tables.
#[utoipa::path(
    post,
    path = "/v1/query",
    tag = "operations",
    request_body(
        content = QueryRequest,
        example = json!({"database": "character_db", "query": {"type": "select",
            "table": "characters", "fields": ["id", "name"],
            "where": {"field": "level", "operator": ">", "value": 5}}})
    ),
    responses(
        (status = 200, description = "The rows, and where the next page starts", body = QueryResponse)
    )
)]
#[allow(dead_code)]
fn query() {}

/// Runs every operation in one transaction: all or nothing.
#[utoipa::path(
    post,
    path = "/v1/write",
    tag = "operations",
    request_body(
        content = WriteRequest,
        example = json!({"database": "campaign_db", "transaction": {"operations": [
            {"type": "insert", "table": "campaigns", "data": {"id": 1, "name": "Curse of Strahd"}},
            {"type": "update", "table": "chapters", "data": {"title": "Into the Mists"},
             "where": {"field": "id", "operator": "=", "value": 1}}
        ]}})
    ),
    responses(
        (status = 200, description = "What each operation changed", body = WriteResponse)
    )
)]
#[allow(dead_code)]
fn write() {}

/// Migrates, reports or validates the caller's schema through silo's
/// migration engine (history, locks, checksums).
#[utoipa::path(
    post,
    path = "/v1/schema",
    tag = "operations",
    request_body(
        content = SchemaRequest,
        example = json!({"database": "auth_db", "action": "migrate", "version": "2",
            "description": "sessions",
            "migrations": [{"up": "CREATE TABLE sessions (id TEXT PRIMARY KEY)",
                            "down": "DROP TABLE sessions"}]})
    ),
    responses(
        (status = 200, description = "The store's schema versions after the action",
         body = Object)
    )
)]
#[allow(dead_code)]
fn schema() {}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Always `{\"status\":\"ok\"}`", body = Object,
        example = json!({"status": "ok"})))
)]
#[allow(dead_code)]
fn healthz() {}

/// Ready: every served store answers as its service.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Every store answered", body = Object,
         example = json!({"status": "ready", "services": {"character": "ok"}})),
        (status = 503, description = "A store did not answer; its entry says why", body = Object)
    )
)]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics: requests, latency histograms and pool use, per
/// service and operation.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text exposition format",
        content_type = "text/plain", body = String))
)]
#[allow(dead_code)]
fn metrics() {}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
#[allow(dead_code)]
fn openapi_json() {}
