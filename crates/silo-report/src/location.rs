//! Where a finding is.

use std::path::PathBuf;

use serde::Serialize;

/// A place in a source file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    /// Relative to the folder that holds silo.toml.
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters (Unicode code points).
    pub column: usize,
}

/// Where a finding is: a place in a source file (lint, the audit's source
/// scan), or something live on a server or disk (the audit's live checks),
/// which has no line to point at.
///
/// Places in files order before live targets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    /// A place in a source file.
    Source(Position),
    /// A live target: the store concerned (database name or SQLite file),
    /// or `None` for what belongs to no store (a role, a server setting).
    Live { store: Option<String> },
}

impl Location {
    /// The place in a file, if the finding has one.
    pub fn position(&self) -> Option<&Position> {
        match self {
            Location::Source(p) => Some(p),
            Location::Live { .. } => None,
        }
    }

    /// The live store concerned, if any.
    pub fn store(&self) -> Option<&str> {
        match self {
            Location::Live { store } => store.as_deref(),
            Location::Source(_) => None,
        }
    }
}

impl Default for Location {
    /// A live target with no store.
    fn default() -> Self {
        Location::Live { store: None }
    }
}
