//! `silo audit --fix`: the remediation of fixable findings, planned as a
//! list of steps (SQL grouped per database, each group one transaction;
//! credential rotations; file modes) and applied in that order.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use silo_manifest::{Engine, Manifest};
use silo_store::Stores;
use sqlx::{AssertSqlSafe, Connection};

use crate::live::server_key;
use crate::{Finding, Fix, Report};
use silo_store::{ServerId, root_cause};

/// One thing `--fix` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Statements run in one transaction, as the administrator.
    Sql {
        server: ServerId,
        /// `None`: the admin URL's database.
        database: Option<String>,
        statements: Vec<String>,
    },
    Rotate {
        service: String,
    },
    Chmod {
        path: PathBuf,
        mode: u32,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Sql {
                server,
                database,
                statements,
            } => {
                let server = match server.url_env() {
                    Some(v) => format!("the server in ${v}"),
                    None => "the shared server".to_string(),
                };
                match database {
                    Some(db) => writeln!(f, "in database {db} on {server}, one transaction:")?,
                    None => writeln!(f, "on {server}, one transaction:")?,
                }
                for s in statements {
                    writeln!(f, "  {s}")?;
                }
                Ok(())
            }
            Step::Rotate { service } => {
                writeln!(
                    f,
                    "rotate the credentials of `{service}` (new password, new secrets file)"
                )
            }
            Step::Chmod { path, mode } => writeln!(f, "chmod {mode:o} {}", path.display()),
        }
    }
}

/// The steps that fix every fixable finding, deduplicated. Role statements
/// come first, then each database's, then rotations and file modes.
pub fn plan(report: &Report) -> Vec<Step> {
    // (server, database) → (phase, statement) in first-seen order.
    type Target = (ServerId, Option<String>);
    let mut groups: Vec<(Target, Vec<(u8, String)>)> = Vec::new();
    let mut rest: Vec<Step> = Vec::new();
    for fix in report.findings.iter().filter_map(|f| f.fix.as_ref()) {
        match fix {
            Fix::Sql {
                server,
                database,
                statements,
                phase,
            } => {
                let key = (server.clone(), database.clone());
                let at = match groups.iter().position(|(k, _)| *k == key) {
                    Some(at) => at,
                    None => {
                        groups.push((key, Vec::new()));
                        groups.len() - 1
                    }
                };
                for s in statements {
                    if !groups[at].1.iter().any(|(_, seen)| seen == s) {
                        groups[at].1.push((*phase, s.clone()));
                    }
                }
            }
            Fix::Rotate { service } => {
                let step = Step::Rotate {
                    service: service.clone(),
                };
                if !rest.contains(&step) {
                    rest.push(step);
                }
            }
            Fix::Chmod { path, mode } => {
                let step = Step::Chmod {
                    path: path.clone(),
                    mode: *mode,
                };
                if !rest.contains(&step) {
                    rest.push(step);
                }
            }
        }
    }
    // Cluster-wide statements (database `None`) first: a database's own
    // fixes may rely on ownership restored there.
    groups.sort_by_key(|((_, database), _)| database.is_some());
    let mut steps: Vec<Step> = groups
        .into_iter()
        .map(|((server, database), mut statements)| {
            statements.sort_by_key(|(phase, _)| *phase);
            Step::Sql {
                server,
                database,
                statements: statements.into_iter().map(|(_, s)| s).collect(),
            }
        })
        .collect();
    steps.extend(rest);
    steps
}

/// Findings `--fix` leaves to people.
pub fn unfixable(report: &Report) -> Vec<&Finding> {
    report.findings.iter().filter(|f| f.fix.is_none()).collect()
}

/// Applies one step. A failed SQL step is rolled back whole.
pub async fn apply(step: &Step, manifest: &Manifest, stores: &Stores) -> Result<(), String> {
    match step {
        Step::Sql {
            server,
            database,
            statements,
        } => {
            let service = manifest
                .services
                .iter()
                .find(|s| s.engine == Engine::Postgres && server_key(s) == *server)
                .ok_or_else(|| "no service of the manifest is on that server".to_string())?;
            let admin = stores.admin(service).map_err(|e| e.to_string())?;
            let mut conn = match database {
                Some(db) => admin.connect_in(db).await,
                None => admin.connect().await,
            }
            .map_err(|e| root_cause(&e))?;
            let result = async {
                let mut tx = conn.begin().await?;
                for s in statements {
                    sqlx::raw_sql(AssertSqlSafe(s.clone()))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await;
            let _ = conn.close().await;
            result.map_err(|e| match e {
                sqlx::Error::Database(db) => db.message().to_string(),
                other => root_cause(&other),
            })
        }
        Step::Rotate { service } => {
            let service = manifest
                .service(service)
                .ok_or_else(|| format!("unknown service `{service}`"))?;
            let engine = stores.engine(service).map_err(|e| e.to_string())?;
            engine.rotate(service).await.map_err(|e| {
                let cause = root_cause(&e);
                if cause == e.to_string() {
                    cause
                } else {
                    format!("{e}: {cause}")
                }
            })
        }
        Step::Chmod { path, mode } => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}
