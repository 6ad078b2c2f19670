//! The embedded engine: one SQLite file per service,
//! `<data_dir>/<service>/<database>.sqlite3`, folder 0700, file 0600, WAL.
//!
//! A store is marked as silo's by the header's `application_id` and by the
//! service name in its `silo_store` table, so a file copied from another
//! service is recognised as foreign.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use silo_manifest::{Engine, Service};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::credentials::{Credentials, SecretsDir};
use crate::error::{StoreError, io, root_cause, sql};
use crate::files::{
    DIR_MODE, FILE_MODE, Prepared, create_private_file, ensure_mode, prepare_dir,
    remove_dir_if_empty,
};
use crate::{
    Dropped, Leftover, LeftoverKind, ProvisionOptions, Provisioned, StoreEngine, StoreStatus,
};

/// `application_id` of every store silo creates: "SILO" in ASCII.
pub const APPLICATION_ID: i64 = 0x5349_4C4F;

/// SQLite stores under one data dir.
#[derive(Debug, Clone)]
pub struct SqliteEngine {
    data_dir: PathBuf,
    secrets: SecretsDir,
}

impl SqliteEngine {
    /// An engine keeping stores and secrets under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        SqliteEngine {
            data_dir: data_dir.to_path_buf(),
            secrets: SecretsDir::new(data_dir),
        }
    }

    /// The store file of `service`.
    pub fn path(&self, service: &Service) -> PathBuf {
        service.sqlite_path(&self.data_dir)
    }

    /// Makes the data dir and the service's folder in it ready; see
    /// [`prepare_dir`] for which folders silo takes over.
    fn prepare_store_dir(&self, dir: &Path) -> Result<Prepared, StoreError> {
        let data = prepare_dir(&self.data_dir, false).map_err(io(&self.data_dir))?;
        prepare_dir(dir, data.owned).map_err(io(dir))
    }

    fn credentials_for(&self, service: &Service) -> Credentials {
        Credentials {
            service: service.name.clone(),
            engine: Engine::Sqlite,
            host: None,
            port: None,
            database: self.path(service).display().to_string(),
            user: None,
            password: None,
        }
    }
}

/// Opens a store file with silo's settings: WAL, foreign keys on, never
/// creating a missing file (creation goes through [`create_private_file`]
/// so the file is 0600 from its first byte).
pub async fn open(path: &Path) -> Result<SqliteConnection, StoreError> {
    // SQLite reports every failure to open as "unable to open database
    // file"; the file system says why (permission, missing, a folder).
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| StoreError::OpenFile {
            path: path.to_path_buf(),
            source,
        })?;
    let opening = || format!("opening the SQLite store {}", path.display());
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(sql(opening()))?
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .disable_statement_logging();
    SqliteConnection::connect_with(&options)
        .await
        .map_err(sql(opening()))
}

/// Opens an existing store file without touching it by any other means
/// than SQLite (see [`crate::Stores::connect_as`]) and without changing
/// its journal mode: foreign keys on, never creating a missing file. The
/// file system explains a failure: a missing file is looked up without
/// opening it; any other is looked into only once SQLite failed.
pub(crate) async fn open_existing(path: &Path) -> Result<SqliteConnection, StoreError> {
    let open_error = |source| StoreError::OpenFile {
        path: path.to_path_buf(),
        source,
    };
    std::fs::metadata(path).map_err(open_error)?;
    let opening = || format!("opening the SQLite store {}", path.display());
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(sql(opening()))?
        .create_if_missing(false)
        .foreign_keys(true)
        .disable_statement_logging();
    match SqliteConnection::connect_with(&options).await {
        Ok(conn) => Ok(conn),
        Err(e) => {
            // SQLite says "unable to open database file" for everything.
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(open_error)?;
            Err(sql(opening())(e))
        }
    }
}

/// Puts the connection's file in WAL mode (a lasting setting of the file;
/// nothing changes when it is in WAL mode already).
pub(crate) async fn use_wal(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&mut *conn)
        .await
        .map_err(sql("setting the journal mode"))?;
    Ok(())
}

/// Whether `e` says the file is not a SQLite database (SQLITE_NOTADB).
pub(crate) fn is_not_a_database(e: &StoreError) -> bool {
    matches!(e, StoreError::Sql { source: sqlx::Error::Database(db), .. }
        if db.code().as_deref() == Some("26"))
}

/// Who a store file says it belongs to.
enum Mark {
    /// Not a silo store (application_id unset or foreign).
    Foreign,
    /// A silo store of the named service.
    Silo(String),
}

async fn read_mark(conn: &mut SqliteConnection) -> Result<Mark, StoreError> {
    let app_id: i64 = sqlx::query_scalar("PRAGMA application_id")
        .fetch_one(&mut *conn)
        .await
        .map_err(sql("reading application_id"))?;
    if app_id != APPLICATION_ID {
        return Ok(Mark::Foreign);
    }
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT value FROM silo_store WHERE key = 'service' \
         AND EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'silo_store')",
    )
    .fetch_optional(&mut *conn)
    .await
    .unwrap_or(None);
    Ok(owner.map_or(Mark::Foreign, Mark::Silo))
}

/// Refuses a store path (or, with `folder`, its folder) that is a symbolic
/// link or not a plain file (folder). A missing one is fine.
fn refuse_unless_plain(path: &Path, folder: bool) -> Result<(), StoreError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        "a symbolic link"
    } else if folder && !kind.is_dir() {
        "not a folder"
    } else if !folder && !kind.is_file() {
        "not a plain file"
    } else {
        return Ok(());
    };
    Err(StoreError::Unsupported(format!(
        "{} is {what}; silo keeps each SQLite store as a plain file in a folder of its own and never follows links there: move it away and run `silo up` again",
        path.display()
    )))
}

/// Whether a file's header says it is a SQLite database made by silo
/// (`application_id`), read without opening it: opening an empty or foreign
/// file with silo's settings would write to it.
pub(crate) fn has_silo_header(path: &Path) -> Result<bool, StoreError> {
    use std::io::Read;
    let open_error = |source| StoreError::OpenFile {
        path: path.to_path_buf(),
        source,
    };
    let mut header = [0u8; 72];
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(open_error)?;
    match file.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(open_error(e)),
    }
    let app_id = i32::from_be_bytes([header[68], header[69], header[70], header[71]]);
    Ok(&header[..16] == b"SQLite format 3\0" && i64::from(app_id) == APPLICATION_ID)
}

/// Makes a marked store at `path` as one step: the file is created and
/// marked under a temporary name (`.creating-<pid>-<name>`) and only then
/// linked into place, so a run killed at any point leaves either no store
/// or a marked one, never an unmarked file silo would refuse. Returns false
/// when another run put a store there first.
async fn create_marked(path: &Path, service: &str) -> Result<bool, StoreError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".creating-{}-{name}", std::process::id()));
    remove_with_sidecars(&tmp)?;
    create_private_file(&tmp).map_err(io(&tmp))?;
    let made = async {
        let mut conn = open(&tmp).await?;
        write_mark(&mut conn, service).await?;
        // Closing the last connection checkpoints the WAL into the file.
        conn.close().await.map_err(sql("closing the new store"))
    }
    .await;
    let linked = made.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path)(e)),
    });
    remove_with_sidecars(&tmp)?;
    linked
}

/// Temporary files of [`create_marked`] whose run is gone.
fn stale_creating(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let pid = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(".creating-"))
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            pid.is_some_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
        })
        .filter(|p| {
            !p.to_string_lossy().ends_with("-wal") && !p.to_string_lossy().ends_with("-shm")
        })
        .collect();
    out.sort();
    out
}

/// Removes a store file and its WAL and shared-memory sidecars.
fn remove_with_sidecars(path: &Path) -> Result<(), StoreError> {
    for sidecar in sidecars(path) {
        let _ = std::fs::remove_file(sidecar);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Scratch store files of a service's folder that are still there: made
/// by `scratch` and not dropped (the run that made them was killed).
pub fn scratch_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".scratch-") && n.ends_with(".sqlite3"))
        })
        .collect();
    out.sort();
    out
}

/// The service a store file's silo mark names, if it has one.
pub(crate) async fn owner(conn: &mut SqliteConnection) -> Result<Option<String>, StoreError> {
    Ok(match read_mark(conn).await? {
        Mark::Silo(owner) => Some(owner),
        Mark::Foreign => None,
    })
}

async fn write_mark(conn: &mut SqliteConnection, service: &str) -> Result<(), StoreError> {
    let mut tx = conn.begin().await.map_err(sql("starting a transaction"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PRAGMA application_id = {APPLICATION_ID};
         CREATE TABLE IF NOT EXISTS silo_store (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    )))
    .execute(&mut *tx)
    .await
    .map_err(sql("marking the store"))?;
    sqlx::query("INSERT OR REPLACE INTO silo_store (key, value) VALUES ('service', ?)")
        .bind(service)
        .execute(&mut *tx)
        .await
        .map_err(sql("marking the store"))?;
    tx.commit().await.map_err(sql("marking the store"))
}

fn file_size(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = path.as_os_str().to_os_string();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).ok()
        })
        .map(|m| m.len())
        .sum()
}

fn sidecars(path: &Path) -> impl Iterator<Item = PathBuf> + '_ {
    ["-wal", "-shm", "-journal"].into_iter().map(move |suffix| {
        let mut p = path.as_os_str().to_os_string();
        p.push(suffix);
        PathBuf::from(p)
    })
}

#[async_trait]
impl StoreEngine for SqliteEngine {
    async fn provision(
        &self,
        service: &Service,
        options: ProvisionOptions,
    ) -> Result<Provisioned, StoreError> {
        let path = self.path(service);
        let dir = path.parent().expect("store files live in a folder");
        let mut changes = Vec::new();

        // Links and anything but plain files and folders are refused
        // before silo changes anything: following them would chmod or
        // write what silo did not create.
        refuse_unless_plain(dir, true)?;
        refuse_unless_plain(&path, false)?;
        let dir_changed = self.prepare_store_dir(dir)?.changed;
        for stale in stale_creating(dir) {
            remove_with_sidecars(&stale)?;
            changes.push(format!(
                "removed {}, left by an interrupted run",
                stale.display()
            ));
        }
        let created = !path.exists() && create_marked(&path, &service.name).await?;
        if dir_changed && !created {
            changes.push(format!(
                "made folder {} private ({:o})",
                dir.display(),
                DIR_MODE
            ));
        }
        // A file without silo's header is refused before it is opened
        // (opening switches it to WAL, a write) or its mode is touched,
        // unless the user asks to adopt it.
        if !created && !options.adopt && !has_silo_header(&path)? {
            return Err(StoreError::NotManaged {
                kind: "SQLite file",
                name: path.display().to_string(),
            });
        }
        if !created && ensure_mode(&path, FILE_MODE).map_err(io(&path))? {
            changes.push(format!("made {} private ({:o})", path.display(), FILE_MODE));
        }
        for staged in self.secrets.remove_stale_staged(&service.name)? {
            changes.push(format!(
                "removed {}, left by an interrupted run",
                staged.display()
            ));
        }
        let mut conn = open(&path).await?;
        if created {
            changes.push(format!("created the store file (mode {FILE_MODE:o}, WAL)"));
        } else {
            match read_mark(&mut conn).await? {
                Mark::Silo(owner) if owner == service.name => {}
                Mark::Silo(owner) => {
                    return Err(StoreError::ManagedByOther {
                        kind: "SQLite store",
                        name: path.display().to_string(),
                        owner,
                        service: service.name.clone(),
                    });
                }
                Mark::Foreign if options.adopt => {
                    write_mark(&mut conn, &service.name).await?;
                    changes.push(format!("adopted {}", path.display()));
                }
                Mark::Foreign => {
                    return Err(StoreError::NotManaged {
                        kind: "SQLite file",
                        name: path.display().to_string(),
                    });
                }
            }
        }
        // Opening with WAL switched the file over if it was not already;
        // the change persists in the file header.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .map_err(sql("reading journal_mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unsupported(format!(
                "{} cannot switch to WAL mode (it reports `{mode}`)",
                path.display()
            )));
        }
        conn.close().await.map_err(sql("closing the store"))?;

        if self.secrets.write(&self.credentials_for(service))? && !created {
            changes.push("wrote the credentials file".into());
        }
        Ok(Provisioned::from_changes(created, changes))
    }

    async fn status(&self, service: &Service) -> Result<StoreStatus, StoreError> {
        let path = self.path(service);
        if !path.exists() {
            return Ok(StoreStatus {
                exists: false,
                size_bytes: None,
                connects: false,
                problem: Some("not provisioned".into()),
                leftovers: self.leftovers(service).await?,
            });
        }
        let size = Some(file_size(&path));
        let problem = match self.secrets.read(service)? {
            None => Some("no credentials file".to_string()),
            Some(creds) if Path::new(&creds.database) != path => {
                Some(format!("credentials point at {}", creds.database))
            }
            Some(_) if !has_silo_header(&path)? => Some("the file is not a silo store".into()),
            Some(_) => match open(&path).await {
                Err(e) => Some(format!("{e}: {}", root_cause(&e))),
                Ok(mut conn) => match read_mark(&mut conn).await {
                    Ok(Mark::Silo(owner)) if owner == service.name => None,
                    Ok(Mark::Silo(owner)) => Some(format!("the file belongs to service `{owner}`")),
                    Ok(Mark::Foreign) => Some("the file is not a silo store".into()),
                    Err(e) => Some(format!("{e}: {}", root_cause(&e))),
                },
            },
        };
        Ok(StoreStatus {
            exists: true,
            size_bytes: size,
            connects: problem.is_none(),
            problem,
            leftovers: self.leftovers(service).await?,
        })
    }

    async fn rotate(&self, service: &Service) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(format!(
            "service `{}` uses SQLite, which has no passwords; its file's permissions (0600) guard it",
            service.name
        )))
    }

    async fn drop_store(&self, service: &Service) -> Result<Dropped, StoreError> {
        let path = self.path(service);
        let mut dropped = Dropped::default();
        if path.exists() {
            // A file without silo's header is never opened (opening writes).
            let mark = if has_silo_header(&path)? {
                let mut conn = open(&path).await?;
                let mark = read_mark(&mut conn).await?;
                conn.close().await.map_err(sql("closing the store"))?;
                mark
            } else {
                Mark::Foreign
            };
            match mark {
                Mark::Silo(owner) if owner == service.name => {}
                Mark::Silo(owner) => {
                    return Err(StoreError::ManagedByOther {
                        kind: "SQLite store",
                        name: path.display().to_string(),
                        owner,
                        service: service.name.clone(),
                    });
                }
                Mark::Foreign => {
                    return Err(StoreError::NotManaged {
                        kind: "SQLite file",
                        name: path.display().to_string(),
                    });
                }
            }
            for sidecar in sidecars(&path) {
                let _ = std::fs::remove_file(sidecar);
            }
            std::fs::remove_file(&path).map_err(io(&path))?;
            dropped.removed.push(format!("store {}", path.display()));
        }
        // What interrupted runs left in the service's folder goes too, with
        // or without the store (a run killed before linking it in leaves
        // only its half-made file).
        let dir = path.parent().expect("store files live in a folder");
        if refuse_unless_plain(dir, true).is_ok() {
            for stale in stale_creating(dir) {
                remove_with_sidecars(&stale)?;
                dropped
                    .removed
                    .push(format!("half-made store {}", stale.display()));
            }
            for scratch in scratch_files(dir) {
                remove_with_sidecars(&scratch)?;
                dropped
                    .removed
                    .push(format!("leftover scratch store {}", scratch.display()));
            }
            // Only an empty folder goes: anything else in it is not ours.
            remove_dir_if_empty(dir);
        }
        for staged in self.secrets.remove_stale_staged(&service.name)? {
            dropped
                .removed
                .push(format!("leftover staged file {}", staged.display()));
        }
        if self.secrets.remove(&service.name)? {
            dropped.removed.push("credentials file".into());
        }
        Ok(dropped)
    }

    async fn scratch(&self, service: &Service) -> Result<Credentials, StoreError> {
        let dir = self
            .path(service)
            .parent()
            .expect("in a folder")
            .to_path_buf();
        self.prepare_store_dir(&dir)?;
        let path = dir.join(format!(".scratch-{}.sqlite3", crate::scratch_suffix()));
        create_private_file(&path).map_err(io(&path))?;
        let mut conn = open(&path).await?;
        write_mark(&mut conn, &service.name).await?;
        conn.close()
            .await
            .map_err(sql("closing the scratch store"))?;
        let mut creds = self.credentials_for(service);
        creds.database = path.display().to_string();
        Ok(creds)
    }

    async fn leftovers(&self, service: &Service) -> Result<Vec<Leftover>, StoreError> {
        let path = self.path(service);
        let shown = |p: &PathBuf| p.display().to_string();
        let mut out: Vec<Leftover> = self
            .secrets
            .stale_staged(&service.name)
            .iter()
            .map(|p| Leftover::new(LeftoverKind::StagedCredentials, shown(p)))
            .collect();
        if let Some(dir) = path.parent() {
            out.extend(
                scratch_files(dir)
                    .iter()
                    .map(|p| Leftover::new(LeftoverKind::ScratchStore, shown(p))),
            );
            out.extend(
                stale_creating(dir)
                    .iter()
                    .map(|p| Leftover::new(LeftoverKind::HalfMadeStore, shown(p))),
            );
        }
        Ok(out)
    }

    async fn drop_scratch(&self, scratch: &Credentials) -> Result<(), StoreError> {
        let path = PathBuf::from(&scratch.database);
        for sidecar in sidecars(&path) {
            let _ = std::fs::remove_file(sidecar);
        }
        std::fs::remove_file(&path).map_err(io(&path))
    }

    fn credentials(&self, service: &Service) -> Result<Credentials, StoreError> {
        self.secrets.require(service)
    }
}
