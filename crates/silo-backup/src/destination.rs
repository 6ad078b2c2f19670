//! Where backups go: a folder (or, later, an object store prefix) holding
//! one `<id>/` per backup, each with its files and a `meta.json`.
//!
//! `meta.json` is written last: a backup exists exactly when its
//! `meta.json` exists and parses. A backup killed half way leaves files
//! without one, which are never listed (prune removes them after an age).
//!
//! Files move through [`object_store`] in chunks, never whole in memory,
//! so a destination on S3 and one in a local folder behave the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::BackupError;
use crate::meta::{BackupId, BackupMeta, FileEntry, META_FILE};

/// The bytes read from a staged file at a time; object_store's writer
/// gathers them into the parts of a multipart upload.
const CHUNK: usize = 1 << 20;

/// A place backups are written to and read from.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The URL or folder as shown to the user.
    shown: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A local folder; made (0700) by the first backup written to it.
    Local(PathBuf),
}

/// The backups found at a destination.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete backups, oldest first.
    pub backups: Vec<BackupMeta>,
    /// Backups whose `meta.json` exists but cannot be read: id and why.
    pub broken: Vec<(String, String)>,
}

impl Destination {
    /// The destination of `service`: `configured` (the manifest's
    /// `destination`: `file:///abs/path`, or a path relative to the project
    /// folder `root`), or `<data_dir>/backups/<service>` by default.
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
            return Err(bad("S3 destinations are not supported yet"));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(bad(&format!("unknown scheme `{scheme}`")));
        }
        if url.is_empty() {
            return Err(bad("it is empty"));
        }
        Ok(Destination::local(&root.join(url)))
    }

    /// The destination of `service` in `manifest`.
    pub fn of(manifest: &silo_manifest::Manifest, service: &str) -> Result<Self, BackupError> {
        // The manifest has no backup policy yet: every service backs up to
        // the default folder.
        Destination::resolve(None, &manifest.root, &manifest.data_dir, service)
    }

    /// A local folder.
    pub fn local(dir: &Path) -> Self {
        Destination {
            shown: dir.display().to_string(),
            kind: Kind::Local(dir.to_path_buf()),
        }
    }

    /// The destination as shown to the user.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The object store, or `None` when a local folder does not exist yet
    /// and `create` is false (nothing was ever written there).
    fn store(&self, create: bool) -> Result<Option<Arc<dyn ObjectStore>>, BackupError> {
        match &self.kind {
            Kind::Local(dir) => {
                if !dir.exists() {
                    if !create {
                        return Ok(None);
                    }
                    make_private_dir(dir)?;
                }
                let fs = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| self.failed("opening the destination", e))?;
                Ok(Some(Arc::new(fs)))
            }
        }
    }

    fn failed(&self, action: &str, source: object_store::Error) -> BackupError {
        BackupError::Destination {
            action: action.to_string(),
            destination: self.shown.clone(),
            source,
        }
    }

    /// Uploads files `names` of backup `id` from `staging`, streaming, and
    /// returns the size and SHA-256 of the bytes written (one read of each
    /// file does both). They are no backup until [`Destination::commit`]
    /// writes its metadata.
    pub async fn upload(
        &self,
        id: &BackupId,
        staging: &Path,
        names: &[String],
    ) -> Result<Vec<FileEntry>, BackupError> {
        let store = self.store(true)?.expect("made when asked to");
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let path = staging.join(name);
            let mut local = tokio::fs::File::open(&path)
                .await
                .map_err(|e| BackupError::io("opening", &path, e))?;
            // Parts of 10 MB (S3 wants at least 5), two in flight: a
            // backup holds about 30 MB of a file in memory, whatever its
            // size, and `-j` backups at once hold that each.
            let mut writer =
                BufWriter::new(store.clone(), object(id, name)).with_max_concurrency(2);
            let mut buf = vec![0u8; CHUNK];
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            loop {
                let n = local
                    .read(&mut buf)
                    .await
                    .map_err(|e| BackupError::io("reading", &path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                size += n as u64;
                if let Err(e) = writer.write_all(&buf[..n]).await {
                    let _ = writer.abort().await;
                    return Err(BackupError::io(
                        format!("writing {name} to {}", self.shown),
                        &path,
                        e,
                    ));
                }
            }
            writer.shutdown().await.map_err(|e| {
                BackupError::io(format!("writing {name} to {}", self.shown), &path, e)
            })?;
            entries.push(FileEntry {
                name: name.clone(),
                size,
                sha256: crate::meta::hex(&hasher.finalize()),
            });
        }
        Ok(entries)
    }

    /// Writes `meta.json`, last: from now on the backup exists.
    pub async fn commit(&self, meta: &BackupMeta) -> Result<(), BackupError> {
        let store = self.store(true)?.expect("made when asked to");
        store
            .put(&object(&meta.id, META_FILE), meta.to_json().into())
            .await
            .map_err(|e| self.failed(&format!("writing {}/{META_FILE}", meta.id), e))?;
        Ok(())
    }

    /// Every complete backup, oldest first, and those whose `meta.json`
    /// is unreadable. Folders without `meta.json` (killed backups) and
    /// names that are no backup id are left out.
    pub async fn list(&self) -> Result<Listing, BackupError> {
        let Some(store) = self.store(false)? else {
            return Ok(Listing::default());
        };
        let top = store
            .list_with_delimiter(None)
            .await
            .map_err(|e| self.failed("listing", e))?;
        let mut ids: Vec<BackupId> = top
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(BackupId::parse))
            .collect();
        ids.sort();
        let mut listing = Listing::default();
        for id in ids {
            match self.read_meta_of(&store, &id).await {
                Ok(Some(meta)) => listing.backups.push(meta),
                Ok(None) => {}
                Err(e) => listing.broken.push((id.to_string(), e.to_string())),
            }
        }
        Ok(listing)
    }

    /// The metadata of backup `id`, if it is complete.
    pub async fn meta(&self, id: &BackupId) -> Result<Option<BackupMeta>, BackupError> {
        let Some(store) = self.store(false)? else {
            return Ok(None);
        };
        self.read_meta_of(&store, id).await
    }

    async fn read_meta_of(
        &self,
        store: &Arc<dyn ObjectStore>,
        id: &BackupId,
    ) -> Result<Option<BackupMeta>, BackupError> {
        let got = match store.get(&object(id, META_FILE)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed(&format!("reading {id}/{META_FILE}"), e)),
        };
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.failed(&format!("reading {id}/{META_FILE}"), e))?;
        let meta = BackupMeta::from_json(id.as_str(), &bytes)?;
        if &meta.id != id {
            return Err(BackupError::BadMeta {
                id: id.to_string(),
                reason: format!("it names backup {}", meta.id),
            });
        }
        Ok(Some(meta))
    }

    /// Downloads the files of `meta` into `into`, checking the size and
    /// SHA-256 of each against the metadata as it streams: a file that
    /// differs is [`BackupError::Damaged`], named.
    pub async fn fetch(&self, meta: &BackupMeta, into: &Path) -> Result<(), BackupError> {
        let store = self.store(false)?.ok_or_else(|| BackupError::NotFound {
            what: format!("backup {}", meta.id),
            destination: self.shown.clone(),
        })?;
        let damaged = |file: &str, reason: String| BackupError::Damaged {
            id: meta.id.to_string(),
            file: file.to_string(),
            reason,
        };
        for file in &meta.files {
            let got = match store.get(&object(&meta.id, &file.name)).await {
                Ok(got) => got,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(damaged(&file.name, "is missing".into()));
                }
                Err(e) => return Err(self.failed(&format!("reading {}/{}", meta.id, file.name), e)),
            };
            let path = into.join(&file.name);
            let mut local = private_file(&path).await?;
            let mut stream = got.into_stream();
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|e| self.failed(&format!("reading {}/{}", meta.id, file.name), e))?;
                size += chunk.len() as u64;
                hasher.update(&chunk);
                local
                    .write_all(&chunk)
                    .await
                    .map_err(|e| BackupError::io("writing", &path, e))?;
            }
            local
                .flush()
                .await
                .map_err(|e| BackupError::io("writing", &path, e))?;
            if size != file.size {
                return Err(damaged(
                    &file.name,
                    format!("has {size} bytes; the backup recorded {}", file.size),
                ));
            }
            let sum = crate::meta::hex(&hasher.finalize());
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
        let Some(store) = self.store(false)? else {
            return Ok(());
        };
        match store.delete(&object(id, META_FILE)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failed(&format!("deleting {id}/{META_FILE}"), e)),
        }
        let prefix = ObjectPath::from(id.as_str());
        let mut files = store.list(Some(&prefix));
        while let Some(file) = files.next().await {
            let file = file.map_err(|e| self.failed(&format!("listing {id}"), e))?;
            match store.delete(&file.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed(&format!("deleting {}", file.location), e)),
            }
        }
        match &self.kind {
            // object_store removes files, not the folders that held them.
            Kind::Local(dir) => {
                let _ = std::fs::remove_dir(dir.join(id.as_str()));
            }
        }
        Ok(())
    }
}

impl Destination {
    /// Every backup folder at the destination, complete or not (a folder
    /// without `meta.json` is a killed backup's leftovers), oldest first,
    /// with the bytes it holds and when it was last written: what a prune
    /// needs beyond [`Destination::list`].
    pub async fn contents(&self) -> Result<Vec<crate::objects::Listed>, BackupError> {
        let Some(store) = self.store(false)? else {
            return Ok(Vec::new());
        };
        crate::objects::list_backups(store.as_ref(), &ObjectPath::default()).await
    }
}

/// The object of file `name` of backup `id`.
fn object(id: &BackupId, name: &str) -> ObjectPath {
    ObjectPath::from(format!("{id}/{name}"))
}

/// Makes a folder (and its parents) that only its owner can read: backups
/// hold every row of a store.
fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| BackupError::io("creating", dir, e))
}

/// A new file only its owner can read.
pub(crate) async fn private_file(path: &Path) -> Result<tokio::fs::File, BackupError> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
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
        for bad in ["file://relative", "s3://bucket/p", "ftp://host/x", ""] {
            let err = Destination::resolve(Some(bad), root, data, "orders").unwrap_err();
            assert!(
                matches!(err, BackupError::BadDestination { .. }),
                "{bad}: {err}"
            );
        }
    }
}
