//! A provisioned SQLite project whose manifest a test writes, with real
//! backups taken of it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use silo_backup::backup::{self, Request};
use silo_backup::{BackupError, BackupMeta, Destination};
use silo_manifest::{Manifest, Overrides, Service};
use silo_store::{ProvisionOptions, Stores, StoresConfig};
use sqlx::{Connection, SqliteConnection};

pub struct Project {
    _dir: tempfile::TempDir,
    pub manifest: Arc<Manifest>,
    pub stores: Arc<Stores>,
}

impl Project {
    /// A project of SQLite services; `services` is the manifest after
    /// `[project]` and `[defaults]`. Every store gets a table with a row.
    pub async fn new(services: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("[project]\nname = \"t\"\n[defaults]\nengine = \"sqlite\"\n{services}");
        let manifest =
            Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default())
                .unwrap();
        let stores = Stores::new(StoresConfig {
            project: Some("t".into()),
            data_dir: manifest.data_dir.clone(),
            admin_url: None,
            concurrency: 2,
        });
        for svc in &manifest.services {
            stores
                .engine(svc)
                .unwrap()
                .provision(svc, ProvisionOptions::default())
                .await
                .unwrap();
        }
        let p = Project {
            _dir: dir,
            manifest: Arc::new(manifest),
            stores: Arc::new(stores),
        };
        for svc in &p.manifest.services {
            let path = svc.sqlite_path(&p.manifest.data_dir);
            let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::raw_sql(
                "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
                 INSERT INTO notes (body) VALUES ('first'), ('second');",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
        }
        p
    }

    pub fn service(&self, name: &str) -> &Service {
        self.manifest.service(name).unwrap()
    }

    pub fn data_dir(&self) -> &Path {
        &self.manifest.data_dir
    }

    pub fn staging(&self) -> PathBuf {
        self.data_dir().join("backups/.staging")
    }

    pub fn destination(&self, service: &str) -> Destination {
        Destination::of(&self.manifest, service).unwrap()
    }

    /// The folder the service's backups go to.
    pub fn destination_dir(&self, service: &str) -> PathBuf {
        PathBuf::from(self.destination(service).shown())
    }

    pub async fn backup(&self, service: &str) -> Result<BackupMeta, BackupError> {
        backup::take(
            &self.stores,
            self.service(service),
            &self.destination(service),
            &Request {
                project: "t",
                reason: "manual",
                staging_root: &self.staging(),
            },
        )
        .await
    }

    /// The ids of the service's complete backups, oldest first (by when
    /// they finished: ids of one second sort by their random part).
    pub async fn listed(&self, service: &str) -> Vec<String> {
        let mut backups = self.destination(service).list().await.unwrap().backups;
        backups.sort_by_key(|m| m.finished_at);
        backups.iter().map(|m| m.id.to_string()).collect()
    }
}
