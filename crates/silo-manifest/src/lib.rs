//! The `silo.toml` manifest: one file that declares every service of a
//! system and the one store each of them owns.
//!
//! This crate reads and validates the manifest and knows nothing of
//! databases. Every problem it reports carries the line and column in the
//! file, so a user can jump straight to it.
//!
//! ```
//! use silo_manifest::{Manifest, Overrides};
//! let text = r#"
//! [project]
//! name = "shop"
//! [services.orders]
//! [services.billing]
//! database = "billing_db"
//! "#;
//! let m = Manifest::from_str(text, "silo.toml".as_ref(), &Overrides::default()).unwrap();
//! assert_eq!(m.service("orders").unwrap().role, "orders_svc");
//! assert_eq!(m.service("billing").unwrap().database, "billing_db");
//! ```

mod backup;
mod error;
mod gateway_limits;
mod jwt;
mod model;
pub mod names;
mod parse;

use std::path::{Path, PathBuf};

pub use backup::{
    BackupDestination, BackupMethod, BackupPolicy, BackupSchedule, BackupSettings,
    PgbackrestSettings,
};
pub use error::{LoadError, ManifestError, Problem, line_column};
pub use gateway_limits::{GatewayLimits, RateLimit, parse_timeout};
pub use jwt::{DEFAULT_SECRET_ENV, JwtAlgorithm, JwtKey, JwtSettings};
pub use model::{
    AuditSettings, Bus, Compatibility, Declared, Engine, EventsSettings, Isolation, LintSettings,
    Manifest, Retention, RuleLevel, RuleSetting, Service,
};
pub use parse::Overrides;

/// The manifest's file name.
pub const MANIFEST_FILE: &str = "silo.toml";

impl Manifest {
    /// Parses manifest text. `path` names the file in errors, and its
    /// folder is the root for relative paths.
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, path: &Path, overrides: &Overrides) -> Result<Self, ManifestError> {
        parse::parse(text, path, overrides)
            .map_err(|problems| ManifestError::new(path.to_path_buf(), text, problems))
    }

    /// Reads and parses the manifest at `path`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_str(&text, path, overrides)?)
    }
}

/// Finds `silo.toml` in `start` or the nearest folder above it.
pub fn find_manifest(start: &Path) -> Result<PathBuf, LoadError> {
    start
        .ancestors()
        .map(|dir| dir.join(MANIFEST_FILE))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| LoadError::NotFound {
            start: start.to_path_buf(),
        })
}
