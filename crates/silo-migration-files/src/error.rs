//! What can be wrong with a migrations folder or one of its files. Each
//! error names the path.

use std::path::PathBuf;

use silo_manifest::Engine;

/// A migrations folder or file silo cannot use as it is.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },

    #[error("{}: not a migration file name: {reason}", path.display())]
    BadFileName { path: PathBuf, reason: String },

    #[error("{} and {} have the same version", first.display(), second.display())]
    DuplicateVersion { first: PathBuf, second: PathBuf },

    #[error("{} keeps engine folders but has none for {engine}", dir.display())]
    NoEngineFolder { dir: PathBuf, engine: Engine },

    #[error("{}: Rust migrations cannot be converted to SQL; rewrite it as a .sql file", path.display())]
    RustMigration { path: PathBuf },

    #[error("{} exists already; nothing was imported", path.display())]
    Exists { path: PathBuf },
}

impl FileError {
    /// A stable name for the kind of failure: the last part of the
    /// diagnostic code (`silo::files::<kind>`).
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::Io { .. } => "io",
            FileError::NotUtf8 { .. } => "not-utf8",
            FileError::BadFileName { .. } => "bad-file-name",
            FileError::DuplicateVersion { .. } => "duplicate-version",
            FileError::NoEngineFolder { .. } => "no-engine-folder",
            FileError::RustMigration { .. } => "rust-migration",
            FileError::Exists { .. } => "exists",
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            FileError::BadFileName { .. } => Some(
                "name it V<version>__<description>.sql (apply), U<version>__<description>.sql (undo) or R__<description>.sql (repeatable)".into(),
            ),
            FileError::NoEngineFolder { dir, engine } => Some(format!(
                "add {}/ with this engine's migrations",
                crate::file::engine_folder(dir, *engine).display()
            )),
            _ => None,
        }
    }
}

impl miette::Diagnostic for FileError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(format!("silo::files::{}", self.kind())))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.hint()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display + 'a>)
    }
}
