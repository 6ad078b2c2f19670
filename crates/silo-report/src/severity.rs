//! How much a finding matters.

use serde::Serialize;

/// How much a finding matters. Errors fail the run (exit 1); the audit
/// fails on any finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`: the word people and JSON read.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// The GitHub workflow command: `notice`, `warning` or `error`.
    pub fn github_level(self) -> &'static str {
        match self {
            Severity::Info => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// SARIF's `level`: `note`, `warning` or `error`.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Info => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
