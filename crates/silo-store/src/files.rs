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

/// The `.gitignore` silo writes into a folder it creates for stores and
/// secrets: it keeps the folder out of version control, and its first
/// line marks the folder as silo's.
const GITIGNORE: &str = "# silo data: stores and secrets. Never commit.\n*\n";

/// Whether `dir` holds the `.gitignore` silo writes into folders it
/// creates.
fn is_marked(dir: &Path) -> bool {
    fs::read_to_string(dir.join(".gitignore"))
        .is_ok_and(|text| text.starts_with(GITIGNORE.lines().next().unwrap_or_default()))
}

/// A folder silo keeps stores or secrets in, as [`prepare_dir`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// silo created the folder (now or earlier) or it lies inside one silo
    /// created: silo keeps its mode at 0700.
    pub owned: bool,
    /// This call created the folder or tightened its mode.
    pub changed: bool,
}

/// Makes sure `dir` exists, without taking over a folder silo did not
/// make.
///
/// A missing folder is created (with missing parents) with mode 0700 and,
/// unless it lies inside a folder silo owns (`inside_owned`), a
/// `.gitignore` of `*` that keeps it out of version control and marks it
/// as silo's. An existing folder is silo's when it lies inside one silo
/// owns or carries that mark; then a loosened mode is tightened again.
/// Any other folder (a data dir the user pointed at an existing folder) is
/// left exactly as it is: silo's own files in it are private anyway.
pub fn prepare_dir(dir: &Path, inside_owned: bool) -> std::io::Result<Prepared> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        // DirBuilder's mode passes through the umask; say it exactly.
        ensure_mode(dir, DIR_MODE)?;
        if !inside_owned {
            fs::write(dir.join(".gitignore"), GITIGNORE)?;
        }
        return Ok(Prepared {
            owned: true,
            changed: true,
        });
    }
    if inside_owned || is_marked(dir) {
        return Ok(Prepared {
            owned: true,
            changed: ensure_mode(dir, DIR_MODE)?,
        });
    }
    Ok(Prepared {
        owned: false,
        changed: false,
    })
}

/// Removes a folder [`prepare_dir`] made once nothing but its own
/// `.gitignore` is left in it; anything else in it keeps it.
pub fn remove_dir_if_empty(dir: &Path) {
    if is_marked(dir)
        && fs::read_dir(dir).is_ok_and(|mut entries| {
            entries.all(|e| e.is_ok_and(|e| e.file_name() == ".gitignore"))
        })
    {
        let _ = fs::remove_file(dir.join(".gitignore"));
    }
    let _ = fs::remove_dir(dir);
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

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_folder_silo_creates_is_private_and_marked() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/.silo");
        let first = prepare_dir(&data, false).unwrap();
        assert_eq!((first.owned, first.changed), (true, true));
        assert_eq!(mode(&data), 0o700);
        assert!(is_marked(&data));
        // Loosened later: still silo's, tightened again.
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        let again = prepare_dir(&data, false).unwrap();
        assert_eq!((again.owned, again.changed), (true, true));
        assert_eq!(mode(&data), 0o700);
        // Inside it, folders need no mark of their own.
        let inner = data.join("orders");
        assert!(prepare_dir(&inner, true).unwrap().owned);
        assert!(!inner.join(".gitignore").exists());
    }

    #[test]
    fn an_existing_folder_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path();
        fs::set_permissions(project, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(project.join("silo.toml"), "").unwrap();
        let prepared = prepare_dir(project, false).unwrap();
        assert_eq!((prepared.owned, prepared.changed), (false, false));
        assert_eq!(mode(project), 0o755, "mode unchanged");
        assert!(
            !project.join(".gitignore").exists(),
            "no .gitignore over it"
        );
        // Its subfolders that silo creates are silo's, and marked.
        let secrets = project.join("secrets");
        assert!(prepare_dir(&secrets, prepared.owned).unwrap().owned);
        assert!(is_marked(&secrets));
        remove_dir_if_empty(&secrets);
        assert!(!secrets.exists());
    }
}
