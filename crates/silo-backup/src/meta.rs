//! What a backup is: a set of files, each with its size and SHA-256, and
//! the metadata a restore checks itself against.
//!
//! `meta.json` is the last file written and the proof that the backup is
//! complete (see [`crate::destination`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use silo_manifest::Engine;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;

use crate::BackupError;

/// The metadata format this silo writes and reads.
pub const FORMAT: u32 = 1;

/// The name of the metadata file in every backup.
pub const META_FILE: &str = "meta.json";

/// A backup's id: its start time in UTC and a random suffix, so ids sort
/// by age and two backups started in the same second differ
/// (`20261128T010203Z-9f3a`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BackupId(String);

impl BackupId {
    /// A new id for a backup started at `at`.
    pub fn new(at: OffsetDateTime) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        let mut bytes = [0u8; 2];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        BackupId(format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{:02x}{:02x}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            bytes[0],
            bytes[1]
        ))
    }

    /// Reads an id as a user or a folder name gives it; `None` unless it
    /// has the shape [`BackupId::new`] makes (so a stray folder at the
    /// destination is never taken for a backup).
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let shape = b.len() == 21
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'T'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'Z'
            && b[16] == b'-'
            && b[17..]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
        shape.then(|| BackupId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BackupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file of a backup, as stored (after encryption, when encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name inside the backup (no folders).
    pub name: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the stored bytes.
    pub sha256: String,
}

/// What an engine's dump wrote into the staging folder and learned while
/// doing it, in one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    /// The server's version (PostgreSQL `server_version`, SQLite's library
    /// version).
    pub server_version: String,
    /// The store's silo migration version, if it has a migration history.
    pub migration_version: Option<String>,
    /// Rows per table at the snapshot, by qualified name.
    pub tables: BTreeMap<String, u64>,
    /// The files written, by name inside the staging folder.
    pub files: Vec<String>,
    /// Those of `files` whose size and SHA-256 the dump computed already
    /// (while checking them): a local destination moves them in without
    /// reading them again.
    #[serde(default)]
    pub hashed: Vec<FileEntry>,
}

/// The metadata of one complete backup (`meta.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMeta {
    pub format: u32,
    pub id: BackupId,
    pub project: String,
    pub service: String,
    pub engine: Engine,
    pub server_version: String,
    pub migration_version: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// The sum of the files' sizes.
    pub size_bytes: u64,
    /// Whether the files are age-encrypted.
    pub encrypted: bool,
    /// Why it was taken: `manual`, `scheduled`, `before migrating to 5`.
    pub reason: String,
    pub files: Vec<FileEntry>,
    /// Rows per table at the snapshot, by qualified name.
    pub tables: BTreeMap<String, u64>,
}

impl BackupMeta {
    /// Reads `meta.json` of backup `id`, refusing a newer format.
    pub fn from_json(id: &str, bytes: &[u8]) -> Result<Self, BackupError> {
        let bad = |reason: String| BackupError::BadMeta {
            id: id.to_string(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let format = value.get("format").and_then(serde_json::Value::as_u64);
        match format {
            Some(f) if f <= u64::from(FORMAT) => {}
            Some(f) => return Err(bad(format!("format {f}; this silo reads up to {FORMAT}"))),
            None => return Err(bad("it has no format number".into())),
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("backup metadata always serializes")
    }
}

/// The size and SHA-256 of a local file, read in chunks.
pub async fn checksum(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| BackupError::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| BackupError::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_start_time_and_parse_back() {
        let early = BackupId::new(time::macros::datetime!(2026-11-28 01:02:03 UTC));
        let late = BackupId::new(time::macros::datetime!(2026-11-28 11:00:00 +02:00));
        assert!(early.as_str().starts_with("20261128T010203Z-"));
        assert!(late.as_str().starts_with("20261128T090000Z-"));
        assert!(early < late);
        assert_eq!(BackupId::parse(early.as_str()), Some(early));
        assert_eq!(BackupId::parse("20261128T010203Z-9f3"), None);
        assert_eq!(BackupId::parse("lost+found"), None);
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let err = BackupMeta::from_json("x", br#"{"format": 99}"#).unwrap_err();
        assert!(err.to_string().contains("format 99"), "{err}");
    }

    #[tokio::test]
    async fn checksum_is_sha256_of_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let (size, sum) = checksum(&path).await.unwrap();
        assert_eq!(size, 3);
        assert_eq!(
            sum,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
