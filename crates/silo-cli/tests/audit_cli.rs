//! `silo audit` through the binary: exit codes 0/1/2, the JSON shape, the
//! human matrix, `--fix` only with `--yes`, SQLite file checks and
//! `--explain`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{json, silo};
use predicates::prelude::*;
use serde_json::Value;
use silo_testkit::{Prefix, TempServer};

/// An admin URL nothing answers on.
const UNREACHABLE: &str = "postgres://postgres@127.0.0.1:1/postgres";

/// Services `orders` and `billing` on `engine`, provisioned.
fn project(engine: &str, prefix: &Prefix) -> tempfile::TempDir {
    let dir = manifest(engine, prefix);
    silo(dir.path()).arg("up").assert().success();
    dir
}

/// Services `orders` and `billing` provisioned on a throwaway server of
/// the test's own. A clean audit needs one: the shared test server's
/// pg_hba.conf is the machine's, and it trusts local connections, which
/// `hba-rules` rightly reports.
fn project_on(server: &TempServer, prefix: &Prefix) -> tempfile::TempDir {
    let dir = manifest("postgres", prefix);
    silo_on(server, dir.path()).arg("up").assert().success();
    dir
}

/// `silo` in `dir` with `server` as the admin.
fn silo_on(server: &TempServer, dir: &Path) -> assert_cmd::Command {
    let mut cmd = silo(dir);
    cmd.env("SILO_PG_ADMIN_URL", server.admin_url());
    cmd
}

/// The manifest of services `orders` and `billing` on `engine`, alone.
fn manifest(engine: &str, prefix: &Prefix) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("[project]\nname = \"shop\"\n[defaults]\nengine = \"{engine}\"\n");
    for s in ["orders", "billing"] {
        text.push_str(&format!(
            "[services.{s}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
            prefix.name(s),
            prefix.name(&format!("{s}_svc"))
        ));
    }
    std::fs::write(dir.path().join("silo.toml"), text).unwrap();
    dir
}

fn sqlite_file(dir: &Path, prefix: &Prefix, service: &str) -> PathBuf {
    dir.join(format!(".silo/{service}/{}.sqlite3", prefix.name(service)))
}

fn checks(doc: &Value) -> Vec<(String, String, Option<String>)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["service"].as_str().unwrap().to_string(),
                f["other_service"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn clean_postgres_project_exits_zero_with_a_full_matrix() {
    let server = TempServer::start();
    let prefix = Prefix::new();
    let dir = project_on(&server, &prefix);
    let doc = json(silo_on(&server, dir.path()).args(["audit", "--format", "json"]));
    assert_eq!(doc["findings"], serde_json::json!([]), "{doc:#}");
    let mut cells: Vec<(String, String, String)> = doc["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["role_service"].as_str().unwrap().into(),
                c["store_service"].as_str().unwrap().into(),
                c["access"].as_str().unwrap().into(),
            )
        })
        .collect();
    cells.sort();
    let cell = |r: &str, s: &str, a: &str| (r.to_string(), s.to_string(), a.to_string());
    assert_eq!(
        cells,
        [
            cell("billing", "billing", "own"),
            cell("billing", "orders", "denied"),
            cell("orders", "billing", "denied"),
            cell("orders", "orders", "own"),
        ]
    );
    silo_on(&server, dir.path())
        .arg("audit")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("own ✓").and(predicate::str::contains("denied ·")));
}

#[test]
fn a_planted_hole_exits_one_and_names_both_services() {
    let server = TempServer::start();
    let prefix = Prefix::new();
    let dir = project_on(&server, &prefix);
    let grant = format!(
        "GRANT CONNECT ON DATABASE \"{}\" TO \"{}\"",
        prefix.name("billing"),
        prefix.name("orders_svc")
    );
    // The password goes through the environment, not psql's command line.
    let status = std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
        .args(["-p", &server.port.to_string(), "-qc", &grant])
        .env("PGPASSWORD", &server.password)
        .status()
        .unwrap();
    assert!(status.success());
    let out = silo_on(&server, dir.path())
        .args(["audit", "--live-only", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        checks(&doc).contains(&(
            "cross-access".into(),
            "orders".into(),
            Some("billing".into())
        )),
        "{doc:#}"
    );
    let open = doc["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role_service"] == "orders" && c["store_service"] == "billing")
        .unwrap();
    assert_eq!(open["access"], "open");
    let finding = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "cross-access")
        .unwrap();
    assert!(
        finding["remediation"]
            .as_str()
            .unwrap()
            .contains("REVOKE ALL ON DATABASE")
    );

    // --fix without --yes and without a terminal changes nothing.
    silo_on(&server, dir.path())
        .args(["audit", "--live-only", "--fix"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--yes"));
    silo_on(&server, dir.path())
        .args(["audit", "--live-only"])
        .assert()
        .code(1);
    silo_on(&server, dir.path())
        .args(["audit", "--live-only", "--fix", "--yes", "--format", "json"])
        .assert()
        .code(0);
    silo_on(&server, dir.path())
        .args(["audit", "--live-only"])
        .assert()
        .code(0);
}

#[test]
fn sqlite_store_modes_and_links() {
    let prefix = Prefix::new();
    let dir = project("sqlite", &prefix);
    silo(dir.path()).arg("audit").assert().code(0);

    let orders = sqlite_file(dir.path(), &prefix, "orders");
    std::fs::set_permissions(&orders, std::fs::Permissions::from_mode(0o644)).unwrap();
    let doc = json(silo(dir.path()).args(["audit", "--format", "json"]));
    assert_eq!(
        checks(&doc),
        [("store-files".into(), "orders".into(), None)]
    );
    silo(dir.path())
        .args(["audit", "--fix", "--yes"])
        .assert()
        .code(0);
    let mode = std::fs::metadata(&orders).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // billing's store replaced by a hard link to orders' file.
    let billing = sqlite_file(dir.path(), &prefix, "billing");
    std::fs::remove_file(&billing).unwrap();
    std::fs::hard_link(&orders, &billing).unwrap();
    let doc = json(silo(dir.path()).args(["audit", "--format", "json"]));
    let found = checks(&doc);
    assert!(
        found.contains(&(
            "store-files".into(),
            "billing".into(),
            Some("orders".into())
        )),
        "{doc:#}"
    );
    assert!(found.iter().all(|(c, _, _)| c == "store-files"));

    // ... and by a symlink to it.
    std::fs::remove_file(&billing).unwrap();
    std::os::unix::fs::symlink(&orders, &billing).unwrap();
    let doc = json(silo(dir.path()).args(["audit", "--format", "json"]));
    assert_eq!(
        checks(&doc),
        [(
            "store-files".into(),
            "billing".into(),
            Some("orders".into())
        )],
        "{doc:#}"
    );
}

#[test]
fn code_only_needs_no_server() {
    let prefix = Prefix::new();
    let dir = manifest("postgres", &prefix);
    let src = dir.path().join("services/orders");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join(".env"),
        format!("PGDATABASE={}\n", prefix.name("billing")),
    )
    .unwrap();
    let doc = json(
        silo(dir.path())
            .env("SILO_PG_ADMIN_URL", UNREACHABLE)
            .args(["audit", "--code-only", "--format", "json"]),
    );
    assert_eq!(
        checks(&doc),
        [(
            "code-cross-reference".into(),
            "orders".into(),
            Some("billing".into())
        )]
    );
    assert_eq!(doc["findings"][0]["file"], "services/orders/.env");
    assert_eq!(doc["findings"][0]["line"], 1);
}

#[test]
fn unreachable_server_exits_two_and_says_why() {
    let prefix = Prefix::new();
    let dir = manifest("postgres", &prefix);
    silo(dir.path())
        .env("SILO_PG_ADMIN_URL", UNREACHABLE)
        .arg("audit")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("cannot reach PostgreSQL")
                .and(predicate::str::contains("--code-only")),
        );
}

#[test]
fn explain_prints_a_check_page() {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["audit", "--explain", "cross-access"])
        .assert()
        .success()
        .stdout(predicate::str::contains("# cross-access").and(predicate::str::contains("REVOKE")));
    silo(dir.path())
        .args(["audit", "--explain"])
        .assert()
        .success()
        .stdout(predicate::str::contains("hba-rules"));
    silo(dir.path())
        .args(["audit", "--explain", "no-such-check"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown check"));
}

#[test]
fn an_admin_without_superuser_exits_two_and_says_why() {
    let prefix = Prefix::new();
    let dir = project("postgres", &prefix);
    let weak = prefix.name("weak_admin");
    let admin = silo_testkit::admin_url();
    let psql = |sql: &str| {
        let status = std::process::Command::new("psql")
            .args([admin.as_str(), "-qc", sql])
            .status()
            .unwrap();
        assert!(status.success(), "{sql}");
    };
    psql(&format!("CREATE ROLE \"{weak}\" LOGIN CREATEDB CREATEROLE"));
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_username(&weak).unwrap();
    let assert = silo(dir.path())
        .env("SILO_PG_ADMIN_URL", url.as_str())
        .args(["audit", "--live-only"])
        .assert();
    psql(&format!("DROP ROLE \"{weak}\""));
    assert.code(2).stderr(
        predicate::str::contains("missing admin privilege")
            .and(predicate::str::contains("superuser")),
    );
}

#[test]
fn json_is_an_alias_of_format_json() {
    let prefix = Prefix::new();
    let dir = manifest("postgres", &prefix);
    let run = |args: &[&str]| {
        let mut c = silo(dir.path());
        c.env("SILO_PG_ADMIN_URL", UNREACHABLE)
            .args(["audit", "--code-only"])
            .args(args);
        c
    };
    let a = json(&mut run(&["--json"]));
    let b = json(&mut run(&["--format", "json"]));
    assert_eq!(a, b);
    assert!(a["findings"].is_array(), "{a:#}");
    run(&["--json", "--format", "github"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--json asks for JSON but --format asks for github",
        ));
}
