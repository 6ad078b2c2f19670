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

pub use finding::{Finding, Group, Severity};
use rules::{Context, Hit};
use source::SourceFile;

/// The id of the finding for a file that does not parse.
pub const PARSE_ERROR: &str = "parse-error";

/// What to lint.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these services (all when empty).
    pub services: Vec<String>,
    /// Only these rules (all when empty).
    pub rules: Vec<String>,
    /// Never these rules.
    pub skip_rules: Vec<String>,
    /// Report only these files (absolute paths); all when `None`. Every
    /// file is still read: boundary rules need the whole project.
    pub files: Option<Vec<PathBuf>>,
}

/// Every rule id, `parse-error` included, sorted.
pub fn rule_ids() -> Vec<&'static str> {
    let mut ids: Vec<&'static str> = rules::all().iter().map(|r| r.id()).collect();
    ids.push(PARSE_ERROR);
    ids.sort_unstable();
    ids
}

/// Checks the rule ids that `[lint.rules]` names in silo.toml; each
/// problem reads `silo.toml:LINE:COLUMN: ...`.
pub fn check_settings(manifest: &Manifest) -> Result<(), Vec<String>> {
    let known = rule_ids();
    let file = manifest.path.display();
    let settings = std::iter::once(&manifest.lint).chain(manifest.services.iter().map(|s| &s.lint));
    let problems: Vec<String> = settings
        .flat_map(|s| &s.rules)
        .filter(|(id, _)| !known.contains(&id.as_str()))
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
    rule: &str,
    default: Severity,
    options: &Options,
) -> Option<Severity> {
    if options.skip_rules.iter().any(|r| r == rule) {
        return None;
    }
    let named = options.rules.iter().any(|r| r == rule);
    if !options.rules.is_empty() && !named {
        return None;
    }
    let level = manifest
        .service(service)
        .and_then(|s| s.lint.rules.get(rule))
        .or_else(|| manifest.lint.rules.get(rule))
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

#[derive(Debug, Serialize)]
pub struct Summary {
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

/// A file that could not be read.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for ReadError {}

/// Every migration file of every service (files of all services are read:
/// boundary rules need them even when only some services are reported).
pub fn load(manifest: &Manifest) -> Result<Vec<SourceFile>, ReadError> {
    let mut jobs = Vec::new();
    for service in &manifest.services {
        let Ok(dir) =
            silo_migrate::file::engine_dir(&manifest.migrations_dir(service), service.engine)
        else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "sql"))
            .collect();
        paths.sort();
        jobs.extend(paths.into_iter().map(|p| (service, p)));
    }
    // Parsing is most of the work: spread it over the cores, keep the order.
    parallel_map(&jobs, |(service, path)| {
        SourceFile::load(service, path.clone(), &manifest.root).map_err(|source| ReadError {
            path: path.clone(),
            source,
        })
    })
    .into_iter()
    .collect()
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

/// Runs the rules over `files`.
pub fn lint(manifest: &Manifest, files: &[SourceFile], options: &Options) -> Report {
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
    let count = reported.len();
    let rules = rules::all();
    let mut findings: Vec<Finding> =
        parallel_map(&reported, |file| check_file(&ctx, file, &rules, options))
            .into_iter()
            .flatten()
            .collect();
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.rule).cmp(&(&b.file, b.line, b.column, b.rule))
    });
    let count_of = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let summary = Summary {
        files: count,
        errors: count_of(Severity::Error),
        warnings: count_of(Severity::Warning),
        infos: count_of(Severity::Info),
    };
    Report { findings, summary }
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
        |id: &str, default: Severity| severity_of(manifest, &file.service, id, default, options);
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
        });
    }
    for rule in rules {
        let Some(severity) = severity(rule.id(), rule.severity()) else {
            continue;
        };
        let mut hits: Vec<Hit> = Vec::new();
        rule.check(ctx, file, &mut hits);
        for hit in hits {
            if file.ignored(rule.id(), hit.span.start) {
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
            });
        }
    }
    findings
}
