//! From `silo.toml` text to a validated [`Manifest`].
//!
//! The raw structures keep every value's byte span so that each rule can
//! point at the exact place in the file.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::backup::{
    BackupDestination, BackupMethod, BackupPolicy, BackupSchedule, BackupSettings,
    PgbackrestSettings, Refusal, check_recipient, check_stanza, parse_cron, parse_destination,
    parse_retention, parse_timezone,
};
use crate::error::{LineIndex, Problem};
use crate::gateway_limits::{self, PartialLimits, RawGatewayLimits};
use crate::jwt::{RawGateway, jwt_settings};
use crate::model::{
    AuditSettings, Declared, Engine, EventsSettings, Isolation, LintSettings, Manifest,
    RuleSetting, Sections, Service,
};
use crate::names::{check_env_var, check_event_type, check_identifier, suggest_identifier};

/// The longest `duplicate_window_seconds`: 7 days. A publish is only ever
/// re-sent by a worker retrying it (seconds to minutes later, or after a
/// restart), the server keeps every message id seen in the window in
/// memory, and JetStream refuses a window longer than the stream's
/// maximum age; the inbox's unique event id catches anything later.
const MAX_DUPLICATE_WINDOW_SECS: u64 = 7 * 24 * 3600;

/// Values from flags and the environment that beat the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Engine for every service that does not set its own.
    pub engine: Option<Engine>,
    /// Data dir, relative to the current folder when not absolute.
    pub data_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    project: Option<Spanned<RawProject>>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    services: IndexMap<Spanned<String>, Spanned<RawService>>,
    lint: Option<RawLint>,
    audit: Option<RawAudit>,
    events: Option<RawEvents>,
    backup: Option<RawBackupSettings>,
    gateway: Option<RawGateway>,
}

/// `[backup]`: project-wide backup settings.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackupSettings {
    #[serde(default)]
    recipients: Vec<Spanned<String>>,
}

/// `[defaults.backup]` and `[services.<name>.backup]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    retention: Option<Spanned<String>>,
    keep: Option<Spanned<i64>>,
    destination: Option<Spanned<String>>,
    encrypt: Option<Spanned<bool>>,
    compression: Option<Spanned<i64>>,
    verify_every: Option<Spanned<i64>>,
    method: Option<Spanned<String>>,
    repository: Option<Spanned<String>>,
    pg_data: Option<Spanned<String>>,
    stanza: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    bus: Option<Spanned<String>>,
    nats_auth: Option<bool>,
    max_attempts: Option<Spanned<i64>>,
    retention: Option<Spanned<String>>,
    duplicate_window_seconds: Option<Spanned<i64>>,
    compatibility: Option<Spanned<String>>,
    #[serde(default)]
    types: IndexMap<Spanned<String>, RawEventType>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEventType {
    compatibility: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLint {
    #[serde(default)]
    rules: IndexMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    engine: Option<Spanned<String>>,
    data_dir: Option<Spanned<String>>,
    isolation: Option<Spanned<String>>,
    backup_before_migrate: Option<bool>,
    backup: Option<RawBackup>,
    gateway: Option<RawGatewayLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    database: Option<Spanned<String>>,
    engine: Option<Spanned<String>>,
    isolation: Option<Spanned<String>>,
    role: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    migrations: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    connection_limit: Option<Spanned<i64>>,
    owner: Option<String>,
    #[serde(default)]
    publishes: Vec<Spanned<String>>,
    #[serde(default)]
    consumes: Vec<Spanned<String>>,
    contracts: Option<Spanned<String>>,
    #[serde(default)]
    placeholders: std::collections::BTreeMap<String, String>,
    lint: Option<RawLint>,
    backup: Option<RawBackup>,
    gateway: Option<RawGatewayLimits>,
}

/// Collects problems against one source text.
pub(crate) struct Problems<'t> {
    lines: LineIndex<'t>,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn refuse(&mut self, span: Range<usize>, (message, help): Refusal) {
        self.add(span, message, help);
    }

    /// How many problems were found so far.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn add(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let (line, column) = self.lines.line_column(span.start);
        self.list.push(Problem {
            message,
            span: Some(span),
            line,
            column,
            help,
        });
    }
}

/// A resolved service plus the spans its cross-service rules point at.
struct Located {
    service: Service,
    database_span: Range<usize>,
    role_span: Range<usize>,
    migrations_span: Range<usize>,
    url_env_span: Range<usize>,
    /// Where its backups go (the policy's, or the default), and the span
    /// of the value that says so.
    destination: (BackupDestination, Range<usize>),
    /// Each valid entry of `publishes` and `consumes`, with its span.
    declared: Vec<(Declared, String, Range<usize>)>,
}

/// Parses and validates manifest text. `path` locates the manifest: its
/// parent is the root for relative paths, and it names the file in errors.
pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Manifest, Vec<Problem>> {
    let mut problems = Problems {
        lines: LineIndex::new(text),
        list: Vec::new(),
    };
    let raw: RawManifest = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            problems.add(span, e.message().trim().to_string(), toml_help(e.message()));
            return Err(problems.list);
        }
    };

    let root = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Paths in the manifest are checked against the project folder's
    // absolute path, lexically: the manifest is validated without touching
    // the file system.
    let absolute_root = normalize(&std::path::absolute(&root).unwrap_or_else(|_| root.clone()));

    let project = match &raw.project {
        None => {
            problems.add(
                0..0,
                "missing `[project]` table".into(),
                Some("add `[project]` with `name = \"your_system\"`".into()),
            );
            String::new()
        }
        Some(p) => {
            let name = p.get_ref().name.get_ref();
            if name.trim().is_empty() {
                problems.add(
                    p.get_ref().name.span(),
                    "the project name is empty".into(),
                    None,
                );
            }
            name.clone()
        }
    };

    let default_engine = match (&overrides.engine, &raw.defaults.engine) {
        (Some(engine), _) => *engine,
        (None, Some(e)) => parse_engine(e, &mut problems),
        (None, None) => Engine::Sqlite,
    };
    let default_isolation = raw
        .defaults
        .isolation
        .as_ref()
        .map_or(Isolation::Database, |i| parse_isolation(i, &mut problems));
    let data_dir = match (&overrides.data_dir, &raw.defaults.data_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => {
            if holds(&absolute_root.join(dir.get_ref()), &absolute_root) {
                problems.add(
                    dir.span(),
                    format!(
                        "the data dir `{}` holds the project folder and silo.toml; silo keeps it private (mode 0700) and out of git, which would hide the project",
                        dir.get_ref()
                    ),
                    Some("give stores and secrets a folder of their own, such as `.silo` (the default)".into()),
                );
            }
            root.join(dir.get_ref())
        }
        (None, None) => root.join(".silo"),
    };

    if raw.services.is_empty() {
        problems.add(
            raw.project.as_ref().map_or(0..0, |p| p.span()),
            "the manifest declares no services".into(),
            Some("add a `[services.<name>]` table for each service".into()),
        );
    }

    let backup = backup_settings(
        raw.backup.as_ref(),
        raw.defaults.backup_before_migrate,
        &mut problems,
    );
    // Recipients that were written but refused are reported as such; saying
    // again that there are none would be the same mistake twice.
    let no_recipients = raw.backup.as_ref().is_none_or(|b| b.recipients.is_empty());
    let default_policy = raw
        .defaults
        .backup
        .as_ref()
        .map(|b| partial_policy(b, &root, no_recipients, &mut problems));
    if let Some(defaults) = &raw.defaults.backup {
        refuse_method_defaults(defaults, &mut problems);
    }

    let default_limits = raw
        .defaults
        .gateway
        .as_ref()
        .map(|g| gateway_partial(g, &mut problems));

    let mut located = Vec::new();
    for (name, raw_service) in &raw.services {
        if let Some(mut l) = resolve_service(
            name,
            raw_service,
            default_engine,
            default_isolation,
            &absolute_root,
            &mut problems,
        ) {
            let own = raw_service
                .get_ref()
                .backup
                .as_ref()
                .map(|b| partial_policy(b, &root, no_recipients, &mut problems));
            let (policy, destination) = backup_policy(
                &l.service.name,
                name.span(),
                own,
                default_policy.as_ref(),
                &data_dir,
                &mut problems,
            );
            l.service.backup = policy;
            if let Some(own) = &raw_service.get_ref().backup {
                let method = backup_method(own, &l.service, &data_dir, &root, &mut problems);
                if let Some(policy) = &mut l.service.backup {
                    policy.method = method;
                }
            }
            l.destination = destination;
            let own_limits = raw_service
                .get_ref()
                .gateway
                .as_ref()
                .map(|g| gateway_partial(g, &mut problems));
            l.service.gateway = gateway_limits::resolve(
                own_limits.as_ref(),
                default_limits.as_ref(),
                &mut |span, refusal| problems.refuse(span, refusal),
            );
            located.push(l);
        }
    }
    check_cross_service(&located, &mut problems);
    check_destinations(&located, &mut problems);
    let lint = lint_settings(raw.lint.as_ref(), &mut problems);
    let audit = audit_settings(raw.audit.as_ref(), &mut problems);
    let events = events_settings(raw.events.as_ref(), &mut problems);
    let gateway_jwt = jwt_settings(raw.gateway.as_ref(), &root, &mut problems);
    let declarations = located
        .iter()
        .flat_map(|l| {
            l.declared.iter().map(|(list, event_type, span)| {
                (
                    (l.service.name.clone(), *list, event_type.clone()),
                    problems.lines.line_column(span.start),
                )
            })
        })
        .collect();

    if !problems.list.is_empty() {
        return Err(problems.list);
    }
    Ok(Manifest::new(
        path.to_path_buf(),
        root,
        project,
        data_dir,
        located.into_iter().map(|l| l.service).collect(),
        Sections {
            lint,
            audit,
            events,
            declarations,
            backup,
            gateway_jwt,
        },
    ))
}

/// `[backup]` and `[defaults] backup_before_migrate`.
fn backup_settings(
    raw: Option<&RawBackupSettings>,
    backup_before_migrate: Option<bool>,
    problems: &mut Problems,
) -> BackupSettings {
    let mut settings = BackupSettings {
        recipients: Vec::new(),
        backup_before_migrate: backup_before_migrate.unwrap_or(false),
    };
    for recipient in raw.into_iter().flat_map(|r| &r.recipients) {
        match check_recipient(recipient.get_ref()) {
            Ok(()) => settings.recipients.push(recipient.get_ref().clone()),
            Err(refusal) => problems.refuse(recipient.span(), refusal),
        }
    }
    settings
}

/// One backup table's valid values, before a service's are laid over the
/// defaults'. A bad value is reported and left out.
#[derive(Default)]
struct PartialPolicy {
    schedule: Option<(String, croner::Cron)>,
    timezone: Option<(chrono_tz::Tz, Range<usize>)>,
    retention: Option<std::time::Duration>,
    keep: Option<u32>,
    destination: Option<(BackupDestination, Range<usize>)>,
    encrypt: Option<bool>,
    compression: Option<u8>,
    verify_every: Option<u32>,
}

fn partial_policy(
    raw: &RawBackup,
    root: &Path,
    no_recipients: bool,
    problems: &mut Problems,
) -> PartialPolicy {
    let schedule = raw
        .schedule
        .as_ref()
        .and_then(|s| checked(s, problems, parse_cron).map(|cron| (s.get_ref().clone(), cron)));
    let timezone = raw
        .timezone
        .as_ref()
        .and_then(|t| checked(t, problems, parse_timezone).map(|tz| (tz, t.span())));
    let retention = raw
        .retention
        .as_ref()
        .and_then(|r| checked(r, problems, parse_retention));
    let destination = raw.destination.as_ref().and_then(|d| {
        checked(d, problems, |text| parse_destination(text, root)).map(|dest| (dest, d.span()))
    });
    let keep = raw.keep.as_ref().and_then(|k| {
        at_least_one(
            k,
            "keep",
            "leave `keep` out to prune by `retention` alone, or keep every backup",
            problems,
        )
    });
    let verify_every = raw.verify_every.as_ref().and_then(|v| {
        at_least_one(
            v,
            "verify_every",
            "leave `verify_every` out for no restore drills",
            problems,
        )
    });
    let compression = raw.compression.as_ref().and_then(|c| {
        match u8::try_from(*c.get_ref()) {
            Ok(level) if level <= 9 => Some(level),
            _ => {
                problems.add(
                    c.span(),
                    format!("compression must be 0 to 9, not {}", c.get_ref()),
                    Some("pg_dump's zlib level: 0 none, 1 fastest, 9 smallest; leave it out for pg_dump's default".into()),
                );
                None
            }
        }
    });
    if let Some(encrypt) = &raw.encrypt
        && *encrypt.get_ref()
        && no_recipients
    {
        problems.add(
            encrypt.span(),
            "`encrypt = true` but the project has no age recipients".into(),
            Some("add `[backup]` with `recipients = [\"age1...\"]` (the public keys `age-keygen` prints), or set `encrypt = false`".into()),
        );
    }
    PartialPolicy {
        schedule,
        timezone,
        retention,
        keep,
        destination,
        encrypt: raw.encrypt.as_ref().map(|e| *e.get_ref()),
        compression,
        verify_every,
    }
}

/// One `gateway` table's valid values, each refused one reported.
fn gateway_partial(raw: &RawGatewayLimits, problems: &mut Problems) -> PartialLimits {
    gateway_limits::partial(raw, &mut |span, refusal| problems.refuse(span, refusal))
}

/// A string value through `check`, or its refusal reported at its place.
fn checked<T>(
    value: &Spanned<String>,
    problems: &mut Problems,
    check: impl FnOnce(&str) -> Result<T, Refusal>,
) -> Option<T> {
    check(value.get_ref())
        .map_err(|refusal| problems.refuse(value.span(), refusal))
        .ok()
}

/// A count that must be 1 or more.
fn at_least_one(
    value: &Spanned<i64>,
    key: &str,
    help: &str,
    problems: &mut Problems,
) -> Option<u32> {
    match u32::try_from(*value.get_ref()) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            problems.add(
                value.span(),
                format!("{key} must be 1 or more, not {}", value.get_ref()),
                Some(help.to_string()),
            );
            None
        }
    }
}

/// A service's policy: its own values over the defaults', field by field.
/// A destination from `[defaults.backup]` is a base that every service
/// gets a folder (or prefix) of its own under, as the default
/// `<data_dir>/backups/<service>` is. Returns the policy (`None` when
/// neither table exists) and where the service's backups go in any case.
fn backup_policy(
    service: &str,
    name_span: Range<usize>,
    own: Option<PartialPolicy>,
    defaults: Option<&PartialPolicy>,
    data_dir: &Path,
    problems: &mut Problems,
) -> (Option<BackupPolicy>, (BackupDestination, Range<usize>)) {
    let fallback = BackupDestination::Local(data_dir.join("backups").join(service));
    if own.is_none() && defaults.is_none() {
        return (None, (fallback, name_span));
    }
    let own = own.unwrap_or_default();
    let empty = PartialPolicy::default();
    let defaults = defaults.unwrap_or(&empty);

    let destination = match (&own.destination, &defaults.destination) {
        (Some(d), _) => d.clone(),
        (None, Some((base, span))) => (base.join(service), span.clone()),
        (None, None) => (fallback, name_span),
    };
    let schedule = own.schedule.as_ref().or(defaults.schedule.as_ref());
    if schedule.is_none()
        && let Some((_, span)) = &own.timezone
    {
        problems.add(
            span.clone(),
            format!("service `{service}` sets a backup `timezone` but no `schedule`"),
            Some("add `schedule = \"...\"` (cron) beside it, or remove `timezone`".into()),
        );
    }
    let timezone = own
        .timezone
        .as_ref()
        .or(defaults.timezone.as_ref())
        .map_or(chrono_tz::UTC, |(tz, _)| *tz);
    let policy = BackupPolicy {
        schedule: schedule
            .map(|(expression, cron)| BackupSchedule::new(expression, cron.clone(), timezone)),
        retention: own.retention.or(defaults.retention),
        keep: own.keep.or(defaults.keep),
        destination: destination.0.clone(),
        encrypt: own.encrypt.or(defaults.encrypt).unwrap_or(false),
        compression: own.compression.or(defaults.compression),
        verify_every: own.verify_every.or(defaults.verify_every),
        method: BackupMethod::Dump,
    };
    (Some(policy), destination)
}

/// `method` and the pgBackRest keys name one server: they belong to a
/// service's own `[services.<name>.backup]`, not to `[defaults.backup]`.
fn refuse_method_defaults(raw: &RawBackup, problems: &mut Problems) {
    if let Some(method) = &raw.method
        && method.get_ref() != "dump"
    {
        problems.add(
            method.span(),
            format!("`method = \"{}\"` in `[defaults.backup]`: the method is chosen per service", method.get_ref()),
            Some("set `method = \"pgbackrest\"` with its `pg_data` in each `[services.<name>.backup]` that uses it".into()),
        );
    }
    for (key, value) in [
        ("repository", &raw.repository),
        ("pg_data", &raw.pg_data),
        ("stanza", &raw.stanza),
    ] {
        if let Some(value) = value {
            problems.add(
                value.span(),
                format!("`{key}` in `[defaults.backup]`: it names one service's server"),
                Some(format!("set `{key}` in the `[services.<name>.backup]` of the service with `method = \"pgbackrest\"`")),
            );
        }
    }
}

/// A service's backup method from its own `[services.<name>.backup]`:
/// `"dump"` (the default) or `"pgbackrest"`, which backs up the service's
/// whole server and so needs a server of its own (PostgreSQL, `instance`
/// isolation) and that server's data directory.
fn backup_method(
    raw: &RawBackup,
    service: &Service,
    data_dir: &Path,
    root: &Path,
    problems: &mut Problems,
) -> BackupMethod {
    let is_pgbackrest = match &raw.method {
        None => false,
        Some(m) if m.get_ref() == "dump" => false,
        Some(m) if m.get_ref() == "pgbackrest" => true,
        Some(m) => {
            problems.add(
                m.span(),
                format!("unknown backup method `{}`", m.get_ref()),
                Some("use `\"dump\"` (logical dumps, the default) or `\"pgbackrest\"` (point-in-time recovery of a service's own server)".into()),
            );
            return BackupMethod::Dump;
        }
    };
    if !is_pgbackrest {
        for (key, value) in [
            ("repository", &raw.repository),
            ("pg_data", &raw.pg_data),
            ("stanza", &raw.stanza),
        ] {
            if let Some(value) = value {
                problems.add(
                    value.span(),
                    format!(
                        "`{key}` is a pgBackRest setting, and service `{}` is backed up by dumps",
                        service.name
                    ),
                    Some("add `method = \"pgbackrest\"`, or remove it".into()),
                );
            }
        }
        return BackupMethod::Dump;
    }
    let method = raw.method.as_ref().expect("method is pgbackrest");
    if service.engine != Engine::Postgres || service.isolation != Isolation::Instance {
        problems.add(
            method.span(),
            format!(
                "`method = \"pgbackrest\"` backs up a whole server, and service `{}` is on {} with `{}` isolation",
                service.name,
                service.engine,
                service.isolation.as_str()
            ),
            Some("pgBackRest needs a PostgreSQL server of the service's own: `engine = \"postgres\"` with `isolation = \"instance\"`; otherwise leave `method` out (logical dumps)".into()),
        );
        return BackupMethod::Dump;
    }
    if let Some(encrypt) = &raw.encrypt
        && *encrypt.get_ref()
    {
        problems.add(
            encrypt.span(),
            "`encrypt = true` with `method = \"pgbackrest\"`: silo encrypts dumps only".into(),
            Some("set `encrypt = false` here and protect the repository folder (mode 0700, owned by the server's OS user)".into()),
        );
    }
    if let Some(destination) = &raw.destination {
        problems.add(
            destination.span(),
            "`destination` is where dumps go; a pgBackRest backup goes to its `repository`".into(),
            Some("write `repository = \"/var/lib/pgbackrest/...\"` instead".into()),
        );
    }
    let absolute = |text: &str| {
        normalize(&std::path::absolute(root.join(text)).unwrap_or_else(|_| root.join(text)))
    };
    let pg_data = match &raw.pg_data {
        None => {
            problems.add(
                method.span(),
                format!("service `{}` is backed up with pgBackRest but has no `pg_data`", service.name),
                Some("add `pg_data = \"/var/lib/postgresql/15/main\"`: the data directory of the service's server, on this host".into()),
            );
            PathBuf::new()
        }
        Some(p) if !Path::new(p.get_ref()).is_absolute() => {
            problems.add(
                p.span(),
                format!("`pg_data = \"{}\"` is not an absolute path", p.get_ref()),
                Some("give the server's data directory as an absolute path, such as `/var/lib/postgresql/15/main` (`SHOW data_directory;` prints it)".into()),
            );
            PathBuf::new()
        }
        Some(p) => normalize(Path::new(p.get_ref())),
    };
    let repository = match &raw.repository {
        Some(r) if r.get_ref().trim().is_empty() => {
            problems.add(
                r.span(),
                "the repository is empty".into(),
                Some("give a folder, absolute or relative to the folder of silo.toml".into()),
            );
            PathBuf::new()
        }
        Some(r) => absolute(r.get_ref()),
        // The data dir is relative to the current folder already.
        None => {
            let default = data_dir.join("pgbackrest").join(&service.name);
            normalize(&std::path::absolute(&default).unwrap_or(default))
        }
    };
    if !pg_data.as_os_str().is_empty()
        && (holds(&pg_data, &repository) || holds(&repository, &pg_data))
    {
        let span = raw.repository.as_ref().map_or(method.span(), |r| r.span());
        problems.add(
            span,
            format!(
                "the repository `{}` and the data directory `{}` overlap",
                repository.display(),
                pg_data.display()
            ),
            Some("keep the repository out of the data directory (a restore replaces the data directory) and the other way round".into()),
        );
    }
    let stanza = match &raw.stanza {
        Some(s) => {
            if let Err(refusal) = check_stanza(s.get_ref()) {
                problems.refuse(s.span(), refusal);
            }
            s.get_ref().clone()
        }
        None => service.name.clone(),
    };
    BackupMethod::Pgbackrest(PgbackrestSettings {
        repository,
        pg_data,
        stanza,
    })
}

/// No two services back up into the same place, or one into the other's:
/// each would list the other's backups as its own, and a prune of one
/// would delete the other's files as a killed backup's leftovers. Linear
/// in the number of services, as the migrations folders' check is.
fn check_destinations(services: &[Located], problems: &mut Problems) {
    let keys: Vec<(String, PathBuf)> = services.iter().map(|l| l.destination.0.key()).collect();
    let mut claims: HashMap<&(String, PathBuf), usize> = HashMap::new();
    for (position, (l, key)) in services.iter().zip(&keys).enumerate() {
        match claims.entry(key) {
            std::collections::hash_map::Entry::Occupied(first) => problems.add(
                l.destination.1.clone(),
                format!(
                    "services `{}` and `{}` both back up to `{}`",
                    services[*first.get()].service.name,
                    l.service.name,
                    l.destination.0
                ),
                Some(OWN_DESTINATION.into()),
            ),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(position);
            }
        }
    }
    for (position, (inner, key)) in services.iter().zip(&keys).enumerate() {
        for ancestor in key.1.ancestors().skip(1) {
            let probe = (key.0.clone(), ancestor.to_path_buf());
            if let Some(&outer) = claims.get(&probe) {
                let later = if outer < position {
                    inner
                } else {
                    &services[outer]
                };
                problems.add(
                    later.destination.1.clone(),
                    format!(
                        "the backups of `{}` (`{}`) would be inside the backups of `{}` (`{}`)",
                        inner.service.name,
                        inner.destination.0,
                        services[outer].service.name,
                        services[outer].destination.0
                    ),
                    Some(OWN_DESTINATION.into()),
                );
            }
        }
    }
}

const OWN_DESTINATION: &str = "give each service a destination of its own, side by side: a prune of one would delete the other's backups";

/// `[events]`: the bus and the rules events follow.
fn events_settings(raw: Option<&RawEvents>, problems: &mut Problems) -> EventsSettings {
    let mut settings = EventsSettings::default();
    let Some(raw) = raw else {
        return settings;
    };
    if let Some(bus) = &raw.bus
        && let Some(b) = parsed(
            bus,
            problems,
            "`embedded`: no server, one machine; `nats`: NATS JetStream at SILO_NATS_URL",
        )
    {
        settings.bus = b;
    }
    if let Some(r) = &raw.retention
        && let Some(r) = parsed(
            r,
            problems,
            "`delete`: delivered outbox rows are deleted; `keep`: kept, marked sent",
        )
    {
        settings.retention = r;
    }
    let compat_help = "BACKWARD (the default), FORWARD, FULL or NONE";
    if let Some(c) = &raw.compatibility
        && let Some(c) = parsed(c, problems, compat_help)
    {
        settings.compatibility = c;
    }
    for (name, t) in &raw.types {
        if let Err(why) = check_event_type(name.get_ref()) {
            problems.add(
                name.span(),
                format!("invalid event type `{}`: {why}", name.get_ref()),
                None,
            );
            continue;
        }
        if let Some(c) = &t.compatibility
            && let Some(c) = parsed(c, problems, compat_help)
        {
            settings
                .type_compatibility
                .insert(name.get_ref().clone(), c);
        }
    }
    settings.nats_auth = raw.nats_auth.unwrap_or(false);
    if let Some(n) = &raw.max_attempts {
        match u32::try_from(*n.get_ref()) {
            Ok(v) if v >= 1 => settings.max_attempts = v,
            _ => problems.add(
                n.span(),
                format!("max_attempts must be 1 or more, not {}", n.get_ref()),
                Some("leave it out for the default, 5".into()),
            ),
        }
    }
    if let Some(w) = &raw.duplicate_window_seconds {
        match u64::try_from(*w.get_ref()) {
            Ok(v) if (1..=MAX_DUPLICATE_WINDOW_SECS).contains(&v) => {
                settings.duplicate_window_secs = v
            }
            _ => problems.add(
                w.span(),
                format!(
                    "duplicate_window_seconds must be from 1 to {MAX_DUPLICATE_WINDOW_SECS} (7 days), not {}",
                    w.get_ref()
                ),
                Some("leave it out for the default, 120 (two minutes); the window only has to outlast a worker's retry of a publish, and the server keeps every event id seen in it".into()),
            ),
        }
    }
    settings
}

/// Parses a keyword value, or reports it at its place with `help`.
fn parsed<T: std::str::FromStr<Err = String>>(
    value: &Spanned<String>,
    problems: &mut Problems,
    help: &str,
) -> Option<T> {
    match value.get_ref().parse() {
        Ok(v) => Some(v),
        Err(message) => {
            problems.add(value.span(), message, Some(help.to_string()));
            None
        }
    }
}

/// `[audit]`: the source scan's exclusions, checked as globs here so that a
/// bad pattern points at its line.
fn audit_settings(raw: Option<&RawAudit>, problems: &mut Problems) -> AuditSettings {
    let mut settings = AuditSettings::default();
    for pattern in raw.into_iter().flat_map(|a| &a.exclude) {
        match globset::Glob::new(pattern.get_ref()) {
            Ok(_) => settings.exclude.push(pattern.get_ref().clone()),
            Err(e) => problems.add(
                pattern.span(),
                format!(
                    "invalid exclude pattern `{}`: {}",
                    pattern.get_ref(),
                    e.kind()
                ),
                Some("use gitignore-style globs such as `**/fixtures/**` or `tests/`".into()),
            ),
        }
    }
    settings
}

/// Rule levels; rule ids are left to silo-lint, which knows them.
fn lint_settings(raw: Option<&RawLint>, problems: &mut Problems) -> LintSettings {
    let mut settings = LintSettings::default();
    for (rule, level) in raw.into_iter().flat_map(|r| &r.rules) {
        match level.get_ref().parse() {
            Ok(level) => {
                let (line, column) = problems.lines.line_column(rule.span().start);
                settings.rules.insert(
                    rule.get_ref().clone(),
                    RuleSetting {
                        level,
                        line,
                        column,
                    },
                );
            }
            Err(message) => problems.add(level.span(), message, None),
        }
    }
    settings
}

fn toml_help(message: &str) -> Option<String> {
    message.contains("unknown field").then(|| {
        "remove the key or fix its spelling; docs/manifest.md lists every field".to_string()
    })
}

fn parse_engine(value: &Spanned<String>, problems: &mut Problems) -> Engine {
    value.get_ref().parse().unwrap_or_else(|message| {
        problems.add(value.span(), message, None);
        Engine::Sqlite
    })
}

fn parse_isolation(value: &Spanned<String>, problems: &mut Problems) -> Isolation {
    match value.get_ref().as_str() {
        "database" => Isolation::Database,
        "instance" => Isolation::Instance,
        other => {
            problems.add(
                value.span(),
                format!("unknown isolation `{other}`; expected `database` or `instance`"),
                Some(
                    "`database`: one server, a database and role per service; \
                     `instance`: one server per service"
                        .into(),
                ),
            );
            Isolation::Database
        }
    }
}

fn check_name(kind: &str, value: &str, span: Range<usize>, problems: &mut Problems) -> bool {
    match check_identifier(value) {
        Ok(()) => true,
        Err(problem) => {
            let help = match suggest_identifier(value) {
                Some(s) if s != value => Some(format!("try `{s}`")),
                _ => Some("use lower snake_case: a-z, 0-9 and `_`, starting with a letter".into()),
            };
            problems.add(
                span,
                format!("invalid {kind} name `{value}`: {problem}"),
                help,
            );
            false
        }
    }
}

fn resolve_service(
    name: &Spanned<String>,
    raw: &Spanned<RawService>,
    default_engine: Engine,
    default_isolation: Isolation,
    absolute_root: &Path,
    problems: &mut Problems,
) -> Option<Located> {
    let service_name = name.get_ref().clone();
    let name_ok = check_name("service", &service_name, name.span(), problems);
    let r = raw.get_ref();

    // A service's own engine wins over defaults and over `--engine`: the
    // seeds let each service pick its storage technology.
    let engine = match &r.engine {
        Some(e) => parse_engine(e, problems),
        None => default_engine,
    };
    let isolation = r
        .isolation
        .as_ref()
        .map_or(default_isolation, |i| parse_isolation(i, problems));

    let (database, database_span) = match &r.database {
        Some(d) => (d.get_ref().clone(), d.span()),
        None => (service_name.clone(), name.span()),
    };
    if r.database.is_some() {
        check_name("database", &database, database_span.clone(), problems);
    }
    let (role, role_span) = match &r.role {
        Some(role) => (role.get_ref().clone(), role.span()),
        None => (format!("{service_name}_svc"), name.span()),
    };
    if r.role.is_some() || (name_ok && role.len() > crate::names::MAX_IDENTIFIER_BYTES) {
        check_name("role", &role, role_span.clone(), problems);
    }

    let (migrations, migrations_span) = match &r.migrations {
        Some(m) => (m.get_ref().clone(), m.span()),
        None => (format!("services/{service_name}/migrations"), name.span()),
    };
    let migrations = match inside(Path::new(&migrations), absolute_root) {
        Some(relative) if !relative.as_os_str().is_empty() => relative,
        _ => {
            problems.add(
                migrations_span.clone(),
                format!(
                    "the migrations folder `{}` must be inside the project folder",
                    normalize(Path::new(&migrations)).display()
                ),
                Some("use a path relative to the folder that holds silo.toml".into()),
            );
            normalize(Path::new(&migrations))
        }
    };

    let (source, source_span) = match &r.source {
        Some(s) => (s.get_ref().clone(), s.span()),
        None => (format!("services/{service_name}"), name.span()),
    };
    let source = match inside(Path::new(&source), absolute_root) {
        Some(relative) => relative,
        None => {
            problems.add(
                source_span,
                format!(
                    "the source folder `{}` must be inside the project folder",
                    normalize(Path::new(&source)).display()
                ),
                Some(
                    "use a path relative to the folder that holds silo.toml (`.` for all of it)"
                        .into(),
                ),
            );
            normalize(Path::new(&source))
        }
    };

    let (contracts, contracts_span) = match &r.contracts {
        Some(c) => (c.get_ref().clone(), c.span()),
        None => (
            source.join("events").to_string_lossy().into_owned(),
            name.span(),
        ),
    };
    let contracts = match inside(Path::new(&contracts), absolute_root) {
        Some(relative) => relative,
        // A default under a source folder outside is reported once, there.
        None if r.contracts.is_none() => normalize(Path::new(&contracts)),
        None => {
            problems.add(
                contracts_span,
                format!(
                    "the contracts folder `{}` must be inside the project folder",
                    normalize(Path::new(&contracts)).display()
                ),
                Some("use a path relative to the folder that holds silo.toml".into()),
            );
            normalize(Path::new(&contracts))
        }
    };

    let connection_limit = match &r.connection_limit {
        None => None,
        Some(limit) => match u32::try_from(*limit.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                problems.add(
                    limit.span(),
                    format!(
                        "connection_limit must be a positive number, not {}",
                        limit.get_ref()
                    ),
                    Some("leave it out for no limit".into()),
                );
                None
            }
        },
    };

    let url_env_span = r.url_env.as_ref().map_or(name.span(), |u| u.span());
    if let Some(url_env) = &r.url_env
        && let Err(why) = check_env_var(url_env.get_ref())
    {
        problems.add(
            url_env.span(),
            format!("invalid url_env `{}`: {why}", url_env.get_ref()),
            None,
        );
    }
    if engine == Engine::Postgres && isolation == Isolation::Instance && r.url_env.is_none() {
        problems.add(
            name.span(),
            format!("service `{service_name}` uses instance isolation but has no `url_env`"),
            Some(format!(
                "add `url_env = \"{}_PG_URL\"` and put its server's admin URL in that variable",
                service_name.to_uppercase()
            )),
        );
    }

    let mut events = |list: &[Spanned<String>]| -> Vec<String> {
        list.iter()
            .filter(|e| match check_event_type(e.get_ref()) {
                Ok(()) => true,
                Err(why) => {
                    problems.add(
                        e.span(),
                        format!("invalid event type `{}`: {why}", e.get_ref()),
                        None,
                    );
                    false
                }
            })
            .map(|e| e.get_ref().clone())
            .collect()
    };
    let publishes = events(&r.publishes);
    let consumes = events(&r.consumes);
    let declared = [
        (Declared::Publishes, &r.publishes),
        (Declared::Consumes, &r.consumes),
    ]
    .into_iter()
    .flat_map(|(list, entries)| {
        entries
            .iter()
            .filter(|e| check_event_type(e.get_ref()).is_ok())
            .map(move |e| (list, e.get_ref().clone(), e.span()))
    })
    .collect();
    let lint = lint_settings(r.lint.as_ref(), problems);

    Some(Located {
        service: Service {
            name: service_name,
            engine,
            isolation,
            database,
            role,
            url_env: r.url_env.as_ref().map(|u| u.get_ref().clone()),
            migrations,
            source,
            connection_limit,
            owner: r.owner.clone(),
            publishes,
            consumes,
            contracts,
            placeholders: r.placeholders.clone(),
            lint,
            backup: None,
            gateway: Default::default(),
        },
        database_span,
        role_span,
        migrations_span,
        url_env_span,
        destination: (BackupDestination::Local(PathBuf::new()), name.span()),
        declared,
    })
}

/// The rules that span services: no shared database, role, migrations
/// folder or server.
fn check_cross_service(services: &[Located], problems: &mut Problems) {
    let mut databases: HashMap<(&str, Option<&str>), &Located> = HashMap::new();
    let mut roles: HashMap<(&str, Option<&str>), &Located> = HashMap::new();
    let mut url_envs: HashMap<&str, &Located> = HashMap::new();

    for l in services {
        let s = &l.service;
        // Names collide only on one server; see `server_key`.
        let server = server_key(s);

        if let Some(first) = first_claim(&mut databases, (&s.database, server), l) {
            problems.add(
                l.database_span.clone(),
                format!(
                    "services `{}` and `{}` both use database `{}`",
                    first.service.name, s.name, s.database
                ),
                Some("each service owns exactly one database that no other service uses; give one of them its own `database = \"...\"`".into()),
            );
        }
        if let Some(first) = first_claim(&mut roles, (&s.role, server), l) {
            problems.add(
                l.role_span.clone(),
                format!(
                    "services `{}` and `{}` both use role `{}`",
                    first.service.name, s.name, s.role
                ),
                Some("each service needs its own credentials; give one of them its own `role = \"...\"`".into()),
            );
        }
        if s.engine == Engine::Postgres
            && s.isolation == Isolation::Instance
            && let Some(url_env) = &s.url_env
            && let Some(first) = first_claim(&mut url_envs, url_env.as_str(), l)
        {
            problems.add(
                        l.url_env_span.clone(),
                        format!(
                            "services `{}` and `{}` both read their server from `{url_env}`; instance isolation needs one server per service",
                            first.service.name, s.name
                        ),
                        Some("give each service its own `url_env`, or use `isolation = \"database\"`".into()),
                    );
        }
    }

    // Shared and nested migrations folders, in time linear in the number
    // of services: each folder goes into a map once, then each of its
    // ancestors (a handful) is looked up in that map.
    let mut folders: HashMap<&Path, usize> = HashMap::new();
    for (position, l) in services.iter().enumerate() {
        match folders.entry(l.service.migrations.as_path()) {
            std::collections::hash_map::Entry::Occupied(first) => problems.add(
                l.migrations_span.clone(),
                format!(
                    "services `{}` and `{}` share the migrations folder `{}`",
                    services[*first.get()].service.name,
                    l.service.name,
                    l.service.migrations.display()
                ),
                Some(ONE_FOLDER_EACH.into()),
            ),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(position);
            }
        }
    }
    for (position, inner) in services.iter().enumerate() {
        let ancestors =
            (inner.service.migrations.ancestors().skip(1)).filter(|a| !a.as_os_str().is_empty());
        for &outer in ancestors.filter_map(|a| folders.get(a)) {
            // The problem points at whichever of the two comes later in
            // the file, as the shared-folder problem does.
            let later = if outer < position {
                inner
            } else {
                &services[outer]
            };
            problems.add(
                later.migrations_span.clone(),
                nested_message(inner, &services[outer]),
                Some(ONE_FOLDER_EACH.into()),
            );
        }
    }
}

const ONE_FOLDER_EACH: &str =
    "each service keeps its own migration scripts; give every service a folder of its own";

/// Records `claimant` for `key` unless another service claimed it first,
/// in which case that first claimant is returned.
fn first_claim<'a, K: std::hash::Hash + Eq>(
    claims: &mut HashMap<K, &'a Located>,
    key: K,
    claimant: &'a Located,
) -> Option<&'a Located> {
    match claims.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => Some(e.get()),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(claimant);
            None
        }
    }
}

fn nested_message(inner: &Located, outer: &Located) -> String {
    format!(
        "the migrations folder of `{}` (`{}`) is inside the migrations folder of `{}` (`{}`)",
        inner.service.name,
        inner.service.migrations.display(),
        outer.service.name,
        outer.service.migrations.display()
    )
}

/// Identifies the server a store lives on, as far as the manifest can tell:
/// the URL variable for instance isolation, `None` for everything else.
/// SQLite stores count as one server too, so that a manifest stays valid
/// when `--engine postgres` moves its services onto one server.
fn server_key(s: &Service) -> Option<&str> {
    match (s.engine, s.isolation) {
        (Engine::Postgres, Isolation::Instance) => s.url_env.as_deref().or(Some(&s.name)),
        _ => None,
    }
}

/// Lexically normalises a path: drops `.` and folds `x/..`. Leading `..`
/// of a relative path stay (`../../etc` is not `etc`); `..` at the root of
/// an absolute path is the root.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

/// `path` (relative to the project folder, or absolute) as a path relative
/// to the project folder, or `None` when it points outside it.
fn inside(path: &Path, absolute_root: &Path) -> Option<PathBuf> {
    let normal = normalize(path);
    if normal.is_absolute() {
        return normal
            .strip_prefix(absolute_root)
            .ok()
            .map(Path::to_path_buf);
    }
    (!normal.starts_with("..")).then_some(normal)
}

/// Whether the folder `dir` is `inner` or one of its ancestors (both
/// absolute; compared lexically).
pub(crate) fn holds(dir: &Path, inner: &Path) -> bool {
    normalize(inner).starts_with(normalize(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(normalize(Path::new("./a/b/../c/")), PathBuf::from("a/c"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from(""));
    }

    #[test]
    fn normalize_keeps_every_leading_parent() {
        assert_eq!(
            normalize(Path::new("../../etc")),
            PathBuf::from("../../etc")
        );
        assert_eq!(normalize(Path::new("a/../../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("/../etc")), PathBuf::from("/etc"));
        assert_eq!(normalize(Path::new("/p/q/../../r")), PathBuf::from("/r"));
    }

    #[test]
    fn inside_tells_project_paths_from_outside_ones() {
        let root = Path::new("/home/me/proj");
        assert_eq!(inside(Path::new("db/x"), root), Some(PathBuf::from("db/x")));
        assert_eq!(inside(Path::new("../../etc"), root), None);
        assert_eq!(inside(Path::new("db/../../etc"), root), None);
        assert_eq!(inside(Path::new("/etc"), root), None);
        assert_eq!(inside(Path::new("/home/me/project"), root), None);
        assert_eq!(
            inside(Path::new("/home/me/proj/db/../m"), root),
            Some(PathBuf::from("m"))
        );
    }
}
