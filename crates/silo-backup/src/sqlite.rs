//! Backing up and restoring a SQLite store.
//!
//! The copy is SQLite's own `VACUUM INTO`: one read transaction, so it is a
//! consistent snapshot while the service keeps writing (WAL lets writers go
//! on beside a reader), and the copy is compact. The copy is then checked
//! with `PRAGMA integrity_check` and everything the metadata records (row
//! counts, schema, migration version) is read from the copy, never from the
//! live store, so it all describes the same snapshot.
//!
//! The live store is opened through SQLite only: closing another handle on
//! the file would drop the locks SQLite connections of this process hold on
//! it (POSIX locks go with any close).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use silo_migrate::target::Target;
use silo_store::schema::{Schema, snapshot_sqlite};
use silo_store::{Credentials, StoreError};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::BackupError;
use crate::meta::{BackupMeta, Dump, FileEntry};

/// The database copy in a SQLite backup.
pub const STORE_FILE: &str = "store.sqlite3";

/// The schema snapshot in every backup.
pub const SCHEMA_FILE: &str = "schema.json";

/// `application_id` of silo's stores ("SILO").
const APPLICATION_ID: i64 = silo_store::sqlite::APPLICATION_ID;

fn sql(action: &str) -> impl FnOnce(sqlx::Error) -> BackupError + '_ {
    move |source| {
        BackupError::Store(StoreError::Sql {
            action: action.to_string(),
            source,
        })
    }
}

/// Opens an existing store file without changing anything in it.
async fn open(path: &Path) -> Result<SqliteConnection, BackupError> {
    if let Err(source) = std::fs::metadata(path) {
        return Err(BackupError::Store(StoreError::OpenFile {
            path: path.to_path_buf(),
            source,
        }));
    }
    let action = format!("opening the SQLite store {}", path.display());
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(sql(&action))?
        .create_if_missing(false)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .disable_statement_logging();
    SqliteConnection::connect_with(&options)
        .await
        .map_err(sql(&action))
}

/// The service a store's silo mark names, if it has one.
async fn mark(conn: &mut SqliteConnection) -> Result<Option<String>, BackupError> {
    let app_id: i64 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut *conn)
        .await
        .map_err(sql("reading application_id"))?;
    if app_id != APPLICATION_ID {
        return Ok(None);
    }
    Ok(sqlx::query_scalar(
        "SELECT value FROM silo_store WHERE key = 'service' \
         AND EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'silo_store')",
    )
    .fetch_optional(&mut *conn)
    .await
    .unwrap_or(None))
}

/// Opens `creds`' store after checking that its mark names `creds`'
/// service.
async fn open_own(creds: &Credentials) -> Result<SqliteConnection, BackupError> {
    let path = Path::new(&creds.database);
    let mut conn = open(path).await?;
    let found = mark(&mut conn).await?;
    if found.as_deref() != Some(creds.service.as_str()) {
        let _ = conn.close().await;
        return Err(BackupError::Store(StoreError::NotServiceStore {
            service: creds.service.clone(),
            kind: "SQLite file",
            name: creds.database.clone(),
            found,
        }));
    }
    Ok(conn)
}

/// Copies `creds`' store into `staging` in one consistent snapshot, checks
/// the copy and describes it.
pub async fn dump(creds: &Credentials, staging: &Path) -> Result<Dump, BackupError> {
    let copy = staging.join(STORE_FILE);
    // The mark is checked through sqlx like every open of a store; the
    // copy itself is SQLite's backup API on a blocking thread.
    let live = open_own(creds).await?;
    let _ = live.close().await;
    let live_path = PathBuf::from(&creds.database);
    let checked = {
        let into = copy.clone();
        tokio::task::spawn_blocking(move || {
            crate::sqlite_copy::copy(&live_path, &into)?;
            crate::sqlite_copy::check(&into)
        })
        .await
        .map_err(|e| BackupError::io("copying into", &copy, std::io::Error::other(e)))??
    };
    if checked.quick_check != ["ok"] {
        return Err(BackupError::Integrity {
            service: creds.service.clone(),
            report: checked.quick_check.join("; "),
        });
    }

    let mut conn = open(&copy).await?;
    let server_version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut conn)
        .await
        .map_err(sql("reading the SQLite version"))?;
    let schema = snapshot_sqlite(&mut conn)
        .await
        .map_err(sql("reading the copy's schema"))?;
    conn.close().await.map_err(sql("closing the copy"))?;
    write_schema(staging, &schema).await?;

    let migration_version = migration_version(&copy).await?;
    Ok(Dump {
        server_version,
        migration_version,
        tables: checked.tables,
        files: vec![STORE_FILE.to_string(), SCHEMA_FILE.to_string()],
        hashed: vec![FileEntry {
            name: STORE_FILE.to_string(),
            size: checked.size,
            sha256: checked.sha256,
        }],
    })
}

/// Writes `schema.json` into `staging`.
pub(crate) async fn write_schema(staging: &Path, schema: &Schema) -> Result<(), BackupError> {
    let path = staging.join(SCHEMA_FILE);
    let json = serde_json::to_vec_pretty(schema).expect("schemas serialize");
    tokio::fs::write(&path, json)
        .await
        .map_err(|e| BackupError::io("writing", &path, e))
}

/// The newest migration version in the copy's silo history, read the way
/// `silo info` reads it (undone versions do not count, a baseline does).
async fn migration_version(copy: &Path) -> Result<Option<String>, BackupError> {
    let conn = open(copy).await?;
    let policy = silo_migrate::LockPolicy {
        timeout: Duration::from_secs(5),
        on_wait: Arc::new(|_| {}),
        cancel: silo_migrate::Cancel::new(),
    };
    let mut target = silo_migrate::sqlite::SqliteTarget::new(conn, policy)
        .await
        .map_err(BackupError::History)?;
    let history = target.history().await.map_err(BackupError::History)?;
    let newest = silo_migrate::state::replay(&history).newest();
    Ok(newest.map(|v| v.to_string()))
}

/// Rows per table (every table, silo's own included), by name.
async fn count_rows(conn: &mut SqliteConnection) -> Result<BTreeMap<String, u64>, BackupError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(sql("listing the tables"))?;
    let mut counts = BTreeMap::new();
    for name in names {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {quoted}"
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(sql("counting rows"))?;
        counts.insert(name, u64::try_from(n).unwrap_or(0));
    }
    Ok(counts)
}

/// Rows per table of `creds`' store, as the service.
pub async fn row_counts(creds: &Credentials) -> Result<BTreeMap<String, u64>, BackupError> {
    let mut conn = open_own(creds).await?;
    let counts = count_rows(&mut conn).await;
    let _ = conn.close().await;
    counts
}

/// The schema of `creds`' store, as the service.
pub async fn schema(creds: &Credentials) -> Result<Schema, BackupError> {
    let mut conn = open_own(creds).await?;
    let schema = snapshot_sqlite(&mut conn)
        .await
        .map_err(sql("reading the schema"));
    let _ = conn.close().await;
    schema
}

/// Puts the backup's copy in place of the store file `into` (a scratch
/// store or a new file that nothing has open), marked as `into`'s service.
/// The copy is prepared under a temporary name beside it and renamed in:
/// `into` is never half written.
pub async fn restore(
    staging: &Path,
    meta: &BackupMeta,
    into: &Credentials,
) -> Result<(), BackupError> {
    let target = PathBuf::from(&into.database);
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let tmp = target.with_file_name(format!(".restoring-{}-{name}", std::process::id()));
    remove_with_sidecars(&tmp)?;
    let src = staging.join(STORE_FILE);
    let copied = async {
        // The kernel copies (copy_file_range), and the full integrity
        // check reads the copy while it is still in the page cache: it
        // compares every index with its table, which the check at backup
        // time skipped.
        let report = {
            let (from, to) = (src.clone(), tmp.clone());
            tokio::task::spawn_blocking(move || {
                crate::destination::private_file_now(&to)?;
                std::fs::copy(&from, &to).map_err(|e| BackupError::io("copying into", &to, e))?;
                std::fs::File::open(&to)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| BackupError::io("writing", &to, e))?;
                crate::sqlite_copy::integrity_check(&to)
            })
            .await
            .map_err(|e| BackupError::io("copying into", &tmp, std::io::Error::other(e)))??
        };
        if report != ["ok"] {
            return Err(BackupError::RestoreIntegrity {
                id: meta.id.to_string(),
                report: report.join("; "),
            });
        }
        let mut conn = open(&tmp).await?;
        sqlx::query("UPDATE silo_store SET value = ? WHERE key = 'service'")
            .bind(&into.service)
            .execute(&mut conn)
            .await
            .map_err(sql("marking the restored store"))?;
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&mut conn)
            .await
            .map_err(sql("setting the journal mode"))?;
        conn.close()
            .await
            .map_err(sql("closing the restored store"))?;
        remove_with_sidecars(&target)?;
        std::fs::rename(&tmp, &target).map_err(|e| BackupError::io("renaming into", &target, e))
    }
    .await;
    if copied.is_err() {
        let _ = remove_with_sidecars(&tmp);
    }
    copied
}

/// Checks that a store file opens as a silo SQLite store without opening
/// it by other means than SQLite; used before a live file is swapped.
pub(crate) async fn checkpoint(creds: &Credentials) -> Result<(), BackupError> {
    let mut conn = open_own(creds).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .map_err(sql("checkpointing the store"))?;
    conn.close().await.map_err(sql("closing the store"))
}

/// The WAL and shared-memory files beside a store file.
pub(crate) fn sidecars(path: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_os_string();
            p.push(suffix);
            PathBuf::from(p)
        })
        .collect()
}

pub(crate) fn remove_with_sidecars(path: &Path) -> Result<(), BackupError> {
    for sidecar in sidecars(path) {
        let _ = std::fs::remove_file(sidecar);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::io("removing", path, e)),
    }
}
