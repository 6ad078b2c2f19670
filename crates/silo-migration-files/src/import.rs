//! Converting another tool's migration folder into silo's names, keeping
//! the order and the content byte for byte.

use std::path::{Path, PathBuf};

use crate::error::FileError;
use crate::file::parse_file_name;
use crate::version::Version;

/// The tools whose layouts silo reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `<version>_<name>.sql`, or `<version>_<name>.up.sql` + `.down.sql`.
    Sqlx,
    /// `<timestamp>_<name>/up.sql` + `down.sql`.
    Diesel,
    /// `V<n>__<name>.sql` (Flyway style).
    Refinery,
}

/// One file to write: where it comes from and its new name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    pub source: PathBuf,
    pub name: String,
}

/// Works out the silo names of every migration in `source`, in the
/// source tool's own order.
pub fn plan(tool: Tool, source: &Path) -> Result<Vec<Conversion>, FileError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(source)
        .map_err(|e| io(source, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| io(source, e)))
        .collect::<Result<_, _>>()?;
    // Every tool applies in the order of the names.
    entries.sort();
    let mut out = Vec::new();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match tool {
            Tool::Diesel => {
                if !path.is_dir() {
                    continue;
                }
                let (stamp, desc) = split_prefix(&name, &path)?;
                let version = stamp
                    .split('-')
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join("_");
                let v = version_of(&version, &path)?;
                for (file, prefix) in [("up.sql", "V"), ("down.sql", "U")] {
                    let f = path.join(file);
                    if f.is_file() {
                        out.push(Conversion {
                            source: f,
                            name: format!("{prefix}{v}__{}.sql", slug(desc)),
                        });
                    }
                }
            }
            Tool::Sqlx => {
                if !path.is_file() || !name.ends_with(".sql") {
                    continue;
                }
                let (prefix, stem) = if let Some(s) = name.strip_suffix(".up.sql") {
                    ("V", s)
                } else if let Some(s) = name.strip_suffix(".down.sql") {
                    ("U", s)
                } else {
                    ("V", name.strip_suffix(".sql").expect("checked"))
                };
                let (digits, desc) = split_prefix(stem, &path)?;
                let v = version_of(digits, &path)?;
                out.push(Conversion {
                    source: path.clone(),
                    name: format!("{prefix}{v}__{}.sql", slug(desc)),
                });
            }
            Tool::Refinery => {
                if !path.is_file() {
                    continue;
                }
                if name.ends_with(".rs") {
                    return Err(FileError::RustMigration { path });
                }
                let parsed = parse_file_name(&name).map_err(|reason| FileError::BadFileName {
                    path: path.clone(),
                    reason,
                })?;
                if parsed.is_some() {
                    out.push(Conversion {
                        source: path.clone(),
                        name,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Copies the planned files into `dest`, refusing to overwrite any file.
pub fn write(conversions: &[Conversion], dest: &Path) -> Result<Vec<PathBuf>, FileError> {
    std::fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
    if let Some(c) = conversions.iter().find(|c| dest.join(&c.name).exists()) {
        return Err(FileError::Exists {
            path: dest.join(&c.name),
        });
    }
    conversions
        .iter()
        .map(|c| {
            let target = dest.join(&c.name);
            std::fs::copy(&c.source, &target).map_err(|e| io(&target, e))?;
            Ok(target)
        })
        .collect()
}

fn split_prefix<'a>(name: &'a str, path: &Path) -> Result<(&'a str, &'a str), FileError> {
    name.split_once('_')
        .filter(|(v, d)| !v.is_empty() && !d.is_empty())
        .ok_or_else(|| FileError::BadFileName {
            path: path.to_path_buf(),
            reason: "expected <version>_<name>".into(),
        })
}

fn version_of(text: &str, path: &Path) -> Result<Version, FileError> {
    Version::parse(text).map_err(|reason| FileError::BadFileName {
        path: path.to_path_buf(),
        reason,
    })
}

fn slug(description: &str) -> String {
    let mut out = String::new();
    for c in description.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() {
        "migration".into()
    } else {
        out
    }
}

fn io(path: &Path, source: std::io::Error) -> FileError {
    FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn names(c: &[Conversion]) -> Vec<&str> {
        c.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn diesel_layout() {
        let d = tempfile::tempdir().unwrap();
        touch(
            &d.path().join("00000000000000_diesel_initial_setup/up.sql"),
            "a",
        );
        touch(
            &d.path()
                .join("00000000000000_diesel_initial_setup/down.sql"),
            "b",
        );
        touch(&d.path().join("2019-02-26-002946_create_user/up.sql"), "c");
        touch(
            &d.path().join("2026-06-03-220228-0000_add-modlog/up.sql"),
            "d",
        );
        let plan = plan(Tool::Diesel, d.path()).unwrap();
        assert_eq!(
            names(&plan),
            [
                "V00000000000000__diesel_initial_setup.sql",
                "U00000000000000__diesel_initial_setup.sql",
                "V2019_02_26_002946__create_user.sql",
                "V2026_06_03_220228_0000__add_modlog.sql",
            ]
        );
    }

    #[test]
    fn sqlx_layouts() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("20240101000000_init.sql"), "a");
        touch(&d.path().join("20240102000000_users.up.sql"), "b");
        touch(&d.path().join("20240102000000_users.down.sql"), "c");
        let plan = plan(Tool::Sqlx, d.path()).unwrap();
        assert_eq!(
            names(&plan),
            [
                "V20240101000000__init.sql",
                "U20240102000000__users.sql",
                "V20240102000000__users.sql",
            ]
        );
        let out = tempfile::tempdir().unwrap();
        write(&plan, out.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.path().join("V20240102000000__users.sql")).unwrap(),
            "b"
        );
        assert!(write(&plan, out.path()).is_err(), "never overwrites");
    }

    #[test]
    fn refuses_what_it_cannot_convert() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("V2__code.rs"), "fn migration() {}");
        let err = plan(Tool::Refinery, d.path()).unwrap_err();
        assert!(
            matches!(&err, FileError::RustMigration { path } if path.ends_with("V2__code.rs")),
            "{err}"
        );
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("init.sql"), "a");
        let err = plan(Tool::Sqlx, d.path()).unwrap_err();
        assert!(matches!(&err, FileError::BadFileName { .. }), "{err}");
    }
}
