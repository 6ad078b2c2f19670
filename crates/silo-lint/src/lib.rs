//! `silo lint`: review every service's migrations like a strict database
//! lead. It reads the manifest and the files, never a server.
//!
//! Rules live one per file in [`rules`]; each has an id, a group, a default
//! severity and tests of its own. Boundary rules see every service's
//! tables at once, which is what no single-service linter can do.

pub mod docs;
pub mod facts;
pub mod finding;
pub mod render;
pub mod rules;
pub mod source;
pub mod sum;
#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;
use silo_manifest::{Manifest, RuleLevel};

pub use finding::{Finding, Group, RuleId, Severity};
use rules::{Context, Hit};
use source::SourceFile;

/// The id of the finding for a file that does not parse.
pub const PARSE_ERROR: RuleId = RuleId::ParseError;

/// What to lint.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these services (all when empty).
    pub services: Vec<String>,
    /// Only these rules (all when empty).
    pub rules: Vec<RuleId>,
    /// Never these rules.
    pub skip_rules: Vec<RuleId>,
    /// Report only these files (absolute paths); all when `None`. Every
    /// file is still read: boundary rules need the whole project.
    pub files: Option<Vec<PathBuf>>,
}

/// Checks the rule ids that `[lint.rules]` names in silo.toml; each
/// problem reads `silo.toml:LINE:COLUMN: ...`.
pub fn check_settings(manifest: &Manifest) -> Result<(), Vec<String>> {
    let file = manifest.path.display();
    let settings = std::iter::once(&manifest.lint).chain(manifest.services.iter().map(|s| &s.lint));
    let problems: Vec<String> = settings
        .flat_map(|s| &s.rules)
        .filter(|(id, _)| RuleId::from_id(id).is_none())
        .map(|(id, at)| {
            format!(
                "{file}:{}:{}: unknown lint rule `{id}` (`silo lint --explain` lists them)",
                at.line, at.column
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The severity of `rule` for `service`, or `None` when it is off: the
/// service's `[lint.rules]` beats the project's, which beats the default.
/// Naming a rule with `--rule` turns it on even where silo.toml turns it
/// off (a flag beats the file).
fn severity_of(
    manifest: &Manifest,
    service: &str,
    rule: RuleId,
    default: Severity,
    options: &Options,
) -> Option<Severity> {
    if options.skip_rules.contains(&rule) {
        return None;
    }
    let named = options.rules.contains(&rule);
    if !options.rules.is_empty() && !named {
        return None;
    }
    let level = manifest
        .service(service)
        .and_then(|s| s.lint.rules.get(rule.as_str()))
        .or_else(|| manifest.lint.rules.get(rule.as_str()))
        .map(|s| s.level);
    match level {
        None => Some(default),
        Some(RuleLevel::Off) => named.then_some(default),
        Some(RuleLevel::Info) => Some(Severity::Info),
        Some(RuleLevel::Warning) => Some(Severity::Warning),
        Some(RuleLevel::Error) => Some(Severity::Error),
    }
}

/// The result of a run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

/// What a run covered. `files` counts the files read and reported;
/// `skipped` what lint saw in a migrations folder and did not read, so a
/// run with no findings is never taken for a clean bill of what it skipped.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    /// How many paths were skipped (the length of `skipped_paths`).
    pub skipped: usize,
    pub skipped_paths: Vec<Skipped>,
}

/// A path in a service's migrations folder that lint did not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub service: String,
    /// Relative to the folder that holds silo.toml.
    pub path: PathBuf,
    pub reason: String,
}

/// Every migration file and contract of the project, and what was not
/// read.
#[derive(Debug, Default)]
pub struct Loaded {
    pub files: Vec<SourceFile>,
    pub skipped: Vec<Skipped>,
    /// Every publishing service's contracts, for the events rules.
    pub contracts: silo_contracts::Catalog,
}

impl Loaded {
    /// Every file lint reads: migrations, then contract files (absolute).
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.iter().map(|f| f.path.clone()).collect();
        paths.extend(self.contract_paths());
        paths
    }

    /// The contract files read (usable or not), each once.
    fn contract_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = (self.contracts.contracts.iter().map(|c| c.path.clone()))
            .chain(
                self.contracts
                    .problems
                    .iter()
                    .filter(|p| {
                        p.kind != silo_contracts::ProblemKind::Unreadable || p.path.is_file()
                    })
                    .map(|p| p.path.clone()),
            )
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

/// Why the migrations could not be loaded. Each would make a run report
/// less than it claims, so none is passed over.
#[derive(Debug)]
pub enum LoadError {
    /// A file or folder that could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A service's migrations folder that does not exist (or is not a
    /// folder).
    MissingFolder { service: String, path: PathBuf },
    /// A service keeps engine folders (`postgres/`, `sqlite/`) but has
    /// none for its engine.
    NoEngineFolder {
        service: String,
        path: PathBuf,
        engine: silo_manifest::Engine,
    },
}

impl LoadError {
    /// What to do about it.
    pub fn help(&self) -> String {
        match self {
            LoadError::Read { .. } => "make the path readable, then run lint again".into(),
            LoadError::MissingFolder { service, .. } => format!(
                "create the folder (`silo new {service} <description>` writes the first migration there), or set `migrations` under [services.{service}] in silo.toml to the folder that holds them"
            ),
            LoadError::NoEngineFolder { path, engine, .. } => format!(
                "add {}/{engine}/ with this engine's migrations, or lint with the engine the folders are for (`--engine`)",
                path.display()
            ),
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            LoadError::MissingFolder { service, path } => write!(
                f,
                "the migrations folder of service `{service}`, {}, does not exist",
                path.display()
            ),
            LoadError::NoEngineFolder {
                service,
                path,
                engine,
            } => write!(
                f,
                "the migrations folder of service `{service}`, {}, keeps engine folders but has none for {engine}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Every migration file of every service (files of all services are read:
/// boundary rules need them even when only some services are reported).
/// Entries named like migrations that silo would not run (a folder named
/// `V1__x.sql`, a `.SQL` file) are loaded too, for the rules to report;
/// anything else in a migrations folder is listed as skipped.
pub fn load(manifest: &Manifest) -> Result<Loaded, LoadError> {
    load_files(manifest, true)
}

/// [`load`] for a caller that checks what it can (the audit): a service
/// whose migrations folder is missing is listed as skipped instead of
/// stopping the run.
pub fn load_available(manifest: &Manifest) -> Result<Loaded, LoadError> {
    load_files(manifest, false)
}

fn load_files(manifest: &Manifest, strict: bool) -> Result<Loaded, LoadError> {
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for service in &manifest.services {
        let dir = manifest.migrations_dir(service);
        let folder = if dir.is_dir() {
            silo_migration_files::file::engine_dir(&dir, service.engine).map_err(|_| {
                LoadError::NoEngineFolder {
                    service: service.name.clone(),
                    path: shown(manifest, &dir),
                    engine: service.engine,
                }
            })
        } else {
            Err(LoadError::MissingFolder {
                service: service.name.clone(),
                path: shown(manifest, &dir),
            })
        };
        let folder = match folder {
            Ok(folder) => folder,
            Err(e) if strict => return Err(e),
            Err(e) => {
                skipped.push(Skipped {
                    service: service.name.clone(),
                    path: shown(manifest, &dir),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let mut skip = |path: PathBuf, reason: String| {
            skipped.push(Skipped {
                service: service.name.clone(),
                path: shown(manifest, &path),
                reason,
            })
        };
        let mut paths = Vec::new();
        for path in entries(&folder)? {
            let name = file_name(&path);
            if name.to_ascii_lowercase().ends_with(".sql") {
                paths.push(path);
            } else if path.is_dir() {
                skip(
                    path,
                    "a folder: silo runs only the files directly in the migrations folder".into(),
                );
            } else {
                skip(path, "not a .sql file".into());
            }
        }
        // Beside the engine folder: the other engine's, and strays.
        if folder != dir {
            let engine = service.engine;
            let engine_folders = silo_migration_files::file::engine_folders(&dir);
            for path in entries(&dir)? {
                if path == folder {
                    continue;
                }
                let reason = match engine_folders.iter().find(|(_, f)| *f == path) {
                    Some((other, _)) => format!(
                        "migrations for {other}; this service's store is {engine} (`silo --engine {other} lint` reads them)"
                    ),
                    None => format!(
                        "outside the `{engine}/` folder, which is all silo reads for {engine}"
                    ),
                };
                skip(path, reason);
            }
        }
        paths.sort();
        jobs.extend(paths.into_iter().map(|p| (service, p)));
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    // Parsing is most of the work: spread it over the cores, keep the order.
    let files = parallel_map(&jobs, |(service, path)| {
        SourceFile::load(service, path.clone(), &manifest.root).map_err(|source| LoadError::Read {
            path: path.clone(),
            source,
        })
    })
    .into_iter()
    .collect::<Result<_, _>>()?;
    Ok(Loaded {
        files,
        skipped,
        contracts: silo_contracts::Catalog::load(manifest),
    })
}

/// The entries of a folder, without hidden ones (`.gitkeep`) and the
/// `silo.sum` that the checksum rules read.
fn entries(dir: &std::path::Path) -> Result<Vec<PathBuf>, LoadError> {
    let read = |source| LoadError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        let name = file_name(&path);
        if !name.starts_with('.') && name != silo_migration_files::sum::SUM_FILE {
            paths.push(path);
        }
    }
    Ok(paths)
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A path relative to the folder that holds silo.toml.
fn shown(manifest: &Manifest, path: &std::path::Path) -> PathBuf {
    path.strip_prefix(&manifest.root)
        .unwrap_or(path)
        .to_path_buf()
}

/// `f` over `items` on every core, results in `items`' order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    if threads == 1 || items.len() < 2 {
        return items.iter().map(&f).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a lint thread panicked"))
            .collect()
    })
}

/// Runs the rules over the loaded files. The skipped paths of the reported
/// services are listed in the summary when no file selection narrows the
/// run.
pub fn lint(manifest: &Manifest, loaded: &Loaded, options: &Options) -> Report {
    let files = &loaded.files[..];
    let mut tables: HashMap<String, Vec<String>> = HashMap::new();
    for f in files {
        for t in &f.facts.tables {
            let owners = tables.entry(t.name.clone()).or_default();
            if !owners.contains(&f.service) {
                owners.push(f.service.clone());
            }
        }
    }
    let mut databases = HashMap::new();
    for s in &manifest.services {
        databases.insert(s.database.clone(), s.name.clone());
        databases.insert(s.name.clone(), s.name.clone());
    }
    let sums = sum::SumFiles::load(manifest);
    let mut versions: HashMap<_, Vec<&SourceFile>> = HashMap::new();
    for f in files {
        if let (Ok(name), Some(dir)) = (&f.name, f.path.parent())
            && let Some(version) = &name.version
        {
            versions
                .entry((dir, name.kind, version.clone()))
                .or_default()
                .push(f);
        }
    }
    let ctx = Context {
        manifest,
        files,
        tables,
        databases,
        sums,
        versions,
    };
    let reported: Vec<&SourceFile> = files
        .iter()
        .filter(|f| {
            (options.services.is_empty() || options.services.contains(&f.service))
                && options
                    .files
                    .as_ref()
                    .is_none_or(|only| only.contains(&f.path))
        })
        .collect();
    let rules = rules::all();
    let mut findings: Vec<Finding> =
        parallel_map(&reported, |file| check_file(&ctx, file, &rules, options))
            .into_iter()
            .flatten()
            .collect();
    findings.extend(check_events(manifest, &loaded.contracts, options));
    let contracts = loaded
        .contract_paths()
        .into_iter()
        .filter(|p| options.files.as_ref().is_none_or(|only| only.contains(p)))
        .count();
    let count = reported.len() + contracts;
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.rule).cmp(&(&b.file, b.line, b.column, b.rule))
    });
    let count_of = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let skipped: Vec<Skipped> = loaded
        .skipped
        .iter()
        .filter(|s| {
            options.files.is_none()
                && (options.services.is_empty() || options.services.contains(&s.service))
        })
        .cloned()
        .collect();
    let summary = Summary {
        files: count,
        errors: count_of(Severity::Error),
        warnings: count_of(Severity::Warning),
        infos: count_of(Severity::Info),
        skipped: skipped.len(),
        skipped_paths: skipped,
    };
    Report { findings, summary }
}

/// The events rules over the manifest and the contracts. A finding is
/// reported when its service is selected and, with a file selection, when
/// its file is selected.
fn check_events(
    manifest: &Manifest,
    catalog: &silo_contracts::Catalog,
    options: &Options,
) -> Vec<Finding> {
    let ctx = rules::events::EventsContext { manifest, catalog };
    let mut findings = Vec::new();
    for rule in rules::events_rules() {
        let mut hits = Vec::new();
        rule.check(&ctx, &mut hits);
        for hit in hits {
            let selected = (options.services.is_empty() || options.services.contains(&hit.service))
                && options
                    .files
                    .as_ref()
                    .is_none_or(|only| only.contains(&hit.path));
            let severity = severity_of(manifest, &hit.service, rule.id(), rule.severity(), options);
            let Some(severity) = severity.filter(|_| selected) else {
                continue;
            };
            findings.push(Finding {
                rule: rule.id(),
                group: rule.group(),
                severity,
                service: hit.service,
                file: hit.file,
                line: hit.line,
                column: hit.column,
                span: hit.span,
                message: hit.message,
                help: hit.help,
                other_service: hit.other_service,
            });
        }
    }
    findings
}

/// Every selected rule over one file.
fn check_file(
    ctx: &Context,
    file: &SourceFile,
    rules: &[&'static dyn rules::Rule],
    options: &Options,
) -> Vec<Finding> {
    let manifest = ctx.manifest;
    let mut findings = Vec::new();
    let severity =
        |id: RuleId, default: Severity| severity_of(manifest, &file.service, id, default, options);
    if let Some((message, offset)) = &file.parse_error
        && let Some(severity) = severity(PARSE_ERROR, Severity::Error)
    {
        let (line, column) = file.position(*offset);
        findings.push(Finding {
            rule: PARSE_ERROR,
            group: Group::Integrity,
            severity,
            service: file.service.clone(),
            file: file.display.clone(),
            line,
            column,
            span: *offset..*offset,
            message: message.clone(),
            help: "fix the syntax; the other files are still linted".into(),
            other_service: None,
        });
    }
    for rule in rules {
        let Some(severity) = severity(rule.id(), rule.severity()) else {
            continue;
        };
        let mut hits: Vec<Hit> = Vec::new();
        rule.check(ctx, file, &mut hits);
        for hit in hits {
            if file.ignored(rule.id().as_str(), hit.span.start) {
                continue;
            }
            let (line, column) = file.position(hit.span.start);
            findings.push(Finding {
                rule: rule.id(),
                group: rule.group(),
                severity,
                service: file.service.clone(),
                file: file.display.clone(),
                line,
                column,
                span: hit.span,
                message: hit.message,
                help: hit.help,
                other_service: hit.other_service,
            });
        }
    }
    findings
}
