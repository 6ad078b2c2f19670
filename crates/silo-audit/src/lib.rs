//! `silo audit`: prove on the live servers and in the source code that
//! every service's store is its own, and name every hole with its fix.
//!
//! - [`audit`] runs the checks and returns a [`Report`]: the access matrix
//!   of PostgreSQL roles against stores, and the findings.
//! - The live side reads each server's catalog once and each service
//!   database's once ([`catalog`]), makes real connection attempts with the
//!   services' own credentials ([`probe`]), and hands that snapshot to one
//!   module per check under [`checks`].
//! - The source scan ([`scan`]) reads each service's folder offline.
//! - [`fix`] applies the remediation of fixable findings; [`render`] prints
//!   reports.

pub mod catalog;
pub mod checks;
pub mod docs;
pub mod finding;
pub mod fix;
pub mod live;
pub mod probe;
pub mod render;
pub mod scan;
pub mod secrets;

use std::collections::HashMap;

use silo_manifest::{Engine, Manifest};
use silo_store::{StoreError, Stores};

pub use finding::{
    Access, Cell, Check, Finding, Fix, Location, Position, Report, Severity, Skipped, SkippedPath,
};

/// What to audit and how hard.
#[derive(Debug, Clone)]
pub struct Options {
    /// Report only findings and matrix cells involving these services
    /// (all when empty). Every service is still read: a hole has two ends.
    pub services: Vec<String>,
    /// Run the checks against the live servers and files.
    pub live: bool,
    /// Scan the services' source folders.
    pub code: bool,
    /// Probe every role against every store on its server, not only its
    /// own store and one sibling.
    pub thorough: bool,
    /// Service databases read at once.
    pub jobs: usize,
    /// Connection probes made at once.
    pub probe_jobs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            services: Vec::new(),
            live: true,
            code: true,
            thorough: false,
            jobs: 8,
            probe_jobs: 16,
        }
    }
}

/// Why an audit could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(StoreError),
    #[error("cannot reach PostgreSQL at {server} while {action}: {message}")]
    Unreachable {
        server: String,
        action: String,
        message: String,
    },
    #[error("missing admin privilege: {0}")]
    Privilege(String),
    #[error("{action} on {server} failed: {message}")]
    Sql {
        server: String,
        action: String,
        message: String,
    },
    #[error("cannot scan {path}: {message}")]
    Scan { path: String, message: String },
}

impl AuditError {
    pub(crate) fn from_sql(e: sqlx::Error, server: &str, action: &str) -> Self {
        let message = match &e {
            sqlx::Error::Database(db) => db.message().to_string(),
            other => silo_store::root_cause(other),
        };
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42501") => {
                AuditError::Privilege(format!("{action} on {server}: {message}"))
            }
            sqlx::Error::Database(db) if !db.code().is_some_and(|c| c.starts_with("28")) => {
                AuditError::Sql {
                    server: server.to_string(),
                    action: action.to_string(),
                    message,
                }
            }
            _ => AuditError::Unreachable {
                server: server.to_string(),
                action: action.to_string(),
                message,
            },
        }
    }

    /// A stable name for the kind of failure: the last part of the
    /// diagnostic code (`silo::audit::<kind>`, or the store's own).
    pub fn kind(&self) -> &'static str {
        match self {
            AuditError::Store(e) => e.kind(),
            AuditError::Unreachable { .. } => "unreachable",
            AuditError::Privilege(_) => "privilege",
            AuditError::Sql { .. } => "sql",
            AuditError::Scan { .. } => "scan",
        }
    }

    /// The documented exit code: an audit that cannot run is exit 2.
    pub fn exit_code(&self) -> u8 {
        2
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            AuditError::Store(e) => e.hint(),
            AuditError::Unreachable { .. } => Some(
                "start the server, or point SILO_PG_ADMIN_URL (or the service's url_env) at it; \
                 `silo audit --code-only` needs no server"
                    .into(),
            ),
            AuditError::Privilege(_) => Some(
                "run the audit as a superuser: it reads every service database's catalog and \
                 pg_hba_file_rules"
                    .into(),
            ),
            AuditError::Sql { .. } | AuditError::Scan { .. } => None,
        }
    }
}

/// Runs the audit.
pub async fn audit(
    manifest: &Manifest,
    stores: &Stores,
    options: &Options,
) -> Result<Report, AuditError> {
    let mut report = Report::default();
    let secrets: HashMap<String, secrets::SecretsFile> = manifest
        .services
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                secrets::SecretsFile::read(stores.secrets(), s),
            )
        })
        .collect();
    if options.live {
        // A store made on another engine than the manifest names would be
        // looked for in the wrong place and found clean: refuse, as every
        // other command does.
        for service in &manifest.services {
            stores.engine(service).map_err(AuditError::Store)?;
        }
        if manifest
            .services
            .iter()
            .any(|s| s.engine == Engine::Postgres)
        {
            let live = live::read(manifest, stores, options).await?;
            report.probes = live.probes.len();
            report.matrix = checks::cross_access::matrix(&live);
            checks::run_live(&live, &mut report);
        }
        checks::store_files::run(manifest, &mut report.findings);
        checks::leftovers::run(manifest, stores, &mut report.findings).await?;
        checks::event_types::run(manifest, stores, &mut report).await;
    }
    if options.code {
        scan::run(
            manifest,
            &secrets,
            &mut report.findings,
            &mut report.skipped_paths,
        )?;
    }
    if !options.services.is_empty() {
        let wanted = |name: &str| options.services.iter().any(|s| s == name);
        report
            .findings
            .retain(|f| wanted(&f.service) || f.other_service.as_deref().is_some_and(wanted));
        report
            .matrix
            .retain(|c| wanted(&c.role_service) || wanted(&c.store_service));
        report.skipped_paths.retain(|p| wanted(&p.service));
    }
    report.sort();
    Ok(report)
}

impl miette::Diagnostic for AuditError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(match self {
            AuditError::Store(e) => format!("silo::store::{}", e.kind()),
            other => format!("silo::audit::{}", other.kind()),
        }))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.hint()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display + 'a>)
    }
}
