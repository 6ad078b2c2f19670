//! What a rule reports.

use std::path::PathBuf;

use serde::Serialize;

/// How much a finding matters. Errors fail the run (exit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// The family a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// What only silo can know: service boundaries.
    Boundary,
    /// Seed 002's database-lead checklist.
    Review,
    /// Migration files and their history (seed 004).
    Integrity,
    /// Zero-downtime deploys: locks and rewrites.
    Safety,
}

/// One problem, located in a file.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub group: Group,
    pub severity: Severity,
    pub service: String,
    /// Relative to the folder that holds silo.toml.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Byte range in the file, for carets.
    #[serde(skip)]
    pub span: std::ops::Range<usize>,
    pub message: String,
    pub help: String,
}
