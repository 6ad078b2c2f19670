//! A throwaway project for the rules' own tests: services `orders`
//! (database `orders_db`) and `billing` on one engine.

use crate::{Finding, Options, RuleId, lint, load};
use silo_manifest::{Manifest, Overrides};

pub(crate) struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn postgres() -> Self {
        Self::with_manifest("[defaults]\nengine = \"postgres\"\n")
    }

    pub fn sqlite() -> Self {
        Self::with_manifest("")
    }

    /// A project whose silo.toml adds `extra` after `[project]`.
    pub fn with_manifest(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("silo.toml"),
            format!(
                "[project]\nname = \"t\"\n{extra}\n\
                 [services.orders]\ndatabase = \"orders_db\"\n[services.billing]\n"
            ),
        )
        .unwrap();
        for s in ["orders", "billing"] {
            std::fs::create_dir_all(dir.path().join(format!("services/{s}/migrations"))).unwrap();
        }
        Project { dir }
    }

    /// A SQLite project whose services are `services` (silo.toml text
    /// after `[project]`), each with an empty migrations folder: for the
    /// events rules. Its lines: 1 `[project]`, 2 `name`, 3 on `services`.
    pub fn events(services: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("silo.toml"),
            format!("[project]\nname = \"t\"\n{services}"),
        )
        .unwrap();
        let manifest =
            Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
        for s in &manifest.services {
            std::fs::create_dir_all(manifest.migrations_dir(s)).unwrap();
        }
        Project { dir }
    }

    /// Writes a file into `service`'s contracts folder.
    pub fn contract(&self, service: &str, name: &str, text: &str) -> &Self {
        let m = self.manifest();
        let dir = m.contracts_dir(m.service(service).unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
        self
    }

    pub fn write(&self, service: &str, name: &str, sql: &str) -> &Self {
        std::fs::write(self.folder(service).join(name), sql).unwrap();
        self
    }

    pub fn folder(&self, service: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join(format!("services/{service}/migrations"))
    }

    pub fn manifest(&self) -> Manifest {
        Manifest::load(&self.dir.path().join("silo.toml"), &Overrides::default()).unwrap()
    }

    /// The findings of `rule` alone.
    pub fn hits(&self, rule: &str) -> Vec<Finding> {
        let m = self.manifest();
        let files = load(&m).unwrap();
        let options = Options {
            rules: vec![id(rule)],
            ..Default::default()
        };
        lint(&m, &files, &options).findings
    }

    /// `(line, column, message)` of each finding of `rule`, in file and
    /// position order; each finding must carry the rule's id and default
    /// severity (silo.toml sets no levels here).
    pub fn found(&self, rule: &str) -> Vec<(usize, usize, String)> {
        let default = crate::rules::all()
            .into_iter()
            .find(|r| r.id() == id(rule))
            .map(|r| r.severity())
            .or_else(|| {
                crate::rules::events_rules()
                    .into_iter()
                    .find(|r| r.id() == id(rule))
                    .map(|r| r.severity())
            });
        self.hits(rule)
            .into_iter()
            .map(|f| {
                assert_eq!(f.rule, id(rule));
                assert_eq!(Some(f.severity), default, "{rule}: {}", f.message);
                (f.line, f.column, f.message)
            })
            .collect()
    }

    /// `(line, column)` of each finding of `rule`.
    pub fn places(&self, rule: &str) -> Vec<(usize, usize)> {
        self.hits(rule).iter().map(|f| (f.line, f.column)).collect()
    }
}

/// The rule a test names.
fn id(rule: &str) -> RuleId {
    RuleId::from_id(rule).unwrap_or_else(|| panic!("no rule `{rule}`"))
}
