//! What an audit reports: the access matrix, findings, and the fixes that
//! `--fix` may apply.

use std::path::PathBuf;

use serde::Serialize;

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
    CodeCrossReference,
    CodeSecret,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 13] = [
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

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A place in a source file, relative to the project folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

/// One hole, or one broken control.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    /// The service the finding is about: the store's owner for store-side
    /// checks, the role's owner for role-side checks, the scanned folder's
    /// service for the source scan.
    pub service: String,
    /// The second service involved, if any.
    pub other_service: Option<String>,
    /// The store concerned (database name or SQLite file), if any.
    pub store: Option<String>,
    pub message: String,
    /// What to do: SQL where SQL fixes it, else the command or the edit.
    pub remediation: String,
    /// Where in the source, for the source scan.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// What `--fix` would do; `None` when it cannot fix this.
    #[serde(skip)]
    pub fix: Option<Fix>,
}

/// A remediation `--fix` can apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Fix {
    /// Statements run as the administrator in one database, in one
    /// transaction with the other fixes of that database.
    Sql {
        /// The server's key: `None` is the shared server, `Some(var)` an
        /// instance-isolated service's server.
        server: Option<String>,
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
    /// Connection attempts made as service roles.
    pub probes: usize,
}

impl Report {
    /// Findings sorted for reading: by check, then service, then place.
    pub fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            (a.check, &a.service, &a.other_service, &a.store, &a.location)
                .cmp(&(b.check, &b.service, &b.other_service, &b.store, &b.location))
                .then_with(|| a.message.cmp(&b.message))
        });
    }

    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

impl PartialOrd for Location {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Location {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.file, self.line, self.column).cmp(&(&other.file, other.line, other.column))
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
            store: None,
            message: message.into(),
            remediation: remediation.into(),
            location: None,
            fix: None,
        }
    }

    /// Names the second service involved.
    pub fn other(mut self, service: Option<&str>) -> Self {
        self.other_service = service.map(str::to_string);
        self
    }

    /// Names the store concerned.
    pub fn store(mut self, store: &str) -> Self {
        self.store = Some(store.to_string());
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
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }
}

impl Fix {
    /// Admin SQL in `database` (`None`: the admin URL's database).
    pub fn sql(server: &Option<String>, database: Option<&str>, statements: Vec<String>) -> Fix {
        Fix::Sql {
            server: server.clone(),
            database: database.map(str::to_string),
            statements,
            phase: 1,
        }
    }
}
