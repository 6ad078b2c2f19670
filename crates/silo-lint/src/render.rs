//! Findings for people (rustc-style, with the source line and a caret) and
//! for machines (JSON, and through `silo-report` SARIF 2.1.0 and GitHub
//! annotations).

use std::fmt::Write;

use silo_report::{Location, Position, Run, human};

use crate::Report;
use crate::finding::Finding;
use crate::source::SourceFile;

/// rustc-style text: severity and rule, location, the line, a caret, help.
pub fn human(report: &Report, files: &[SourceFile]) -> String {
    let paint = human::Paint { on: false };
    let mut out = String::new();
    for f in &report.findings {
        let pad = " ".repeat(f.line.to_string().len());
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            paint.severity(f.severity),
            f.rule,
            f.message
        );
        human::arrow(&mut out, &pad, &position(f));
        if let Some(line) = source_line(f, files) {
            let len = f.span.end.saturating_sub(f.span.start);
            let width = human::underline_width(&line, f.column, len);
            human::snippet(&mut out, f.line, &line, f.column, width);
        }
        human::note(&mut out, &format!("{pad} "), "help", &f.help);
        out.push('\n');
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

fn position(f: &Finding) -> Position {
    Position {
        file: f.file.clone(),
        line: f.line,
        column: f.column,
    }
}

fn source_line(f: &Finding, files: &[SourceFile]) -> Option<String> {
    let file = files.iter().find(|s| s.display == f.file)?;
    file.text
        .lines()
        .nth(f.line.checked_sub(1)?)
        .map(human::printable)
}

/// The JSON document: `{"findings": [...], "summary": {...}}`.
pub fn json(report: &Report) -> serde_json::Value {
    serde_json::to_value(report).expect("findings serialize")
}

/// The report as the shared emitters read it; with `files`, each finding
/// knows where its span ends.
pub fn run<'a>(report: &'a Report, files: &[SourceFile]) -> Run<'a> {
    let findings = report
        .findings
        .iter()
        .map(|f| {
            let end = files
                .iter()
                .find(|s| s.display == f.file)
                .filter(|_| f.span.end > f.span.start)
                .map(|file| file.position(f.span.end));
            silo_report::Finding {
                rule: f.rule.as_str(),
                group: Some(f.group.as_str()),
                severity: f.severity,
                service: &f.service,
                other_service: f.other_service.as_deref(),
                location: Location::Source(position(f)),
                end,
                message: &f.message,
                help: &f.help,
            }
        })
        .collect();
    let skipped = report
        .summary
        .skipped_paths
        .iter()
        .map(|k| silo_report::Skipped {
            path: Some(&k.path),
            rule: None,
            reason: &k.reason,
        })
        .collect();
    Run {
        tool: crate::docs::TOOL,
        findings,
        skipped,
        anchor: None,
    }
}

/// GitHub Actions workflow annotations, one line per finding, and a notice
/// per skipped path.
pub fn github(report: &Report) -> String {
    silo_report::github::github(&run(report, &[]))
}

/// SARIF 2.1.0: each reported rule with its page as help, regions that
/// end where the finding's span does, skipped paths as notifications.
pub fn sarif(report: &Report, files: &[SourceFile]) -> serde_json::Value {
    silo_report::sarif::sarif(&run(report, files))
}
