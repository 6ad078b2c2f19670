//! Where backups go: a folder or an S3 prefix holding one `<id>/` per
//! backup, each with its files and a `meta.json`, and whether the files
//! are encrypted before they leave this machine.
//!
//! Every destination is an object store and a prefix: once opened, a
//! local folder and a bucket go through the same code ([`crate::objects`]).
//! Opening differs only in where the store comes from: a local folder is
//! made (0700) by the first backup written to it; an `s3://` URL is opened
//! with the `AWS_*` environment ([`crate::s3`]).
//!
//! `meta.json` is written last: a backup exists exactly when its
//! `meta.json` exists and parses. A backup killed half way leaves files
//! without one, which are never listed (prune removes them after an age).
//!
//! The destination carries the policy's encryption too (`encrypt = true`
//! and the project's `[backup] recipients`), so every caller of
//! [`Destination::of`] (a backup now, the daemon, a backup before a
//! migration) encrypts as the manifest says without passing it along.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::x25519;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use silo_manifest::BackupDestination;

use crate::BackupError;
use crate::meta::{BackupId, BackupMeta, FileEntry, META_FILE};
use crate::objects;

/// A place backups are written to and read from.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The URL or folder as shown to the user.
    shown: String,
    place: Place,
    /// The recipients files are encrypted to before upload; `None`: stored
    /// as they are.
    encrypt_to: Option<Vec<x25519::Recipient>>,
}

#[derive(Debug, Clone)]
enum Place {
    /// A local folder, opened when used.
    Local(PathBuf),
    /// An object store opened already, and the prefix backups live under.
    Objects {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
}

/// An opened destination: its object store and the prefix backups live
/// under.
pub type Opened = (Arc<dyn ObjectStore>, ObjectPath);

/// The backups found at a destination.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete backups, oldest first.
    pub backups: Vec<BackupMeta>,
    /// Backups whose `meta.json` exists but cannot be read: id and why.
    pub broken: Vec<(String, String)>,
}

impl Destination {
    /// The destination of `service`: `configured` (a manifest
    /// `destination`: `file:///abs/path`, a path relative to the project
    /// folder `root`, or `s3://bucket/prefix`), or
    /// `<data_dir>/backups/<service>` by default.
    pub fn resolve(
        configured: Option<&str>,
        root: &Path,
        data_dir: &Path,
        service: &str,
    ) -> Result<Self, BackupError> {
        let Some(url) = configured else {
            return Ok(Destination::local(&data_dir.join("backups").join(service)));
        };
        let bad = |reason: &str| BackupError::BadDestination {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a file:// URL needs an absolute path (file:///var/backups)",
                ));
            }
            return Ok(Destination::local(Path::new(path)));
        }
        if url.starts_with("s3://") {
            return Destination::s3(url);
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(bad(&format!("unknown scheme `{scheme}`")));
        }
        if url.is_empty() {
            return Err(bad("it is empty"));
        }
        Ok(Destination::local(&root.join(url)))
    }

    /// The destination of service `service` as `manifest` sets it: its
    /// policy's `destination` (or `<data_dir>/backups/<service>`), with its
    /// files encrypted to the project's recipients when the policy says
    /// `encrypt = true`. A service no longer in the manifest (a backup
    /// restored with `--from-service`) has the default folder.
    pub fn of(manifest: &silo_manifest::Manifest, service: &str) -> Result<Self, BackupError> {
        let Some(svc) = manifest.service(service) else {
            return Destination::resolve(None, &manifest.root, &manifest.data_dir, service);
        };
        let mut destination = match manifest.backup_destination(svc) {
            BackupDestination::Local(dir) => Destination::local(&manifest.root.join(dir)),
            s3 @ BackupDestination::S3 { .. } => Destination::s3(&s3.to_string())?,
        };
        if svc.backup.as_ref().is_some_and(|p| p.encrypt) {
            destination.encrypt_to =
                Some(crate::crypt::parse_recipients(&manifest.backup.recipients)?);
        }
        Ok(destination)
    }

    /// A local folder.
    pub fn local(dir: &Path) -> Self {
        // `./.silo/backups/x` joined onto the project folder shows as
        // `/project/./.silo/...`: components() drops the inner `.`.
        let dir: PathBuf = dir.components().collect();
        let dir = dir.as_path();
        Destination {
            shown: dir.display().to_string(),
            place: Place::Local(dir.to_path_buf()),
            encrypt_to: None,
        }
    }

    /// `s3://bucket/prefix`, with credentials and endpoint from the
    /// `AWS_*` environment (nothing is sent until it is used).
    pub fn s3(url: &str) -> Result<Self, BackupError> {
        let s3 = crate::s3::open(url)?;
        Ok(Destination {
            shown: s3.url.to_string(),
            place: Place::Objects {
                store: s3.store,
                prefix: s3.prefix,
            },
            encrypt_to: None,
        })
    }

    /// The destination as shown to the user.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The recipients a new backup's files are encrypted to, when the
    /// policy encrypts.
    pub fn recipients(&self) -> Option<&[x25519::Recipient]> {
        self.encrypt_to.as_deref()
    }

    /// The object store and the prefix backups live under, or `None` when
    /// a local folder does not exist yet and `create` is false (nothing
    /// was ever written there).
    pub fn open(&self, create: bool) -> Result<Option<Opened>, BackupError> {
        match &self.place {
            Place::Local(dir) => {
                if !dir.exists() {
                    if !create {
                        return Ok(None);
                    }
                    make_private_dir(dir)?;
                }
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                    BackupError::BadDestination {
                        url: self.shown.clone(),
                        reason: format!("the folder cannot be opened: {e}"),
                    }
                })?;
                Ok(Some((Arc::new(fs), ObjectPath::default())))
            }
            Place::Objects { store, prefix } => Ok(Some((store.clone(), prefix.clone()))),
        }
    }

    fn opened(&self) -> Result<Opened, BackupError> {
        Ok(self.open(true)?.expect("made when asked to"))
    }

    /// Uploads files `names` of backup `id` from `staging`, streaming, and
    /// returns the size and SHA-256 of the bytes written (one read of each
    /// file does both). They are no backup until [`Destination::commit`]
    /// writes its metadata; a failed upload removes what it wrote.
    ///
    /// A local folder gets the files moved in (renamed; copied across
    /// filesystems), their checksums taken from `hashed` when the dump
    /// computed them already.
    pub async fn upload(
        &self,
        id: &BackupId,
        staging: &Path,
        names: &[String],
        hashed: &[FileEntry],
    ) -> Result<Vec<FileEntry>, BackupError> {
        if let Place::Local(dir) = &self.place {
            let folder = dir.join(id.as_str());
            // Made private before the first file lands in it.
            make_private_dir(&folder)?;
            let moved = move_all(staging, &folder, names, hashed).await;
            if moved.is_err() {
                let _ = std::fs::remove_dir_all(&folder);
            }
            return moved;
        }
        let (store, prefix) = self.opened()?;
        let folder = objects::backup_path(&prefix, id);
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let put = objects::put_file(
                store.as_ref(),
                &folder.child(name.as_str()),
                &staging.join(name),
            )
            .await;
            match put {
                Ok((size, sha256)) => entries.push(FileEntry {
                    name: name.clone(),
                    size,
                    sha256,
                }),
                Err(e) => {
                    let _ = objects::delete_prefix(store.as_ref(), &folder).await;
                    self.remove_local_folder(id);
                    return Err(e);
                }
            }
        }
        Ok(entries)
    }

    /// Writes `meta.json`, last: from now on the backup exists.
    pub async fn commit(&self, meta: &BackupMeta) -> Result<(), BackupError> {
        let (store, prefix) = self.opened()?;
        let path = objects::backup_path(&prefix, &meta.id).child(META_FILE);
        store
            .put(&path, meta.to_json().into())
            .await
            .map_err(|e| objects::classify(store.as_ref(), "writing", &path, e))?;
        if let Place::Local(dir) = &self.place {
            private_files(&dir.join(meta.id.as_str()))?;
        }
        Ok(())
    }

    /// Every complete backup, oldest first, and those whose `meta.json`
    /// is unreadable. Folders without `meta.json` (killed backups) and
    /// names that are no backup id are left out.
    pub async fn list(&self) -> Result<Listing, BackupError> {
        let Some((store, prefix)) = self.open(false)? else {
            return Ok(Listing::default());
        };
        let mut listing = Listing::default();
        for found in objects::list_backups(store.as_ref(), &prefix).await? {
            if !found.has_meta {
                continue;
            }
            match objects::read_meta(store.as_ref(), &prefix, &found.id).await {
                Ok(meta) if meta.id == found.id => listing.backups.push(meta),
                Ok(meta) => listing.broken.push((
                    found.id.to_string(),
                    format!("its metadata names backup {}", meta.id),
                )),
                Err(e) => listing.broken.push((found.id.to_string(), e.to_string())),
            }
        }
        Ok(listing)
    }

    /// The metadata of backup `id`, if it is complete.
    pub async fn meta(&self, id: &BackupId) -> Result<Option<BackupMeta>, BackupError> {
        let Some((store, prefix)) = self.open(false)? else {
            return Ok(None);
        };
        let meta = match objects::read_meta(store.as_ref(), &prefix, id).await {
            Ok(meta) => meta,
            Err(BackupError::ObjectMissing { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if &meta.id != id {
            return Err(BackupError::BadMeta {
                id: id.to_string(),
                reason: format!("it names backup {}", meta.id),
            });
        }
        Ok(Some(meta))
    }

    /// Downloads the files of `meta` into `into`, checking the size and
    /// SHA-256 of each against the metadata: a file that differs is
    /// [`BackupError::Damaged`], named, and nothing is loaded from it.
    pub async fn fetch(&self, meta: &BackupMeta, into: &Path) -> Result<(), BackupError> {
        let (store, prefix) = self.open(false)?.ok_or_else(|| BackupError::NotFound {
            what: format!("backup {}", meta.id),
            destination: self.shown.clone(),
        })?;
        let folder = objects::backup_path(&prefix, &meta.id);
        let damaged = |file: &str, reason: String| BackupError::Damaged {
            id: meta.id.to_string(),
            file: file.to_string(),
            reason,
        };
        for file in &meta.files {
            let got = match &self.place {
                Place::Local(dir) => {
                    fetch_local(
                        store.as_ref(),
                        &folder,
                        &dir.join(meta.id.as_str()),
                        &file.name,
                        into,
                    )
                    .await
                }
                Place::Objects { .. } => {
                    objects::get_file(
                        store.as_ref(),
                        &folder.child(file.name.as_str()),
                        &into.join(&file.name),
                    )
                    .await
                }
            };
            let (size, sum) = match got {
                Ok(got) => got,
                Err(BackupError::ObjectMissing { .. }) => {
                    return Err(damaged(&file.name, "is missing".into()));
                }
                Err(e) => return Err(e),
            };
            if size != file.size {
                return Err(damaged(
                    &file.name,
                    format!("has {size} bytes; the backup recorded {}", file.size),
                ));
            }
            if sum != file.sha256 {
                return Err(damaged(
                    &file.name,
                    format!("has SHA-256 {sum}; the backup recorded {}", file.sha256),
                ));
            }
        }
        Ok(())
    }

    /// Removes backup `id`, `meta.json` first so that it stops being a
    /// backup before any of its files goes.
    pub async fn delete(&self, id: &BackupId) -> Result<(), BackupError> {
        let Some((store, prefix)) = self.open(false)? else {
            return Ok(());
        };
        objects::delete_backup(store.as_ref(), &prefix, id).await?;
        self.remove_local_folder(id);
        Ok(())
    }

    /// object_store removes files, not the folders that held them.
    fn remove_local_folder(&self, id: &BackupId) {
        if let Place::Local(dir) = &self.place {
            let _ = std::fs::remove_dir(dir.join(id.as_str()));
        }
    }
}

impl Destination {
    /// Every backup folder at the destination, complete or not (a folder
    /// without `meta.json` is a killed backup's leftovers), oldest first,
    /// with the bytes it holds and when it was last written: what a prune
    /// needs beyond [`Destination::list`].
    pub async fn contents(&self) -> Result<Vec<crate::objects::Listed>, BackupError> {
        let Some((store, prefix)) = self.open(false)? else {
            return Ok(Vec::new());
        };
        crate::objects::list_backups(store.as_ref(), &prefix).await
    }
}

/// Moves files `names` from `staging` into the local backup folder
/// `folder`, with their sizes and SHA-256 (from `hashed`, or read before
/// the move).
async fn move_all(
    staging: &Path,
    folder: &Path,
    names: &[String],
    hashed: &[FileEntry],
) -> Result<Vec<FileEntry>, BackupError> {
    let mut entries = Vec::with_capacity(names.len());
    for name in names {
        let from = staging.join(name);
        let (size, sha256) = match hashed.iter().find(|f| &f.name == name) {
            Some(known) => (known.size, known.sha256.clone()),
            None => crate::digest::file(&from).await?,
        };
        crate::local_files::move_in(&from, &folder.join(name)).await?;
        entries.push(FileEntry {
            name: name.clone(),
            size,
            sha256,
        });
    }
    Ok(entries)
}

/// File `name` of a local backup folder `local` put in `into`: linked
/// where the filesystem allows (then read once, for its checksum),
/// downloaded otherwise. Returns its size and SHA-256.
async fn fetch_local(
    store: &dyn ObjectStore,
    folder: &ObjectPath,
    local: &Path,
    name: &str,
    into: &Path,
) -> Result<(u64, String), BackupError> {
    let to = into.join(name);
    match crate::local_files::link(&local.join(name), &to) {
        Ok(true) => crate::digest::file(&to).await,
        Ok(false) => objects::get_file(store, &folder.child(name), &to).await,
        Err(_) => Err(BackupError::ObjectMissing {
            path: folder.child(name).to_string(),
            destination: objects::describe(store),
        }),
    }
}

/// Makes a folder (and its parents) that only its owner can read: backups
/// hold every row of a store. An existing folder is left as it is.
fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| BackupError::io("creating", dir, e))
}

/// Makes every file in `dir` readable by its owner only (object_store
/// writes local files with the process's umask).
fn private_files(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir).map_err(|e| BackupError::io("reading", dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| BackupError::io("making private", &path, e))?;
        }
    }
    Ok(())
}

/// A new, empty file only its owner can read, made from blocking code.
pub(crate) fn private_file_now(path: &Path) -> Result<std::fs::File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BackupError::io("creating", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_resolve_from_the_manifest() {
        let root = Path::new("/proj");
        let data = Path::new("/proj/.silo");
        let d = Destination::resolve(None, root, data, "orders").unwrap();
        assert_eq!(d.shown(), "/proj/.silo/backups/orders");
        let d = Destination::resolve(Some("file:///var/b"), root, data, "orders").unwrap();
        assert_eq!(d.shown(), "/var/b");
        let d = Destination::resolve(Some("backups/x"), root, data, "orders").unwrap();
        assert_eq!(d.shown(), "/proj/backups/x");
        for bad in ["file://relative", "s3://B", "ftp://host/x", ""] {
            let err = Destination::resolve(Some(bad), root, data, "orders").unwrap_err();
            assert!(
                matches!(err, BackupError::BadDestination { .. }),
                "{bad}: {err}"
            );
        }
    }
}
