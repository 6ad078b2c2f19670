//! SHA-256 of a backup's files, computed off the async runtime.
//!
//! Hashing a gigabyte takes seconds of CPU; done inline on a runtime
//! worker it stalls every other task there (the other services' backups
//! under `-j`, the S3 client's own I/O). A file is hashed on a blocking
//! thread ([`file`]); a stream (an upload or a download) sends its chunks
//! to a hashing thread of its own ([`Stream`]), so bytes move and get
//! hashed at the same time.

use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::BackupError;
use crate::meta::hex;

/// How much of a file is read at a time.
const CHUNK: usize = 1 << 20;

/// Chunks queued for the hashing thread before the sender waits: bounds
/// the memory a fast reader can pile up.
const QUEUED: usize = 8;

/// The size and lowercase hex SHA-256 of the file at `path`, read on the
/// calling thread (call it from a blocking thread).
pub fn file_now(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = std::fs::File::open(path).map_err(|e| BackupError::io("opening", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BackupError::io("reading", path, e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// [`file_now`] on a blocking thread.
pub async fn file(path: &Path) -> Result<(u64, String), BackupError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || file_now(&owned))
        .await
        .map_err(|e| BackupError::io("hashing", path, std::io::Error::other(e)))?
}

/// A SHA-256 fed chunk by chunk from async code and computed on a thread
/// of its own.
pub struct Stream {
    chunks: tokio::sync::mpsc::Sender<Bytes>,
    hashed: tokio::task::JoinHandle<(u64, String)>,
}

impl Stream {
    /// Starts the hashing thread.
    pub fn new() -> Self {
        let (chunks, mut rx) = tokio::sync::mpsc::channel::<Bytes>(QUEUED);
        let hashed = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                size += chunk.len() as u64;
            }
            (size, hex(&hasher.finalize()))
        });
        Stream { chunks, hashed }
    }

    /// Hands `chunk` to the hashing thread (waits while it is behind).
    pub async fn update(&self, chunk: Bytes) {
        // The thread ends only when the sender is dropped.
        let _ = self.chunks.send(chunk).await;
    }

    /// The size and lowercase hex SHA-256 of every chunk handed over.
    pub async fn finish(self) -> (u64, String) {
        drop(self.chunks);
        self.hashed.await.expect("hashing does not panic")
    }
}

impl Default for Stream {
    fn default() -> Self {
        Stream::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SHA-256 of "abc", from FIPS 180-2.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[tokio::test]
    async fn a_stream_and_a_file_hash_the_same_bytes_alike() {
        let stream = Stream::new();
        stream.update(Bytes::from_static(b"a")).await;
        stream.update(Bytes::from_static(b"bc")).await;
        assert_eq!(stream.finish().await, (3, ABC.to_string()));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(file(&path).await.unwrap(), (3, ABC.to_string()));
    }
}
