//! Finding every publishing service's contracts on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use silo_manifest::{Manifest, Service};

use crate::contract::Contract;
use crate::name::ContractName;

/// Every contract of a project, and every file in a contracts folder that
/// is not one.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The contracts that parse and compile, by service, type and version.
    pub contracts: Vec<Contract>,
    /// What is wrong with the other `.json` files (and unreadable folders).
    pub problems: Vec<FileProblem>,
}

/// A file in a contracts folder that is not a usable contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The service whose folder holds it.
    pub service: String,
    /// The file (or folder, when it cannot be read).
    pub path: PathBuf,
    /// Relative to the folder that holds silo.toml.
    pub display: PathBuf,
    /// What its name says, when it names a type the service publishes.
    pub name: Option<ContractName>,
    /// 1-based line and column (1, 1 when the problem is the whole file).
    pub line: usize,
    pub column: usize,
    /// Byte offset of the problem in the file.
    pub offset: usize,
    pub kind: ProblemKind,
    pub message: String,
}

/// What kind of problem a [`FileProblem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The file or folder could not be read.
    Unreadable,
    /// The name is not `<type>.v<N>.json`.
    Name,
    /// The name is well formed, for a type the service does not publish.
    NotPublished,
    /// The text is not JSON.
    Parse,
    /// The JSON is not a valid (or usable) JSON Schema.
    Schema,
}

impl Catalog {
    /// Reads every publishing service's contracts folder
    /// ([`Manifest::contracts_dir`]); a folder that does not exist holds
    /// no contract. Only `.json` files are contract files; hidden files
    /// are skipped. A folder shared by several services holds each one's
    /// contracts; a file belongs to the services that publish its type.
    pub fn load(manifest: &Manifest) -> Catalog {
        let mut catalog = Catalog::default();
        let mut folders: BTreeMap<PathBuf, Vec<&Service>> = BTreeMap::new();
        for s in manifest.services.iter().filter(|s| !s.publishes.is_empty()) {
            folders
                .entry(manifest.contracts_dir(s))
                .or_default()
                .push(s);
        }
        for (dir, services) in folders {
            catalog.load_folder(manifest, &dir, &services);
        }
        catalog
            .contracts
            .sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        catalog.problems.sort_by(|a, b| a.path.cmp(&b.path));
        catalog
    }

    fn load_folder(&mut self, manifest: &Manifest, dir: &Path, services: &[&Service]) {
        let owner = services[0].name.clone();
        let display = |p: &Path| p.strip_prefix(&manifest.root).unwrap_or(p).to_path_buf();
        let whole = |path: &Path, kind, name, message| FileProblem {
            service: owner.clone(),
            path: path.to_path_buf(),
            display: display(path),
            name,
            line: 1,
            column: 1,
            offset: 0,
            kind,
            message,
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.problems.push(whole(
                    dir,
                    ProblemKind::Unreadable,
                    None,
                    format!("cannot read the contracts folder: {e}"),
                ));
                return;
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let file_name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if file_name.starts_with('.') || !file_name.ends_with(".json") || path.is_dir() {
                continue;
            }
            let name = match crate::name::parse(&file_name) {
                Ok(name) => name,
                Err(why) => {
                    self.problems.push(whole(
                        &path,
                        ProblemKind::Name,
                        None,
                        format!("`{file_name}` is not a contract file name: {why}"),
                    ));
                    continue;
                }
            };
            let publishers: Vec<&&Service> = services
                .iter()
                .filter(|s| s.publishes.contains(&name.event_type))
                .collect();
            if publishers.is_empty() {
                let mut p = whole(
                    &path,
                    ProblemKind::NotPublished,
                    None,
                    format!(
                        "`{file_name}` is the contract of `{}`, which {} does not publish",
                        name.event_type,
                        services
                            .iter()
                            .map(|s| format!("`{}`", s.name))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                );
                p.name = Some(name);
                self.problems.push(p);
                continue;
            }
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    self.problems.push(whole(
                        &path,
                        ProblemKind::Unreadable,
                        Some(name),
                        format!("cannot read the contract: {e}"),
                    ));
                    continue;
                }
            };
            for s in publishers {
                match Contract::compile(
                    &manifest.project,
                    &s.name,
                    name.clone(),
                    path.clone(),
                    display(&path),
                    text.clone(),
                ) {
                    Ok(c) => self.contracts.push(c),
                    Err(u) => self.problems.push(FileProblem {
                        service: s.name.clone(),
                        path: path.clone(),
                        display: display(&path),
                        name: Some(name.clone()),
                        line: u.line,
                        column: u.column,
                        offset: u.offset,
                        kind: if u.parses {
                            ProblemKind::Schema
                        } else {
                            ProblemKind::Parse
                        },
                        message: u.message,
                    }),
                }
            }
        }
    }

    /// `service`'s contracts of `event_type` that parse and compile,
    /// oldest first.
    pub fn versions<'c>(
        &'c self,
        service: &'c str,
        event_type: &'c str,
    ) -> impl Iterator<Item = &'c Contract> {
        self.contracts
            .iter()
            .filter(move |c| c.service == service && c.name.event_type == event_type)
    }

    /// The newest version of `service`'s contract of `event_type`, by file
    /// name, whether it is usable or not: `Err` when the newest file has
    /// a problem (an older usable one does not stand in for it).
    pub fn latest(
        &self,
        service: &str,
        event_type: &str,
    ) -> Option<Result<&Contract, &FileProblem>> {
        let usable = self
            .contracts
            .iter()
            .rfind(|c| c.service == service && c.name.event_type == event_type);
        let broken = self
            .problems
            .iter()
            .filter(|p| {
                p.service == service
                    && p.kind != ProblemKind::NotPublished
                    && p.name.as_ref().is_some_and(|n| n.event_type == event_type)
            })
            .max_by_key(|p| p.name.as_ref().map(|n| n.version));
        match (usable, broken) {
            (Some(c), Some(p)) if p.name.as_ref().is_some_and(|n| n.version > c.name.version) => {
                Some(Err(p))
            }
            (Some(c), _) => Some(Ok(c)),
            (None, Some(p)) => Some(Err(p)),
            (None, None) => None,
        }
    }
}
