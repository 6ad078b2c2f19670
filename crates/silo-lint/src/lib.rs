//! `silo lint`: review every service's migrations like a strict database
//! lead. It reads the manifest and the files, never a server.
//!
//! Rules live one per file in [`rules`]; each has an id, a group, a default
//! severity and tests of its own. Boundary rules see every service's
//! tables at once, which is what no single-service linter can do.

pub mod finding;
pub mod render;
pub mod rules;
pub mod source;

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;
use silo_manifest::Manifest;

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
    let mut files = Vec::new();
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
        for path in paths {
            let file = SourceFile::load(service, path.clone(), &manifest.root)
                .map_err(|source| ReadError { path, source })?;
            files.push(file);
        }
    }
    Ok(files)
}

/// Runs the rules over `files`.
pub fn lint(manifest: &Manifest, files: &[SourceFile], options: &Options) -> Report {
    let mut tables: HashMap<String, Vec<String>> = HashMap::new();
    for f in files {
        for t in rules::created_tables(f) {
            let owners = tables.entry(t).or_default();
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
    let ctx = Context {
        files,
        tables,
        databases,
    };
    let selected = |id: &str| {
        (options.rules.is_empty() || options.rules.iter().any(|r| r == id))
            && !options.skip_rules.iter().any(|r| r == id)
    };
    let mut findings = Vec::new();
    let reported = files
        .iter()
        .filter(|f| options.services.is_empty() || options.services.contains(&f.service));
    let mut count = 0;
    for file in reported {
        count += 1;
        if let Some((message, offset)) = &file.parse_error
            && selected(PARSE_ERROR)
        {
            let (line, column) = file.position(*offset);
            findings.push(Finding {
                rule: PARSE_ERROR,
                group: Group::Integrity,
                severity: Severity::Error,
                service: file.service.clone(),
                file: file.display.clone(),
                line,
                column,
                span: *offset..*offset,
                message: message.clone(),
                help: "fix the syntax; the other files are still linted".into(),
            });
        }
        for rule in rules::all().into_iter().filter(|r| selected(r.id())) {
            let mut hits: Vec<Hit> = Vec::new();
            rule.check(&ctx, file, &mut hits);
            for hit in hits {
                if file.ignored(rule.id(), hit.span.start) {
                    continue;
                }
                let (line, column) = file.position(hit.span.start);
                findings.push(Finding {
                    rule: rule.id(),
                    group: rule.group(),
                    severity: rule.severity(),
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
    }
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
