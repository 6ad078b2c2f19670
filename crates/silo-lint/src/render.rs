//! Findings for people (rustc-style, with the source line and a caret) and
//! for machines (JSON).

use std::fmt::Write;

use crate::Report;
use crate::finding::{Finding, Severity};
use crate::source::SourceFile;

/// rustc-style text: severity and rule, location, the line, a caret, help.
pub fn human(report: &Report, files: &[SourceFile]) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let label = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        let gutter = f.line.to_string();
        let pad = " ".repeat(gutter.len());
        let _ = writeln!(out, "{label}[{}]: {}", f.rule, f.message);
        let _ = writeln!(out, "{pad}--> {}:{}:{}", f.file.display(), f.line, f.column);
        if let Some(line) = source_line(f, files) {
            let width = underline_width(f, &line);
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{gutter} | {line}");
            let _ = writeln!(
                out,
                "{pad} | {}{}",
                " ".repeat(f.column.saturating_sub(1)),
                "^".repeat(width)
            );
        }
        let _ = writeln!(out, "{pad} = help: {}\n", f.help);
    }
    let s = &report.summary;
    let infos = if s.infos > 0 {
        format!(", {} info(s)", s.infos)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{} file(s) linted: {} error(s), {} warning(s){infos}",
        s.files, s.errors, s.warnings
    );
    if s.skipped > 0 {
        let _ = writeln!(out, "{} path(s) skipped, not linted:", s.skipped);
        for k in &s.skipped_paths {
            let _ = writeln!(out, "  {}: {}", k.path.display(), k.reason);
        }
    }
    out
}

fn source_line(f: &Finding, files: &[SourceFile]) -> Option<String> {
    let file = files.iter().find(|s| s.display == f.file)?;
    // Control characters (a binary file's) would garble the terminal.
    file.text.lines().nth(f.line.checked_sub(1)?).map(|line| {
        line.chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect()
    })
}

fn underline_width(f: &Finding, line: &str) -> usize {
    let rest = line.chars().count().saturating_sub(f.column - 1);
    let span = f.span.end.saturating_sub(f.span.start);
    span.clamp(1, rest.max(1))
}

/// The JSON document: `{"findings": [...], "summary": {...}}`.
pub fn json(report: &Report) -> serde_json::Value {
    serde_json::to_value(report).expect("findings serialize")
}

/// GitHub Actions workflow annotations, one line per finding.
pub fn github(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let _ = writeln!(
            out,
            "::{level} file={},line={},col={},title=silo {}::{} (help: {})",
            f.file.display(),
            f.line,
            f.column,
            f.rule,
            escape(&f.message),
            escape(&f.help)
        );
    }
    for k in &report.summary.skipped_paths {
        let _ = writeln!(
            out,
            "::notice file={},title=silo lint skipped this path::{}",
            k.path.display(),
            escape(&k.reason)
        );
    }
    out
}

/// Workflow commands end at a newline; percent-encode what would break them.
fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// SARIF 2.1.0, as GitHub code scanning and other viewers take it. Each
/// reported rule carries its page as help; columns count Unicode code
/// points, as silo's do.
pub fn sarif(report: &Report, files: &[SourceFile]) -> serde_json::Value {
    let mut rule_ids: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let groups: std::collections::HashMap<&str, crate::Group> =
        report.findings.iter().map(|f| (f.rule, f.group)).collect();
    let rules: Vec<serde_json::Value> = rule_ids
        .iter()
        .map(|id| {
            let summary = crate::docs::summary(id).unwrap_or_else(|| id.to_string());
            let page = crate::docs::page(id).unwrap_or_default();
            serde_json::json!({
                "id": id,
                "name": id,
                "shortDescription": {"text": summary},
                "help": {"text": page, "markdown": page},
                "properties": {"tags": [groups[id]]},
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "note",
            };
            let mut region = serde_json::json!({"startLine": f.line, "startColumn": f.column});
            if let Some(file) = files.iter().find(|s| s.display == f.file)
                && f.span.end > f.span.start
            {
                let (line, column) = file.position(f.span.end);
                region["endLine"] = line.into();
                region["endColumn"] = column.into();
            }
            serde_json::json!({
                "ruleId": f.rule,
                "ruleIndex": rule_ids.binary_search(&f.rule).unwrap_or(0),
                "level": level,
                "message": {"text": format!("{} (help: {})", f.message, f.help)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {
                            "uri": uri(&f.file),
                            "uriBaseId": "%SRCROOT%",
                        },
                        "region": region,
                    }
                }],
                "properties": {"service": f.service, "group": f.group},
            })
        })
        .collect();
    let mut sarif = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "silo",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the folder that holds silo.toml"}}},
            "results": results,
        }],
    });
    // What was not read, as notifications of the run.
    let skipped = &report.summary.skipped_paths;
    if !skipped.is_empty() {
        let notes: Vec<serde_json::Value> = skipped
            .iter()
            .map(|k| {
                serde_json::json!({
                    "level": "note",
                    "message": {"text": format!("skipped, not linted: {}", k.reason)},
                    "locations": [{"physicalLocation": {"artifactLocation": {
                        "uri": uri(&k.path),
                        "uriBaseId": "%SRCROOT%",
                    }}}],
                })
            })
            .collect();
        sarif["runs"][0]["invocations"] = serde_json::json!([{
            "executionSuccessful": true,
            "toolExecutionNotifications": notes,
        }]);
    }
    sarif
}

/// A relative path as a URI reference: `/` separators, percent-encoded
/// where a URI needs it.
fn uri(path: &std::path::Path) -> String {
    let mut out = String::new();
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in part.to_string_lossy().bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}
