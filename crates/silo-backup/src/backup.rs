//! Taking one backup of one service: dump its store into a private staging
//! folder, encrypt the files when the destination's policy says so, upload
//! every file (checksummed as it goes), and write `meta.json` last.
//!
//! A run killed at any point leaves no backup: at worst a staging folder
//! (removed by the next backup) and files without `meta.json` at the
//! destination (never listed; prune removes them).

use std::path::{Path, PathBuf};

use silo_manifest::{Engine, Service};
use silo_store::Stores;
use time::OffsetDateTime;

use crate::BackupError;
use crate::destination::Destination;
use crate::meta::{BackupId, BackupMeta, Dump, FORMAT};

/// What a backup is taken for, and where it stages its files.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The project's name, recorded in the metadata.
    pub project: &'a str,
    /// Why: `manual`, `scheduled`, `before migrating to 5`.
    pub reason: &'a str,
    /// The folder staging folders are made in (`<data_dir>/backups/.staging`):
    /// on the same disk as the stores, private, never the system's temp
    /// folder (which may be small or in memory).
    pub staging_root: &'a Path,
}

/// Takes one backup of `service`'s store, as the service, into
/// `destination`, and returns its metadata.
pub async fn take(
    stores: &Stores,
    service: &Service,
    destination: &Destination,
    request: &Request<'_>,
) -> Result<BackupMeta, BackupError> {
    let creds = stores.credentials(service)?;
    let staging = staging_folder(request.staging_root)?;
    let started_at = OffsetDateTime::now_utc();
    let id = BackupId::new(started_at);

    let dump: Dump = match service.engine {
        Engine::Sqlite => crate::sqlite::dump(&creds, staging.path()).await?,
        Engine::Postgres => {
            let compression = service.backup.as_ref().and_then(|p| p.compression);
            crate::postgres::dump_with(&creds, staging.path(), compression).await?
        }
    };
    // The tools write with the process's umask; the rows are private.
    for name in &dump.files {
        make_private(&staging.path().join(name))?;
    }
    let (names, encrypted) = match destination.recipients() {
        Some(recipients) => (
            crate::crypt::encrypt_staged(staging.path(), &dump.files, recipients).await?,
            true,
        ),
        None => (dump.files.clone(), false),
    };
    // Checksums a dump took are of the plain files: of no use once they
    // are encrypted.
    let hashed: &[crate::FileEntry] = if encrypted { &[] } else { &dump.hashed };

    // The sizes and checksums recorded are of the files as stored.
    let files = destination
        .upload(&id, staging.path(), &names, hashed)
        .await?;
    let meta = BackupMeta {
        format: FORMAT,
        id,
        project: request.project.to_string(),
        service: service.name.clone(),
        engine: service.engine,
        server_version: dump.server_version,
        migration_version: dump.migration_version,
        started_at,
        finished_at: OffsetDateTime::now_utc(),
        size_bytes: files.iter().map(|f| f.size).sum(),
        encrypted,
        reason: request.reason.to_string(),
        files,
        tables: dump.tables,
    };
    destination.commit(&meta).await?;
    Ok(meta)
}

/// Makes a staged file readable by its owner only.
fn make_private(path: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| BackupError::io("making private", path, e))
}

/// A new private staging folder `<pid>-<random>` under `root`, removed when
/// dropped; folders of runs that are gone (killed) are removed first.
pub(crate) fn staging_folder(root: &Path) -> Result<tempfile::TempDir, BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(|e| BackupError::io("creating", root, e))?;
    for stale in stale_staging(root) {
        let _ = std::fs::remove_dir_all(&stale);
    }
    tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .tempdir_in(root)
        .map_err(|e| BackupError::io("creating a staging folder in", root, e))
}

/// Staging folders whose process no longer runs.
fn stale_staging(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let pid = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            pid.is_some_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_of_a_dead_run_is_removed_and_a_live_one_kept() {
        let root = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22: this pid never runs.
        let dead = root.path().join("4999999-abc");
        std::fs::create_dir(&dead).unwrap();
        let other = root.path().join("notes");
        std::fs::create_dir(&other).unwrap();
        let mine = staging_folder(root.path()).unwrap();
        assert!(!dead.exists());
        assert!(other.exists());
        assert!(mine.path().exists());
        let again = staging_folder(root.path()).unwrap();
        assert!(mine.path().exists(), "a live run's staging is kept");
        drop(again);
    }
}
