//! Private folders and files: secrets and SQLite stores are readable by
//! their owner only, and replaced atomically.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of folders silo creates for stores and secrets.
pub const DIR_MODE: u32 = 0o700;
/// Mode of store and secrets files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) with mode 0700, and tightens an
/// existing one. Returns whether anything changed.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<bool> {
    let mut changed = false;
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        changed = true;
    }
    changed |= ensure_mode(dir, DIR_MODE)?;
    Ok(changed)
}

/// Sets `path`'s permission bits to `mode` when they differ. Returns
/// whether it changed them.
pub fn ensure_mode(path: &Path, mode: u32) -> std::io::Result<bool> {
    let current = fs::metadata(path)?.permissions().mode() & 0o7777;
    if current == mode {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(true)
}

/// Writes `contents` to `path` with mode 0600 through a temporary file in
/// the same folder and a rename, so readers see the old file or the new
/// one, never a mix, and the secret is never world-readable.
pub fn write_private_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = staged_path(path);
    write_private_new(&tmp, contents)?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Writes a private file beside `path` and returns its path, for callers
/// that must do something between writing and committing (see
/// [`commit_staged`]).
pub fn stage_private(path: &Path, contents: &[u8]) -> std::io::Result<std::path::PathBuf> {
    let tmp = staged_path(path);
    write_private_new(&tmp, contents)?;
    Ok(tmp)
}

/// Moves a staged file into place.
pub fn commit_staged(staged: &Path, path: &Path) -> std::io::Result<()> {
    fs::rename(staged, path)
}

fn staged_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

fn write_private_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Creates an empty private file unless it exists. Returns whether it did.
pub fn create_private_file(path: &Path) -> std::io::Result<bool> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.env");
        write_private_atomic(&f, b"one").unwrap();
        write_private_atomic(&f, b"two").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "two");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn private_dir_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        assert!(ensure_private_dir(&d).unwrap());
        assert!(!ensure_private_dir(&d).unwrap());
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(ensure_private_dir(&d).unwrap());
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
