//! `silo migrate --backup-first` and `[defaults] backup_before_migrate`
//! through the real binary, on SQLite stores and on a PostgreSQL one: the
//! backup is taken before the migration and holds the store as it was,
//! nothing pending takes no backup, a failed backup leaves its store
//! unmigrated, and the manifest's switch (with `--no-backup-first` over
//! it).

use std::path::Path;

use serde_json::Value;

mod common;
use common::{json, orders_project, silo};
use silo_testkit::Prefix;

/// A project of SQLite services `orders` and `billing` (plus `extra`
/// lines under `[defaults]`), provisioned, each migrated to version 1.
fn project(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        format!(
            "[project]\nname = \"t\"\n[defaults]\nengine = \"sqlite\"\n{extra}\n\
             [services.orders]\n[services.billing]\n"
        ),
    )
    .unwrap();
    for service in ["orders", "billing"] {
        add(dir.path(), service, 1);
    }
    silo(dir.path()).arg("up").assert().success();
    silo(dir.path())
        .args(["migrate", "--no-backup-first"])
        .assert()
        .success();
    dir
}

/// Writes `service`'s migration `V<v>`, which makes table `t<v>`.
fn add(dir: &Path, service: &str, v: u32) {
    let folder = dir.join(format!("services/{service}/migrations"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join(format!("V{v}__t{v}.sql")),
        format!("CREATE TABLE t{v} (id INTEGER PRIMARY KEY);\nINSERT INTO t{v} VALUES ({v});\n"),
    )
    .unwrap();
}

/// The backups `silo backup list SERVICE --json` shows.
fn listed(dir: &Path, service: &str) -> Vec<Value> {
    let doc = json(silo(dir).args(["backup", "list", service, "--json"]));
    doc["services"][0]["backups"].as_array().unwrap().clone()
}

/// The versions `silo info SERVICE` shows as applied.
fn applied(dir: &Path, service: &str) -> Vec<String> {
    let doc = json(silo(dir).args(["info", service, "--json"]));
    doc["services"][0]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "applied")
        .map(|m| m["version"].as_str().unwrap().to_string())
        .collect()
}

/// The row of `service` in `silo migrate --json`'s output.
fn row<'a>(doc: &'a Value, service: &str) -> &'a Value {
    doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == service)
        .unwrap_or_else(|| panic!("no row for {service}: {doc}"))
}

#[test]
fn the_backup_is_taken_before_the_migration_and_names_its_version() {
    let dir = project("");
    let dir = dir.path();
    add(dir, "orders", 2);
    add(dir, "orders", 3);

    let doc = json(silo(dir).args(["migrate", "--backup-first", "--json"]));
    let orders = row(&doc, "orders");
    assert_eq!(orders["error"], Value::Null, "{doc}");
    assert_eq!(orders["applied"].as_array().unwrap().len(), 2, "{doc}");
    let backup = &orders["backup"];
    assert_eq!(backup["reason"], "before migrating to 3", "{doc}");
    // The store as it was before: at version 1, without V2's and V3's tables.
    assert_eq!(backup["migration_version"], "1", "{doc}");
    assert_eq!(backup["tables"]["t1"], 1, "{doc}");
    assert!(backup["tables"].get("t2").is_none(), "{doc}");
    assert!(backup["tables"].get("t3").is_none(), "{doc}");
    assert_eq!(applied(dir, "orders"), ["1", "2", "3"]);

    let list = listed(dir, "orders");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], backup["id"]);
    assert_eq!(list[0]["reason"], "before migrating to 3");

    // billing had nothing pending: no backup.
    assert_eq!(row(&doc, "billing")["backup"], Value::Null, "{doc}");
    assert!(listed(dir, "billing").is_empty());

    // Restoring that backup brings back the store before the migration.
    let id = backup["id"].as_str().unwrap();
    silo(dir)
        .args(["restore", "orders", "--backup", id, "--replace", "--yes"])
        .assert()
        .success();
    assert_eq!(applied(dir, "orders"), ["1"]);
}

#[test]
fn nothing_pending_takes_no_backup() {
    let dir = project("");
    let dir = dir.path();
    let out = silo(dir)
        .args(["migrate", "--backup-first"])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(!text.contains("backed up"), "{text}");
    assert!(listed(dir, "orders").is_empty());
    assert!(listed(dir, "billing").is_empty());

    // Nor does a dry run, which changes nothing.
    add(dir, "orders", 2);
    silo(dir)
        .args(["migrate", "--backup-first", "--dry-run"])
        .assert()
        .success();
    assert!(listed(dir, "orders").is_empty());
    assert_eq!(applied(dir, "orders"), ["1"]);
}

#[test]
fn a_failed_backup_leaves_the_store_unmigrated_and_others_go_on() {
    let dir = project("");
    let dir = dir.path();
    add(dir, "orders", 2);
    add(dir, "billing", 2);
    // A file where orders' backup folder would be: its backup cannot be
    // written; billing's can.
    let backups = dir.join(".silo/backups");
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::write(backups.join("orders"), "not a folder").unwrap();

    let out = silo(dir)
        .args(["migrate", "--backup-first"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("orders: not migrated: the backup before migrating to 2 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("silo::migrate::backup-first"), "{stderr}");
    assert!(stderr.contains("--no-backup-first"), "{stderr}");
    assert_eq!(applied(dir, "orders"), ["1"], "orders stays at its version");
    assert_eq!(applied(dir, "billing"), ["1", "2"], "billing went on");
    assert_eq!(listed(dir, "billing").len(), 1);

    // --json says the same, per service.
    let doc = json(silo(dir).args(["migrate", "--backup-first", "--json"]));
    let orders = row(&doc, "orders");
    assert!(
        orders["error"]
            .as_str()
            .unwrap()
            .contains("the backup before migrating to 2 failed"),
        "{doc}"
    );
    assert_eq!(orders["applied"].as_array().unwrap().len(), 0, "{doc}");
    assert_eq!(orders["backup"], Value::Null, "{doc}");
    assert_eq!(applied(dir, "orders"), ["1"]);

    // --no-backup-first migrates without one.
    silo(dir)
        .args(["migrate", "--no-backup-first"])
        .assert()
        .success();
    assert_eq!(applied(dir, "orders"), ["1", "2"]);
}

#[test]
fn the_manifest_switch_backs_up_and_the_flag_overrides_it() {
    let dir = project("backup_before_migrate = true");
    let dir = dir.path();
    add(dir, "orders", 2);
    silo(dir)
        .args(["migrate", "--no-backup-first", "orders", "--target", "2"])
        .assert()
        .success();
    assert!(listed(dir, "orders").is_empty(), "--no-backup-first");
    assert_eq!(applied(dir, "orders"), ["1", "2"]);

    add(dir, "orders", 3);
    let out = silo(dir).args(["migrate", "orders"]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    let list = listed(dir, "orders");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reason"], "before migrating to 3");
    assert_eq!(list[0]["migration_version"], "2");
    assert!(
        text.contains(&format!(
            "orders: backed up as {}",
            list[0]["id"].as_str().unwrap()
        )),
        "{text}"
    );

    silo(dir)
        .args(["migrate", "--backup-first", "--no-backup-first"])
        .assert()
        .code(2);
}

#[test]
fn postgres_the_backup_holds_the_store_before_the_migration() {
    let prefix = Prefix::new();
    let (dir, _) = orders_project("postgres", &prefix);
    let dir = dir.path();
    add(dir, "orders", 1);
    silo(dir).arg("migrate").assert().success();
    add(dir, "orders", 2);

    let doc = json(silo(dir).args(["migrate", "--backup-first", "--json"]));
    let orders = row(&doc, "orders");
    assert_eq!(orders["error"], Value::Null, "{doc}");
    let backup = &orders["backup"];
    assert_eq!(backup["reason"], "before migrating to 2", "{doc}");
    assert_eq!(backup["engine"], "postgres", "{doc}");
    assert_eq!(backup["migration_version"], "1", "{doc}");
    assert_eq!(backup["tables"]["t1"], 1, "{doc}");
    assert!(backup["tables"].get("t2").is_none(), "{doc}");
    assert_eq!(applied(dir, "orders"), ["1", "2"]);
    assert_eq!(listed(dir, "orders").len(), 1);

    // Nothing pending now: no second backup.
    let doc = json(silo(dir).args(["migrate", "--backup-first", "--json"]));
    assert_eq!(row(&doc, "orders")["backup"], Value::Null, "{doc}");
    assert_eq!(listed(dir, "orders").len(), 1);
}
