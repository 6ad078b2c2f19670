//! The event map: for each event type of the project, who publishes and
//! who consumes it, its contract in force and its compatibility level,
//! and what is missing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use silo_manifest::{Compatibility, Manifest};

use crate::Catalog;

/// Every event type silo.toml names, in type order.
#[derive(Debug, Clone, Serialize)]
pub struct EventMap {
    pub project: String,
    pub types: Vec<TypeEntry>,
}

/// One event type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeEntry {
    #[serde(rename = "type")]
    pub event_type: String,
    /// The services that publish it (one, unless `event-published-twice`).
    pub publishers: Vec<String>,
    /// The services that consume it.
    pub consumers: Vec<String>,
    /// The compatibility its versions keep.
    pub compatibility: Compatibility,
    /// The newest usable contract of its (first) publisher.
    pub contract: Option<ContractEntry>,
    /// What is wrong: `no-publisher`, `published-twice`, `no-contract`,
    /// `contract-unusable`.
    pub flags: Vec<&'static str>,
    /// Where the newest contract file is broken (`file:line:column:
    /// message`), with `contract-unusable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The contract in force for a type.
#[derive(Debug, Clone, Serialize)]
pub struct ContractEntry {
    pub version: u32,
    /// Relative to the folder that holds silo.toml.
    pub file: PathBuf,
    pub dataschema: String,
    /// Every usable version, oldest first.
    pub versions: Vec<u32>,
}

impl EventMap {
    /// The map of `manifest`'s types with the contracts of `catalog`.
    pub fn build(manifest: &Manifest, catalog: &Catalog) -> EventMap {
        let types: BTreeSet<&String> = manifest
            .services
            .iter()
            .flat_map(|s| s.publishes.iter().chain(&s.consumes))
            .collect();
        let types = types
            .into_iter()
            .map(|t| {
                let publishers: Vec<String> =
                    manifest.publishers_of(t).map(|s| s.name.clone()).collect();
                let consumers = manifest.consumers_of(t).map(|s| s.name.clone()).collect();
                let mut flags = Vec::new();
                let mut contract = None;
                let mut problem = None;
                match publishers.first() {
                    None => flags.push("no-publisher"),
                    Some(owner) => {
                        if publishers.len() > 1 {
                            flags.push("published-twice");
                        }
                        match catalog.latest(owner, t) {
                            None => flags.push("no-contract"),
                            Some(Err(p)) => {
                                flags.push("contract-unusable");
                                problem = Some(format!(
                                    "{}:{}:{}: {}",
                                    p.display.display(),
                                    p.line,
                                    p.column,
                                    p.message
                                ));
                            }
                            Some(Ok(c)) => {
                                contract = Some(ContractEntry {
                                    version: c.name.version,
                                    file: c.display.clone(),
                                    dataschema: c.dataschema.clone(),
                                    versions: catalog
                                        .versions(owner, t)
                                        .map(|v| v.name.version)
                                        .collect(),
                                })
                            }
                        }
                    }
                }
                TypeEntry {
                    event_type: t.clone(),
                    publishers,
                    consumers,
                    compatibility: manifest.events.compatibility_of(t),
                    contract,
                    flags,
                    problem,
                }
            })
            .collect();
        EventMap {
            project: manifest.project.clone(),
            types,
        }
    }
}
