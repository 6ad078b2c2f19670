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
        let _ = writeln!(out, "{label}[{}]: {}", f.rule, f.message);
        let _ = writeln!(out, "  --> {}:{}:{}", f.file.display(), f.line, f.column);
        if let Some(line) = source_line(f, files) {
            let gutter = f.line.to_string();
            let pad = " ".repeat(gutter.len());
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
        let _ = writeln!(out, "  = help: {}\n", f.help);
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "{} file(s) linted: {} error(s), {} warning(s)",
        s.files, s.errors, s.warnings
    );
    out
}

fn source_line(f: &Finding, files: &[SourceFile]) -> Option<String> {
    let file = files.iter().find(|s| s.display == f.file)?;
    file.text
        .lines()
        .nth(f.line.checked_sub(1)?)
        .map(str::to_string)
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
    out
}

/// Workflow commands end at a newline; percent-encode what would break them.
fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}
