//! What the audit did not read is listed, never called clean: a FIFO and a
//! dangling symlink in a source folder, a missing migrations folder. And
//! the `leftovers` check on SQLite: a scratch file of a killed `verify` and
//! a store whose service silo.toml no longer names.

use std::path::Path;

use serde_json::Value;
use silo_audit::{Check, Options, Report, Severity, render};
use silo_manifest::{Manifest, Overrides};
use silo_store::{ProvisionOptions, Stores, StoresConfig};

const MANIFEST: &str = "[project]\nname = \"shop\"\n[services.orders]\n[services.billing]\n";

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn load(root: &Path, text: &str) -> (Manifest, Stores) {
    let manifest =
        Manifest::from_str(text, &root.join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: None,
        concurrency: 1,
    });
    (manifest, stores)
}

async fn audit(root: &Path, text: &str, live: bool, code: bool) -> Report {
    let (manifest, stores) = load(root, text);
    let options = Options {
        live,
        code,
        ..Options::default()
    };
    silo_audit::audit(&manifest, &stores, &options)
        .await
        .unwrap()
}

/// Both services with a source file and a migration.
fn full_project(root: &Path) {
    std::fs::write(root.join("silo.toml"), MANIFEST).unwrap();
    for s in ["orders", "billing"] {
        write(root, &format!("services/{s}/main.py"), "print('hello')\n");
        write(
            root,
            &format!("services/{s}/migrations/V1__init.sql"),
            "CREATE TABLE t (id INTEGER PRIMARY KEY);\n",
        );
    }
}

/// (service, path) of every path not read in the JSON report.
fn skipped_paths(doc: &Value) -> Vec<(String, String)> {
    doc["summary"]["skipped_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["service"].as_str().unwrap().to_string(),
                k["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_project_read_in_full_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    full_project(dir.path());
    let report = audit(dir.path(), MANIFEST, false, true).await;
    let doc = render::json(&report);
    assert_eq!(skipped_paths(&doc), [], "{doc:#}");
    assert_eq!(doc["summary"]["skipped"], 0);
    let human = render::human(&report, false);
    assert!(human.starts_with("clean: no findings"), "{human}");
}

#[tokio::test]
async fn paths_not_read_are_listed_and_the_verdict_is_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    full_project(root);
    // A FIFO: opening it would block; tests run as root, so a chmod 000
    // file would be read anyway.
    let fifo = root.join("services/orders/pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink(
        root.join("nowhere.yaml"),
        root.join("services/orders/config.yaml"),
    )
    .unwrap();
    std::fs::remove_dir_all(root.join("services/billing/migrations")).unwrap();

    let report = audit(root, MANIFEST, false, true).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let doc = render::json(&report);
    assert_eq!(
        skipped_paths(&doc),
        [
            (
                "billing".to_string(),
                "services/billing/migrations".to_string()
            ),
            (
                "orders".to_string(),
                "services/orders/config.yaml".to_string()
            ),
            ("orders".to_string(), "services/orders/pipe".to_string()),
        ],
        "{doc:#}"
    );
    assert_eq!(doc["summary"]["skipped"], 3);
    let reasons: Vec<&str> = doc["summary"]["skipped_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("does not exist"), "{}", reasons[0]);
    assert!(
        reasons[1].starts_with("a symbolic link whose target cannot be read"),
        "{}",
        reasons[1]
    );
    assert!(
        reasons[2].starts_with("not a regular file"),
        "{}",
        reasons[2]
    );

    let human = render::human(&report, false);
    assert!(!human.contains("clean"), "{human}");
    assert!(
        human.contains("3 path(s) not read:\n  services/billing/migrations: "),
        "{human}"
    );
    assert!(
        human.contains("no findings in what was read; 3 path(s) not read"),
        "{human}"
    );
    let github = render::github(&report);
    assert!(
        github.contains("::notice file=services/orders/pipe,"),
        "{github}"
    );
    let sarif = render::sarif(&report, Path::new("silo.toml"));
    let notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .unwrap();
    assert_eq!(notes.len(), 3, "{sarif:#}");
}

/// A migration file lint cannot parse is not read by the boundary rules:
/// listed, with the line where reading stopped.
#[tokio::test]
async fn a_migration_that_does_not_parse_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    full_project(root);
    std::fs::write(
        root.join("services/orders/migrations/V2__bad.sql"),
        b"CREATE TABLE u (id INTEGER);\n\xff\xfe\n",
    )
    .unwrap();
    let report = audit(root, MANIFEST, false, true).await;
    assert_eq!(report.skipped_paths.len(), 1, "{:?}", report.skipped_paths);
    let k = &report.skipped_paths[0];
    assert_eq!(
        (k.service.as_str(), k.path.to_str().unwrap()),
        ("orders", "services/orders/migrations/V2__bad.sql")
    );
    assert!(
        k.reason.contains("line 2") && k.reason.contains("not UTF-8"),
        "{}",
        k.reason
    );
}

fn leftovers(report: &Report) -> Vec<(String, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.check == Check::Leftovers)
        .map(|f| (f.service.clone(), f.message.clone()))
        .collect()
}

async fn provision(root: &Path, text: &str) {
    let (manifest, stores) = load(root, text);
    for s in &manifest.services {
        stores
            .engine(s)
            .unwrap()
            .provision(s, ProvisionOptions::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_leftover_sqlite_scratch_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    provision(root, MANIFEST).await;
    assert_eq!(leftovers(&audit(root, MANIFEST, true, false).await), []);

    let (manifest, _) = load(root, MANIFEST);
    let orders = manifest.service("orders").unwrap();
    let folder = orders.sqlite_path(&manifest.data_dir);
    let scratch = folder.parent().unwrap().join(".scratch-0123abcd.sqlite3");
    std::fs::write(&scratch, b"").unwrap();
    let report = audit(root, MANIFEST, true, false).await;
    assert_eq!(
        leftovers(&report),
        [(
            "orders".to_string(),
            format!(
                "an interrupted run left scratch store {}",
                scratch.display()
            )
        )]
    );
    let f = report
        .findings
        .iter()
        .find(|f| f.check == Check::Leftovers)
        .unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.remediation, "`silo down orders --yes` removes them");
}

#[tokio::test]
async fn a_sqlite_store_whose_service_was_removed_is_an_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    provision(root, MANIFEST).await;
    let fewer = "[project]\nname = \"shop\"\n[services.orders]\n";
    let report = audit(root, fewer, true, false).await;
    let found = leftovers(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "billing");
    assert!(
        found[0]
            .1
            .starts_with("silo made a store for `billing`, which silo.toml no longer names: "),
        "{}",
        found[0].1
    );
    let f = report
        .findings
        .iter()
        .find(|f| f.check == Check::Leftovers)
        .unwrap();
    assert!(
        f.remediation
            .starts_with("`silo down billing --orphan --yes`"),
        "{}",
        f.remediation
    );
}
