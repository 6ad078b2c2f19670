//! What an audit reports: the access matrix, findings, and the fixes that
//! `--fix` may apply.

use std::path::PathBuf;

use serde::Serialize;
pub use silo_report::{Location, Position, Severity};

/// Every check, by its stable id. Each has a page in `docs/audit/<id>.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    OwnAccess,
    CrossAccess,
    PublicPrivileges,
    RoleAttributes,
    SharedCredentials,
    ForeignOwner,
    ForeignData,
    PublicSchema,
    InstanceSharing,
    HbaRules,
    StoreFiles,
    Leftovers,
    EventTypes,
    CodeCrossReference,
    CodeSecret,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 15] = [
        Check::OwnAccess,
        Check::CrossAccess,
        Check::PublicPrivileges,
        Check::RoleAttributes,
        Check::SharedCredentials,
        Check::ForeignOwner,
        Check::ForeignData,
        Check::PublicSchema,
        Check::InstanceSharing,
        Check::HbaRules,
        Check::StoreFiles,
        Check::Leftovers,
        Check::EventTypes,
        Check::CodeCrossReference,
        Check::CodeSecret,
    ];

    /// The check's stable id.
    pub fn id(self) -> &'static str {
        match self {
            Check::OwnAccess => "own-access",
            Check::CrossAccess => "cross-access",
            Check::PublicPrivileges => "public-privileges",
            Check::RoleAttributes => "role-attributes",
            Check::SharedCredentials => "shared-credentials",
            Check::ForeignOwner => "foreign-owner",
            Check::ForeignData => "foreign-data",
            Check::PublicSchema => "public-schema",
            Check::InstanceSharing => "instance-sharing",
            Check::HbaRules => "hba-rules",
            Check::StoreFiles => "store-files",
            Check::Leftovers => "leftovers",
            Check::EventTypes => "event-types",
            Check::CodeCrossReference => "code-cross-reference",
            Check::CodeSecret => "code-secret",
        }
    }

    /// The check named `id`.
    pub fn from_id(id: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Checks of the source scan, which need no server.
    pub fn is_code(self) -> bool {
        matches!(self, Check::CodeCrossReference | Check::CodeSecret)
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// One hole, or one broken control.
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: Check,
    /// Audit findings are errors or warnings.
    pub severity: Severity,
    /// The service the finding is about: the store's owner for store-side
    /// checks, the role's owner for role-side checks, the scanned folder's
    /// service for the source scan.
    pub service: String,
    /// The second service involved, if any.
    pub other_service: Option<String>,
    /// A place in the source (the source scan), or the live store
    /// concerned (database name or SQLite file), if any.
    pub location: Location,
    pub message: String,
    /// What to do: SQL where SQL fixes it, else the command or the edit.
    pub remediation: String,
    /// What `--fix` would do; `None` when it cannot fix this.
    pub fix: Option<Fix>,
}

/// The JSON shape: `store` always (null in the source scan), and `file`,
/// `line` and `column` for a place in the source.
impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            check: Check,
            severity: Severity,
            service: &'a str,
            other_service: Option<&'a str>,
            store: Option<&'a str>,
            message: &'a str,
            remediation: &'a str,
            #[serde(flatten, skip_serializing_if = "Option::is_none")]
            position: Option<&'a Position>,
        }
        Json {
            check: self.check,
            severity: self.severity,
            service: &self.service,
            other_service: self.other_service.as_deref(),
            store: self.location.store(),
            message: &self.message,
            remediation: &self.remediation,
            position: self.location.position(),
        }
        .serialize(serializer)
    }
}

/// A remediation `--fix` can apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fix {
    /// Statements run as the administrator in one database, in one
    /// transaction with the other fixes of that database.
    Sql {
        /// Which server: the shared one, or an instance's.
        server: silo_store::ServerId,
        /// `None`: the admin URL's own database (role statements).
        database: Option<String>,
        statements: Vec<String>,
        /// Fixes of one database run in ascending phase (a foreign server
        /// is dropped before its extension).
        phase: u8,
    },
    /// A new password for the service, in the server and its secrets file.
    Rotate { service: String },
    /// A file or folder's mode.
    Chmod { path: PathBuf, mode: u32 },
}

/// Whether a role reaches a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Own,
    Denied,
    Open,
}

/// One cell of the access matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub role_service: String,
    pub store_service: String,
    pub access: Access,
}

/// A check that could not run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub check: Check,
    pub reason: String,
}

/// A path the audit did not read, and why: a file the source scan could
/// not open, a migration file lint could not parse, a service whose
/// migrations folder is missing. An audit that skipped paths is never
/// reported as clean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPath {
    pub service: String,
    /// Relative to the folder that holds silo.toml.
    pub path: PathBuf,
    pub reason: String,
}

/// The whole result of one audit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// PostgreSQL services' roles against their stores, row by row.
    pub matrix: Vec<Cell>,
    pub findings: Vec<Finding>,
    /// Checks that could not run (for example `hba-rules` without the
    /// privilege to read `pg_hba_file_rules`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Paths the source scan or the migration linting did not read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_paths: Vec<SkippedPath>,
    /// Connection attempts made as service roles.
    pub probes: usize,
}

impl Report {
    /// Findings sorted for reading: by check, then service, then place
    /// (places in the source before live stores).
    pub fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            (a.check, &a.service, &a.other_service, &a.location)
                .cmp(&(b.check, &b.service, &b.other_service, &b.location))
                .then_with(|| a.message.cmp(&b.message))
        });
        self.skipped_paths
            .sort_by(|a, b| (&a.path, &a.service).cmp(&(&b.path, &b.service)));
        self.skipped_paths.dedup();
    }

    /// True when nothing was found (in what was read: see
    /// [`Report::is_complete`]).
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// True when every check ran and every path was read.
    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty() && self.skipped_paths.is_empty()
    }
}

impl Finding {
    /// An error-severity finding about `service`.
    pub fn new(
        check: Check,
        service: &str,
        message: impl Into<String>,
        remediation: impl Into<String>,
    ) -> Self {
        Finding {
            check,
            severity: Severity::Error,
            service: service.to_string(),
            other_service: None,
            location: Location::Live { store: None },
            message: message.into(),
            remediation: remediation.into(),
            fix: None,
        }
    }

    /// Names the second service involved.
    pub fn other(mut self, service: Option<&str>) -> Self {
        self.other_service = service.map(str::to_string);
        self
    }

    /// Names the live store concerned.
    pub fn store(mut self, store: &str) -> Self {
        self.location = Location::Live {
            store: Some(store.to_string()),
        };
        self
    }

    /// Lowers the severity to a warning.
    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// What `--fix` does about it.
    pub fn fix(mut self, fix: Fix) -> Self {
        self.fix = Some(fix);
        self
    }

    /// Points at a place in the source.
    pub fn at(mut self, position: Position) -> Self {
        self.location = Location::Source(position);
        self
    }
}

impl Fix {
    /// Admin SQL in `database` (`None`: the admin URL's database).
    pub fn sql(
        server: &silo_store::ServerId,
        database: Option<&str>,
        statements: Vec<String>,
    ) -> Fix {
        Fix::Sql {
            server: server.clone(),
            database: database.map(str::to_string),
            statements,
            phase: 1,
        }
    }
}
