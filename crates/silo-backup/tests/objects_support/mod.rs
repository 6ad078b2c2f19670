//! A backup's files in a staging folder, and its metadata, for the tests
//! of the object operations on every kind of destination.

#![allow(dead_code)]

use std::path::Path;

use silo_backup::meta::checksum;
use silo_backup::{BackupId, BackupMeta, FileEntry};

/// `len` bytes that do not compress and differ with `seed` (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `files` (name, bytes) into `staging` and returns the metadata
/// of a backup made of them.
pub async fn stage(staging: &Path, files: &[(&str, Vec<u8>)]) -> BackupMeta {
    let mut entries = Vec::new();
    for (name, bytes) in files {
        let path = staging.join(name);
        std::fs::write(&path, bytes).unwrap();
        let (size, sha256) = checksum(&path).await.unwrap();
        entries.push(FileEntry {
            name: name.to_string(),
            size,
            sha256,
        });
    }
    meta_for(entries)
}

/// The metadata of a backup of `files`, taken now.
pub fn meta_for(files: Vec<FileEntry>) -> BackupMeta {
    let now = time::OffsetDateTime::now_utc();
    BackupMeta {
        format: silo_backup::meta::FORMAT,
        id: BackupId::new(now),
        project: "battlescope".into(),
        service: "battles".into(),
        engine: silo_manifest::Engine::Sqlite,
        server_version: "3.46.0".into(),
        migration_version: Some("3".into()),
        started_at: now,
        finished_at: now,
        size_bytes: files.iter().map(|f| f.size).sum(),
        encrypted: false,
        reason: "manual".into(),
        files,
        tables: [("battles".to_string(), 42)].into_iter().collect(),
    }
}
