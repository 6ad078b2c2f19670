//! Reports as people and machines read them: a human access matrix and
//! findings, JSON, SARIF 2.1.0 and GitHub workflow annotations.

use std::fmt::Write;

use std::path::Path;

use serde_json::{Value, json};
use silo_report::human::{self, Paint};
use silo_report::{Run, Skipped};

use crate::{Access, Report, Severity};

/// Beyond this many stores the matrix is summarized: only rows with an
/// open cell are drawn.
const FULL_MATRIX_MAX: usize = 12;

fn cell_text(access: Access) -> &'static str {
    match access {
        Access::Own => "own ✓",
        Access::Denied => "denied ·",
        Access::Open => "OPEN ✗",
    }
}

/// The human report: the matrix, then each finding with its remediation,
/// then a summary. `color` adds ANSI colours.
pub fn human(report: &Report, color: bool) -> String {
    let paint = Paint { on: color };
    let mut out = String::new();
    let mut stores: Vec<&str> = Vec::new();
    for c in &report.matrix {
        if !stores.contains(&c.store_service.as_str()) {
            stores.push(&c.store_service);
        }
    }
    let mut roles: Vec<&str> = Vec::new();
    for c in &report.matrix {
        if !roles.contains(&c.role_service.as_str()) {
            roles.push(&c.role_service);
        }
    }
    // Cells come in manifest order of their roles; stores follow the same
    // order, so the own cells form the diagonal even when `--service`
    // leaves only some cells.
    stores.sort_by_key(|s| roles.iter().position(|r| r == s).unwrap_or(usize::MAX));
    if !report.matrix.is_empty() {
        let open = report
            .matrix
            .iter()
            .filter(|c| c.access == Access::Open)
            .count();
        let denied = report
            .matrix
            .iter()
            .filter(|c| c.access == Access::Denied)
            .count();
        let own = report
            .matrix
            .iter()
            .filter(|c| c.access == Access::Own)
            .count();
        let summarized = stores.len() > FULL_MATRIX_MAX;
        let _ = writeln!(
            out,
            "access matrix: rows are service roles, columns are stores ({own} own, {denied} denied, {open} open)"
        );
        let shown_roles: Vec<&str> = roles
            .iter()
            .copied()
            .filter(|r| {
                !summarized
                    || report
                        .matrix
                        .iter()
                        .any(|c| c.role_service == *r && c.access == Access::Open)
            })
            .collect();
        let shown_stores: Vec<&str> = stores
            .iter()
            .copied()
            .filter(|s| {
                !summarized
                    || report
                        .matrix
                        .iter()
                        .any(|c| c.store_service == *s && c.access == Access::Open)
            })
            .collect();
        if summarized {
            let _ = writeln!(
                out,
                "({} stores: only roles and stores with an open cell are drawn)",
                stores.len()
            );
        }
        if !shown_roles.is_empty() {
            let first = shown_roles
                .iter()
                .map(|r| r.chars().count())
                .max()
                .unwrap_or(0)
                .max(4);
            let widths: Vec<usize> = shown_stores
                .iter()
                .map(|s| s.chars().count().max(8))
                .collect();
            let _ = write!(out, "{:first$}", "");
            for (s, w) in shown_stores.iter().zip(&widths) {
                let _ = write!(out, "  {s:w$}");
            }
            out.push('\n');
            for r in &shown_roles {
                let _ = write!(out, "{r:first$}");
                for (s, w) in shown_stores.iter().zip(&widths) {
                    let access = report
                        .matrix
                        .iter()
                        .find(|c| c.role_service == *r && c.store_service == *s)
                        .map(|c| c.access);
                    let text = access.map_or("", cell_text);
                    let padded = format!("{text:w$}");
                    let painted = match access {
                        Some(Access::Own) => paint.wrap("32", &padded),
                        Some(Access::Open) => paint.wrap("1;31", &padded),
                        _ => paint.wrap("2", &padded),
                    };
                    let _ = write!(out, "  {painted}");
                }
                out.push('\n');
            }
        }
        out.push('\n');
    }
    for f in &report.findings {
        let mut about = f.service.clone();
        if let Some(other) = &f.other_service {
            about.push_str(&format!(" → {other}"));
        }
        let _ = writeln!(
            out,
            "{}[{}] {about}: {}",
            paint.severity(f.severity),
            f.check,
            f.message
        );
        if let Some(at) = f.location.position() {
            human::arrow(&mut out, "  ", at);
        }
        let fixable = if f.fix.is_some() { " (--fix)" } else { "" };
        human::note(&mut out, "  ", &format!("fix{fixable}"), &f.remediation);
    }
    for s in &report.skipped {
        let _ = writeln!(out, "skipped {}: {}", s.check, s.reason);
    }
    let unread = report.skipped_paths.len();
    if unread > 0 {
        let _ = writeln!(out, "{unread} path(s) not read:");
        for k in &report.skipped_paths {
            let _ = writeln!(out, "  {}: {}", k.path.display(), k.reason);
        }
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = report.findings.len() - errors;
    let fixable = report.findings.iter().filter(|f| f.fix.is_some()).count();
    if report.findings.is_empty() && report.is_complete() {
        let _ = writeln!(
            out,
            "{} no findings ({} connection probes)",
            paint.wrap("32", "clean:"),
            report.probes
        );
    } else if report.findings.is_empty() {
        // Never "clean" over what was not read or checked.
        let mut gaps = Vec::new();
        if unread > 0 {
            gaps.push(format!("{unread} path(s) not read"));
        }
        if !report.skipped.is_empty() {
            gaps.push(format!("{} check(s) skipped", report.skipped.len()));
        }
        let _ = writeln!(
            out,
            "no findings in what was read; {} ({} connection probes)",
            gaps.join(", "),
            report.probes
        );
    } else {
        let _ = writeln!(
            out,
            "{} error{}, {} warning{}; {fixable} fixable with `silo audit --fix` ({} connection probes)",
            errors,
            if errors == 1 { "" } else { "s" },
            warnings,
            if warnings == 1 { "" } else { "s" },
            report.probes
        );
    }
    out
}

/// The JSON document of `--format json`.
pub fn json(report: &Report) -> Value {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).expect("findings serialize");
            v["fixable"] = json!(f.fix.is_some());
            v
        })
        .collect();
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    json!({
        "matrix": report.matrix,
        "findings": findings,
        "skipped": report.skipped,
        "summary": {
            "skipped": report.skipped_paths.len(),
            "skipped_paths": report.skipped_paths,
            "errors": errors,
            "warnings": report.findings.len() - errors,
            "fixable": report.findings.iter().filter(|f| f.fix.is_some()).count(),
            "probes": report.probes,
            "open": report.matrix.iter().filter(|c| c.access == Access::Open).count(),
        },
    })
}

/// The report as the shared emitters read it. Live findings point at
/// `manifest` (the manifest's path relative to the project folder) where a
/// format needs a file.
pub fn run<'a>(report: &'a Report, manifest: Option<&'a Path>) -> Run<'a> {
    let findings = report
        .findings
        .iter()
        .map(|f| silo_report::Finding {
            rule: f.check.id(),
            group: None,
            severity: f.severity,
            service: &f.service,
            other_service: f.other_service.as_deref(),
            location: f.location.clone(),
            end: None,
            message: &f.message,
            help: &f.remediation,
        })
        .collect();
    let skipped = report
        .skipped
        .iter()
        .map(|s| Skipped {
            path: None,
            rule: Some(s.check.id()),
            reason: &s.reason,
        })
        .chain(report.skipped_paths.iter().map(|k| Skipped {
            path: Some(&k.path),
            rule: None,
            reason: &k.reason,
        }))
        .collect();
    Run {
        tool: crate::docs::TOOL,
        findings,
        skipped,
        anchor: manifest,
    }
}

/// SARIF 2.1.0: each reported check with its page as help; live findings
/// point at line 1 of the manifest (`manifest`, relative to the project
/// folder) and name their service, store and other service; skipped
/// checks and paths not read are notifications.
pub fn sarif(report: &Report, manifest: &Path) -> Value {
    silo_report::sarif::sarif(&run(report, Some(manifest)))
}

/// GitHub workflow commands: one per finding, a notice per skipped check
/// and per path not read.
pub fn github(report: &Report) -> String {
    silo_report::github::github(&run(report, None))
}
