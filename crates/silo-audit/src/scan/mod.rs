//! The source scan (`silo audit --code-only` runs only this): each
//! service's folder is searched for another service's database, role,
//! server, secrets file or connection string, and for literal passwords.
//!
//! Folders are walked in parallel by the `ignore` crate, which honours
//! `.gitignore`; `[audit] exclude` in silo.toml adds globs of its own (test
//! fixtures). Migration files are left to silo-lint's SQL rules, which
//! read them with a real parser; their boundary findings are reported here.

pub mod matcher;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ignore::WalkState;
use ignore::overrides::OverrideBuilder;
use silo_manifest::{Isolation, Manifest, Service};
use silo_store::secrets_layout;

use crate::secrets::SecretsFile;
use crate::{AuditError, Check, Finding, Position, SkippedPath};
use matcher::{Hit, Kind, Matcher, Needle};
use silo_lint::RuleId;

/// Files larger than this are data, not source.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// The shortest real password the scan looks for verbatim (shorter ones
/// would match by chance).
const MIN_PASSWORD_LEN: usize = 12;

/// Extensions of configuration files, where a bare `key=value` is a
/// literal.
const CONFIG_EXTENSIONS: [&str; 10] = [
    "env",
    "yaml",
    "yml",
    "toml",
    "ini",
    "properties",
    "conf",
    "cfg",
    "json",
    "tfvars",
];

/// What every service's store is known by.
fn needles(manifest: &Manifest, secrets: &HashMap<String, SecretsFile>) -> Vec<Needle> {
    let mut needles = Vec::new();
    for s in &manifest.services {
        let mut add = |text: String, kind: Kind| {
            needles.push(Needle {
                text,
                kind,
                service: Some(s.name.clone()),
            })
        };
        add(s.database.clone(), Kind::Database);
        add(secrets_layout::relative_path(&s.name), Kind::SecretsPath);
        add(secrets_layout::var_prefix(&s.name), Kind::EnvPrefix);
        // Both engines' names: `--engine` may move a service between them,
        // and source written for one still names the other.
        add(format!("{}.sqlite3", s.database), Kind::SqliteFile);
        add(s.role.clone(), Kind::Role);
        if let Some(var) = &s.url_env {
            add(var.clone(), Kind::UrlEnv);
            if s.isolation == Isolation::Instance
                && let Some(host) = std::env::var(var)
                    .ok()
                    .and_then(|u| url::Url::parse(&u).ok())
                    .and_then(|u| u.host_str().map(str::to_string))
                && !matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1" | "[::1]")
            {
                add(host, Kind::Host);
            }
        }
        if let Some(password) = secrets.get(&s.name).and_then(|f| f.password.clone())
            && password.len() >= MIN_PASSWORD_LEN
        {
            add(password, Kind::Password);
        }
    }
    needles
}

/// Scans every service's source folder and its migrations. What it could
/// not read goes to `skipped`: an audit never calls clean what it did not
/// read.
pub fn run(
    manifest: &Manifest,
    secrets: &HashMap<String, SecretsFile>,
    out: &mut Vec<Finding>,
    skipped: &mut Vec<SkippedPath>,
) -> Result<(), AuditError> {
    let matcher = Matcher::new(needles(manifest, secrets));
    let mut overrides = OverrideBuilder::new(&manifest.root);
    let mut exclude = |glob: &str| {
        overrides
            .add(&format!("!{glob}"))
            .map(|_| ())
            .map_err(|e| AuditError::Scan {
                path: manifest.path.display().to_string(),
                message: format!("bad exclude pattern `{glob}`: {e}"),
            })
    };
    for glob in &manifest.audit.exclude {
        exclude(glob)?;
    }
    exclude(".git/")?;
    // The secrets live here; they are checked as files, not as source.
    if let Ok(rel) = manifest.data_dir.strip_prefix(&manifest.root)
        && !rel.as_os_str().is_empty()
    {
        exclude(&format!("/{}/", rel.display()))?;
    }
    let overrides = overrides.build().map_err(|e| AuditError::Scan {
        path: manifest.path.display().to_string(),
        message: e.to_string(),
    })?;

    let found: Mutex<Vec<Finding>> = Mutex::new(Vec::new());
    let unread: Mutex<Vec<SkippedPath>> = Mutex::new(Vec::new());
    // Connection strings by text, with every service and place they occur.
    let strings: Mutex<BTreeMap<String, Vec<(String, Position)>>> = Mutex::new(BTreeMap::new());
    for service in &manifest.services {
        let dir = manifest.source_dir(service);
        if !dir.is_dir() {
            unread
                .lock()
                .expect("scan threads do not panic")
                .push(skipped_path(
                    manifest,
                    service,
                    &dir,
                    "the service's source folder does not exist (`source` in silo.toml)".into(),
                ));
            continue;
        }
        let migrations = manifest.migrations_dir(service);
        let walker = ignore::WalkBuilder::new(&dir)
            .hidden(false)
            .require_git(false)
            .overrides(overrides.clone())
            .filter_entry(move |e| e.path() != migrations)
            .build_parallel();
        walker.run(|| {
            Box::new(|entry| {
                let not_read = |path: &Path, reason: String| {
                    unread
                        .lock()
                        .expect("scan threads do not panic")
                        .push(skipped_path(manifest, service, path, reason));
                };
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        let path = error_path(&e).unwrap_or_else(|| dir.clone());
                        not_read(&path, e.to_string());
                        return WalkState::Continue;
                    }
                };
                match entry.file_type() {
                    Some(t) if t.is_file() => {
                        if let Err(reason) =
                            scan_file(manifest, service, entry.path(), &matcher, &found, &strings)
                        {
                            not_read(entry.path(), reason);
                        }
                    }
                    Some(t) if t.is_dir() => {}
                    Some(t) if t.is_symlink() => {
                        let reason = match std::fs::metadata(entry.path()) {
                            Ok(_) => "a symbolic link: the scan does not follow links".to_string(),
                            Err(e) => format!("a symbolic link whose target cannot be read: {e}"),
                        };
                        not_read(entry.path(), reason);
                    }
                    _ => not_read(
                        entry.path(),
                        "not a regular file (a FIFO, socket or device)".into(),
                    ),
                }
                WalkState::Continue
            })
        });
    }
    let mut found = found.into_inner().expect("scan threads do not panic");
    for (url, places) in strings.into_inner().expect("scan threads do not panic") {
        let mut services: Vec<&String> = places.iter().map(|(s, _)| s).collect();
        services.sort();
        services.dedup();
        if services.len() < 2 {
            continue;
        }
        let redacted = redact(&url);
        for (service, location) in &places {
            let other = services.iter().find(|s| *s != &service).map(|s| s.as_str());
            found.push(
                Finding::new(
                    Check::SharedCredentials,
                    service,
                    format!(
                        "connection string `{redacted}` is used by services `{}`",
                        services
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join("`, `")
                    ),
                    "give each service its own credentials, read from its own secrets file",
                )
                .other(other)
                .at(location.clone()),
            );
        }
    }
    out.extend(found);
    out.extend(migration_findings(manifest, skipped));
    skipped.extend(unread.into_inner().expect("scan threads do not panic"));
    Ok(())
}

/// A path of `service` that was not read, shown relative to the project.
fn skipped_path(
    manifest: &Manifest,
    service: &Service,
    path: &Path,
    reason: String,
) -> SkippedPath {
    SkippedPath {
        service: service.name.clone(),
        path: path
            .strip_prefix(&manifest.root)
            .unwrap_or(path)
            .to_path_buf(),
        reason,
    }
}

/// The path a walk error is about, if it names one.
fn error_path(e: &ignore::Error) -> Option<PathBuf> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errors) => errors.iter().find_map(error_path),
        _ => None,
    }
}

fn scan_file(
    manifest: &Manifest,
    service: &Service,
    path: &Path,
    matcher: &Matcher,
    found: &Mutex<Vec<Finding>>,
    strings: &Mutex<BTreeMap<String, Vec<(String, Position)>>>,
) -> Result<(), String> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_FILE_BYTES) {
        return Err(format!(
            "larger than {} MiB: taken for data, not searched",
            MAX_FILE_BYTES >> 20
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    // A NUL byte marks a binary file (an image, a compiled artefact): it
    // was read and judged data, which is not a skip.
    if memchr::memchr(0, &bytes[..bytes.len().min(8192)]).is_some() {
        return Ok(());
    }
    // Text that is not UTF-8 is searched as far as it decodes: the
    // replacement characters cannot hide an ASCII name.
    let text = String::from_utf8_lossy(&bytes);
    if !matcher.any(&text) {
        return Ok(());
    }
    let config = is_config(path);
    let relative: PathBuf = path
        .strip_prefix(&manifest.root)
        .unwrap_or(path)
        .to_path_buf();
    let mut local = Vec::new();
    let mut previous = "";
    for (n, line) in text.lines().enumerate() {
        let hits = matcher.line(line, previous, &service.name, config);
        previous = line;
        for hit in hits {
            let location = |column| Position {
                file: relative.clone(),
                line: n + 1,
                column,
            };
            match hit {
                Hit::Reference {
                    service: other,
                    column,
                    what,
                } => local.push(
                    Finding::new(
                        Check::CodeCrossReference,
                        &service.name,
                        format!("source of `{}` names the store of `{other}`: {what}", service.name),
                        format!(
                            "only `{other}` may use its store; get the data from `{other}`'s events \
                             or API instead"
                        ),
                    )
                    .other(Some(&other))
                    .at(location(column)),
                ),
                Hit::Secret { column, what } => local.push(
                    Finding::new(
                        Check::CodeSecret,
                        &service.name,
                        format!("{what} in source"),
                        format!(
                            "read it from the environment (the service's secrets file), and \
                             rotate it: it is in the code now (`silo credentials rotate {}`)",
                            service.name
                        ),
                    )
                    .at(location(column)),
                ),
                Hit::ConnectionString { column, url } => strings
                    .lock()
                    .expect("scan threads do not panic")
                    .entry(url)
                    .or_default()
                    .push((service.name.clone(), location(column))),
            }
        }
    }
    if !local.is_empty() {
        found
            .lock()
            .expect("scan threads do not panic")
            .extend(local);
    }
    Ok(())
}

fn is_config(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.starts_with(".env")
        || name.starts_with("dockerfile")
        || name.ends_with(".env")
        || path.extension().is_some_and(|e| {
            CONFIG_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
        })
}

/// A connection string with its password masked.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// silo-lint's boundary rules over the migrations: a reference into
/// another service's tables, or a way into another store. What lint
/// skipped (a missing migrations folder, a file that is not SQL) and the
/// files it could not parse, whose rest the rules did not see, go to
/// `skipped`.
fn migration_findings(manifest: &Manifest, skipped: &mut Vec<SkippedPath>) -> Vec<Finding> {
    let loaded = match silo_lint::load_available(manifest) {
        Ok(loaded) => loaded,
        Err(e) => {
            // Nothing was linted: every service's migrations are unread.
            for service in &manifest.services {
                skipped.push(skipped_path(
                    manifest,
                    service,
                    &manifest.migrations_dir(service),
                    format!("migrations not linted: {e}"),
                ));
            }
            return Vec::new();
        }
    };
    skipped.extend(loaded.skipped.iter().map(|k| SkippedPath {
        service: k.service.clone(),
        path: k.path.clone(),
        reason: k.reason.clone(),
    }));
    for file in &loaded.files {
        let reason = if file.folder {
            Some("a folder named like a migration: silo does not run it".to_string())
        } else {
            file.parse_error.as_ref().map(|(message, offset)| {
                let before = &file.text.as_bytes()[..(*offset).min(file.text.len())];
                let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                format!(
                    "not parsed (line {line}: {message}): the boundary rules did not read all of it"
                )
            })
        };
        if let Some(reason) = reason {
            skipped.push(SkippedPath {
                service: file.service.clone(),
                path: file.display.clone(),
                reason,
            });
        }
    }
    let report = silo_lint::lint(
        manifest,
        &loaded,
        &silo_lint::Options {
            services: Vec::new(),
            rules: vec![
                RuleId::CrossServiceReference,
                RuleId::ForeignDataAccess,
                RuleId::GrantOutsideService,
            ],
            skip_rules: Vec::new(),
            files: None,
        },
    );
    report
        .findings
        .into_iter()
        .map(|f| {
            let check = match f.rule {
                RuleId::ForeignDataAccess => Check::ForeignData,
                _ => Check::CodeCrossReference,
            };
            Finding::new(
                check,
                &f.service,
                format!("{} ({})", f.message, f.rule),
                f.help,
            )
            .other(f.other_service.as_deref())
            .at(Position {
                file: f.file,
                line: f.line,
                column: f.column,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_user_and_host() {
        assert_eq!(
            redact("postgres://a_svc:hunter2@db:5432/a?sslmode=require"),
            "postgres://a_svc:***@db:5432/a?sslmode=require"
        );
        assert_eq!(redact("postgres://db/a"), "postgres://db/a");
    }
}
