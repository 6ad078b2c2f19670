//! The command line: flags, commands and their help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// One isolated database per service: provisioned, checked and kept apart.
///
/// silo reads `silo.toml` (found in the current folder or above), gives
/// every service its own store (a SQLite file by default, or a PostgreSQL
/// database and login role) with its own generated credentials, and
/// refuses to touch anything it did not create.
///
/// Exit codes: 0 success, 1 an operation failed, 2 bad usage, a bad
/// manifest or an unreachable server, 130 interrupted (Ctrl-C; 143 for
/// SIGTERM). Ctrl-C during migrate, undo, repair, baseline, migrations
/// adopt, verify or diff cancels the running statement on the server,
/// rolls back, releases the migration lock and says what state each store
/// is in; a second Ctrl-C exits at once.
#[derive(Debug, Parser)]
#[command(name = "silo", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes. Precedence: flag, then environment, then
/// silo.toml, then the default.
#[derive(Debug, Args)]
pub struct Global {
    /// The manifest [default: silo.toml in the current folder or the
    /// nearest one above]
    #[arg(long, global = true, env = "SILO_MANIFEST", value_name = "PATH")]
    pub manifest: Option<PathBuf>,

    /// Where SQLite stores and secrets live [default: `data_dir` in
    /// silo.toml, else .silo beside it]
    #[arg(long, global = true, env = "SILO_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Engine for every service that does not choose its own in silo.toml
    #[arg(long, global = true, env = "SILO_ENGINE", value_enum)]
    pub engine: Option<EngineArg>,

    /// Admin URL of the shared PostgreSQL server, e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres. Read it from the
    /// environment rather than the command line, where other users can see
    /// it.
    #[arg(
        long,
        global = true,
        env = "SILO_PG_ADMIN_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub admin_url: Option<String>,

    /// How many services to work on at once
    #[arg(short = 'j', long, global = true, env = "SILO_JOBS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,

    /// More detail on stderr (-v, -vv); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EngineArg {
    Sqlite,
    Postgres,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented silo.toml and the service folders
    ///
    /// Without --example, writes a manifest for the services named with
    /// --service (default: one service, `app`). With --example, writes one
    /// of the bundled example systems with its migrations.
    Init(InitArgs),

    /// Provision every service's store, role and credentials
    ///
    /// Idempotent: a second run reports every store `unchanged`. Existing
    /// databases, roles or files that silo did not create are refused
    /// unless --adopt. Credentials go to <data_dir>/secrets/<service>.env
    /// (mode 0600).
    Up(UpArgs),

    /// Show each store: existence, size, and whether the service's own
    /// credentials connect
    Status(StatusArgs),

    /// Drop the stores, roles and credentials of the named services
    ///
    /// Only what silo created (marked `managed by silo`) is dropped.
    Down(DownArgs),

    /// Drop every service's store, role and credentials
    Destroy(DestroyArgs),

    /// Show or rotate a service's credentials
    #[command(subcommand)]
    Credentials(CredentialsCommand),

    /// Serve every service's store over HTTP, each caller on its own store
    ///
    /// A service calls with `Authorization: Bearer <SILO_GATEWAY_TOKEN>`
    /// (from its secrets file; `silo up` makes it) and may only name its
    /// own database: another's is refused with 403 before anything runs.
    /// Every statement runs as the service's own role. Endpoints: POST
    /// /v1/query, /v1/write, /v1/schema, GET /healthz, /readyz, /metrics,
    /// /openapi.json (docs/gateway.md). SIGHUP reads the tokens and
    /// credentials again after `silo credentials rotate`. Ctrl-C or
    /// SIGTERM stops taking requests and finishes the ones in flight.
    Gateway(GatewayArgs),

    /// Apply pending migrations, each service as its own role
    ///
    /// Files are Flyway-compatible: V<version>__<desc>.sql (apply, in
    /// numeric version order), U<version>__<desc>.sql (undo),
    /// R__<desc>.sql (repeatable: re-applied when it changes, after the
    /// versioned ones). Each file runs in its own transaction, or statement
    /// by statement when it cannot (CREATE INDEX CONCURRENTLY, VACUUM, or a
    /// first line `-- silo:no-transaction`). Concurrent runs against one
    /// store apply each migration exactly once.
    ///
    /// A file run statement by statement records its progress: if it
    /// stops part way (Ctrl-C, a failed statement, a killed silo), `info`
    /// shows it partial, `migrate` refuses to run it again from the start
    /// and says what to do, and --resume goes on from its first statement
    /// not done.
    ///
    /// Ctrl-C cancels the running statement on the server, rolls back the
    /// file's transaction, releases the lock and prints what state each
    /// store is in (exit 130); a second Ctrl-C exits at once.
    Migrate(MigrateArgs),

    /// Show every migration's state per service: applied, pending, failed,
    /// partial (a file run outside a transaction that stopped part way),
    /// missing, future, out-of-order, checksum-mismatch, baselined
    Info(InfoArgs),

    /// Fail (exit 1) if an applied migration changed, disappeared or failed
    Validate(InfoArgs),

    /// Run U files newest first: the newest version, or down to --to
    ///
    /// Undo drops what the V files made, data included. It asks on a
    /// terminal and refuses without one unless --yes is given; --dry-run
    /// prints the U files and their SQL, in the order they would run, and
    /// changes nothing. Each U file runs as V files do: in a transaction of
    /// its own, or statement by statement when it cannot run in one (DROP
    /// INDEX CONCURRENTLY, or a first line `-- silo:no-transaction`).
    Undo(UndoArgs),

    /// Remove failed rows from the history and realign recorded checksums
    /// with the files
    ///
    /// A file that ran outside a transaction and stopped part way (`silo
    /// info`: partial) loses its record too: revert what it did by hand
    /// first, since it then runs again from the start.
    Repair(RepairArgs),

    /// Adopt an existing store: record VERSION as applied without running
    /// the files up to it
    ///
    /// Example: `silo baseline legacy 7` (files 1 to 7 count as applied).
    Baseline(BaselineArgs),

    /// Create the next V file and its U file
    New(NewArgs),

    /// Review migrations like a strict database lead, offline
    ///
    /// Rules come in four groups: boundary (what only silo can see:
    /// references to other services' tables, databases, roles or foreign
    /// data, and migration files shared between services), review (seed
    /// 002's checklist: names, indexes, undo files, documented breaking
    /// changes), integrity (file names, duplicate versions, applied files
    /// changed against silo.sum) and safety (locks and rewrites during a
    /// deploy; squawk's rule names).
    ///
    /// Every service's files are read, since boundary rules need them all;
    /// PATHS, --service and --changed-since only narrow what is reported.
    /// Set levels in silo.toml (`[lint.rules]`, or
    /// `[services.<name>.lint.rules]`): `rule-id = "off" | "info" |
    /// "warning" | "error"`. Silence rules on one statement with
    /// `-- silo:ignore <rule-id>[,<rule-id>...] [--] <reason>` in the
    /// comment lines directly above it (the reason is required). `silo
    /// lint --explain RULE` prints a rule's page.
    ///
    /// Exit 0 without error-severity findings, 1 with some, 2 on bad usage
    /// or a bad manifest.
    Lint(LintArgs),

    /// Prove every store is its own: live checks and a source scan
    ///
    /// Live (PostgreSQL): every service role against every store in the
    /// catalog (CONNECT, ownership, memberships, superuser), real
    /// connection attempts with each service's own credentials (its own
    /// store, and a sibling; --thorough: every store), PUBLIC's
    /// privileges, role attributes, shared credentials, object owners,
    /// foreign data (dblink, FDW servers, subscriptions), the `public`
    /// schema, instance sharing and pg_hba.conf. SQLite stores and secrets
    /// files: modes, owners, links.
    ///
    /// Source: each service's folder (`source` in silo.toml, default
    /// services/<name>/) is scanned for other services' databases, roles,
    /// servers, secrets files and connection strings, and for literal
    /// passwords. `.gitignore` is honoured; `[audit] exclude = [globs]`
    /// skips test fixtures.
    ///
    /// The human report starts with the access matrix (own ✓, denied ·,
    /// OPEN ✗), then each finding with its remediation. `--fix` applies the
    /// fixable ones (each database's statements in one transaction) and
    /// audits again. `silo audit --explain CHECK` prints a check's page.
    ///
    /// Exit 0 when clean, 1 with findings, 2 when the audit cannot run
    /// (server unreachable, missing admin privilege, bad manifest).
    Audit(AuditArgs),

    /// Prove every undo: on a scratch store, apply each version, undo it,
    /// and compare the schema with the one before it
    ///
    /// For each version with a U file: apply up to V-1 and snapshot the
    /// schema; apply V; apply U; compare (tables, columns with types,
    /// defaults and nullability, indexes, constraints, views, functions,
    /// triggers, sequences, enum types); apply V again. Reports the first
    /// version whose undo fails or does not restore the schema. The scratch
    /// store is dropped afterwards; the service's own store is not touched.
    Verify(ServiceArgs),

    /// Drift check: compare the live schema with the schema the applied
    /// migrations make on a scratch store; exit 1 if they differ
    Diff(ServiceArgs),

    /// Print a store's schema as its catalog describes it
    #[command(subcommand)]
    Schema(SchemaCommand),

    /// Move in from other migration tools: their files (import) and the
    /// history they kept in a store (adopt)
    #[command(subcommand)]
    Migrations(MigrationsCommand),

    /// Open psql or sqlite3 as a service, with its own credentials
    ///
    /// The password travels in the child's environment, never on its
    /// command line. Arguments after `--` go to the client.
    Connect(ConnectArgs),

    /// Events between services: the outbox, the bus, the inbox
    ///
    /// A service publishes by inserting a row into `silo_outbox` in its own
    /// store, inside its own transaction; it consumes by reading pending
    /// rows of `silo_inbox` and marking them done in the transaction of its
    /// own writes. `silo events run` moves events between the two, always
    /// connecting to a store as that store's own service. `[events]` in
    /// silo.toml picks the bus: `embedded` (the default: store to store,
    /// no server) or `nats` (NATS JetStream at SILO_NATS_URL).
    #[command(subcommand)]
    Events(EventsCommand),

    /// Back up services now, each as its own role, into its own destination
    ///
    /// With no SERVICE, every service; services are backed up at once
    /// (-j at a time). A backup is a folder `<destination>/<id>/` with the
    /// store's copy, its schema and a `meta.json` (service, engine,
    /// versions, times, size, SHA-256 of every file, rows per table),
    /// written last: a backup killed half way is never listed. SQLite
    /// stores are copied online (SQLite's backup API in one read
    /// transaction: one consistent snapshot while the service writes) and
    /// checked with `PRAGMA quick_check` (a restore runs the full
    /// `integrity_check`);
    /// PostgreSQL stores are dumped with the server's own `pg_dump` as the
    /// service's role, in one snapshot. The destination is the policy's
    /// (`[services.X.backup] destination`: a folder, file:///path or
    /// s3://bucket/prefix with AWS_* credentials), else
    /// `<data_dir>/backups/<service>`; with `encrypt = true` every file is
    /// encrypted to `[backup] recipients` before it leaves the machine.
    ///
    /// `silo backup list` shows the backups; `silo backup verify` restores
    /// one into a scratch store and compares it with what it recorded.
    Backup(BackupArgs),

    /// Restore a service's store from a backup
    ///
    /// Every file's size and SHA-256 is checked before anything is loaded;
    /// a damaged backup is refused, naming the file. An encrypted backup is
    /// decrypted with the age identity file SILO_BACKUP_IDENTITY_FILE
    /// names. The restored store is compared with the backup's row counts
    /// and schema before it counts as restored. Without --into or --replace
    /// it goes into a new store named after the backup beside the live
    /// one, which is not touched (PostgreSQL: a database of its own, made
    /// the silo way, with new credentials unless --keep-credentials).
    /// --replace --yes swaps the live store only after the restored copy
    /// checked out and keeps the old one beside it, named in the output;
    /// sessions still on the live store make it refuse unless --terminate
    /// (stop the service first).
    ///
    /// A service with `method = "pgbackrest"` is restored to a point in
    /// time: --to-time TIME --into DIR restores its server's data
    /// directory into the new folder DIR, from the newest backup that
    /// finished before TIME, to replay the archived WAL up to TIME when a
    /// server starts on it. --replace --yes restores over the server's own
    /// data directory, only once that server is stopped.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// Services to back up [default: all]
    pub services: Vec<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List the complete backups, oldest first
    ///
    /// A backup whose `meta.json` cannot be read is reported (and makes the
    /// exit code 1), never skipped silently.
    List(BackupListArgs),

    /// Restore drill: restore a backup into a scratch store, compare its
    /// row counts and schema with the backup's, drop the scratch store
    ///
    /// The newest backup of each service, or --backup ID. Exit 1 when one
    /// is damaged, missing or does not match.
    Verify(BackupVerifyArgs),

    /// For a service with `method = "pgbackrest"`: write pgBackRest's
    /// config, print the server settings that archive WAL, check them
    ///
    /// silo does not change the server's configuration: add the two
    /// printed lines (archive_mode, archive_command) to its
    /// postgresql.conf and restart it. The command then creates the stanza
    /// and runs `pgbackrest check` (a WAL switch that must reach the
    /// repository); exit 1 while archiving does not work.
    Setup(BackupSetupArgs),

    /// Delete the backups each service's policy no longer keeps
    ///
    /// `keep = N` keeps the N newest good backups, `retention = "30d"`
    /// those younger than 30 days; with both, a backup goes only when
    /// neither keeps it; with neither, none goes. The newest good backup
    /// (its checksums checked) is never deleted, whatever the policy says.
    /// A killed backup's files (no meta.json) go once a day old. Prints
    /// every backup with what happens to it and why, and the bytes freed.
    /// Exit 1 when a damaged or unreadable backup was found.
    Prune(crate::commands::backup_prune::BackupPruneArgs),

    /// Run every service's backup schedule until Ctrl-C or SIGTERM
    ///
    /// Each service with a `schedule` is backed up on it (services at once,
    /// -j at a time; one backup at a time per service), its destination
    /// pruned after each backup, and every `verify_every` backups the new
    /// one restore-drilled. Slots missed while the daemon was down are
    /// caught up with one backup at start. A failed backup is logged,
    /// counted and tried again at the next slot. On a signal no backup
    /// starts and running ones are waited for up to --stop-timeout, then
    /// abandoned (never listed as backups); exit 0, or 1 when one was
    /// abandoned. Logs go to stderr (RUST_LOG filters them).
    Daemon(crate::commands::backup_daemon::BackupDaemonArgs),
}

#[derive(Debug, Args)]
pub struct BackupSetupArgs {
    /// The service backed up with pgBackRest
    pub service: String,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackupListArgs {
    /// The service whose backups to list [default: all]
    pub service: Option<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackupVerifyArgs {
    /// Services whose backups to verify [default: all]
    pub services: Vec<String>,
    /// The backup to verify [default: each service's newest]
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The service to restore
    pub service: String,
    /// The backup to restore [default: the newest]
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// Restore into a new store of this name beside the live one
    /// (PostgreSQL: a database NAME with a role NAME_svc and new
    /// credentials in secrets/NAME.env; with --to-time: a new data
    /// directory, DIR)
    #[arg(long, value_name = "NAME|DIR", conflicts_with = "replace")]
    pub into: Option<String>,
    /// PostgreSQL: the new store belongs to the service's own role and
    /// password instead of a new role with new credentials
    #[arg(long, conflicts_with = "replace")]
    pub keep_credentials: bool,
    /// Point-in-time recovery to this time, for a service with `method =
    /// "pgbackrest"`: "2026-11-28 05:10:00+00" (the UTC offset is required)
    #[arg(long, value_name = "TIME")]
    pub to_time: Option<String>,
    /// Replace the live store once the restored copy checked out
    #[arg(long)]
    pub replace: bool,
    /// Confirm --replace
    #[arg(long)]
    pub yes: bool,
    /// With --replace: end the service's own sessions on its live store
    /// (otherwise a store in use is refused and nothing changes)
    #[arg(long, requires = "replace")]
    pub terminate: bool,
    /// Restore a backup of this other service, on purpose (read from that
    /// service's destination)
    #[arg(long, value_name = "SERVICE")]
    pub from_service: Option<String>,
    /// PostgreSQL: `pg_restore --jobs N` (tables loaded and indexes built
    /// side by side), and N connections counting the restored rows; 1
    /// restores in one transaction [default: one per CPU, 2 to 4]
    #[arg(long, value_name = "N", env = "SILO_RESTORE_JOBS", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub restore_jobs: Option<u16>,
    /// Print one JSON document instead of a summary
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Run the worker: move events from outboxes to inboxes until stopped
    ///
    /// With no SERVICE, for every service that publishes or consumes;
    /// with some, only for those (one sidecar per service in production:
    /// on the nats bus `silo events run battles` needs only battles'
    /// credentials and the bus). Ctrl-C or SIGTERM finishes the batches in
    /// flight and stops; a kill at any point loses nothing and delivers
    /// nothing twice.
    Run(EventsRunArgs),

    /// Per service: outbox backlog and oldest unsent event, inbox pending,
    /// done and dead, and how far delivery lags
    Status(EventsStatusArgs),

    /// Dead letters: list them, retry them, drop them
    ///
    /// A consumer's event whose handler failed `[events] max_attempts`
    /// times, and a publisher's event whose payload its contract refused,
    /// each with its error. Every store is read as its own service.
    Dlq(EventsDlqArgs),

    /// The event map: who publishes and who consumes each type, and the
    /// contract versions
    Contracts(EventsContractsArgs),

    /// Re-deliver a type's events from the stream to a service (nats bus)
    ///
    /// Reads the type's events from the project's JetStream stream (as the
    /// silo admin with `nats_auth`) and writes them into the service's
    /// inbox as the service. The inbox's unique event id makes this safe:
    /// events already there are skipped, unless --reprocess marks them
    /// pending again with their attempts reset. This is how a new service
    /// builds its denormalized copy from history.
    Replay(EventsReplayArgs),

    /// Write a nats-server authorization block: one user per service,
    /// allowed to publish only its own types and consume only its own
    ///
    /// Generates each user's password the first time (kept in
    /// <data_dir>/secrets/nats/<user>.env, mode 0600) and writes the block
    /// with bcrypt hashes only, the same on every run. Besides one user
    /// per service that publishes or consumes, the block has `silo-admin`,
    /// which creates the stream and the durable consumers: with
    /// `[events] nats_auth = true` services may not create them. --apply
    /// does that on the server at SILO_NATS_URL.
    NatsConfig(EventsNatsConfigArgs),
}

#[derive(Debug, Args)]
pub struct EventsRunArgs {
    /// Services to run for [default: every service that publishes or consumes]
    pub services: Vec<String>,
    /// Deliver what is ready, then exit
    #[arg(long)]
    pub once: bool,
    /// Serve Prometheus metrics at this address (e.g. 127.0.0.1:9464)
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Print the summary at the end as one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsStatusArgs {
    /// Services to show [default: all that publish or consume]
    pub services: Vec<String>,
    /// Print one JSON document instead of tables
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsDlqArgs {
    #[command(subcommand)]
    pub action: Option<DlqAction>,
    /// The service whose dead letters to list [default: all]
    pub service: Option<String>,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Make dead inbox events pending again, with their attempts reset
    ///
    /// The consumer handles them on its next pass. A dead outbox event (a
    /// payload its contract refused) is not retried: publish a corrected
    /// event and drop the dead one.
    Retry(DlqRetryArgs),
    /// Delete a dead letter, inbox or outbox, for good
    ///
    /// Without --yes it asks on a terminal and refuses elsewhere.
    Drop(DlqDropArgs),
}

/// An event id as given: a UUID, or a usage error (exit 2) rather than a
/// search of every store for an id no event can have.
fn event_id(s: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("an event id is a UUID ({e}); `silo events dlq` lists them"))
}

#[derive(Debug, Args)]
pub struct DlqRetryArgs {
    /// The dead letter's event id
    #[arg(required_unless_present = "all", value_parser = event_id)]
    pub id: Option<String>,
    /// Every dead letter (of SERVICE with --service)
    #[arg(long, conflicts_with = "id")]
    pub all: bool,
    /// Only this service's dead letters
    #[arg(long)]
    pub service: Option<String>,
    /// Print one JSON document instead of lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DlqDropArgs {
    /// The dead letter's event id
    #[arg(value_parser = event_id)]
    pub id: String,
    /// The service whose dead letter it is [default: the one store that
    /// holds it]
    #[arg(long)]
    pub service: Option<String>,
    /// Confirm: the event is gone for good
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON document instead of lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsContractsArgs {
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsReplayArgs {
    /// The service to re-deliver to
    pub service: String,
    /// The event type to re-deliver
    #[arg(long = "type", value_name = "TYPE")]
    pub event_type: String,
    /// Only events published at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Mark events already in the inbox pending again, to run them again
    #[arg(long)]
    pub reprocess: bool,
    /// Print one JSON document instead of a summary
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EventsNatsConfigArgs {
    /// Where to write the authorization block (mode 0600) [default: stdout]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also create or update the project's stream and every consuming
    /// service's durable consumers on the server at SILO_NATS_URL (as
    /// `silo-admin` with `nats_auth`)
    #[arg(long)]
    pub apply: bool,
    /// Print one JSON document instead of a summary (with no --out, the
    /// block is in it)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write a bundled example system
    #[arg(long, value_enum)]
    pub example: Option<Example>,
    /// Services to declare (without --example)
    #[arg(long = "service", value_name = "NAME", conflicts_with = "example")]
    pub services: Vec<String>,
    /// Project name [default: the folder's name]
    #[arg(long)]
    pub name: Option<String>,
    /// Folder to write into
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite files that exist
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Example {
    /// Seeds 000/001: five event-driven services, one store each
    Battlescope,
    /// Seed 002: auth, users, notifications
    Orion,
    /// Seed 004: auth, project, deploy with Flyway folders as they are
    Capsule,
    /// Seed 003: seven D&D services behind `silo gateway`
    Dnd,
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Services to serve [default: all]
    pub services: Vec<String>,
    /// Address to listen on (port 0 picks a free one; the bound address
    /// is printed)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Connections kept per service, for every service: overrides each
    /// service's `pool_size` in silo.toml (`[services.<name>.gateway]`,
    /// default 10). On PostgreSQL a pool never exceeds the role's
    /// `connection_limit`; the gateway says when it caps one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_size: Option<u32>,
    /// Longest a statement may run, for every service: overrides each
    /// service's `statement_timeout` in silo.toml (default 30s). A
    /// duration (`10s`, `1500ms`, `2m`) or whole seconds (`10`); past it
    /// the statement is cancelled and the request gets 504
    /// `StatementTimeout`, on PostgreSQL and SQLite alike
    #[arg(long, value_name = "DURATION", value_parser = statement_timeout)]
    pub statement_timeout: Option<std::time::Duration>,
    /// Write one JSON line per request to PATH (`-`: standard output):
    /// time, service, operation, tables, rows, duration, outcome and
    /// request id — never values or tokens. The file is created 0600 and
    /// appended to.
    #[arg(long, value_name = "PATH|-")]
    pub audit_log: Option<String>,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to
    /// finish (their transactions commit and are answered) before the
    /// gateway exits anyway. New connections are refused at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub drain_timeout: u64,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs
    /// --tls-key
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key; refused when every user may
    /// read it (`chmod 600`)
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Also answer the same operations over NATS request/reply, on the
    /// server at SILO_NATS_URL (default nats://127.0.0.1:4222)
    ///
    /// A service sends its request to `<project>_db.<service>.<operation>`
    /// (`query`, `write`) with the same JSON as HTTP; the reply has the
    /// same body and the HTTP status in its `Silo-Status` header. The
    /// caller is the token in the message's `Authorization: Bearer ...`
    /// header, or, with `[events] nats_auth = true`, the service's own
    /// NATS user (the gateway then connects as `silo-gateway`; `silo
    /// events nats-config` writes both). Gateways share the requests in
    /// the queue group `silo-gateway`.
    #[arg(long)]
    pub nats: bool,
    /// Most NATS requests run at once; past it the gateway takes no more
    /// messages until one finishes (with --nats)
    #[arg(long, value_name = "N", default_value_t = 64, requires = "nats")]
    pub nats_concurrency: usize,
}

/// `--statement-timeout`: whole seconds, or a duration as silo.toml
/// writes it.
fn statement_timeout(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let duration = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        format!("{text}s")
    } else {
        text.to_string()
    };
    silo_manifest::parse_timeout(&duration).map_err(|(message, help)| match help {
        Some(help) => format!("{message}; {help}"),
        None => message,
    })
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Services to provision [default: all]
    pub services: Vec<String>,
    /// Take over databases, roles or files that exist without silo's
    /// marker (their owner, privileges and password are reset)
    #[arg(long)]
    pub adopt: bool,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Services to show [default: all]
    pub services: Vec<String>,
    /// Also list orphans: stores silo made for services silo.toml no
    /// longer names (found from the data dir's credentials files and SQLite
    /// folders). `silo down NAME --orphan --yes` removes one.
    #[arg(long)]
    pub all: bool,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Services whose stores to drop
    #[arg(required = true)]
    pub services: Vec<String>,
    /// The services are orphans: no longer in silo.toml, their stores
    /// still there (`silo status --all` lists them)
    #[arg(long)]
    pub orphan: bool,
    /// Really drop them (required: nothing is destroyed without it)
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Really drop every store (required: nothing is destroyed without it)
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON document instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Print a service's credentials (password masked unless --reveal)
    Show {
        /// The service
        service: String,
        /// Show the password, and the URL with it, instead of `***`
        #[arg(long)]
        reveal: bool,
        /// Print JSON: service, engine, host, port, database, user,
        /// password, url (password and URL masked unless --reveal)
        #[arg(long)]
        json: bool,
    },
    /// Replace a service's password in the server and its secrets file;
    /// the old password stops working
    Rotate {
        /// The service
        service: String,
        /// Replace the service's gateway token (SILO_GATEWAY_TOKEN, the
        /// bearer token `silo gateway` knows it by) instead of its
        /// database password
        #[arg(long)]
        gateway: bool,
        /// Print one JSON document: service, rotated, credentials_file
        #[arg(long)]
        json: bool,
    },
}

/// How long a command that changes a store (or runs its migrations on a
/// scratch store) waits for another migrator of the same store.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Give up waiting for another `silo migrate` on the same store after
    /// this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_timeout: u64,
}

/// How long a command that only reads a store waits for another migrator
/// of the same store: shorter than [`LockArgs`], since a reader waits only
/// for the history to be consistent, and a long wait is better reported.
#[derive(Debug, Args)]
pub struct ReadLockArgs {
    /// Give up waiting for another `silo migrate` on the same store after
    /// this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub lock_timeout: u64,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Services to migrate [default: all]
    pub services: Vec<String>,
    /// Stop after this version
    #[arg(long, value_name = "VERSION")]
    pub target: Option<String>,
    /// Print the plan and its SQL; touch nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stop every service at the first failure (default: others go on)
    #[arg(long)]
    pub fail_fast: bool,
    /// Run even when applied files changed since (see `silo validate`)
    #[arg(long)]
    pub ignore_mismatch: bool,
    /// Apply pending versions older than the newest applied one
    #[arg(long)]
    pub out_of_order: bool,
    /// Go on with a file that ran outside a transaction and stopped part
    /// way (`silo info` shows it partial), from its first statement not
    /// done; its statements done must be unchanged in the file
    #[arg(long)]
    pub resume: bool,
    /// Back up each service that has migrations pending before migrating
    /// it (reason `before migrating to <version>`), and leave a service
    /// unmigrated when its backup fails. On by default with
    /// `[defaults] backup_before_migrate = true`
    #[arg(long, conflicts_with = "no_backup_first")]
    pub backup_first: bool,
    /// Migrate without a backup first, even when silo.toml asks for one
    /// (`[defaults] backup_before_migrate`)
    #[arg(long)]
    pub no_backup_first: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Services to show [default: all]
    pub services: Vec<String>,
    #[command(flatten)]
    pub lock: ReadLockArgs,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The service whose migrations to undo
    pub service: String,
    /// Undo every applied version newer than this one (0: all)
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Print the U files and their SQL, in the order they would run;
    /// change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Really undo, without asking (required without a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Go on with a U file that ran outside a transaction and stopped part
    /// way, from its first statement not done
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print one JSON document: service, undone (the steps)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// The service whose history to repair
    pub service: String,
    /// Really change the history (required)
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print one JSON document: service, changes
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The service whose store to adopt
    pub service: String,
    /// The version the store already has: files up to it count as applied
    /// (a positional argument: `--version` prints silo's own version)
    #[arg(value_name = "VERSION")]
    pub baseline: String,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print one JSON document: service, baseline
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The service the migration belongs to
    pub service: String,
    /// What the migration does, in words (becomes the file name)
    pub description: String,
    /// Print one JSON document: service, created (the new files)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Report only these migration files, or the files under these folders
    pub paths: Vec<PathBuf>,
    /// Only these services
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Report only files added or changed since this git revision
    /// (committed, staged, unstaged or untracked), e.g. `origin/main`
    #[arg(long, value_name = "GIT_REF")]
    pub changed_since: Option<String>,
    /// Only these rules (repeatable); turns a rule on even where silo.toml
    /// turns it off
    #[arg(long = "rule", value_name = "ID")]
    pub rules: Vec<String>,
    /// Never these rules (repeatable)
    #[arg(long = "no-rule", value_name = "ID")]
    pub no_rules: Vec<String>,
    /// Output format: `human` (rustc-style), `json`, `sarif` (2.1.0, for
    /// code-scanning upload) or `github` (workflow annotations) [default:
    /// human]
    #[arg(long, value_enum)]
    pub format: Option<LintFormat>,
    /// Print one JSON document, like every other command: the same as
    /// `--format json`
    #[arg(long)]
    pub json: bool,
    /// Print a rule's page (why, bad and good examples, how to fix) and
    /// exit; without a rule, list the rules
    #[arg(long, value_name = "RULE", num_args = 0..=1, default_missing_value = "")]
    pub explain: Option<String>,
    /// Record the current migration files in each migrations folder's
    /// silo.sum (commit it), then lint
    #[arg(long)]
    pub update_sum: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only findings and matrix cells involving these services (every
    /// service is still read: a hole has two ends)
    #[arg(long = "service", value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Only the source scan: no server needed
    #[arg(long, conflicts_with = "live_only")]
    pub code_only: bool,
    /// Only the live checks: no source scan
    #[arg(long)]
    pub live_only: bool,
    /// Really try every role against every store on its server (n² probes)
    /// instead of its own store and one sibling
    #[arg(long)]
    pub thorough: bool,
    /// Connection probes made at once
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    pub probe_jobs: u16,
    /// Output format: `human` (matrix and findings), `json`, `sarif`
    /// (2.1.0) or `github` (workflow annotations) [default: human]
    #[arg(long, value_enum)]
    pub format: Option<LintFormat>,
    /// Print one JSON document, like every other command: the same as
    /// `--format json`
    #[arg(long)]
    pub json: bool,
    /// Apply the remediation of fixable findings (revokes, attributes,
    /// owners, rotations, file modes), then audit again. Asks first on a
    /// terminal; elsewhere needs --yes
    #[arg(long)]
    pub fix: bool,
    /// Confirm --fix without asking
    #[arg(long, requires = "fix")]
    pub yes: bool,
    /// Print a check's page and exit; without a check, list the checks
    #[arg(long, value_name = "CHECK", num_args = 0..=1, default_missing_value = "")]
    pub explain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Human,
    Json,
    Sarif,
    Github,
}

impl LintFormat {
    /// The format `--format` and `--json` ask for together: `--json` is
    /// `--format json`, and any other `--format` beside it is a usage error.
    pub fn resolve(format: Option<LintFormat>, json: bool) -> Result<LintFormat, String> {
        match (format, json) {
            (None, false) => Ok(LintFormat::Human),
            (None, true) | (Some(LintFormat::Json), _) => Ok(LintFormat::Json),
            (Some(f), false) => Ok(f),
            (Some(f), true) => Err(format!(
                "--json asks for JSON but --format asks for {}",
                f.to_possible_value()
                    .map_or_else(String::new, |v| v.get_name().to_string())
            )),
        }
    }
}

impl LintArgs {
    /// The output format; see [`LintFormat::resolve`].
    pub fn output(&self) -> Result<LintFormat, String> {
        LintFormat::resolve(self.format, self.json)
    }
}

impl AuditArgs {
    /// The output format; see [`LintFormat::resolve`].
    pub fn output(&self) -> Result<LintFormat, String> {
        LintFormat::resolve(self.format, self.json)
    }
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The service
    pub service: String,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The service
    pub service: String,
    #[command(flatten)]
    pub lock: ReadLockArgs,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Print the live schema of a service's store
    Dump(DumpArgs),
}

#[derive(Debug, Subcommand)]
pub enum MigrationsCommand {
    /// Convert another tool's migrations into silo's names in a service's
    /// folder, keeping their order and content
    ///
    /// sqlx: <version>_<name>.sql or .up.sql/.down.sql; diesel:
    /// <timestamp>_<name>/up.sql and down.sql; refinery: V<n>__<name>.sql.
    /// Down files become U files. Existing files are never overwritten.
    Import {
        /// The tool the folder comes from
        #[arg(long, value_enum)]
        from: ImportTool,
        /// The other tool's migrations folder
        source: std::path::PathBuf,
        /// The service that will own them
        #[arg(long)]
        service: String,
        /// Print one JSON document: service, written (the new files)
        #[arg(long)]
        json: bool,
    },

    /// Take in the history another tool kept in a service's store, so
    /// `silo migrate` runs only what is new
    ///
    /// Reads the tool's history table in the store, as the service
    /// (flyway_schema_history, _sqlx_migrations,
    /// __diesel_schema_migrations or refinery_schema_history; --table
    /// names another), matches each row to the service's migration file
    /// by version, and checks the file against the tool's own checksum
    /// (Flyway: CRC-32 of the lines; sqlx: SHA-384; refinery: SipHash;
    /// diesel keeps none). Matching rows are recorded in
    /// silo_schema_history with their original time and user. A file that
    /// differs from what the tool applied, a failed row and a row whose
    /// file is gone are reported (exit 1) and recorded so that `silo info`
    /// shows them and `silo migrate` refuses until they are dealt with;
    /// a failed row is never recorded as applied. The tool's table is left
    /// as it is. A second run records nothing and says so.
    Adopt(AdoptArgs),
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The service whose store holds the other tool's history
    pub service: String,
    /// The tool that migrated the store
    #[arg(long, value_enum)]
    pub from: AdoptTool,
    /// The tool's history table, when not its default name (Flyway's
    /// `flyway.table`); `schema.table` on PostgreSQL
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
    /// Show what would be recorded; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Print one JSON document: every row with its outcome, and a summary
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AdoptTool {
    Flyway,
    Sqlx,
    Diesel,
    Refinery,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportTool {
    Sqlx,
    Diesel,
    Refinery,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The service to connect as
    pub service: String,
    /// Arguments for psql or sqlite3
    #[arg(last = true)]
    pub client_args: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// clap's own consistency checks (duplicate flags such as a
    /// subcommand's `--version` beside the global one, bad defaults):
    /// debug builds would panic on them at run time.
    #[test]
    fn command_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag and argument says what it is for in `silo help`.
    #[test]
    fn every_argument_is_documented() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "silo", &mut missing);
        assert!(missing.is_empty(), "undocumented: {missing:#?}");
    }

    /// Every command that takes the migration lock takes `--lock-timeout`:
    /// 300 s for those that change a store or run its migrations, 30 s for
    /// those that only read it.
    #[test]
    fn every_locking_command_takes_lock_timeout() {
        let cases: [(&[&str], u64); 11] = [
            (&["migrate"], 300),
            (&["undo", "a"], 300),
            (&["repair", "a"], 300),
            (&["baseline", "a", "1"], 300),
            (&["verify", "a"], 300),
            (&["diff", "a"], 300),
            (&["migrations", "adopt", "a", "--from", "flyway"], 300),
            (&["info"], 30),
            (&["validate"], 30),
            (&["schema", "dump", "a"], 30),
            (&["undo", "a", "--lock-timeout", "7"], 7),
        ];
        for (args, expected) in cases {
            let cli = Cli::try_parse_from(std::iter::once("silo").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let timeout = match &cli.command {
                Command::Migrate(a) => a.lock.lock_timeout,
                Command::Undo(a) => a.lock.lock_timeout,
                Command::Repair(a) => a.lock.lock_timeout,
                Command::Baseline(a) => a.lock.lock_timeout,
                Command::Verify(a) | Command::Diff(a) => a.lock.lock_timeout,
                Command::Migrations(MigrationsCommand::Adopt(a)) => a.lock.lock_timeout,
                Command::Info(a) | Command::Validate(a) => a.lock.lock_timeout,
                Command::Schema(SchemaCommand::Dump(a)) => a.lock.lock_timeout,
                _ => panic!("{args:?}: not a locking command"),
            };
            assert_eq!(timeout, expected, "{args:?}");
        }
    }

    #[test]
    fn json_is_format_json() {
        use LintFormat::*;
        assert_eq!(LintFormat::resolve(None, false), Ok(Human));
        assert_eq!(LintFormat::resolve(None, true), Ok(Json));
        assert_eq!(LintFormat::resolve(Some(Json), true), Ok(Json));
        assert_eq!(LintFormat::resolve(Some(Sarif), false), Ok(Sarif));
        assert_eq!(
            LintFormat::resolve(Some(Sarif), true),
            Err("--json asks for JSON but --format asks for sarif".into())
        );
    }
}
