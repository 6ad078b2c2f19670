//! Stores silo made for services the manifest no longer names. They are
//! found from the project's own records only, the data dir's credentials
//! files and SQLite folders, never by guessing from names on a shared
//! server another project may also use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use silo_manifest::{Engine, Isolation, Service};

use crate::error::StoreError;
use crate::{Dropped, Stores};

/// A store of a service that is no longer in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    /// The service it was made for.
    pub service: String,
    pub engine: Engine,
    /// Database name (PostgreSQL) or file (SQLite).
    pub database: String,
    /// Its login role (PostgreSQL).
    pub role: Option<String>,
    /// `host:port` of its server (PostgreSQL).
    pub server: Option<String>,
    /// What silo found of it, in plain words.
    pub found: Vec<String>,
}

impl Stores {
    /// Stores silo made for services other than `known`.
    pub fn orphans(&self, known: &[Service]) -> Result<Vec<Orphan>, StoreError> {
        let known: HashSet<&str> = known.iter().map(|s| s.name.as_str()).collect();
        let mut out: Vec<Orphan> = Vec::new();
        for (name, path) in self.secrets.services() {
            if known.contains(name.as_str()) {
                continue;
            }
            let probe = stand_in(&name, Engine::Sqlite, String::new(), String::new());
            let Ok(Some(creds)) = self.secrets.read(&probe) else {
                continue;
            };
            let database = match creds.engine {
                Engine::Sqlite => Path::new(&creds.database)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                Engine::Postgres => creds.database.clone(),
            };
            out.push(Orphan {
                service: name,
                engine: creds.engine,
                database,
                role: creds.user.clone(),
                server: creds
                    .host
                    .as_ref()
                    .map(|h| format!("{h}:{}", creds.port.unwrap_or(5432))),
                found: vec![format!("credentials file {}", path.display())],
            });
        }
        for (name, file) in sqlite_stores(&self.config.data_dir) {
            if known.contains(name.as_str()) {
                continue;
            }
            let what = format!("SQLite store {}", file.display());
            match out.iter_mut().find(|o| o.service == name) {
                Some(o) => o.found.push(what),
                None => out.push(Orphan {
                    service: name,
                    engine: Engine::Sqlite,
                    database: file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    role: None,
                    server: None,
                    found: vec![what],
                }),
            }
        }
        out.sort_by(|a, b| a.service.cmp(&b.service));
        Ok(out)
    }

    /// Drops an orphan's store, role and credentials, as `silo down` does
    /// for a service in the manifest. A PostgreSQL orphan must live on the
    /// admin URL's server: silo never drops by name on another server.
    pub async fn drop_orphan(&self, orphan: &Orphan) -> Result<Dropped, StoreError> {
        let service = stand_in(
            &orphan.service,
            orphan.engine,
            orphan.database.clone(),
            orphan.role.clone().unwrap_or_default(),
        );
        if orphan.engine == Engine::Postgres {
            let engine = self.postgres(&service)?;
            if let Some(server) = &orphan.server
                && !same_server(server, engine.server())
            {
                return Err(StoreError::Unsupported(format!(
                    "the store of `{}` is on {server}, not on the admin URL's server {}; point SILO_PG_ADMIN_URL at {server} to drop it",
                    orphan.service,
                    engine.server()
                )));
            }
            // A credentials file proves nothing about whose store it is (it
            // may be a copy from another project): the database's own
            // marker must name this project.
            if let Some(comment) = engine.database_comment(&orphan.database).await? {
                let ours = self.config.project.as_deref();
                match crate::marker_project(&comment) {
                    Some(theirs) if Some(theirs) == ours => {}
                    Some(theirs) => {
                        return Err(StoreError::OtherProject {
                            kind: "database",
                            name: orphan.database.clone(),
                            project: theirs.to_string(),
                            ours: ours.unwrap_or_default().to_string(),
                        });
                    }
                    None => {
                        return Err(StoreError::Unsupported(format!(
                            "database `{}`'s marker names no project (it was made before silo recorded projects), so silo cannot tell it is this project's; run `silo up` in the project it belongs to (which records it), or drop it by hand",
                            orphan.database
                        )));
                    }
                }
            }
        }
        self.engine(&service)?.drop_store(&service).await
    }
}

/// `localhost` and `127.0.0.1` name one server.
fn same_server(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.replace("localhost:", "127.0.0.1:");
    norm(a) == norm(b)
}

/// A `Service` standing in for one the manifest no longer has.
fn stand_in(name: &str, engine: Engine, database: String, role: String) -> Service {
    Service {
        name: name.to_string(),
        engine,
        isolation: Isolation::Database,
        database,
        role,
        url_env: None,
        migrations: PathBuf::new(),
        source: PathBuf::new(),
        connection_limit: None,
        owner: None,
        publishes: Vec::new(),
        consumes: Vec::new(),
        contracts: PathBuf::new(),
        placeholders: Default::default(),
        lint: Default::default(),
        backup: None,
        gateway: Default::default(),
    }
}

/// `(service, file)` of every silo-marked SQLite store in the data dir's
/// service folders (`<data_dir>/<service>/<database>.sqlite3`).
fn sqlite_stores(data_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(dirs) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for dir in dirs.filter_map(|e| e.ok()) {
        let Some(name) = dir.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name == "secrets" || name.starts_with('.') || !dir.path().is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for file in files.filter_map(|e| e.ok()).map(|e| e.path()) {
            let plain = file
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n.ends_with(".sqlite3"));
            if plain && crate::sqlite::has_silo_header(&file).unwrap_or(false) {
                out.push((name.clone(), file));
            }
        }
    }
    out
}
