//! silo's event contracts: each event type's JSON Schema, owned by the
//! service that publishes it and kept in its contracts folder
//! (`<source>/events/<type>.v<N>.json` unless silo.toml says otherwise).
//!
//! This crate reads no database, so `silo lint` can use it offline:
//! - [`Catalog`] finds and parses every contract, and lists the files in
//!   contracts folders that are not usable contracts, with line and column;
//! - [`Contracts`] holds the newest version of each published type,
//!   compiled once, to check payloads ([`Contract::check`]) as events are
//!   delivered;
//! - [`compat`] tells which changes between two versions a compatibility
//!   level refuses;
//! - [`dataschema`] names a contract in the CloudEvents envelope;
//! - [`EventMap`] says who publishes and consumes each type, and which
//!   contract version is in force.

pub mod catalog;
pub mod compat;
pub mod contract;
mod defaults;
pub mod locate;
pub mod map;
pub mod name;

use std::collections::HashMap;

use miette::Diagnostic;
use silo_manifest::Manifest;

pub use catalog::{Catalog, FileProblem, ProblemKind};
pub use contract::{Contract, Refusal, dataschema};
pub use map::EventMap;
pub use name::ContractName;

/// The contracts in force: the newest version of each type each service
/// publishes, compiled. Load once, check many payloads.
#[derive(Debug, Clone, Default)]
pub struct Contracts {
    by_type: HashMap<(String, String), Contract>,
}

/// Why the contracts in force could not be loaded.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ContractsError {
    /// The newest contract of a published type is not usable.
    #[error("{} contract(s) cannot be used:\n{}", problems.len(), problems.join("\n"))]
    #[diagnostic(
        code(silo::contracts::invalid),
        help(
            "fix each file named (`silo lint` reports every contract problem); events of these types are not delivered until their newest contract is usable"
        )
    )]
    Invalid {
        /// One `file:line:column: message` each.
        problems: Vec<String>,
    },
}

impl Contracts {
    /// No contracts: every payload passes.
    pub fn none() -> Contracts {
        Contracts::default()
    }

    /// The newest contract of every type every service publishes. A type
    /// with no contract file has none (its payloads are not checked; `silo
    /// lint` reports it). `Err` when the newest file of a type is not a
    /// usable contract: delivering its events against an older version
    /// would hide the mistake.
    pub fn load(manifest: &Manifest) -> Result<Contracts, ContractsError> {
        Contracts::from_catalog(manifest, Catalog::load(manifest))
    }

    /// [`Contracts::load`] from an already loaded catalog.
    pub fn from_catalog(
        manifest: &Manifest,
        catalog: Catalog,
    ) -> Result<Contracts, ContractsError> {
        let mut by_type = HashMap::new();
        let mut problems = Vec::new();
        for s in &manifest.services {
            for t in &s.publishes {
                match catalog.latest(&s.name, t) {
                    None => {}
                    Some(Ok(c)) => {
                        by_type.insert((s.name.clone(), t.clone()), c.clone());
                    }
                    Some(Err(p)) => problems.push(format!(
                        "{}:{}:{}: {}",
                        p.display.display(),
                        p.line,
                        p.column,
                        p.message
                    )),
                }
            }
        }
        if problems.is_empty() {
            Ok(Contracts { by_type })
        } else {
            Err(ContractsError::Invalid { problems })
        }
    }

    /// The contract in force for `publisher`'s `event_type`, if it has one.
    pub fn get(&self, publisher: &str, event_type: &str) -> Option<&Contract> {
        self.by_type
            .get(&(publisher.to_string(), event_type.to_string()))
    }

    /// How many types have a contract.
    pub fn len(&self) -> usize {
        self.by_type.len()
    }

    /// Whether no type has a contract.
    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }
}
