//! The events rules: what silo.toml declares about event types, and the
//! contracts in each publisher's folder. They look at the whole project
//! at once rather than at one migration file.

use std::ops::Range;
use std::path::PathBuf;

use silo_contracts::Catalog;
use silo_manifest::{Declared, Manifest};

use crate::finding::{Group, Severity};

/// What every events rule sees.
pub struct EventsContext<'a> {
    pub manifest: &'a Manifest,
    /// Every publishing service's contracts, and the files that are not.
    pub catalog: &'a Catalog,
}

/// One problem an events rule found, already placed.
pub struct EventHit {
    /// The service it is about.
    pub service: String,
    /// Absolute path of the file, for `--changed-since` and PATHS.
    pub path: PathBuf,
    /// Relative to the folder that holds silo.toml.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Byte range in the file.
    pub span: Range<usize>,
    pub message: String,
    pub help: String,
    pub other_service: Option<String>,
}

/// A rule over the project's event types and contracts.
pub trait EventsRule: Sync {
    fn id(&self) -> crate::RuleId;
    fn group(&self) -> Group {
        Group::Events
    }
    fn severity(&self) -> Severity;
    fn check(&self, ctx: &EventsContext, out: &mut Vec<EventHit>);
}

impl EventsContext<'_> {
    /// A hit at silo.toml's entry naming `event_type` in `service`'s
    /// `list` (the file's start if it cannot be found).
    pub fn in_manifest(
        &self,
        service: &str,
        list: Declared,
        event_type: &str,
        message: String,
        help: String,
    ) -> EventHit {
        let (line, column) = self
            .manifest
            .declared_at(service, list, event_type)
            .unwrap_or((1, 1));
        let file = self
            .manifest
            .path
            .strip_prefix(&self.manifest.root)
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                self.manifest
                    .path
                    .file_name()
                    .map_or_else(|| self.manifest.path.clone(), PathBuf::from)
            });
        EventHit {
            service: service.to_string(),
            path: self.manifest.path.clone(),
            file,
            line,
            column,
            span: 0..0,
            message,
            help,
            other_service: None,
        }
    }

    /// The folder a service's contracts go in, as a user sees it.
    pub fn folder(&self, service: &silo_manifest::Service) -> String {
        service.contracts.display().to_string()
    }
}
