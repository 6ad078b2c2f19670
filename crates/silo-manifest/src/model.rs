//! The resolved manifest: every default applied, every name checked.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::backup::{BackupDestination, BackupPolicy, BackupSettings};
use crate::gateway_limits::GatewayLimits;
use crate::jwt::JwtSettings;

/// Where a service's store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// One SQLite file per service under the data dir: the embedded default.
    Sqlite,
    /// A PostgreSQL database and login role per service.
    Postgres,
}

impl Engine {
    /// The engine's name as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sqlite" => Ok(Engine::Sqlite),
            "postgres" | "postgresql" => Ok(Engine::Postgres),
            other => Err(format!(
                "unknown engine `{other}`; expected `sqlite` or `postgres`"
            )),
        }
    }
}

/// How PostgreSQL stores are kept apart (ignored for SQLite, where every
/// store is its own file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// One server; one database and one login role per service.
    Database,
    /// One server per service, named by the service's `url_env`.
    Instance,
}

impl Isolation {
    /// The isolation's name as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Database => "database",
            Isolation::Instance => "instance",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed and validated `silo.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// The folder that holds the manifest; relative paths start here.
    pub root: PathBuf,
    /// `[project] name`.
    pub project: String,
    /// Where SQLite stores and secrets live (absolute).
    pub data_dir: PathBuf,
    /// The services, in the order the manifest declares them.
    pub services: Vec<Service>,
    /// `[lint]`: rule levels for every service.
    pub lint: LintSettings,
    /// `[audit]`: settings of `silo audit`'s source scan.
    pub audit: AuditSettings,
    /// `[events]`: how events move between services.
    pub events: EventsSettings,
    /// `[backup]` and `[defaults] backup_before_migrate`.
    pub backup: BackupSettings,
    /// `[gateway.jwt]`: JWTs the gateway accepts; `None` when absent.
    pub gateway_jwt: Option<JwtSettings>,
    /// Position of each service in `services`, by name.
    index: ServiceIndex,
    /// Where silo.toml names each service's event types.
    declarations: EventDeclarations,
}

/// Which list of a service names an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Declared {
    /// `publishes`.
    Publishes,
    /// `consumes`.
    Consumes,
}

/// The 1-based (line, column) in silo.toml of each entry of each service's
/// `publishes` and `consumes`, so that tools reporting on event types
/// (`silo lint`'s events rules) point at the entry.
pub(crate) type EventDeclarations =
    std::collections::BTreeMap<(String, Declared, String), (usize, usize)>;

/// Where each service sits in [`Manifest::services`], so that looking one
/// up by name does not scan them all (a command over N services would
/// otherwise do N² comparisons). `services` is a public field and may be
/// changed after parsing, so every hit is checked against it and a miss
/// falls back to a scan.
#[derive(Clone, Default)]
struct ServiceIndex(HashMap<String, usize>);

impl ServiceIndex {
    fn new(services: &[Service]) -> Self {
        ServiceIndex(
            services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect(),
        )
    }
}

impl fmt::Debug for ServiceIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceIndex({} services)", self.0.len())
    }
}

/// Derived from `services`: two manifests are equal when their services are.
impl PartialEq for ServiceIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ServiceIndex {}

/// Which bus moves events between services (`[events] bus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bus {
    /// No server: the worker moves rows from each publisher's outbox into
    /// each consumer's inbox directly. One machine.
    #[default]
    Embedded,
    /// NATS JetStream: one stream per project, one durable consumer per
    /// consuming service.
    Nats,
}

impl Bus {
    /// The bus's name as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Bus::Embedded => "embedded",
            Bus::Nats => "nats",
        }
    }
}

impl fmt::Display for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Bus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "embedded" => Ok(Bus::Embedded),
            "nats" => Ok(Bus::Nats),
            other => Err(format!(
                "unknown bus `{other}`; expected `embedded` or `nats`"
            )),
        }
    }
}

/// What happens to an outbox row once every consumer (or the bus) has it
/// (`[events] retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retention {
    /// The row is deleted: the outbox stays small.
    #[default]
    Delete,
    /// The row stays, marked sent, for audit.
    Keep,
}

impl Retention {
    /// The retention's name as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Retention::Delete => "delete",
            Retention::Keep => "keep",
        }
    }
}

impl FromStr for Retention {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "delete" => Ok(Retention::Delete),
            "keep" => Ok(Retention::Keep),
            other => Err(format!(
                "unknown retention `{other}`; expected `delete` or `keep`"
            )),
        }
    }
}

/// Which changes between two versions of an event type's contract are
/// allowed, as schema registries name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Compatibility {
    /// Consumers on the new contract read events written to the old one.
    #[default]
    Backward,
    /// Consumers on the old contract read events written to the new one.
    Forward,
    /// Both.
    Full,
    /// Any change.
    None,
}

impl Compatibility {
    /// The level's name as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::Forward => "FORWARD",
            Compatibility::Full => "FULL",
            Compatibility::None => "NONE",
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compatibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "BACKWARD" => Ok(Compatibility::Backward),
            "FORWARD" => Ok(Compatibility::Forward),
            "FULL" => Ok(Compatibility::Full),
            "NONE" => Ok(Compatibility::None),
            _ => Err(format!(
                "unknown compatibility `{s}`; expected `BACKWARD`, `FORWARD`, `FULL` or `NONE`"
            )),
        }
    }
}

/// `[events]` in silo.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsSettings {
    /// The bus (default embedded).
    pub bus: Bus,
    /// On the nats bus, whether each service's worker connects as that
    /// service's own NATS user (see `silo events nats-config`).
    pub nats_auth: bool,
    /// Failed attempts after which an inbox row is dead (default 5).
    pub max_attempts: u32,
    /// What happens to delivered outbox rows (default delete).
    pub retention: Retention,
    /// The JetStream stream's duplicate window in seconds (default 120).
    pub duplicate_window_secs: u64,
    /// The compatibility every event type's contract keeps unless its
    /// `[events.types."<type>"]` says otherwise (default BACKWARD).
    pub compatibility: Compatibility,
    /// `[events.types."<type>"] compatibility`: per-type levels.
    pub type_compatibility: std::collections::BTreeMap<String, Compatibility>,
}

impl Default for EventsSettings {
    fn default() -> Self {
        EventsSettings {
            bus: Bus::Embedded,
            nats_auth: false,
            max_attempts: 5,
            retention: Retention::Delete,
            duplicate_window_secs: 120,
            compatibility: Compatibility::Backward,
            type_compatibility: Default::default(),
        }
    }
}

impl EventsSettings {
    /// The compatibility `event_type`'s contract keeps.
    pub fn compatibility_of(&self, event_type: &str) -> Compatibility {
        self.type_compatibility
            .get(event_type)
            .copied()
            .unwrap_or(self.compatibility)
    }
}

/// `[audit]` in silo.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSettings {
    /// Gitignore-style globs, relative to the project folder, of files the
    /// source scan skips (test fixtures, vendored code).
    pub exclude: Vec<String>,
}

/// `[lint.rules]` (project-wide) or `[services.<name>.lint.rules]`: the
/// level of each named rule. silo-lint knows the rule ids and checks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintSettings {
    pub rules: std::collections::BTreeMap<String, RuleSetting>,
}

/// One rule's level, and where the manifest sets it (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSetting {
    pub level: RuleLevel,
    /// 1-based line and column of the rule's key in silo.toml.
    pub line: usize,
    pub column: usize,
}

/// What a `[lint.rules]` entry sets a rule to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleLevel {
    Off,
    Info,
    Warning,
    Error,
}

impl std::str::FromStr for RuleLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(RuleLevel::Off),
            "info" => Ok(RuleLevel::Info),
            "warning" => Ok(RuleLevel::Warning),
            "error" => Ok(RuleLevel::Error),
            other => Err(format!(
                "unknown rule level `{other}`; expected `off`, `info`, `warning` or `error`"
            )),
        }
    }
}

/// One service and its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service's name (lower snake_case).
    pub name: String,
    /// The engine of its store.
    pub engine: Engine,
    /// How its store is isolated (meaningful for PostgreSQL).
    pub isolation: Isolation,
    /// The database name (the SQLite file stem for SQLite).
    pub database: String,
    /// The login role its credentials use.
    pub role: String,
    /// For instance isolation: the environment variable holding the admin
    /// URL of this service's own server.
    pub url_env: Option<String>,
    /// The migrations folder, relative to the manifest's folder.
    pub migrations: PathBuf,
    /// The service's source folder, relative to the manifest's folder
    /// (default `services/<name>`), scanned by `silo audit`.
    pub source: PathBuf,
    /// Maximum concurrent connections for the role.
    pub connection_limit: Option<u32>,
    /// The owning team (free text).
    pub owner: Option<String>,
    /// Event types this service publishes.
    pub publishes: Vec<String>,
    /// Event types this service consumes.
    pub consumes: Vec<String>,
    /// The folder of the JSON Schemas of the event types it publishes
    /// (`<type>.v<N>.json`), relative to the manifest's folder (default
    /// `<source>/events`).
    pub contracts: PathBuf,
    /// Values for `${name}` placeholders in its migrations, beside the
    /// built-in `service`, `database` and `role`.
    pub placeholders: std::collections::BTreeMap<String, String>,
    /// `[services.<name>.lint]`: rule levels for this service, over the
    /// project's.
    pub lint: LintSettings,
    /// `[services.<name>.backup]` over `[defaults.backup]`; `None` when
    /// neither table exists (the service is backed up only when asked, to
    /// [`Manifest::backup_destination`]).
    pub backup: Option<BackupPolicy>,
    /// `[services.<name>.gateway]` over `[defaults.gateway]`: what `silo
    /// gateway` allows the service.
    pub gateway: GatewayLimits,
}

/// The project-wide sections of silo.toml, validated.
pub(crate) struct Sections {
    pub lint: LintSettings,
    pub audit: AuditSettings,
    pub events: EventsSettings,
    pub declarations: EventDeclarations,
    pub backup: BackupSettings,
    pub gateway_jwt: Option<JwtSettings>,
}

impl Manifest {
    /// A manifest of already validated parts.
    pub(crate) fn new(
        path: PathBuf,
        root: PathBuf,
        project: String,
        data_dir: PathBuf,
        services: Vec<Service>,
        sections: Sections,
    ) -> Self {
        let Sections {
            lint,
            audit,
            events,
            declarations,
            backup,
            gateway_jwt,
        } = sections;
        Manifest {
            index: ServiceIndex::new(&services),
            path,
            root,
            project,
            data_dir,
            services,
            lint,
            audit,
            events,
            declarations,
            backup,
            gateway_jwt,
        }
    }

    /// Where `service`'s backups go: its policy's destination, or
    /// `<data_dir>/backups/<service>`.
    pub fn backup_destination(&self, service: &Service) -> BackupDestination {
        match &service.backup {
            Some(policy) => policy.destination.clone(),
            None => BackupDestination::Local(self.data_dir.join("backups").join(&service.name)),
        }
    }

    /// Where silo.toml names `event_type` in `service`'s `publishes` or
    /// `consumes`: the 1-based line and column of the entry.
    pub fn declared_at(
        &self,
        service: &str,
        list: Declared,
        event_type: &str,
    ) -> Option<(usize, usize)> {
        self.declarations
            .get(&(service.to_string(), list, event_type.to_string()))
            .copied()
    }

    /// Finds a service by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        match self.index.0.get(name).and_then(|&i| self.services.get(i)) {
            Some(s) if s.name == name => Some(s),
            _ => self.services.iter().find(|s| s.name == name),
        }
    }

    /// Whether the data dir is the project folder or one of its ancestors,
    /// so that it holds silo.toml: silo would make the project private and
    /// hide it from git. Compared lexically, on absolute paths.
    pub fn data_dir_holds_manifest(&self) -> bool {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        crate::parse::holds(&absolute(&self.data_dir), &absolute(&self.root))
    }

    /// The absolute path of a service's migrations folder.
    pub fn migrations_dir(&self, service: &Service) -> PathBuf {
        self.root.join(&service.migrations)
    }

    /// The absolute path of a service's contracts folder.
    pub fn contracts_dir(&self, service: &Service) -> PathBuf {
        self.root.join(&service.contracts)
    }

    /// The services that publish `event_type`, in manifest order.
    pub fn publishers_of<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a Service> {
        self.services
            .iter()
            .filter(move |s| s.publishes.iter().any(|t| t == event_type))
    }

    /// The services that consume `event_type`, in manifest order.
    pub fn consumers_of<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a Service> {
        self.services
            .iter()
            .filter(move |s| s.consumes.iter().any(|t| t == event_type))
    }

    /// The absolute path of a service's source folder.
    pub fn source_dir(&self, service: &Service) -> PathBuf {
        self.root.join(&service.source)
    }

    /// Selects services by name, in manifest order; all when `names` is
    /// empty. Returns the unknown names as the error.
    pub fn select<'a>(&'a self, names: &[String]) -> Result<Vec<&'a Service>, Vec<String>> {
        let unknown: Vec<String> = names
            .iter()
            .filter(|n| self.service(n).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        if names.is_empty() {
            return Ok(self.services.iter().collect());
        }
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        Ok(self
            .services
            .iter()
            .filter(|s| wanted.contains(s.name.as_str()))
            .collect())
    }
}

impl Service {
    /// The SQLite file of this service under `data_dir`.
    pub fn sqlite_path(&self, data_dir: &Path) -> PathBuf {
        data_dir
            .join(&self.name)
            .join(format!("{}.sqlite3", self.database))
    }
}
