//! `silo.sum`: the committed lock file of a migrations folder (seed 004:
//! "Never modify existing migrations").
//!
//! One line per versioned and undo file, in version order, each with a
//! hash chained over every earlier line, as Atlas's `atlas.sum` does:
//! `h(i) = sha256(h(i-1) || name || checksum(file i))`. Two branches that
//! each add a migration both append after the same last line, so git
//! reports a conflict instead of merging two histories silently; and a
//! file whose content changed no longer matches its own line.
//! Repeatable (`R__`) files are meant to change and are not recorded.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::file::{Kind, checksum, parse_file_name};
use crate::version::Version;

/// The lock file's name, inside the folder that holds the migrations.
pub const SUM_FILE: &str = "silo.sum";

const HEADER: &str = "# silo.sum: chained checksums of this folder's migrations; never edit a migration once\n\
# it is recorded here. `silo lint --update-sum` and `silo new` maintain this file; a merge\n\
# conflict in it means two branches added migrations: renumber one and run `silo lint --update-sum`.\n";

/// One recorded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// Hex SHA-256 of the chain up to and including this file.
    pub hash: String,
    /// 1-based line in silo.sum.
    pub line: usize,
}

/// A parsed `silo.sum`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SumFile {
    pub entries: Vec<Entry>,
}

/// A difference between a folder and its `silo.sum`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// A recorded file whose content changed.
    Modified { name: String },
    /// A recorded file that is gone.
    Missing { name: String, line: usize },
    /// A file that is not recorded although later versions are: it was
    /// slipped in below migrations that may already be applied.
    Inserted { name: String },
}

fn link(previous: &str, name: &str, file_checksum: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update(file_checksum.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The versioned and undo files of `dir`, in chain order (version, then V
/// before U), with their versions.
fn recorded_files(dir: &Path) -> std::io::Result<Vec<(Version, String, PathBuf)>> {
    let mut files: Vec<(Version, bool, String, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Ok(Some(parsed)) = parse_file_name(name)
            && parsed.kind != Kind::Repeatable
            && let Some(version) = parsed.version
        {
            let undo = parsed.kind == Kind::Undo;
            files.push((version, undo, name.to_string(), path));
        }
    }
    files.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
    Ok(files.into_iter().map(|(v, _, n, p)| (v, n, p)).collect())
}

/// The text `silo.sum` should hold for `dir`'s files now.
pub fn render(dir: &Path) -> std::io::Result<String> {
    let mut text = HEADER.to_string();
    let mut previous = String::new();
    for (_, name, path) in recorded_files(dir)? {
        let hash = link(
            &previous,
            &name,
            &checksum(&crate::file::read_regular(&path)?),
        );
        text.push_str(&format!("{name} h1:{hash}\n"));
        previous = hash;
    }
    Ok(text)
}

/// Writes `dir/silo.sum` for the files there now. Returns whether it
/// changed. A folder with no migrations gets no file.
pub fn update(dir: &Path) -> std::io::Result<bool> {
    let path = dir.join(SUM_FILE);
    let text = render(dir)?;
    let old = std::fs::read_to_string(&path).ok();
    if old.as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    if old.is_none() && text == HEADER {
        return Ok(false);
    }
    std::fs::write(&path, text)?;
    Ok(true)
}

/// Reads `dir/silo.sum`; `Ok(None)` when there is none. A malformed line
/// is an error naming its line.
pub fn read(dir: &Path) -> Result<Option<SumFile>, String> {
    let path = dir.join(SUM_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line
            .split_once(" h1:")
            .filter(|(_, h)| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some((name, hash)) = parsed else {
            return Err(format!(
                "{}:{}: expected `<file> h1:<64 hex digits>`; a merge conflict? renumber the newer migration and run `silo lint --update-sum`",
                path.display(),
                i + 1
            ));
        };
        entries.push(Entry {
            name: name.trim().to_string(),
            hash: hash.to_string(),
            line: i + 1,
        });
    }
    Ok(Some(SumFile { entries }))
}

/// Compares `dir`'s files with `sum`. Each recorded file is checked
/// against its own line (with the previous line's hash as recorded), so
/// one edited file is reported once, not with every file after it.
pub fn verify(sum: &SumFile, dir: &Path) -> std::io::Result<Vec<Mismatch>> {
    let files = recorded_files(dir)?;
    let mut out = Vec::new();
    let mut previous = String::new();
    for entry in &sum.entries {
        match files.iter().find(|(_, name, _)| *name == entry.name) {
            None => out.push(Mismatch::Missing {
                name: entry.name.clone(),
                line: entry.line,
            }),
            Some((_, name, path)) => {
                if link(
                    &previous,
                    name,
                    &checksum(&crate::file::read_regular(path)?),
                ) != entry.hash
                {
                    out.push(Mismatch::Modified { name: name.clone() });
                }
            }
        }
        previous = entry.hash.clone();
    }
    let last = files
        .iter()
        .filter(|(_, name, _)| sum.entries.iter().any(|e| e.name == *name))
        .map(|(v, _, _)| v)
        .max();
    if let Some(last) = last {
        for (version, name, _) in &files {
            if version < last && !sum.entries.iter().any(|e| e.name == *name) {
                out.push(Mismatch::Inserted { name: name.clone() });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_fresh_sum_verifies_and_an_edit_is_caught_once() {
        let dir = folder(&[
            ("V1__a.sql", "create table a (id bigint);"),
            ("U1__a.sql", "drop table a;"),
            ("V2__b.sql", "create table b (id bigint);"),
            ("R__views.sql", "select 1;"),
        ]);
        assert!(update(dir.path()).unwrap());
        assert!(
            !update(dir.path()).unwrap(),
            "second update changes nothing"
        );
        let sum = read(dir.path()).unwrap().unwrap();
        let names: Vec<_> = sum.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["V1__a.sql", "U1__a.sql", "V2__b.sql"]);
        assert_eq!(verify(&sum, dir.path()).unwrap(), []);

        // CRLF line endings are the same file.
        std::fs::write(dir.path().join("U1__a.sql"), "drop table a;\r\n").unwrap();
        std::fs::write(dir.path().join("U1__a.sql"), "drop table a;").unwrap();
        std::fs::write(dir.path().join("V1__a.sql"), "create table a (id int);").unwrap();
        std::fs::write(dir.path().join("R__views.sql"), "select 2;").unwrap();
        assert_eq!(
            verify(&sum, dir.path()).unwrap(),
            [Mismatch::Modified {
                name: "V1__a.sql".into()
            }]
        );
    }

    #[test]
    fn missing_and_inserted_files_are_reported_new_ones_are_not() {
        let dir = folder(&[("V1__a.sql", "select 1;"), ("V3__c.sql", "select 3;")]);
        update(dir.path()).unwrap();
        let sum = read(dir.path()).unwrap().unwrap();
        std::fs::write(dir.path().join("V2__b.sql"), "select 2;").unwrap();
        std::fs::write(dir.path().join("V4__d.sql"), "select 4;").unwrap();
        std::fs::remove_file(dir.path().join("V1__a.sql")).unwrap();
        assert_eq!(
            verify(&sum, dir.path()).unwrap(),
            [
                Mismatch::Missing {
                    name: "V1__a.sql".into(),
                    line: 4
                },
                Mismatch::Inserted {
                    name: "V2__b.sql".into()
                },
            ]
        );
    }

    #[test]
    fn hashes_chain_so_parallel_additions_differ_in_the_last_line() {
        let base = [("V1__a.sql", "select 1;")];
        let left = folder(&[base[0], ("V2__left.sql", "select 2;")]);
        let right = folder(&[base[0], ("V2__right.sql", "select 2;")]);
        let (l, r) = (render(left.path()).unwrap(), render(right.path()).unwrap());
        let (l1, r1) = (l.lines().nth(3).unwrap(), r.lines().nth(3).unwrap());
        assert_eq!(l1, r1, "the shared first file has the same line");
        assert_ne!(l.lines().nth(4), r.lines().nth(4));
        // Changing the first file changes every later line's hash.
        let edited = folder(&[("V1__a.sql", "select 10;"), ("V2__left.sql", "select 2;")]);
        let e = render(edited.path()).unwrap();
        assert_ne!(e.lines().nth(4), l.lines().nth(4));
    }

    #[test]
    fn a_conflict_marker_is_a_clear_error() {
        let dir = folder(&[]);
        std::fs::write(dir.path().join(SUM_FILE), "<<<<<<< HEAD\n").unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(err.contains("silo.sum:1: expected"), "{err}");
    }
}
