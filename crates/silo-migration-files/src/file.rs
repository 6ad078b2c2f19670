//! Migration files: Flyway-compatible names, a service's engine folders,
//! discovery in a service's folder (engine subfolders first), and checksums
//! that ignore line endings and byte-order marks.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use silo_manifest::{Engine, Manifest, Service};

use crate::error::FileError;
use crate::version::Version;

/// What a migration file does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `V<version>__<description>.sql`: applied once, in version order.
    Versioned,
    /// `U<version>__<description>.sql`: reverts its `V` file.
    Undo,
    /// `R__<description>.sql`: re-applied whenever its checksum changes.
    Repeatable,
}

impl Kind {
    /// The history table's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Versioned => "versioned",
            Kind::Undo => "undo",
            Kind::Repeatable => "repeatable",
        }
    }
}

/// One migration file, read and checksummed.
#[derive(Debug, Clone)]
pub struct Migration {
    pub kind: Kind,
    /// `None` for repeatables.
    pub version: Option<Version>,
    /// The description part of the name, underscores as spaces.
    pub description: String,
    /// The file name (what the history records as `script`).
    pub script: String,
    pub path: PathBuf,
    /// The file's text with a leading BOM removed.
    pub sql: String,
    /// SHA-256 (hex) of the text with a BOM removed and CRLF/CR as LF.
    pub checksum: String,
}

/// A parsed file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    pub kind: Kind,
    pub version: Option<Version>,
    pub description: String,
}

/// Parses `V1__init.sql`, `U1__init.sql`, `R__views.sql`. `Ok(None)` for a
/// file that is not SQL at all; an error for a `.sql` file whose name does
/// not follow the pattern (a misnamed migration must not be skipped
/// silently).
pub fn parse_file_name(name: &str) -> Result<Option<FileName>, String> {
    let Some(stem) = name.strip_suffix(".sql") else {
        // `V8__x.SQL` is meant as a migration: skipping it would be silent.
        if let Some((stem, extension)) = name.rsplit_once('.')
            && extension.eq_ignore_ascii_case("sql")
        {
            return Err(format!(
                "the extension must be `.sql` in lower case; rename it {stem}.sql"
            ));
        }
        return Ok(None);
    };
    let expected = "expected V<version>__<description>.sql, U<version>__<description>.sql or R__<description>.sql";
    let kind = match stem.as_bytes().first() {
        Some(b'V') => Kind::Versioned,
        Some(b'U') => Kind::Undo,
        Some(b'R') => Kind::Repeatable,
        _ => return Err(expected.to_string()),
    };
    let rest = &stem[1..];
    let Some((version, description)) = rest.split_once("__") else {
        return Err(format!(
            "no `__` between version and description; {expected}"
        ));
    };
    let version = match kind {
        Kind::Repeatable if version.is_empty() => None,
        Kind::Repeatable => {
            return Err("repeatable migrations have no version: R__<description>.sql".into());
        }
        _ => Some(Version::parse(version)?),
    };
    if description.is_empty() {
        return Err(format!("the description is empty; {expected}"));
    }
    Ok(Some(FileName {
        kind,
        version,
        description: description.replace('_', " "),
    }))
}

/// The checksum silo records: SHA-256 over the text with any UTF-8 BOM
/// removed and every CRLF or lone CR turned into LF, so a Windows checkout
/// of the same file has the same checksum.
pub fn checksum(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut hasher = Sha256::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                hasher.update(b"\n");
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b => hasher.update([b]),
        }
        i += 1;
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every engine, in the order their folders are listed.
const ENGINES: [Engine; 2] = [Engine::Postgres, Engine::Sqlite];

/// The folder of `engine`'s migrations inside a service's migrations
/// folder `root`: `<root>/<engine>/`, like Flyway's `{vendor}` locations.
/// Every part of silo that names an engine folder asks this function.
pub fn engine_folder(root: &Path, engine: Engine) -> PathBuf {
    root.join(engine.as_str())
}

/// The engine folders `root` has, with their engines.
pub fn engine_folders(root: &Path) -> Vec<(Engine, PathBuf)> {
    ENGINES
        .into_iter()
        .map(|engine| (engine, engine_folder(root, engine)))
        .filter(|(_, dir)| dir.is_dir())
        .collect()
}

/// The folder that holds `engine`'s migrations: its [`engine_folder`] when
/// the service keeps engine folders, else `root` itself. A root with
/// another engine's folder and none for `engine` is an error: its files
/// are not meant for `engine`.
pub fn engine_dir(root: &Path, engine: Engine) -> Result<PathBuf, FileError> {
    let own = engine_folder(root, engine);
    if own.is_dir() {
        return Ok(own);
    }
    if !engine_folders(root).is_empty() {
        return Err(FileError::NoEngineFolder {
            dir: root.to_path_buf(),
            engine,
        });
    }
    Ok(root.to_path_buf())
}

/// The folder that holds `service`'s migrations for its own engine
/// ([`engine_dir`] of its migrations folder).
pub fn service_dir(manifest: &Manifest, service: &Service) -> Result<PathBuf, FileError> {
    engine_dir(&manifest.migrations_dir(service), service.engine)
}

/// Reads every migration of a service for `engine`, sorted: versioned by
/// version, undo by version, repeatables by description. A missing folder
/// holds no migrations.
pub fn discover(dir: &Path, engine: Engine) -> Result<Vec<Migration>, FileError> {
    let folder = engine_dir(dir, engine)?;
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(FileError::Io {
                path: folder,
                source,
            });
        }
    };
    let mut migrations = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| FileError::Io {
            path: folder.clone(),
            source,
        })?;
        let path = entry.path();
        let script = entry.file_name().to_string_lossy().into_owned();
        if !path.is_file() {
            // A folder (or FIFO, socket, device, broken link) named like a
            // migration holds nothing that runs.
            if script.to_ascii_lowercase().ends_with(".sql") {
                return Err(FileError::BadFileName {
                    reason: if path.is_dir() {
                        "a folder, not a file: silo runs only the files of a migrations folder"
                            .into()
                    } else {
                        "not a plain file (a FIFO, socket, device or broken link): silo runs only plain files".into()
                    },
                    path,
                });
            }
            continue;
        }
        let Some(name) = parse_file_name(&script).map_err(|reason| FileError::BadFileName {
            path: path.clone(),
            reason,
        })?
        else {
            continue;
        };
        let bytes = read_regular(&path).map_err(|source| FileError::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| FileError::NotUtf8 { path: path.clone() })?;
        migrations.push(Migration {
            kind: name.kind,
            version: name.version,
            description: name.description,
            script,
            checksum: checksum(&bytes),
            sql: text.strip_prefix('\u{feff}').unwrap_or(&text).to_string(),
            path,
        });
    }
    check_duplicates(&migrations)?;
    migrations.sort_by(|a, b| {
        (a.kind as u8, &a.version, &a.description).cmp(&(b.kind as u8, &b.version, &b.description))
    });
    Ok(migrations)
}

fn check_duplicates(migrations: &[Migration]) -> Result<(), FileError> {
    for (i, a) in migrations.iter().enumerate() {
        for b in &migrations[i + 1..] {
            let clash = a.kind == b.kind
                && match a.kind {
                    Kind::Repeatable => a.description == b.description,
                    _ => a.version == b.version,
                };
            if clash {
                let (mut first, mut second) = (a.path.clone(), b.path.clone());
                if first > second {
                    std::mem::swap(&mut first, &mut second);
                }
                return Err(FileError::DuplicateVersion { first, second });
            }
        }
    }
    Ok(())
}

/// Reads a migration file, refusing anything but a regular file (after
/// links) without opening it: opening a FIFO would wait for a writer
/// forever, and a device is no migration.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, socket or device): silo reads only plain files",
        ));
    }
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = parse_file_name("V001__create_users_table.sql")
            .unwrap()
            .unwrap();
        assert_eq!(n.kind, Kind::Versioned);
        assert_eq!(n.version.unwrap().as_str(), "001");
        assert_eq!(n.description, "create users table");
        let n = parse_file_name("U1.2__x.sql").unwrap().unwrap();
        assert_eq!(
            (n.kind, n.version.unwrap().canonical()),
            (Kind::Undo, "1.2".into())
        );
        let n = parse_file_name("R__views.sql").unwrap().unwrap();
        assert_eq!((n.kind, n.version), (Kind::Repeatable, None));
        assert_eq!(parse_file_name("README.md").unwrap(), None);
        assert!(parse_file_name("001_init.sql").is_err());
        assert!(parse_file_name("V1_init.sql").is_err());
        assert!(parse_file_name("V1__.sql").is_err());
        assert!(parse_file_name("R1__x.sql").is_err());
        assert!(parse_file_name("Vx__y.sql").is_err());
        // A migration with an upper-case extension is not skipped silently.
        assert_eq!(
            parse_file_name("V8__x.SQL"),
            Err("the extension must be `.sql` in lower case; rename it V8__x.sql".into())
        );
        assert_eq!(parse_file_name("notes.txt").unwrap(), None);
    }

    #[test]
    fn discover_refuses_what_it_would_skip_silently() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("V1__a.sql"), "SELECT 1;").unwrap();
        std::fs::write(dir.path().join("README.md"), "notes").unwrap();
        assert_eq!(discover(dir.path(), Engine::Sqlite).unwrap().len(), 1);
        std::fs::create_dir(dir.path().join("V2__dir.sql")).unwrap();
        let err = discover(dir.path(), Engine::Sqlite).unwrap_err();
        assert!(
            matches!(&err, FileError::BadFileName { path, .. } if path.ends_with("V2__dir.sql")),
            "{err}"
        );
        std::fs::remove_dir(dir.path().join("V2__dir.sql")).unwrap();
        std::fs::write(dir.path().join("V3__b.SQL"), "SELECT 1;").unwrap();
        let err = discover(dir.path(), Engine::Sqlite).unwrap_err();
        assert!(err.to_string().contains("rename it V3__b.sql"), "{err}");
    }

    #[test]
    fn engine_folders_are_named_after_the_engine() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        assert_eq!(engine_folder(root, Engine::Postgres), root.join("postgres"));
        assert_eq!(engine_folder(root, Engine::Sqlite), root.join("sqlite"));
        // No engine folders: the root holds every engine's files.
        assert!(engine_folders(root).is_empty());
        assert_eq!(engine_dir(root, Engine::Sqlite).unwrap(), root);
        // A stray file named like an engine is not an engine folder.
        std::fs::write(root.join("sqlite"), "").unwrap();
        assert!(engine_folders(root).is_empty());
        std::fs::remove_file(root.join("sqlite")).unwrap();
        std::fs::create_dir(root.join("postgres")).unwrap();
        assert_eq!(
            engine_folders(root),
            [(Engine::Postgres, root.join("postgres"))]
        );
        assert_eq!(
            engine_dir(root, Engine::Postgres).unwrap(),
            root.join("postgres")
        );
        // The root's files are not meant for an engine without a folder.
        let err = engine_dir(root, Engine::Sqlite).unwrap_err();
        assert!(
            matches!(
                &err,
                FileError::NoEngineFolder {
                    engine: Engine::Sqlite,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.hint().unwrap(),
            format!(
                "add {}/ with this engine's migrations",
                root.join("sqlite").display()
            )
        );
        std::fs::create_dir(root.join("sqlite")).unwrap();
        assert_eq!(
            engine_folders(root),
            [
                (Engine::Postgres, root.join("postgres")),
                (Engine::Sqlite, root.join("sqlite"))
            ]
        );
    }

    #[test]
    fn checksum_ignores_line_endings_and_bom() {
        let unix = checksum(b"CREATE TABLE a();\nSELECT 1;\n");
        assert_eq!(checksum(b"CREATE TABLE a();\r\nSELECT 1;\r\n"), unix);
        assert_eq!(
            checksum(b"\xEF\xBB\xBFCREATE TABLE a();\nSELECT 1;\n"),
            unix
        );
        assert_eq!(checksum(b"CREATE TABLE a();\rSELECT 1;\r"), unix);
        assert_ne!(checksum(b"CREATE TABLE b();\nSELECT 1;\n"), unix);
        assert_eq!(unix.len(), 64);
    }
}
