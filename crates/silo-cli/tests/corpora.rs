//! `silo migrations import` and `silo migrate` over a real application's
//! migration history. Run by `make test-corpora` (the corpora live beside
//! the checkout, in `../shared/corpora`, or where `SILO_CORPORA` says); a
//! missing corpus fails the run.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::{json, orders_project, silo};
use silo_testkit::Prefix;

/// The corpora folder.
fn corpora() -> PathBuf {
    std::env::var_os("SILO_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"))
}

/// Lemmy's diesel migrations import unchanged and run, statement splitting
/// and all, until PostgreSQL 15 meets syntax only newer servers know: the
/// stop is the server's own syntax error in one known late file, not a
/// splitting mistake in an early one.
#[test]
#[ignore = "needs the corpora: run by `make test-corpora`"]
fn lemmy_imports_and_runs_until_the_server_stops_it() {
    let source = corpora().join("lemmy-migrations");
    assert!(
        source.is_dir(),
        "corpus not found at {}; put the corpora beside the checkout or set SILO_CORPORA",
        source.display()
    );
    let prefix = Prefix::new();
    let (dir, migrations) = orders_project("postgres", &prefix);
    let imported = json(silo(dir.path()).args([
        "migrations",
        "import",
        "--from",
        "diesel",
        source.to_str().unwrap(),
        "--service",
        "orders",
        "--json",
    ]));
    let written = imported["written"].as_array().unwrap().len();
    let folders = std::fs::read_dir(&source).unwrap().count();
    assert_eq!(folders, 342, "the corpus has changed");
    assert_eq!(written, folders * 2, "an up and a down file per folder");
    // Content is kept byte for byte.
    let first = std::fs::read(source.join("00000000000000_diesel_initial_setup/up.sql")).unwrap();
    assert_eq!(
        std::fs::read(migrations.join("V00000000000000__diesel_initial_setup.sql")).unwrap(),
        first
    );

    let out = silo(dir.path())
        .args(["migrate", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let applied = doc["services"][0]["applied"].as_array().unwrap().len();
    assert_eq!(applied, 247, "files applied before PostgreSQL 15 stops");
    let error = doc["services"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("V2025_08_01_000016__smoosh_tables_together.sql:13:6:"),
        "{error}"
    );
    assert!(error.contains("(code 42601)"), "{error}");

    let info = json(silo(dir.path()).args(["info", "--json"]));
    let states: Vec<&str> = info["services"][0]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert!(states[..applied].iter().all(|s| *s == "applied"));
    assert!(states[applied..].iter().all(|s| *s == "pending"));
}
