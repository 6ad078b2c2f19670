//! Proofs on scratch stores: `silo verify` (every undo restores the schema
//! its version found) and `silo diff` (the live schema is what the
//! migrations make).

use serde::Serialize;
use silo_manifest::{Manifest, Service};
use silo_store::Stores;
use silo_store::schema::{Difference, Schema, diff};

use crate::connect;
use crate::error::MigrateError;
use crate::file::Kind;
use crate::run::{self, MigrateOptions};
use crate::service::migrations;
use crate::state;
use crate::target::{LockPolicy, Target};

/// The outcome of `silo verify`.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// Versions whose undo was proven.
    pub proven: Vec<String>,
    /// Versions without an undo file (applied, not proven).
    pub without_undo: Vec<String>,
    /// The first version that broke the proof.
    pub failure: Option<VerifyFailure>,
}

/// Why a version's undo is not a proof.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VerifyFailure {
    /// V itself (or a re-apply of V after its undo) failed.
    Apply { version: String, error: String },
    /// The undo failed.
    Undo { version: String, error: String },
    /// The undo ran but the schema differs from before V.
    NotRestored {
        version: String,
        differences: Vec<Difference>,
    },
}

/// Runs the reversibility proof on a scratch store that is dropped after.
pub async fn verify(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
    mut on_version: impl FnMut(&str) + Send,
) -> Result<VerifyReport, MigrateError> {
    let engine = stores.engine(service)?;
    let scratch = engine.scratch(service).await?;
    let result = async {
        let mut target = connect::open_scratch(&scratch, service, policy).await?;
        let files = migrations(manifest, service)?;
        let prepared = run::prepare(&files, service)?;
        prove(target.as_mut(), &prepared, &mut on_version).await
    }
    .await;
    let dropped = engine.drop_scratch(&scratch).await;
    let report = result.map_err(on_scratch)?;
    dropped?;
    Ok(report)
}

/// A cancellation on a scratch store says so: what ran there is gone with
/// it, and the service's own store was not touched.
fn on_scratch(e: MigrateError) -> MigrateError {
    match e {
        MigrateError::Cancelled(_) => crate::run::cancelled(crate::error::Stopped::Scratch),
        other => other,
    }
}

async fn prove(
    target: &mut dyn Target,
    prepared: &[run::Prepared],
    on_version: &mut (dyn FnMut(&str) + Send),
) -> Result<VerifyReport, MigrateError> {
    // A cancelled step is no finding about the files: stop.
    let cancelled = |e: &MigrateError| e.is_cancelled();
    let mut report = VerifyReport {
        proven: Vec::new(),
        without_undo: Vec::new(),
        failure: None,
    };
    let versions: Vec<_> = prepared
        .iter()
        .filter(|p| p.migration.kind == Kind::Versioned)
        .filter_map(|p| p.migration.version.clone())
        .collect();
    let has_undo = |v: &crate::Version| {
        prepared
            .iter()
            .any(|p| p.migration.kind == Kind::Undo && p.migration.version.as_ref() == Some(v))
    };
    for v in versions {
        on_version(v.as_str());
        let upto = MigrateOptions {
            target: Some(v.clone()),
            ..Default::default()
        };
        if !has_undo(&v) {
            if let Err(e) = run::migrate(target, prepared, &upto, |_| {}).await {
                if cancelled(&e) {
                    return Err(e);
                }
                report.failure = Some(VerifyFailure::Apply {
                    version: v.to_string(),
                    error: e.describe(),
                });
                return Ok(report);
            }
            report.without_undo.push(v.to_string());
            continue;
        }
        let before = target.snapshot().await?;
        if let Err(e) = run::migrate(target, prepared, &upto, |_| {}).await {
            if cancelled(&e) {
                return Err(e);
            }
            report.failure = Some(VerifyFailure::Apply {
                version: v.to_string(),
                error: e.describe(),
            });
            return Ok(report);
        }
        if let Err(e) = run::undo(target, prepared, None, |_| {}).await {
            if cancelled(&e) {
                return Err(e);
            }
            report.failure = Some(VerifyFailure::Undo {
                version: v.to_string(),
                error: e.describe(),
            });
            return Ok(report);
        }
        let after = target.snapshot().await?;
        let differences = diff(&before, &after);
        if !differences.is_empty() {
            report.failure = Some(VerifyFailure::NotRestored {
                version: v.to_string(),
                differences,
            });
            return Ok(report);
        }
        if let Err(e) = run::migrate(target, prepared, &upto, |_| {}).await {
            if cancelled(&e) {
                return Err(e);
            }
            report.failure = Some(VerifyFailure::Apply {
                version: v.to_string(),
                error: format!("re-applying after the undo: {}", e.describe()),
            });
            return Ok(report);
        }
        report.proven.push(v.to_string());
    }
    Ok(report)
}

/// The live schema and the one the migrations make, and their differences
/// (from what the migrations make to what is live).
pub async fn drift(
    manifest: &Manifest,
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
) -> Result<Vec<Difference>, MigrateError> {
    let files = migrations(manifest, service)?;
    let mut live = connect::open(stores, service, policy.clone()).await?;
    let history = live.history().await?;
    let live_schema = live.snapshot().await?;
    drop(live);
    // Rebuild what the live store has applied: everything when nothing is
    // pending, else up to its newest applied version.
    let entries = state::entries(&files, &history);
    let pending = entries.iter().any(|e| {
        e.kind == crate::history::HistoryKind::Versioned && e.state == state::State::Pending
    });
    let options = MigrateOptions {
        target: if pending {
            state::replay(&history).newest()
        } else {
            None
        },
        ignore_mismatch: true,
        ..Default::default()
    };
    let engine = stores.engine(service)?;
    let scratch = engine.scratch(service).await?;
    let result: Result<Schema, MigrateError> = async {
        let mut target = connect::open_scratch(&scratch, service, policy).await?;
        let prepared = run::prepare(&files, service)?;
        if options.target.is_some() || !history.is_empty() {
            run::migrate(target.as_mut(), &prepared, &options, |_| {}).await?;
        }
        target.snapshot().await
    }
    .await;
    let dropped = engine.drop_scratch(&scratch).await;
    let expected = result.map_err(on_scratch)?;
    dropped?;
    Ok(diff(&expected, &live_schema))
}

/// The live schema of a service's store.
pub async fn dump(
    stores: &Stores,
    service: &Service,
    policy: LockPolicy,
) -> Result<Schema, MigrateError> {
    connect::open(stores, service, policy)
        .await?
        .snapshot()
        .await
}
