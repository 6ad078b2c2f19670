//! The shape every output format reads.

use std::path::Path;

use crate::{Location, Pages, Severity};

/// One finding as the emitters see it. Lint and audit findings lend their
/// fields to this view; nothing here is parsed back out of a message.
#[derive(Debug, Clone)]
pub struct Finding<'a> {
    /// The rule's or check's stable kebab-case id.
    pub rule: &'a str,
    /// The rule's family (lint's groups), shown as a SARIF tag.
    pub group: Option<&'a str>,
    pub severity: Severity,
    /// The service the finding is about.
    pub service: &'a str,
    /// The second service involved, if any.
    pub other_service: Option<&'a str>,
    pub location: Location,
    /// Where the flagged text ends (line, column), when it is known.
    pub end: Option<(usize, usize)>,
    pub message: &'a str,
    /// What to do about it.
    pub help: &'a str,
}

impl Finding<'_> {
    /// What a reader needs before the message when the finding points at
    /// no file, which would otherwise tell whose it is: `orders: ` or
    /// `orders → billing: `. Empty for a place in a file.
    pub fn about(&self) -> String {
        match (&self.location, self.other_service) {
            (Location::Source(_), _) => String::new(),
            (Location::Live { .. }, None) => format!("{}: ", self.service),
            (Location::Live { .. }, Some(other)) => format!("{} → {other}: ", self.service),
        }
    }
}

/// What a run did not read or check, and why: a run that skipped
/// something is never reported as a clean bill for it.
#[derive(Debug, Clone)]
pub struct Skipped<'a> {
    /// The path not read, if it is a path.
    pub path: Option<&'a Path>,
    /// The rule or check that did not run, if it is one.
    pub rule: Option<&'a str>,
    pub reason: &'a str,
}

/// The tool that reports: its names in each format and its pages.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// SARIF's driver name (`silo`, `silo-audit`): code scanning keeps one
    /// set of alerts per tool, so lint and audit keep apart.
    pub name: &'static str,
    /// The command (`lint`, `audit`).
    pub command: &'static str,
    /// What the command does to a path, for what it skipped (`linted`,
    /// `audited`).
    pub done: &'static str,
    /// What an annotation's title starts with, before the rule id
    /// (`silo`, `silo audit`).
    pub title: &'static str,
    /// The word before the help text (`help`, `fix`).
    pub help: &'static str,
    /// Each rule's page.
    pub pages: &'static Pages,
}

/// One run of a tool, ready for an emitter.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub tool: Tool,
    /// In the order they are to be shown.
    pub findings: Vec<Finding<'a>>,
    pub skipped: Vec<Skipped<'a>>,
    /// The file a finding without a place in a file points at where a
    /// format needs a file (SARIF): the manifest, relative to its folder.
    pub anchor: Option<&'a Path>,
}

impl Run<'_> {
    /// `text (help: what to do)`, with [`Finding::about`] in front.
    pub(crate) fn message(&self, f: &Finding<'_>) -> String {
        format!(
            "{}{} ({}: {})",
            f.about(),
            f.message,
            self.tool.help,
            f.help
        )
    }
}
