//! Reports as people and machines read them: a human access matrix and
//! findings, JSON, SARIF 2.1.0 and GitHub workflow annotations.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::{Access, Check, Finding, Report, Severity, docs};

/// Beyond this many stores the matrix is summarized: only rows with an
/// open cell are drawn.
const FULL_MATRIX_MAX: usize = 12;

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

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
        let label = match f.severity {
            Severity::Error => paint.wrap("1;31", "error"),
            Severity::Warning => paint.wrap("1;33", "warning"),
        };
        let mut about = f.service.clone();
        if let Some(other) = &f.other_service {
            about.push_str(&format!(" → {other}"));
        }
        let _ = writeln!(out, "{label}[{}] {about}: {}", f.check, f.message);
        if let Some(l) = &f.location {
            let _ = writeln!(out, "  --> {}:{}:{}", l.file.display(), l.line, l.column);
        }
        let fixable = if f.fix.is_some() { " (--fix)" } else { "" };
        let _ = writeln!(out, "  = fix{fixable}: {}", f.remediation);
    }
    for s in &report.skipped {
        let _ = writeln!(out, "skipped {}: {}", s.check, s.reason);
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = report.findings.len() - errors;
    let fixable = report.findings.iter().filter(|f| f.fix.is_some()).count();
    if report.findings.is_empty() {
        let _ = writeln!(
            out,
            "{} no findings ({} connection probes)",
            paint.wrap("32", "clean:"),
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
            "errors": errors,
            "warnings": report.findings.len() - errors,
            "fixable": report.findings.iter().filter(|f| f.fix.is_some()).count(),
            "probes": report.probes,
            "open": report.matrix.iter().filter(|c| c.access == Access::Open).count(),
        },
    })
}

fn level(f: &Finding) -> &'static str {
    match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// SARIF 2.1.0. Live findings have no source line; they point at the
/// manifest (`manifest` is its path relative to the project folder).
pub fn sarif(report: &Report, manifest: &str) -> Value {
    let rules: Vec<Value> = Check::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.id(),
                "shortDescription": {"text": docs::summary(c.id()).unwrap_or_else(|| c.id().to_string())},
                "helpUri": format!("docs/audit/{}.md", c.id()),
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let (uri, line, column) = match &f.location {
                Some(l) => (l.file.display().to_string(), l.line, l.column),
                None => (manifest.to_string(), 1, 1),
            };
            json!({
                "ruleId": f.check.id(),
                "ruleIndex": Check::ALL.iter().position(|c| *c == f.check),
                "level": level(f),
                "message": {"text": format!("{} (service `{}`). Fix: {}", f.message, f.service, f.remediation)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri},
                        "region": {"startLine": line, "startColumn": column}
                    }
                }],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "silo-audit", "informationUri": "https://example.invalid/silo", "rules": rules}},
            "results": results,
        }],
    })
}

/// GitHub workflow commands, one per finding.
pub fn github(report: &Report) -> String {
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let mut out = String::new();
    for f in &report.findings {
        let place = match &f.location {
            Some(l) => format!(
                "file={},line={},col={},",
                l.file.display(),
                l.line,
                l.column
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "::{} {place}title=silo audit {}::{}",
            level(f),
            f.check,
            escape(&format!("{} Fix: {}", f.message, f.remediation))
        );
    }
    out
}
