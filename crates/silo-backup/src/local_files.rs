//! A local destination's files moved, not copied.
//!
//! The staging folder sits under the data dir, and the default destination
//! (`<data_dir>/backups/<service>`) beside it, so a finished file usually
//! goes in with one rename instead of a second copy of every byte. A
//! restore from a local destination hard-links the backup's files into its
//! staging folder: nothing in a restore writes a staged file in place
//! (decryption writes new files beside them; the engines only read them),
//! so the backup's own files cannot be changed through the links. Across
//! filesystems both fall back to copying.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::BackupError;

/// Moves the finished file `from` to `to`: a rename, or across
/// filesystems a copy (written as `to.part`, renamed when complete) and
/// the removal of `from`.
pub(crate) async fn move_in(from: &Path, to: &Path) -> Result<(), BackupError> {
    let (from, dest) = (from.to_path_buf(), to.to_path_buf());
    let to = dest.clone();
    tokio::task::spawn_blocking(move || match std::fs::rename(&from, &to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::CrossesDevices => {
            let part = part_of(&to);
            let copied = std::fs::copy(&from, &part)
                .and_then(|_| std::fs::rename(&part, &to))
                .map_err(|e| BackupError::io("copying into", &to, e));
            if copied.is_err() {
                let _ = std::fs::remove_file(&part);
            } else {
                let _ = std::fs::remove_file(&from);
            }
            copied
        }
        Err(e) => Err(BackupError::io("moving into", &to, e)),
    })
    .await
    .map_err(|e| BackupError::io("moving into", &dest, std::io::Error::other(e)))?
}

/// Hard-links the backup file `from` as `to`; `false` when the filesystem
/// cannot (another device, or no hard links), and the caller copies.
pub(crate) fn link(from: &Path, to: &Path) -> Result<bool, BackupError> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(BackupError::io("linking", from, e)),
        Err(_) => Ok(false),
    }
}

fn part_of(path: &Path) -> PathBuf {
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    PathBuf::from(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_moved_file_is_gone_from_staging_and_whole_at_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&from, b"rows").unwrap();
        move_in(&from, &to).await.unwrap();
        assert!(!from.exists());
        assert_eq!(std::fs::read(&to).unwrap(), b"rows");

        let linked = dir.path().join("c");
        assert!(link(&to, &linked).unwrap());
        assert_eq!(std::fs::read(&linked).unwrap(), b"rows");
        assert!(link(&dir.path().join("missing"), &dir.path().join("d")).is_err());
    }
}
