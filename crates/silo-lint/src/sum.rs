//! Each migrations folder's `silo.sum`, read and checked once per run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use silo_manifest::Manifest;
use silo_migration_files::file::engine_folders;
use silo_migration_files::sum::{self, Mismatch};

/// Per folder: what its `silo.sum` says about its files now.
#[derive(Debug, Default)]
pub struct SumFiles {
    folders: HashMap<PathBuf, Result<Vec<Mismatch>, String>>,
}

impl SumFiles {
    /// Checks the sum of every service's migrations folder that has one.
    pub fn load(manifest: &Manifest) -> Self {
        let mut folders = HashMap::new();
        for service in &manifest.services {
            let Ok(dir) = silo_migration_files::file::service_dir(manifest, service) else {
                continue;
            };
            let checked = match sum::read(&dir) {
                Ok(None) => continue,
                Ok(Some(file)) => sum::verify(&file, &dir).map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            folders.insert(dir, checked);
        }
        SumFiles { folders }
    }

    /// The mismatches of the folder `dir`, or why its sum is unreadable;
    /// `None` when the folder keeps no `silo.sum`.
    pub fn of(&self, dir: &Path) -> Option<&Result<Vec<Mismatch>, String>> {
        self.folders.get(dir)
    }
}

/// Rewrites `silo.sum` in every service's migrations folder (each engine
/// folder it has). Returns the files that changed.
pub fn update_all(manifest: &Manifest) -> std::io::Result<Vec<PathBuf>> {
    let mut changed = Vec::new();
    for service in &manifest.services {
        let root = manifest.migrations_dir(service);
        let mut dirs = vec![root.clone()];
        dirs.extend(engine_folders(&root).into_iter().map(|(_, dir)| dir));
        for dir in dirs {
            if sum::update(&dir)? {
                changed.push(dir.join(sum::SUM_FILE));
            }
        }
    }
    Ok(changed)
}
