//! Backups as objects: the operations every destination needs, written
//! once against `dyn ObjectStore` so a local folder and an S3 bucket share
//! one code path.
//!
//! Layout under a destination's prefix: `<prefix>/<id>/<file>` and
//! `<prefix>/<id>/meta.json`. `meta.json` is written last and deleted
//! first, so a backup is complete exactly when its `meta.json` exists: an
//! upload killed half way, or a delete killed half way, leaves objects
//! without one, which no listing takes for a backup.
//!
//! Files move through in bounded pieces: a large file goes up as a
//! multipart upload of [`PART_SIZE`] parts with at most
//! [`PARTS_IN_FLIGHT`] of them buffered, and comes down chunk by chunk; no
//! file is ever held whole in memory. Both directions hash what they move,
//! so the caller gets the size and SHA-256 of the bytes that actually went
//! through without reading the file a second time.

use std::collections::BTreeMap;
use std::path::Path as LocalPath;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::meta::META_FILE;
use crate::{BackupError, BackupId, BackupMeta};

/// The size of one part of a multipart upload. S3 needs at least 5 MiB for
/// every part but the last, and allows 10,000 parts: 8 MiB parts carry
/// files up to 78 GiB.
pub const PART_SIZE: usize = 8 << 20;

/// Parts uploaded at once; with the one being filled, the memory an upload
/// holds is at most `(PARTS_IN_FLIGHT + 1) * PART_SIZE`.
pub const PARTS_IN_FLIGHT: usize = 2;

/// How much of a local file is read at a time.
const READ_CHUNK: usize = 1 << 20;

/// One backup found at a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: BackupId,
    /// Whether its `meta.json` exists: without it, the objects are a
    /// killed backup's leftovers, never a backup.
    pub has_meta: bool,
    /// The sum of its objects' sizes.
    pub size_bytes: u64,
    /// When its newest object was written (the age prune judges leftovers
    /// by).
    pub last_modified: OffsetDateTime,
}

/// The folder of backup `id` under `prefix`.
pub fn backup_path(prefix: &Path, id: &BackupId) -> Path {
    prefix.child(id.as_str())
}

/// Uploads the local file `from` to `to`, streaming; returns the size and
/// SHA-256 of the bytes uploaded. A failed upload is aborted, so no
/// partial object is left at `to`.
pub async fn put_file(
    store: &dyn ObjectStore,
    to: &Path,
    from: &LocalPath,
) -> Result<(u64, String), BackupError> {
    let mut file = tokio::fs::File::open(from)
        .await
        .map_err(|e| BackupError::io("opening", from, e))?;
    // Hashed on a thread of its own while the bytes go up.
    let digest = crate::digest::Stream::new();

    // Up to one part decides how to send it: one request when it all fits
    // (a multipart upload of one part costs three), parts otherwise. Read,
    // not the file's length, decides: a file still growing, or a pipe, is
    // sent as what was read.
    let mut first = Vec::new();
    (&mut file)
        .take(PART_SIZE as u64 + 1)
        .read_to_end(&mut first)
        .await
        .map_err(|e| BackupError::io("reading", from, e))?;
    let first = bytes::Bytes::from(first);
    digest.update(first.clone()).await;
    if first.len() <= PART_SIZE {
        store
            .put(to, PutPayload::from(first))
            .await
            .map_err(|e| classify(store, "writing", to, e))?;
        return Ok(digest.finish().await);
    }

    let upload = store
        .put_multipart(to)
        .await
        .map_err(|e| classify(store, "starting the upload of", to, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    writer.put(first);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
            let _ = writer.abort().await;
            return Err(classify(store, "writing", to, e));
        }
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(BackupError::io("reading", from, e));
            }
        };
        if n == 0 {
            break;
        }
        let chunk = bytes::Bytes::copy_from_slice(&buf[..n]);
        digest.update(chunk.clone()).await;
        writer.put(chunk);
    }
    // `finish` aborts the upload itself when a part fails.
    writer
        .finish()
        .await
        .map_err(|e| classify(store, "writing", to, e))?;
    Ok(digest.finish().await)
}

/// Downloads `from` into the local file `to`, streaming; returns the size
/// and SHA-256 of the bytes downloaded. The file appears at `to` only
/// once complete (it is written as `to.part` and renamed).
pub async fn get_file(
    store: &dyn ObjectStore,
    from: &Path,
    to: &LocalPath,
) -> Result<(u64, String), BackupError> {
    let mut part = to.as_os_str().to_owned();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    let result = download(store, from, &part).await;
    match result {
        Ok(sum) => {
            tokio::fs::rename(&part, to)
                .await
                .map_err(|e| BackupError::io("renaming into place", to, e))?;
            Ok(sum)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

async fn download(
    store: &dyn ObjectStore,
    from: &Path,
    to: &LocalPath,
) -> Result<(u64, String), BackupError> {
    let mut stream = store
        .get(from)
        .await
        .map_err(|e| classify(store, "reading", from, e))?
        .into_stream();
    // Only its owner may read it: it holds a store's rows.
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)
        .await
        .map_err(|e| BackupError::io("creating", to, e))?;
    // Hashed on a thread of its own while the bytes come down.
    let digest = crate::digest::Stream::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| classify(store, "reading", from, e))?;
        digest.update(chunk.clone()).await;
        file.write_all(&chunk)
            .await
            .map_err(|e| BackupError::io("writing", to, e))?;
    }
    file.flush()
        .await
        .map_err(|e| BackupError::io("writing", to, e))?;
    Ok(digest.finish().await)
}

/// Uploads backup `meta.id` from the local folder `staging`: every file
/// `meta.files` names, each checked against its recorded size and SHA-256
/// as it goes up, then `meta.json` last. When anything fails, what was
/// uploaded is deleted as far as the destination lets it (whatever stays is
/// a leftover without `meta.json`, for prune).
pub async fn put_backup(
    store: &dyn ObjectStore,
    prefix: &Path,
    staging: &LocalPath,
    meta: &BackupMeta,
) -> Result<(), BackupError> {
    let folder = backup_path(prefix, &meta.id);
    let result = async {
        for entry in &meta.files {
            let (size, sha256) = put_file(
                store,
                &folder.child(entry.name.as_str()),
                &staging.join(&entry.name),
            )
            .await?;
            if size != entry.size || sha256 != entry.sha256 {
                return Err(BackupError::Damaged {
                    id: meta.id.to_string(),
                    file: entry.name.clone(),
                    reason: "changed in the staging folder while it was uploaded".into(),
                });
            }
        }
        let meta_path = folder.child(META_FILE);
        store
            .put(&meta_path, PutPayload::from(meta.to_json()))
            .await
            .map_err(|e| classify(store, "writing", &meta_path, e))?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = delete_prefix(store, &folder).await;
    }
    result
}

/// Reads and parses `meta.json` of backup `id`.
pub async fn read_meta(
    store: &dyn ObjectStore,
    prefix: &Path,
    id: &BackupId,
) -> Result<BackupMeta, BackupError> {
    let path = backup_path(prefix, id).child(META_FILE);
    let bytes = store
        .get(&path)
        .await
        .map_err(|e| classify(store, "reading", &path, e))?
        .bytes()
        .await
        .map_err(|e| classify(store, "reading", &path, e))?;
    BackupMeta::from_json(id.as_str(), &bytes)
}

/// The backups under `prefix`, oldest first, complete or not. Folders
/// whose names are not backup ids are not backups and are left out.
pub async fn list_backups(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<Vec<Listed>, BackupError> {
    let mut found: BTreeMap<BackupId, Listed> = BTreeMap::new();
    let mut objects = store.list(Some(prefix));
    while let Some(object) = objects
        .try_next()
        .await
        .map_err(|e| classify(store, "listing", prefix, e))?
    {
        let Some(parts) = object.location.prefix_match(prefix) else {
            continue;
        };
        let parts: Vec<_> = parts.collect();
        let [folder, rest @ ..] = parts.as_slice() else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let Some(id) = BackupId::parse(folder.as_ref()) else {
            continue;
        };
        let modified = last_modified(&object);
        let listed = found.entry(id.clone()).or_insert(Listed {
            id,
            has_meta: false,
            size_bytes: 0,
            last_modified: modified,
        });
        listed.has_meta |= rest.len() == 1 && rest[0].as_ref() == META_FILE;
        listed.size_bytes += object.size;
        listed.last_modified = listed.last_modified.max(modified);
    }
    Ok(found.into_values().collect())
}

/// Deletes every object under `prefix`, `meta.json` files first (so a
/// delete killed half way leaves leftovers, never a backup missing files);
/// returns how many objects were deleted.
pub async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> Result<usize, BackupError> {
    let (metas, rest): (Vec<Path>, Vec<Path>) = store
        .list(Some(prefix))
        .map_ok(|o| o.location)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| classify(store, "listing", prefix, e))?
        .into_iter()
        .partition(|p| p.filename() == Some(META_FILE));
    let mut deleted = 0;
    for batch in [metas, rest] {
        let mut results =
            store.delete_stream(futures::stream::iter(batch.into_iter().map(Ok)).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) => deleted += 1,
                // Gone already: another prune got there first.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(classify(store, "deleting under", prefix, e)),
            }
        }
    }
    Ok(deleted)
}

/// Deletes backup `id`, `meta.json` first.
pub async fn delete_backup(
    store: &dyn ObjectStore,
    prefix: &Path,
    id: &BackupId,
) -> Result<usize, BackupError> {
    delete_prefix(store, &backup_path(prefix, id)).await
}

/// When `object` was last written, as the crate's time type.
fn last_modified(object: &object_store::ObjectMeta) -> OffsetDateTime {
    object
        .last_modified
        .timestamp_nanos_opt()
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n.into()).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// How a destination is named in messages: `s3://bucket` or
/// `file:///path`, never with credentials (object_store's stores carry
/// none in their names).
pub fn describe(store: &dyn ObjectStore) -> String {
    let name = store.to_string();
    if let Some(bucket) = name
        .strip_prefix("AmazonS3(")
        .and_then(|s| s.strip_suffix(')'))
    {
        return format!("s3://{bucket}");
    }
    if let Some(url) = name
        .strip_prefix("LocalFileSystem(")
        .and_then(|s| s.strip_suffix(')'))
    {
        return url.to_string();
    }
    name
}

/// Turns an object_store error into the error a user can act on: a missing
/// object or bucket, refused credentials, an endpoint that does not answer,
/// or else the destination's own message.
pub fn classify(
    store: &dyn ObjectStore,
    action: &str,
    path: &Path,
    source: object_store::Error,
) -> BackupError {
    let destination = describe(store);
    let text = chain(&source);
    if s3_error(&text, &["NoSuchBucket"]).is_some() {
        return BackupError::S3BucketMissing { destination };
    }
    if let Some(reason) = s3_error(
        &text,
        &[
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "ExpiredToken",
            "InvalidToken",
        ],
    ) {
        return BackupError::S3Denied {
            destination,
            reason,
        };
    }
    if let Some(reason) = unreachable(&source) {
        return BackupError::S3Unreachable {
            destination,
            reason,
        };
    }
    match source {
        object_store::Error::NotFound { .. } => BackupError::ObjectMissing {
            path: path.to_string(),
            destination,
        },
        source => BackupError::Destination {
            action: format!("{action} {path}"),
            destination,
            source,
        },
    }
}

/// The messages of `err` and all its sources, each once.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        next = e.source();
    }
    text
}

/// `Code: Message` of an S3 error response in `text` whose code is one of
/// `codes`.
fn s3_error(text: &str, codes: &[&str]) -> Option<String> {
    let code = xml_value(text, "Code")?;
    if !codes.contains(&code) {
        return None;
    }
    Some(match xml_value(text, "Message") {
        Some(message) => format!("{code}: {message}"),
        None => code.to_string(),
    })
}

fn xml_value<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{tag}>"))?;
    Some(&text[start..end])
}

/// Why the server could not be reached, when that is what went wrong
/// (after object_store's retries): a connection refused, reset or timed
/// out, or a name that does not resolve. The reason is the innermost
/// messages, not the whole request with its URL.
fn unreachable(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use std::io::ErrorKind::*;
    let mut messages = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let message = e.to_string();
        let lost = e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | TimedOut
                    | HostUnreachable
                    | NetworkUnreachable
                    | AddrNotAvailable
            ) || messages
                .last()
                .is_some_and(|m: &String| m.contains("dns error"))
        });
        if lost {
            let context = messages
                .last()
                .map(|m| format!("{m}: "))
                .unwrap_or_default();
            return Some(format!("{context}{message}"));
        }
        messages.push(message);
        next = e.source();
    }
    None
}
