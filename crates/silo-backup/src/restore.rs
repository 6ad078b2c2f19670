//! Restoring a backup, and the restore drill (`silo backup verify`).
//!
//! Every restore goes the same way: pick the backup, refuse one of another
//! service or engine, download it checking every file's size and SHA-256
//! before anything is loaded, load it into a store nothing uses, and compare
//! that store's row counts and schema with what the backup recorded. Only a
//! restored store that checked out replaces a live one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use silo_manifest::{Engine, Service};
use silo_store::schema::{Schema, diff};
use silo_store::{Credentials, RestoreInto, Stores, SwapOptions};

use crate::BackupError;
use crate::crypt::{Identities, decrypt_staged};
use crate::destination::Destination;
use crate::meta::{BackupId, BackupMeta};
use crate::sqlite::{SCHEMA_FILE, remove_with_sidecars};

/// Where a restore goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new store of the service named NAME, beside the live one
    /// (SQLite: the file `<data_dir>/<service>/<NAME>.sqlite3`;
    /// PostgreSQL: database NAME made by silo-store, with a role and
    /// credentials of its own unless `keep_credentials`).
    New(String),
    /// The service's live store, swapped only after the restored copy
    /// checked out; the old one is kept beside it (PostgreSQL: the copy is
    /// a closed-off database under the service's role until the swap).
    Replace,
    /// A scratch store, dropped after the checks: the restore drill.
    Scratch,
}

/// What to restore, from where, and into what.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The backup; the newest complete one when `None`.
    pub backup: Option<BackupId>,
    /// The service the backup must be of: the restored service's own
    /// unless `--from-service` names another on purpose.
    pub from_service: &'a str,
    pub into: Target,
    /// The data dir: SQLite stores and staging folders live there.
    pub data_dir: &'a Path,
    /// PostgreSQL `--into NAME`: the new store belongs to the service's
    /// own role and password instead of a new role with new credentials.
    pub keep_credentials: bool,
    /// `--replace`: end the service's own sessions on its live store
    /// before the swap (otherwise a store in use is refused).
    pub terminate: bool,
    /// PostgreSQL: `pg_restore --jobs`, and the connections the restored
    /// store's rows are counted on (1: one `pg_restore` transaction, one
    /// connection). [`crate::postgres::default_restore_jobs`] unless told.
    pub jobs: usize,
}

/// A restore that checked out.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub service: String,
    pub backup: BackupId,
    /// The service the backup was taken of.
    pub from_service: String,
    /// Where the restored store is (a file or a database); for the drill,
    /// the scratch store that was dropped.
    pub store: String,
    /// The replaced live store, kept under this name.
    pub previous: Option<String>,
    /// The credentials file of a new PostgreSQL store (`--into NAME`).
    pub credentials: Option<String>,
    /// Sessions on the live store ended by `--terminate`.
    pub terminated: u64,
    /// Rows per table in the restored store, as the backup recorded them.
    pub tables: BTreeMap<String, u64>,
    pub migration_version: Option<String>,
}

/// The backup `wanted` names (or the newest) at `destination`, refused
/// when it is of another service than `from_service` or another engine
/// than `service`'s.
pub async fn choose(
    destination: &Destination,
    wanted: Option<&BackupId>,
    from_service: &str,
    service: &Service,
) -> Result<BackupMeta, BackupError> {
    let meta = match wanted {
        Some(id) => destination
            .meta(id)
            .await?
            .ok_or_else(|| BackupError::NotFound {
                what: format!("no complete backup {id}"),
                destination: destination.shown().to_string(),
            })?,
        None => {
            let listing = destination.list().await?;
            listing
                .backups
                .into_iter()
                .next_back()
                .ok_or_else(|| BackupError::NotFound {
                    what: format!("no backup of service `{from_service}`"),
                    destination: destination.shown().to_string(),
                })?
        }
    };
    if meta.service != from_service {
        return Err(BackupError::OtherService {
            id: meta.id.to_string(),
            found: meta.service.clone(),
            service: service.name.clone(),
        });
    }
    if meta.engine != service.engine {
        return Err(BackupError::OtherEngine {
            id: meta.id.to_string(),
            found: meta.engine,
            service: service.name.clone(),
            engine: service.engine,
        });
    }
    Ok(meta)
}

/// Restores a backup of `request.from_service` from `destination` into
/// `service` as `request.into` says.
pub async fn restore(
    stores: &Stores,
    service: &Service,
    destination: &Destination,
    request: &Request<'_>,
) -> Result<Restored, BackupError> {
    let meta = choose(
        destination,
        request.backup.as_ref(),
        request.from_service,
        service,
    )
    .await?;
    // Without the identity nothing can be loaded: say so before
    // downloading anything.
    let identities = if meta.encrypted {
        Some(Identities::from_env(meta.id.as_str())?)
    } else {
        None
    };
    let staging =
        crate::backup::staging_folder(&request.data_dir.join("backups").join(".staging"))?;
    destination.fetch(&meta, staging.path()).await?;
    if let Some(identities) = &identities {
        let names: Vec<String> = meta.files.iter().map(|f| f.name.clone()).collect();
        decrypt_staged(staging.path(), &names, identities).await?;
    }
    let recorded = read_schema(staging.path(), &meta).await?;

    let mut restored = Restored {
        service: service.name.clone(),
        backup: meta.id.clone(),
        from_service: meta.service.clone(),
        store: String::new(),
        previous: None,
        credentials: None,
        terminated: 0,
        tables: meta.tables.clone(),
        migration_version: meta.migration_version.clone(),
    };
    let loaded = Loaded {
        staging: staging.path(),
        meta: &meta,
        recorded: &recorded,
        jobs: request.jobs,
    };
    match (&request.into, service.engine) {
        (Target::Scratch, _) => {
            let engine = stores.engine(service)?;
            let scratch = engine.scratch(service).await?;
            let checked = loaded.load_into(&scratch).await;
            let dropped = engine.drop_scratch(&scratch).await;
            checked?;
            dropped?;
            restored.store = scratch.database;
        }
        (Target::New(name), Engine::Sqlite) => {
            let creds = new_file(service, request.data_dir, name)?;
            if let Err(e) = loaded.load_into(&creds).await {
                let _ = remove_with_sidecars(Path::new(&creds.database));
                return Err(e);
            }
            restored.store = creds.database;
        }
        (Target::Replace, Engine::Sqlite) => {
            let live = stores.credentials(service)?;
            let live_path = PathBuf::from(&live.database);
            let name = format!(".restored-{}", meta.id);
            let creds = new_file(service, request.data_dir, &name)?;
            if let Err(e) = loaded.load_into(&creds).await {
                let _ = remove_with_sidecars(Path::new(&creds.database));
                return Err(e);
            }
            let previous = swap(&live, &live_path, Path::new(&creds.database), &meta.id).await?;
            restored.store = live.database;
            restored.previous = Some(previous.display().to_string());
        }
        (Target::New(name), Engine::Postgres) => {
            let engine = stores.engine(service)?;
            let into = RestoreInto::Named {
                name,
                keep_credentials: request.keep_credentials,
            };
            let creds = engine.restore_target(service, into).await?;
            if let Err(e) = loaded.load_into(&creds).await {
                let _ = engine.drop_restore_target(service, &creds).await;
                return Err(e);
            }
            restored.credentials =
                Some(stores.secrets().path(&creds.service).display().to_string());
            restored.store = creds.database;
        }
        (Target::Replace, Engine::Postgres) => {
            let engine = stores.engine(service)?;
            let creds = engine
                .restore_target(service, RestoreInto::Replacement)
                .await?;
            if let Err(e) = loaded.load_into(&creds).await {
                let _ = engine.drop_restore_target(service, &creds).await;
                return Err(e);
            }
            let options = SwapOptions {
                terminate: request.terminate,
            };
            match engine.swap(service, &creds, options).await {
                Ok(swapped) => {
                    restored.store = swapped.live;
                    restored.previous = Some(swapped.kept);
                    restored.terminated = swapped.terminated;
                }
                Err(e) => {
                    // The live store is untouched; the checked copy is not
                    // left behind for `silo down` to find.
                    let _ = engine.drop_restore_target(service, &creds).await;
                    return Err(e.into());
                }
            }
        }
    }
    Ok(restored)
}

/// The restore drill: restores `backup` (or the newest) into a scratch
/// store, compares it with the backup's records, drops it.
pub async fn verify(
    stores: &Stores,
    service: &Service,
    destination: &Destination,
    backup: Option<BackupId>,
    data_dir: &Path,
) -> Result<Restored, BackupError> {
    let request = Request {
        backup,
        from_service: &service.name,
        into: Target::Scratch,
        data_dir,
        keep_credentials: false,
        terminate: false,
        jobs: crate::postgres::default_restore_jobs(),
    };
    restore(stores, service, destination, &request).await
}

/// Credentials of a new SQLite store file `<NAME>.sqlite3` in the
/// service's folder, which must not exist yet.
fn new_file(service: &Service, data_dir: &Path, name: &str) -> Result<Credentials, BackupError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with("..");
    if !valid {
        return Err(BackupError::Unsupported(format!(
            "`{name}` cannot name a store: use letters, digits, `_`, `-` and `.`"
        )));
    }
    let live = service.sqlite_path(data_dir);
    let path = live.with_file_name(format!("{name}.sqlite3"));
    if path.exists() || path == live {
        return Err(BackupError::TargetExists {
            what: format!("the store file {}", path.display()),
        });
    }
    Ok(Credentials {
        service: service.name.clone(),
        engine: Engine::Sqlite,
        host: None,
        port: None,
        database: path.display().to_string(),
        user: None,
        password: None,
    })
}

/// The schema the backup recorded (`schema.json`, checksummed with the
/// rest).
async fn read_schema(staging: &Path, meta: &BackupMeta) -> Result<Schema, BackupError> {
    let path = staging.join(SCHEMA_FILE);
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| BackupError::io("reading", &path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| BackupError::BadMeta {
        id: meta.id.to_string(),
        reason: format!("{SCHEMA_FILE}: {e}"),
    })
}

/// A downloaded, decrypted backup and the schema it recorded.
struct Loaded<'a> {
    staging: &'a Path,
    meta: &'a BackupMeta,
    recorded: &'a Schema,
    jobs: usize,
}

impl Loaded<'_> {
    /// Loads the backup into the empty store `into` with its engine's
    /// tool, then compares that store's row counts and schema with what
    /// the backup recorded.
    async fn load_into(&self, into: &Credentials) -> Result<(), BackupError> {
        let (counts, schema) = match into.engine {
            Engine::Sqlite => {
                crate::sqlite::restore(self.staging, self.meta, into).await?;
                (
                    crate::sqlite::row_counts(into).await?,
                    crate::sqlite::schema(into).await?,
                )
            }
            Engine::Postgres => {
                crate::postgres::restore_with(self.staging, self.meta, into, self.jobs).await?;
                crate::postgres::row_counts_and_schema(into, self.jobs).await?
            }
        };
        let mut differences = count_differences(&self.meta.tables, &counts);
        differences.extend(diff(self.recorded, &schema).iter().map(|d| {
            format!(
                "{} {:?} {}{}",
                d.object.as_str(),
                d.change,
                d.name,
                d.aspect
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            )
        }));
        if differences.is_empty() {
            Ok(())
        } else {
            Err(BackupError::Mismatch {
                id: self.meta.id.to_string(),
                differences,
            })
        }
    }
}

/// Tables whose row count differs, or that are missing on either side.
fn count_differences(
    recorded: &BTreeMap<String, u64>,
    found: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, want) in recorded {
        match found.get(table) {
            Some(got) if got == want => {}
            Some(got) => out.push(format!("table {table} has {got} rows, the backup {want}")),
            None => out.push(format!("table {table} is missing")),
        }
    }
    for table in found.keys().filter(|t| !recorded.contains_key(*t)) {
        out.push(format!("table {table} is not in the backup"));
    }
    out
}

/// Puts the checked `restored` file in place of the live store and keeps
/// the live one as `<file>.before-<id>`. The live store is checkpointed
/// first so its WAL holds nothing the kept file lacks.
async fn swap(
    live: &Credentials,
    live_path: &Path,
    restored: &Path,
    id: &BackupId,
) -> Result<PathBuf, BackupError> {
    crate::sqlite::checkpoint(live).await?;
    let name = live_path.file_name().unwrap_or_default().to_string_lossy();
    let previous = live_path.with_file_name(format!("{name}.before-{id}"));
    if previous.exists() {
        return Err(BackupError::TargetExists {
            what: format!("{}", previous.display()),
        });
    }
    std::fs::rename(live_path, &previous)
        .map_err(|e| BackupError::io("moving the live store to", &previous, e))?;
    for sidecar in crate::sqlite::sidecars(live_path) {
        let _ = std::fs::remove_file(sidecar);
    }
    for sidecar in crate::sqlite::sidecars(restored) {
        let _ = std::fs::remove_file(sidecar);
    }
    std::fs::rename(restored, live_path)
        .map_err(|e| BackupError::io("moving the restored store to", live_path, e))?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_differ_by_table() {
        let recorded = BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]);
        let found = BTreeMap::from([("a".to_string(), 3), ("c".to_string(), 0)]);
        let d = count_differences(&recorded, &found);
        assert_eq!(
            d,
            [
                "table a has 3 rows, the backup 2",
                "table b is missing",
                "table c is not in the backup"
            ]
        );
        assert!(count_differences(&recorded, &recorded).is_empty());
    }
}
