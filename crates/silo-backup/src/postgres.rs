//! PostgreSQL backups: the server's own `pg_dump` and `pg_restore`, run as
//! the service's own role.
//!
//! The role owns everything in its store, so it can dump all of it and
//! never needs the administrator. One consistent snapshot: silo opens a
//! `REPEATABLE READ` transaction as the service, exports its snapshot, and
//! hands it to `pg_dump --snapshot` while it counts the rows, reads the
//! schema and the migration version in that same transaction. The
//! password goes to the tools through `PGPASSWORD`, never on their command
//! line.
//!
//! A backup is three files:
//! - [`DUMP_FILE`]: `pg_dump`'s custom format (compressed).
//! - [`GLOBALS_FILE`]: what `pg_dump` leaves out: the role's attributes and
//!   settings, the database's ACL, comment and settings, the versions.
//! - [`SCHEMA_FILE`]: the schema snapshot a restore is compared with.
//!
//! A restore loads the dump with `--no-owner --no-acl` into an empty store
//! made the silo way, as that store's role: everything restored belongs to
//! it, and the grants stay silo's, not the dump's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use silo_store::schema::{Schema, snapshot_postgres};
use silo_store::{Credentials, StoreError};
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

use crate::{BackupError, BackupMeta, Dump};

/// `pg_dump`'s custom-format archive.
pub const DUMP_FILE: &str = "dump.pgc";
/// What `pg_dump` leaves out ([`Globals`]).
pub const GLOBALS_FILE: &str = "globals.json";
/// The schema snapshot taken with the dump.
pub const SCHEMA_FILE: &str = "schema.json";

/// Points silo at the folder of the PostgreSQL client tools to use,
/// instead of `pg_config --bindir`.
pub const BINDIR_VAR: &str = "SILO_PG_BINDIR";

/// The format of [`GLOBALS_FILE`].
const GLOBALS_FORMAT: u32 = 1;

/// What `pg_dump` leaves out of a database's dump and a restore needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Globals {
    pub format: u32,
    /// `server_version_num` of the server dumped.
    pub server_version_num: u32,
    /// The version of the `pg_dump` that wrote the archive: `pg_restore`
    /// must be at least as new.
    pub pg_dump_version: String,
    pub database: String,
    pub role: RoleAttributes,
    /// `datacl` as the catalog prints it (`None`: the default).
    pub database_acl: Option<String>,
    pub database_comment: Option<String>,
    /// `ALTER DATABASE ... SET` settings, as `name=value`.
    pub database_settings: Vec<String>,
    /// `ALTER ROLE ... SET` settings (everywhere, and in this database).
    pub role_settings: Vec<String>,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    /// The silo migration version the store was at.
    pub migration_version: Option<String>,
}

/// The service role's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAttributes {
    pub name: String,
    pub login: bool,
    pub superuser: bool,
    pub inherit: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub replication: bool,
    pub bypassrls: bool,
    /// `-1`: no limit.
    pub connection_limit: i32,
    pub valid_until: Option<String>,
    pub comment: Option<String>,
}

/// One of the server's client tools, matched to its major version.
#[derive(Debug, Clone)]
struct Tool {
    path: PathBuf,
    /// `15.20`
    version: String,
}

/// The major version of a `server_version_num` (`150020` -> 15).
fn major_of(version_num: u32) -> u32 {
    version_num / 10000
}

/// The version a tool's `--version` prints: `pg_dump (PostgreSQL) 15.20
/// (Debian 15.20-0+deb12u1)` -> `15.20`.
fn parse_tool_version(text: &str) -> Option<(String, u32)> {
    let rest = text.split(')').nth(1)?.trim_start();
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let major = version.split('.').next()?.parse().ok()?;
    Some((version, major))
}

/// Folders to look for the tools in, best first: `$SILO_PG_BINDIR` alone
/// when set; else the server's major version beside `pg_config --bindir`
/// (Debian keeps each version in `/usr/lib/postgresql/<major>/bin`),
/// `pg_config --bindir` itself, Debian's folder of that version (a machine
/// with the client tools only has no `pg_config`), and the `PATH`.
async fn tool_dirs(server_major: u32) -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(BINDIR_VAR) {
        return vec![PathBuf::from(dir)];
    }
    let mut out: Vec<PathBuf> = Vec::new();
    let bindir = tokio::process::Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(bindir) = bindir {
        if let Some(versions) = bindir.parent().and_then(Path::parent) {
            out.push(versions.join(server_major.to_string()).join("bin"));
        }
        out.push(bindir);
    }
    out.push(PathBuf::from(format!(
        "/usr/lib/postgresql/{server_major}/bin"
    )));
    if let Some(path) = std::env::var_os("PATH") {
        out.extend(std::env::split_paths(&path));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert(d.clone()));
    out
}

/// The `name` tool (`pg_dump`, `pg_restore`) for a server of
/// `server_major`, no older than it.
async fn find_tool(name: &'static str, server_major: u32) -> Result<Tool, BackupError> {
    let mut found: Option<Tool> = None;
    for dir in tool_dirs(server_major).await {
        let path = dir.join(name);
        let Ok(out) = tokio::process::Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .await
        else {
            continue;
        };
        let Some((version, major)) = parse_tool_version(&String::from_utf8_lossy(&out.stdout))
        else {
            continue;
        };
        let tool = Tool { path, version };
        if major >= server_major {
            return Ok(tool);
        }
        found.get_or_insert(tool);
    }
    let install = format!(
        "install the PostgreSQL {server_major} client tools (Debian/Ubuntu: `apt install postgresql-client-{server_major}`), or point {BINDIR_VAR} at the folder that holds a {name} of version {server_major} or newer"
    );
    Err(match found {
        Some(tool) => BackupError::Tool {
            tool: name,
            reason: format!(
                "{} is version {}, older than the server (PostgreSQL {server_major}); an older {name} cannot read a newer server's catalog",
                tool.path.display(),
                tool.version
            ),
            help: install,
        },
        None => BackupError::Tool {
            tool: name,
            reason: format!(
                "not found (looked in {})",
                std::env::var(BINDIR_VAR)
                    .map(|d| format!("${BINDIR_VAR}={d}"))
                    .unwrap_or_else(|_| {
                        "pg_config --bindir, the server's version folder and the PATH".into()
                    })
            ),
            help: install,
        },
    })
}

/// A libpq connection string for `creds`, without the password (it goes
/// through `PGPASSWORD`). Values are quoted, so no name can add a keyword.
fn conninfo(creds: &Credentials, application: &str) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut out = format!(
        "dbname={} application_name={}",
        quote(&creds.database),
        quote(application)
    );
    if let Some(host) = &creds.host {
        out.push_str(&format!(" host={}", quote(host)));
    }
    if let Some(port) = creds.port {
        out.push_str(&format!(" port={port}"));
    }
    if let Some(user) = &creds.user {
        out.push_str(&format!(" user={}", quote(user)));
    }
    out
}

/// A tool's command with the store's credentials in its environment.
fn command(tool: &Tool, creds: &Credentials) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&tool.path);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // A service file or a passfile of the user's must not pick
        // another server, user or password than the credentials say.
        .env_remove("PGSERVICE")
        .env_remove("PGSERVICEFILE")
        .env_remove("PGPASSFILE")
        .env_remove("PGOPTIONS");
    match creds.password.as_ref() {
        Some(p) => cmd.env("PGPASSWORD", p.expose()),
        None => cmd.env_remove("PGPASSWORD"),
    };
    cmd
}

/// Runs `cmd` to its end; a failure carries the tool's error output.
async fn run_tool(
    name: &'static str,
    mut cmd: tokio::process::Command,
    creds: &Credentials,
) -> Result<(), BackupError> {
    let out = cmd
        .output()
        .await
        .map_err(|e| BackupError::io(format!("running {name}"), Path::new(name), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(tool_failed(name, creds, out.status, &out.stderr))
}

fn tool_failed(
    name: &'static str,
    creds: &Credentials,
    status: std::process::ExitStatus,
    stderr: &[u8],
) -> BackupError {
    let stderr = String::from_utf8_lossy(stderr);
    // The end of a long output is where the cause is.
    let tail: String = {
        let lines: Vec<&str> = stderr.trim_end().lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    BackupError::ToolFailed {
        tool: name,
        target: creds.redacted_url(),
        status: status.to_string(),
        stderr: tail,
    }
}

/// Connects as the store's own role (`creds`), never the administrator.
async fn connect(creds: &Credentials, application: &str) -> Result<PgConnection, BackupError> {
    let options: PgConnectOptions =
        silo_store::postgres::parse_url(&creds.url(), "the credentials file")?
            .application_name(application);
    PgConnection::connect_with(&options)
        .await
        .map_err(|source| match &source {
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")) => {
                StoreError::ServiceLogin {
                    service: creds.service.clone(),
                    source,
                }
                .into()
            }
            _ => StoreError::Connect {
                target: creds.redacted_url(),
                source,
            }
            .into(),
        })
}

fn sql_error(action: &str, creds: &Credentials) -> impl FnOnce(sqlx::Error) -> BackupError {
    let action = action.to_string();
    let target = creds.redacted_url();
    move |source| BackupError::Sql {
        action,
        target,
        source,
    }
}

/// `(server_version_num, server_version)`.
async fn server_version(
    conn: &mut PgConnection,
    creds: &Credentials,
) -> Result<(u32, String), BackupError> {
    let (num, text): (String, String) = sqlx::query_as(
        "SELECT current_setting('server_version_num'), current_setting('server_version')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(sql_error("reading the server version", creds))?;
    Ok((num.parse().unwrap_or(0), text))
}

/// Tables whose rows a backup counts: every ordinary table in a
/// non-system schema that no extension owns, `silo_*` bookkeeping
/// included. Named as schema snapshots name them (`public` unqualified).
const TABLES: &str = "SELECT n.nspname::text, c.relname::text
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind = 'r'
       AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
       AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                       AND e.objid = c.oid AND e.deptype = 'e')
     ORDER BY 1, 2";

fn quote_ident(name: &str) -> String {
    silo_store::postgres::quote_ident(name)
}

/// Rows per table of the store `conn` is in, in its current snapshot.
async fn count_rows(
    conn: &mut PgConnection,
    creds: &Credentials,
) -> Result<BTreeMap<String, u64>, BackupError> {
    let tables: Vec<(String, String)> = sqlx::query_as(TABLES)
        .fetch_all(&mut *conn)
        .await
        .map_err(sql_error("listing the tables", creds))?;
    let mut out = BTreeMap::new();
    for (schema, table) in tables {
        let (name, n) = count_table(conn, creds, schema, table).await?;
        out.insert(name, n);
    }
    Ok(out)
}

/// The rows of `schema.table` in the snapshot of `conn`, under the name
/// schema snapshots give it (`public` unqualified).
async fn count_table(
    conn: &mut PgConnection,
    creds: &Credentials,
    schema: String,
    table: String,
) -> Result<(String, u64), BackupError> {
    let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM ONLY {}.{}",
        quote_ident(&schema),
        quote_ident(&table)
    )))
    .fetch_one(&mut *conn)
    .await
    .map_err(sql_error(
        &format!("counting the rows of {schema}.{table}"),
        creds,
    ))?;
    let name = if schema == "public" {
        table
    } else {
        format!("{schema}.{table}")
    };
    Ok((name, u64::try_from(count).unwrap_or(0)))
}

/// The role's attributes and the database's properties, as the service's
/// own role may read them.
async fn read_globals(
    conn: &mut PgConnection,
    creds: &Credentials,
    server_version_num: u32,
    pg_dump_version: &str,
    migration_version: Option<String>,
) -> Result<Globals, BackupError> {
    let r = sqlx::query(
        "SELECT r.rolname::text, r.rolcanlogin, r.rolsuper, r.rolinherit, r.rolcreatedb,
                r.rolcreaterole, r.rolreplication, r.rolbypassrls, r.rolconnlimit,
                to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                shobj_description(r.oid, 'pg_authid')
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(sql_error("reading the role's attributes", creds))?;
    let role = RoleAttributes {
        name: r.get(0),
        login: r.get(1),
        superuser: r.get(2),
        inherit: r.get(3),
        createdb: r.get(4),
        createrole: r.get(5),
        replication: r.get(6),
        bypassrls: r.get(7),
        connection_limit: r.get(8),
        valid_until: r.get(9),
        comment: r.get(10),
    };
    let d = sqlx::query(
        "SELECT d.datname::text, d.datacl::text, shobj_description(d.oid, 'pg_database'),
                pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text,
                coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                          WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}'),
                coalesce((SELECT array_agg(c ORDER BY s.setdatabase, c) FROM pg_db_role_setting s,
                                 unnest(s.setconfig) c
                          WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
                            AND s.setdatabase IN (0, d.oid)), '{}')
         FROM pg_database d WHERE d.datname = current_database()",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(sql_error("reading the database's properties", creds))?;
    Ok(Globals {
        format: GLOBALS_FORMAT,
        server_version_num,
        pg_dump_version: pg_dump_version.to_string(),
        database: d.get(0),
        role,
        database_acl: d.get(1),
        database_comment: d.get(2),
        encoding: d.get(3),
        collate: d.get(4),
        ctype: d.get(5),
        database_settings: d.get(6),
        role_settings: d.get(7),
        migration_version,
    })
}

async fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), BackupError> {
    let bytes = serde_json::to_vec_pretty(value).expect("plain data serializes");
    tokio::fs::write(path, bytes)
        .await
        .map_err(|e| BackupError::io("writing", path, e))
}

/// Dumps the store `creds` reach, as its own role, into `staging`: the
/// archive, [`GLOBALS_FILE`] and [`SCHEMA_FILE`], all of one snapshot.
pub async fn dump(creds: &Credentials, staging: &Path) -> Result<Dump, BackupError> {
    dump_with(creds, staging, None).await
}

/// As [`dump`], the archive compressed at `compression` (pg_dump's
/// `--compress`, 0 to 9; `None`: its default).
pub async fn dump_with(
    creds: &Credentials,
    staging: &Path,
    compression: Option<u8>,
) -> Result<Dump, BackupError> {
    let mut conn = connect(creds, "silo backup").await?;
    let (version_num, server_version) = server_version(&mut conn, creds).await?;
    let pg_dump = find_tool("pg_dump", major_of(version_num)).await?;

    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(sql_error("starting the backup's transaction", creds))?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *tx)
        .await
        .map_err(sql_error("exporting the backup's snapshot", creds))?;

    let archive = staging.join(DUMP_FILE);
    let mut cmd = command(&pg_dump, creds);
    cmd.arg("--format=custom");
    if let Some(level) = compression {
        cmd.arg(format!("--compress={level}"));
    }
    cmd.arg(format!("--snapshot={snapshot}"))
        .arg("--no-password")
        .arg("--file")
        .arg(&archive)
        .arg(format!("--dbname={}", conninfo(creds, "silo backup")));
    let mut child = cmd
        .spawn()
        .map_err(|e| BackupError::io("running", &pg_dump.path, e))?;
    // Its error output is read as it comes, so a chatty pg_dump never
    // blocks on a full pipe.
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    let stderr = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr_pipe, &mut buf).await;
        buf
    });
    // pg_dump works from the exported snapshot while the same snapshot is
    // counted and read here; the transaction stays open until it is done.

    let facts = async {
        let tables = count_rows(&mut tx, creds).await?;
        let schema = snapshot_postgres(&mut tx)
            .await
            .map_err(sql_error("reading the schema", creds))?;
        let migration_version = silo_migrate::postgres::migration_version(&mut tx)
            .await
            .map_err(|e| BackupError::BadMeta {
                id: creds.database.clone(),
                reason: format!("the migration history cannot be read: {e}"),
            })?;
        let globals = read_globals(
            &mut tx,
            creds,
            version_num,
            &pg_dump.version,
            migration_version.clone(),
        )
        .await?;
        Ok::<_, BackupError>((tables, schema, globals, migration_version))
    }
    .await;

    if facts.is_err() {
        // The backup has failed already: no use finishing the dump.
        let _ = child.kill().await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| BackupError::io("running", &pg_dump.path, e))?;
    let stderr = stderr.await.unwrap_or_default();
    let _ = tx.rollback().await;
    let _ = conn.close().await;
    let (tables, schema, globals, migration_version) = facts?;
    if !status.success() {
        return Err(tool_failed("pg_dump", creds, status, &stderr));
    }

    write_json(&staging.join(GLOBALS_FILE), &globals).await?;
    write_json(&staging.join(SCHEMA_FILE), &schema).await?;
    Ok(Dump {
        server_version,
        migration_version,
        tables,
        files: vec![
            DUMP_FILE.to_string(),
            GLOBALS_FILE.to_string(),
            SCHEMA_FILE.to_string(),
        ],
        hashed: Vec::new(),
    })
}

/// Reads a backup's [`GLOBALS_FILE`] from `staging`.
pub async fn read_globals_file(staging: &Path) -> Result<Globals, BackupError> {
    let path = staging.join(GLOBALS_FILE);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| BackupError::io("reading", &path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| BackupError::BadMeta {
        id: staging.display().to_string(),
        reason: format!("{GLOBALS_FILE}: {e}"),
    })
}

/// Reads a backup's [`SCHEMA_FILE`] from `staging`: the schema a restore
/// must come out with.
pub async fn read_schema_file(staging: &Path) -> Result<Schema, BackupError> {
    let path = staging.join(SCHEMA_FILE);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| BackupError::io("reading", &path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| BackupError::BadMeta {
        id: staging.display().to_string(),
        reason: format!("{SCHEMA_FILE}: {e}"),
    })
}

/// Objects in the store's own schemas (tables, views, sequences, types,
/// functions): a restore target must have none.
const OBJECTS: &str = "SELECT
    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_')
  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_')
  + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' AND t.typtype IN ('e', 'd', 'r', 'm'))";

/// [`restore_with`] the [`default_restore_jobs`].
pub async fn restore(
    staging: &Path,
    meta: &BackupMeta,
    into: &Credentials,
) -> Result<(), BackupError> {
    restore_with(staging, meta, into, default_restore_jobs()).await
}

/// How many jobs a PostgreSQL restore runs at once unless told otherwise
/// (`silo restore --restore-jobs`): one per CPU, at least 2 and at most 4.
/// `pg_restore --jobs` loads tables and builds indexes side by side, and
/// the row counts after it run on as many connections.
pub fn default_restore_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4)
}

/// Loads the backup in `staging` into the empty store `into`, as that
/// store's role, with `pg_restore --no-owner --no-acl`: with `jobs` > 1 as
/// `pg_restore --jobs` (tables loaded and indexes built side by side; a
/// failed restore leaves part of the backup behind, and every caller drops
/// such a store), with 1 in one transaction (a failed restore leaves the
/// store empty). The database's own settings (`ALTER DATABASE ... SET`)
/// come back too; its owner, ACL and comment stay the ones silo gave the
/// target.
pub async fn restore_with(
    staging: &Path,
    meta: &BackupMeta,
    into: &Credentials,
    jobs: usize,
) -> Result<(), BackupError> {
    let globals = read_globals_file(staging).await?;
    let mut conn = connect(into, "silo restore").await?;
    let (version_num, _) = server_version(&mut conn, into).await?;
    let objects: i64 = sqlx::query_scalar(OBJECTS)
        .fetch_one(&mut conn)
        .await
        .map_err(sql_error("checking that the store is empty", into))?;
    if objects > 0 {
        let _ = conn.close().await;
        return Err(BackupError::NotEmpty {
            database: into.database.clone(),
            objects,
        });
    }
    // pg_restore reads only archives of its own version or older.
    let dumped_major = parse_tool_version(&format!("pg_dump () {}", globals.pg_dump_version))
        .map_or(0, |(_, m)| m);
    let pg_restore = find_tool("pg_restore", major_of(version_num).max(dumped_major)).await?;

    let mut cmd = command(&pg_restore, into);
    if jobs > 1 {
        cmd.arg(format!("--jobs={jobs}"));
    } else {
        cmd.arg("--single-transaction");
    }
    cmd.arg("--no-owner")
        .arg("--no-acl")
        .arg("--exit-on-error")
        .arg("--no-password")
        .arg(format!("--dbname={}", conninfo(into, "silo restore")))
        .arg(staging.join(DUMP_FILE));
    tracing::debug!(backup = %meta.id, database = %into.database, jobs, "pg_restore");
    let started = std::time::Instant::now();
    run_tool("pg_restore", cmd, into).await?;
    tracing::debug!(elapsed = ?started.elapsed(), "pg_restore done");

    apply_database_settings(&mut conn, into, &globals.database_settings).await?;
    let _ = conn.close().await;
    Ok(())
}

/// `ALTER DATABASE <into> SET name = value` for each recorded setting, as
/// the database's owner. The value is set in the session first and taken
/// `FROM CURRENT`, so it is stored exactly as recorded (lists included)
/// without being spliced into SQL. A setting only a superuser may make is
/// skipped with a warning.
async fn apply_database_settings(
    conn: &mut PgConnection,
    into: &Credentials,
    settings: &[String],
) -> Result<(), BackupError> {
    let db = quote_ident(&into.database);
    for setting in settings {
        let Some((name, value)) = setting.split_once('=') else {
            continue;
        };
        let applied = async {
            sqlx::query("SELECT set_config($1, $2, false)")
                .bind(name)
                .bind(value)
                .execute(&mut *conn)
                .await?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "ALTER DATABASE {db} SET {} FROM CURRENT",
                quote_ident(name)
            )))
            .execute(&mut *conn)
            .await?;
            sqlx::query("SELECT set_config($1, NULL, false)")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map(|_| ())
        }
        .await;
        if let Err(e) = applied {
            if silo_store::is_privilege_error(&e) {
                tracing::warn!(
                    database = %into.database,
                    setting = %name,
                    "the database setting needs a superuser; set it by hand"
                );
                continue;
            }
            return Err(sql_error(
                &format!("restoring database setting {name}"),
                into,
            )(e));
        }
    }
    Ok(())
}

/// Rows per table of the store `creds` reach, as its own role, in one
/// snapshot: what a restore is compared with the backup's metadata by.
pub async fn row_counts(creds: &Credentials) -> Result<BTreeMap<String, u64>, BackupError> {
    let mut conn = connect(creds, "silo restore").await?;
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(sql_error("starting a transaction", creds))?;
    let counts = count_rows(&mut tx, creds).await;
    let _ = tx.rollback().await;
    let _ = conn.close().await;
    counts
}

/// The row counts ([`row_counts`]) and the schema snapshot ([`schema`]) of
/// the store `creds` reach, as its own role, in one snapshot: the tables
/// are counted on up to `jobs` connections at once (each takes the next
/// table not yet counted), the first of them reading the schema before it
/// counts. A restored store's checks take the time of its largest table,
/// not of all of them one after another.
pub async fn row_counts_and_schema(
    creds: &Credentials,
    jobs: usize,
) -> Result<(BTreeMap<String, u64>, Schema), BackupError> {
    let started = std::time::Instant::now();
    let mut conn = connect(creds, "silo restore").await?;
    let mut tx = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(sql_error("starting a transaction", creds))?;
    let facts = async {
        let tables: Vec<(String, String)> = sqlx::query_as(TABLES)
            .fetch_all(&mut *tx)
            .await
            .map_err(sql_error("listing the tables", creds))?;
        let helpers = jobs.min(tables.len()).saturating_sub(1);
        let snapshot: Option<String> = if helpers > 0 {
            Some(
                sqlx::query_scalar("SELECT pg_export_snapshot()")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(sql_error("exporting the snapshot", creds))?,
            )
        } else {
            None
        };
        let queue = std::sync::Mutex::new(tables.into_iter());
        let next = || queue.lock().expect("no panic holds the lock").next();
        let first = async {
            let schema = snapshot_postgres(&mut tx)
                .await
                .map_err(sql_error("reading the schema", creds))?;
            let mut counts = BTreeMap::new();
            while let Some((schema, table)) = next() {
                let (name, n) = count_table(&mut tx, creds, schema, table).await?;
                counts.insert(name, n);
            }
            Ok::<_, BackupError>((counts, schema))
        };
        let others = futures::future::try_join_all((0..helpers).map(|_| async {
            let snapshot = snapshot.as_deref().expect("exported for the helpers");
            let mut conn = connect(creds, "silo restore").await?;
            let mut tx = conn
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map_err(sql_error("starting a transaction", creds))?;
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SET TRANSACTION SNAPSHOT '{}'",
                snapshot.replace('\'', "''")
            )))
            .execute(&mut *tx)
            .await
            .map_err(sql_error("importing the snapshot", creds))?;
            let mut counts = BTreeMap::new();
            while let Some((schema, table)) = next() {
                let (name, n) = count_table(&mut tx, creds, schema, table).await?;
                counts.insert(name, n);
            }
            let _ = tx.rollback().await;
            let _ = conn.close().await;
            Ok::<_, BackupError>(counts)
        }));
        let ((mut counts, schema), others) = futures::future::try_join(first, others).await?;
        for more in others {
            counts.extend(more);
        }
        Ok((counts, schema))
    }
    .await;
    let _ = tx.rollback().await;
    let _ = conn.close().await;
    tracing::debug!(elapsed = ?started.elapsed(), jobs, "row counts and schema read");
    facts
}

/// The schema snapshot of the store `creds` reach, as its own role.
pub async fn schema(creds: &Credentials) -> Result<Schema, BackupError> {
    let mut conn = connect(creds, "silo restore").await?;
    let schema = snapshot_postgres(&mut conn)
        .await
        .map_err(sql_error("reading the schema", creds));
    let _ = conn.close().await;
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_manifest::Engine;

    #[test]
    fn tool_versions_are_read_from_their_banner() {
        assert_eq!(
            parse_tool_version("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(("15.20".to_string(), 15))
        );
        assert_eq!(
            parse_tool_version("pg_restore (PostgreSQL) 17.2\n"),
            Some(("17.2".to_string(), 17))
        );
        assert_eq!(parse_tool_version("garbage"), None);
        assert_eq!(major_of(150020), 15);
        assert_eq!(major_of(170002), 17);
    }

    #[test]
    fn conninfo_quotes_values_and_leaves_the_password_out() {
        let creds = Credentials {
            service: "s".into(),
            engine: Engine::Postgres,
            host: Some("127.0.0.1".into()),
            port: Some(5432),
            database: "it's".into(),
            user: Some("s_svc".into()),
            password: Some(silo_store::Secret::new("hunter2")),
        };
        let info = conninfo(&creds, "silo backup");
        assert_eq!(
            info,
            "dbname='it\\'s' application_name='silo backup' host='127.0.0.1' port=5432 user='s_svc'"
        );
        assert!(!info.contains("hunter2"));
    }
}
