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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use silo_manifest::{Manifest, Overrides};

    use super::run;
    use crate::checks::snapshot::summary;
    use crate::{Check, Finding, Fix, Severity};

    /// SQLite services `orders` and `billing` laid out as `silo up` leaves
    /// them: folders 0700, stores and secrets files 0600.
    fn project(root: &Path) -> Manifest {
        std::fs::write(
            root.join("silo.toml"),
            "[project]\nname = \"shop\"\n[services.orders]\n[services.billing]\n",
        )
        .unwrap();
        let manifest = Manifest::load(&root.join("silo.toml"), &Overrides::default()).unwrap();
        let private = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let secrets = silo_store::SecretsDir::new(&manifest.data_dir)
            .dir()
            .to_path_buf();
        std::fs::create_dir_all(&secrets).unwrap();
        for s in &manifest.services {
            let file = s.sqlite_path(&manifest.data_dir);
            let dir = file.parent().unwrap();
            std::fs::create_dir_all(dir).unwrap();
            private(dir, 0o700);
            std::fs::write(&file, b"").unwrap();
            private(&file, 0o600);
            let env = secrets.join(format!("{}.env", s.name));
            std::fs::write(&env, b"").unwrap();
            private(&env, 0o600);
        }
        manifest
    }

    fn findings(manifest: &Manifest) -> Vec<Finding> {
        let mut out = Vec::new();
        run(manifest, &mut out);
        out
    }

    #[test]
    fn private_files_are_clean() {
        let dir = tempfile::tempdir().unwrap();
        assert!(findings(&project(dir.path())).is_empty());
    }

    #[test]
    fn a_readable_secrets_file_is_chmodded_back() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = project(dir.path());
        let env = silo_store::SecretsDir::new(&manifest.data_dir).path("orders");
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).unwrap();
        let found = findings(&manifest);
        let remediation = format!("chmod 600 {}", env.display());
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::StoreFiles,
                "orders",
                None,
                None,
                Severity::Error,
                ".silo/secrets/orders.env has mode 0644; it must be 0600",
                remediation.as_str()
            )]
        );
        assert_eq!(
            found[0].fix,
            Some(Fix::Chmod {
                path: env,
                mode: 0o600
            })
        );
    }

    #[test]
    fn a_store_linked_to_a_siblings_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = project(dir.path());
        let own = manifest.services[0].sqlite_path(&manifest.data_dir);
        let billing = manifest.services[1].sqlite_path(&manifest.data_dir);
        std::fs::remove_file(&billing).unwrap();
        std::os::unix::fs::symlink(&own, &billing).unwrap();
        let found = findings(&manifest);
        let message = format!(
            ".silo/billing/billing.sqlite3 is a symlink to {}",
            own.display()
        );
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::StoreFiles,
                "billing",
                Some("orders"),
                Some("billing"),
                Severity::Error,
                message.as_str(),
                "replace the link with the service's own file (`silo up` creates one)"
            )]
        );
        assert_eq!(found[0].fix, None);
    }
}
