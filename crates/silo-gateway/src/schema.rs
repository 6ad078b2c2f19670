//! `POST /v1/schema` (seed 003's schema request): a service migrates its
//! own store through silo's migration engine, as its own role.
//!
//! A migration sent here is the file `V<version>__<description>.sql` with
//! its `up` as text (silo-migrate's [`silo_migrate::given`]): same
//! checksum, same history row, same lock and one transaction per
//! migration as `silo migrate`, so either tool sees what the other did.
//! Its `down` is kept in the store as its undo (`silo undo` runs it).
//!
//! - `migrate`: applies what is pending of the given migrations;
//! - `status`: the store's history;
//! - `validate`: the given migrations against the history, running
//!   nothing.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use silo_migrate::given::{self, Given, GivenError};
use silo_migrate::history::HistoryRow;
use silo_migrate::state::State;
use silo_migrate::{Applied, Cancel, LockPolicy, MigrateError, Migration, Target};

use crate::Served;
use crate::error::{GatewayError, sqlite_sqlstate};
use crate::events::MigrationEvents;

/// `POST /v1/schema`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRequest {
    /// `"schema"` when given (the seed's messages carry it).
    #[serde(default, deserialize_with = "crate::request::operation_name")]
    pub operation: Option<String>,
    pub database: String,
    pub action: SchemaAction,
    /// The first migration's version; the one after the store's newest
    /// when absent.
    #[serde(default, deserialize_with = "version_text")]
    pub version: Option<String>,
    /// The description of every migration that names none (`gateway`).
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub migrations: Vec<GivenMigration>,
}

/// What a schema request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaAction {
    Migrate,
    Status,
    Validate,
}

/// One migration, as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GivenMigration {
    pub up: String,
    #[serde(default)]
    pub down: Option<String>,
    /// This migration's own version (after the first: the one after the
    /// migration before it when absent).
    #[serde(default, deserialize_with = "version_text")]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A version as text, also when sent as a JSON number (`"version": 3`).
fn version_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(Option::<Text>::deserialize(d)?.map(|t| match t {
        Text::Text(s) => s,
        Text::Number(n) => n.to_string(),
    }))
}

/// What a schema request returns.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaResponse {
    pub action: SchemaAction,
    /// The store's newest applied version, after the request.
    pub version: Option<String>,
    /// `migrate`: the migrations applied now (none when all were applied
    /// before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<Vec<AppliedMigration>>,
    /// `validate`: each given migration's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<Vec<MigrationState>>,
    /// `status`: the store's history, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryRow>>,
}

/// One migration applied by a `migrate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppliedMigration {
    pub version: Option<String>,
    pub script: String,
    pub execution_time_ms: i32,
}

/// One given migration against the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationState {
    pub version: Option<String>,
    pub script: String,
    /// `pending`, `applied`, `checksum-mismatch`, `failed`, ... as `silo
    /// info` says.
    pub state: String,
}

impl SchemaRequest {
    /// The given migrations, top-level `version` and `description` filled
    /// in.
    fn given(&self) -> Vec<Given> {
        self.migrations
            .iter()
            .enumerate()
            .map(|(i, m)| Given {
                version: m
                    .version
                    .clone()
                    .or_else(|| (i == 0).then(|| self.version.clone()).flatten()),
                description: m.description.clone().or_else(|| self.description.clone()),
                up: m.up.clone(),
                down: m.down.clone(),
            })
            .collect()
    }
}

/// Runs a schema request on `served`'s store, as the service, with
/// `hook`'s writes in each migration's own transaction.
pub async fn run(
    served: &Arc<Served>,
    req: &SchemaRequest,
    hook: &mut MigrationEvents,
) -> Result<SchemaResponse, GatewayError> {
    if req.action == SchemaAction::Status && !req.migrations.is_empty() {
        return Err(GatewayError::bad_request(
            "`status` takes no migrations: it reports the store's history",
        ));
    }
    let policy = LockPolicy {
        // A request waits for another migration of the store no longer
        // than it waits for a connection.
        timeout: served.limits.values.acquire_timeout,
        on_wait: Arc::new(|_| {}),
        cancel: Cancel::new(),
    };
    let mut target =
        silo_migrate::connect::open_as(&served.pool.credentials(), &served.service, policy)
            .await
            .map_err(|e| migrate_error(&served.service.name, &e))?;
    let target = target.as_mut();
    let result = match req.action {
        SchemaAction::Status => status(target).await,
        SchemaAction::Validate => validate(target, req).await,
        SchemaAction::Migrate => {
            let r = migrate(served, target, req, hook).await;
            // Whatever ran, the catalog is read again on next use.
            served.catalog.invalidate();
            r
        }
    };
    match result {
        Ok(response) => Ok(response),
        Err(Failure::Given(e)) => Err(GatewayError::bad_request(e.0)),
        Err(Failure::Gateway(e)) => Err(e),
        Err(Failure::Migrate(e)) => {
            let error = migrate_error(&served.service.name, &e);
            // The store refused a statement (it rolled back): told like a
            // refused write.
            if error.sqlstate.is_some() {
                hook.failed(target, &error).await;
            }
            Err(error)
        }
    }
}

enum Failure {
    Given(GivenError),
    Gateway(GatewayError),
    Migrate(MigrateError),
}

impl From<MigrateError> for Failure {
    fn from(e: MigrateError) -> Self {
        Failure::Migrate(e)
    }
}

async fn newest(target: &mut dyn Target) -> Result<Option<String>, MigrateError> {
    Ok(given::newest(target).await?.map(|v| v.to_string()))
}

async fn status(target: &mut dyn Target) -> Result<SchemaResponse, Failure> {
    let history = target.history().await?;
    Ok(SchemaResponse {
        action: SchemaAction::Status,
        version: newest(target).await?,
        applied: None,
        migrations: None,
        history: Some(history),
    })
}

/// The given files, versions resolved against the store's newest.
async fn files(target: &mut dyn Target, req: &SchemaRequest) -> Result<Vec<Migration>, Failure> {
    let newest = given::newest(target).await?;
    given::files(&req.given(), newest.as_ref()).map_err(Failure::Given)
}

async fn validate(target: &mut dyn Target, req: &SchemaRequest) -> Result<SchemaResponse, Failure> {
    let files = files(target, req).await?;
    let history = target.history().await?;
    let entries = given::validate(&files, &history);
    if let Some(e) = classify(&entries) {
        return Err(Failure::Gateway(e));
    }
    Ok(SchemaResponse {
        action: SchemaAction::Validate,
        version: newest(target).await?,
        applied: None,
        migrations: Some(
            entries
                .iter()
                .map(|e| MigrationState {
                    version: e.version.clone(),
                    script: e.script.clone(),
                    state: e.state.as_str().to_string(),
                })
                .collect(),
        ),
        history: None,
    })
}

/// The 409 for given migrations the history disagrees with: one changed
/// since it was applied, or one failed or stopped part way.
fn classify(entries: &[silo_migrate::Entry]) -> Option<GatewayError> {
    let problems = silo_migrate::state::problems(entries);
    let first = problems.first()?;
    let code = if problems
        .iter()
        .any(|p| p.state() == State::ChecksumMismatch)
    {
        "ChecksumMismatch"
    } else {
        "ValidationFailed"
    };
    let message = problems
        .iter()
        .find(|p| code != "ChecksumMismatch" || p.state() == State::ChecksumMismatch)
        .unwrap_or(first)
        .to_string();
    Some(
        GatewayError::new(StatusCode::CONFLICT, code, message)
            .with_hint("an applied migration never changes: send a new version instead"),
    )
}

async fn migrate(
    served: &Served,
    target: &mut dyn Target,
    req: &SchemaRequest,
    hook: &mut dyn Applied,
) -> Result<SchemaResponse, Failure> {
    let files = files(target, req).await?;
    let steps = match given::migrate(target, &served.service, &files, hook).await {
        Ok(steps) => steps,
        Err(MigrateError::Validation(message)) => {
            // Say which kind of disagreement, from the history as it is.
            let history = target.history().await?;
            let e = classify(&given::validate(&files, &history)).unwrap_or_else(|| {
                GatewayError::new(StatusCode::CONFLICT, "ValidationFailed", message)
            });
            return Err(Failure::Gateway(e));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(SchemaResponse {
        action: SchemaAction::Migrate,
        version: newest(target).await?,
        applied: Some(
            steps
                .into_iter()
                .map(|s| AppliedMigration {
                    version: s.version,
                    script: s.script,
                    execution_time_ms: s.execution_time_ms,
                })
                .collect(),
        ),
        migrations: None,
        history: None,
    })
}

/// The gateway's answer for what the migration engine said.
fn migrate_error(service: &str, e: &MigrateError) -> GatewayError {
    let refused =
        |message: String| GatewayError::new(StatusCode::CONFLICT, "MigrationRefused", message);
    match e {
        MigrateError::LockTimeout(waited) => GatewayError::new(
            StatusCode::CONFLICT,
            "MigrationLocked",
            format!("another migration of this store held its lock for {waited:?}"),
        )
        .with_hint("retry when the other migration has finished"),
        MigrateError::Validation(m) => {
            GatewayError::new(StatusCode::CONFLICT, "ValidationFailed", m.clone())
        }
        // Refused before it ran (a COMMIT in `up`, a file left open): no
        // SQLSTATE, the store was not asked.
        MigrateError::Failed(f) if f.code.is_none() => refused(f.to_string()),
        MigrateError::Failed(f) => {
            let code = f.code.as_deref().unwrap_or_default();
            // PostgreSQL gives a five-character SQLSTATE, SQLite its
            // result code (a number of at most four digits), mapped to the
            // SQLSTATE PostgreSQL would give.
            let sqlstate = match code.parse::<i32>() {
                Ok(n) if code.len() < 5 => sqlite_sqlstate(n, &f.message).to_string(),
                _ => code.to_string(),
            };
            let mut err = GatewayError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "MigrationFailed",
                f.to_string(),
            );
            err.sqlstate = Some(sqlstate);
            err.detail = f.statement.clone();
            err.with_hint(f.help())
        }
        MigrateError::Store(e) => GatewayError::store_unavailable(service, &e.to_string()),
        MigrateError::Sql { source, .. } => GatewayError::from_sqlx(source),
        MigrateError::Refused(_)
        | MigrateError::ForeignHistory { .. }
        | MigrateError::Partial(_)
        | MigrateError::UnknownPlaceholder { .. }
        | MigrateError::NewerHistory { .. }
        | MigrateError::UnknownHistoryKind { .. }
        | MigrateError::Undo { .. } => refused(e.to_string()),
        _ => GatewayError::internal(format!("the migration engine failed: {e}")),
    }
}
