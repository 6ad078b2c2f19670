//! `store-files`: SQLite stores and every secrets file are private to the
//! user that runs the services: folders 0700, files 0600, owned by that
//! user, and no store is a symlink or a hard link (to another service's
//! file or anything else).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use silo_manifest::{Engine, Manifest};
use silo_store::SecretsDir;

use crate::{Check, Finding, Fix};

/// What one path should be.
struct Expect<'a> {
    service: &'a str,
    store: Option<&'a str>,
    path: PathBuf,
    mode: u32,
    /// A store file (not a folder or a secrets file): links matter.
    store_file: bool,
}

pub fn run(manifest: &Manifest, out: &mut Vec<Finding>) {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut expected = Vec::new();
    let mut inodes: Vec<(u64, u64, &str)> = Vec::new();
    let secrets_dir = SecretsDir::new(&manifest.data_dir);
    for s in &manifest.services {
        let secrets = secrets_dir.path(&s.name);
        expected.push(Expect {
            service: &s.name,
            store: None,
            path: secrets,
            mode: 0o600,
            store_file: false,
        });
        if s.engine != Engine::Sqlite {
            continue;
        }
        let file = s.sqlite_path(&manifest.data_dir);
        if let Some(dir) = file.parent() {
            expected.push(Expect {
                service: &s.name,
                store: Some(&s.database),
                path: dir.to_path_buf(),
                mode: 0o700,
                store_file: false,
            });
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            expected.push(Expect {
                service: &s.name,
                store: Some(&s.database),
                path: path.into(),
                mode: 0o600,
                store_file: suffix.is_empty(),
            });
        }
    }
    for e in &expected {
        // Not there (not provisioned, or no WAL yet): nothing to protect.
        let Ok(link) = std::fs::symlink_metadata(&e.path) else {
            continue;
        };
        let shown = shown(manifest, &e.path);
        let finding = |message: String, remediation: String| {
            let f = Finding::new(Check::StoreFiles, e.service, message, remediation);
            match e.store {
                Some(store) => f.store(store),
                None => f,
            }
        };
        if link.file_type().is_symlink() {
            let target = std::fs::read_link(&e.path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            let other = manifest
                .services
                .iter()
                .find(|o| {
                    o.name != e.service
                        && Some(o.sqlite_path(&manifest.data_dir))
                            == std::fs::canonicalize(&e.path).ok()
                })
                .map(|o| o.name.as_str());
            out.push(
                finding(
                    format!("{shown} is a symlink to {target}"),
                    "replace the link with the service's own file (`silo up` creates one)".into(),
                )
                .other(other),
            );
            continue;
        }
        if e.store_file {
            if link.nlink() > 1 {
                out.push(finding(
                    format!("{shown} has {} hard links: another path writes the same file", link.nlink()),
                    "find the other links (`find / -samefile <file>`), remove them, and give each service its own file".into(),
                ));
            }
            if let Some((_, _, other)) = inodes
                .iter()
                .find(|(dev, ino, _)| *dev == link.dev() && *ino == link.ino())
            {
                let other = other.to_string();
                out.push(
                    finding(
                        format!("{shown} is the same file as the store of `{other}`"),
                        "give each service its own file".into(),
                    )
                    .other(Some(&other)),
                );
            }
            inodes.push((link.dev(), link.ino(), e.service));
        }
        if link.uid() != uid {
            out.push(finding(
                format!(
                    "{shown} belongs to uid {}, not to uid {uid} that runs silo",
                    link.uid()
                ),
                format!(
                    "chown the file to the service's user: chown {uid} {}",
                    e.path.display()
                ),
            ));
        }
        let mode = link.mode() & 0o777;
        if mode & !e.mode != 0 {
            out.push(
                finding(
                    format!("{shown} has mode {mode:04o}; it must be {:04o}", e.mode),
                    format!("chmod {:o} {}", e.mode, e.path.display()),
                )
                .fix(Fix::Chmod {
                    path: e.path.clone(),
                    mode: e.mode,
                }),
            );
        }
    }
}

fn shown(manifest: &Manifest, path: &Path) -> String {
    path.strip_prefix(&manifest.root)
        .unwrap_or(path)
        .display()
        .to_string()
}
