//! `silo lint` through the binary: examples lint clean, exit codes,
//! settings in silo.toml, file selection, silo.sum and --explain.

mod common;

use std::path::Path;

use common::{json, silo};
use predicates::prelude::*;

fn init(example: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    silo(dir.path())
        .args(["init", "--example", example, "--dir", "."])
        .assert()
        .success();
    dir
}

/// A two-service PostgreSQL project with `[lint]` settings `extra`.
fn project(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        format!(
            "[project]\nname = \"shop\"\n[defaults]\nengine = \"postgres\"\n\
             [services.orders]\n[services.billing]\n{extra}"
        ),
    )
    .unwrap();
    for s in ["orders", "billing"] {
        std::fs::create_dir_all(dir.path().join(format!("services/{s}/migrations"))).unwrap();
    }
    dir
}

fn write(dir: &Path, service: &str, name: &str, sql: &str) {
    std::fs::write(
        dir.join(format!("services/{service}/migrations/{name}")),
        sql,
    )
    .unwrap();
}

fn rules(doc: &serde_json::Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["rule"].as_str().unwrap(),
                f["file"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn examples_lint_clean_on_every_engine_they_support() {
    for (example, engines) in [
        ("battlescope", &["sqlite", "postgres"][..]),
        ("orion", &["sqlite", "postgres"]),
        ("capsule", &["postgres"]),
    ] {
        let dir = init(example);
        for engine in engines {
            let doc = json(silo(dir.path()).args(["--engine", engine, "lint", "--format", "json"]));
            assert_eq!(rules(&doc), Vec::<String>::new(), "{example} on {engine}");
            assert!(
                doc["summary"]["files"].as_u64().unwrap() > 5,
                "{example}: {doc}"
            );
        }
    }
}

#[test]
fn errors_exit_1_and_warnings_exit_0() {
    let dir = project("");
    let d = dir.path();
    write(
        d,
        "billing",
        "V1__invoices.sql",
        "-- silo:irreversible first\nCREATE TABLE invoices (id bigint PRIMARY KEY);",
    );
    write(
        d,
        "orders",
        "V1__orders.sql",
        "-- silo:irreversible first\nCREATE TABLE orders (id bigint PRIMARY KEY, n varchar(5));",
    );
    silo(d)
        .arg("lint")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("warning[prefer-text-field]"));
    write(
        d,
        "orders",
        "V2__fk.sql",
        "-- silo:irreversible x\nALTER TABLE orders ADD COLUMN invoice_id bigint REFERENCES invoices (id);",
    );
    silo(d)
        .arg("lint")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("error[cross-service-reference]"))
        .stdout(predicate::str::contains(
            "--> services/orders/migrations/V2__fk.sql:2:",
        ));
    silo(d)
        .args(["lint", "--rule", "no-such-rule"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown rule `no-such-rule`"));
}

#[test]
fn silo_toml_sets_levels_per_project_and_per_service() {
    let dir = project(
        "[lint.rules]\nprefer-text-field = \"error\"\n\
         [services.billing.lint.rules]\nprefer-text-field = \"off\"\n",
    );
    let d = dir.path();
    let sql = "-- silo:irreversible first\nCREATE TABLE {t} (id bigint PRIMARY KEY, n varchar(5));";
    write(d, "orders", "V1__a.sql", &sql.replace("{t}", "orders"));
    write(d, "billing", "V1__a.sql", &sql.replace("{t}", "invoices"));
    let doc = json(silo(d).args(["lint", "--format", "json"]));
    assert_eq!(
        rules(&doc),
        ["prefer-text-field:services/orders/migrations/V1__a.sql"]
    );
    assert_eq!(doc["findings"][0]["severity"], "error");
    // A flag beats the file: --rule turns the rule back on for billing.
    let doc = json(silo(d).args(["lint", "--format", "json", "--rule", "prefer-text-field"]));
    assert_eq!(doc["findings"].as_array().unwrap().len(), 2);

    std::fs::write(
        d.join("silo.toml"),
        "[project]\nname = \"shop\"\n[services.orders]\n[lint.rules]\nno-such-rule = \"off\"\n",
    )
    .unwrap();
    silo(d)
        .arg("lint")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "silo.toml:5:1: unknown lint rule `no-such-rule`",
        ));
}

#[test]
fn paths_and_changed_since_narrow_the_report() {
    let dir = project("");
    let d = dir.path();
    let bad = "-- silo:irreversible x\nCREATE TABLE {t} (id int PRIMARY KEY);";
    write(d, "orders", "V1__a.sql", &bad.replace("{t}", "orders"));
    write(d, "billing", "V1__a.sql", &bad.replace("{t}", "invoices"));
    let doc = json(silo(d).args(["lint", "--format", "json", "services/billing"]));
    assert_eq!(
        rules(&doc),
        ["prefer-bigint-over-int:services/billing/migrations/V1__a.sql"]
    );
    silo(d)
        .args(["lint", "services/nowhere"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("holds no migration file"));

    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .current_dir(d)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "base"]);
    let doc = json(silo(d).args(["lint", "--format", "json", "--changed-since", "HEAD"]));
    assert_eq!(rules(&doc), Vec::<String>::new());
    write(d, "orders", "V2__b.sql", &bad.replace("{t}", "carts"));
    let doc = json(silo(d).args(["lint", "--format", "json", "--changed-since", "HEAD"]));
    assert_eq!(
        rules(&doc),
        ["prefer-bigint-over-int:services/orders/migrations/V2__b.sql"]
    );
    silo(d)
        .args(["lint", "--changed-since", "no-such-ref"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("git diff"));
}

#[test]
fn update_sum_records_files_and_an_edit_fails_the_lint() {
    let dir = project("");
    let d = dir.path();
    write(
        d,
        "orders",
        "V1__a.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY);",
    );
    write(d, "orders", "U1__a.sql", "DROP TABLE orders;");
    silo(d)
        .args(["lint", "--update-sum"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "updated services/orders/migrations/silo.sum",
        ));
    assert!(d.join("services/orders/migrations/silo.sum").is_file());
    write(
        d,
        "orders",
        "V1__a.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY, n text);",
    );
    silo(d)
        .arg("lint")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "error[applied-migration-modified]",
        ));
    // `silo new` records the files before it and adds its own.
    write(
        d,
        "orders",
        "V1__a.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY);",
    );
    silo(d)
        .args(["new", "orders", "add notes"])
        .assert()
        .success();
    let sum = std::fs::read_to_string(d.join("services/orders/migrations/silo.sum")).unwrap();
    assert!(
        sum.contains("V1__a.sql h1:") && sum.contains("U1__a.sql h1:"),
        "{sum}"
    );
}

#[test]
fn explain_prints_every_rules_page() {
    let dir = tempfile::tempdir().unwrap();
    let list = silo(dir.path())
        .args(["lint", "--explain"])
        .output()
        .unwrap();
    assert!(list.status.success());
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 35, "{ids:?}");
    for id in &ids {
        silo(dir.path())
            .args(["lint", "--explain", id])
            .assert()
            .success()
            .stdout(predicate::str::starts_with(format!("# {id}\n")))
            .stdout(predicate::str::contains("## Bad"))
            .stdout(predicate::str::contains("## Good"));
    }
    silo(dir.path())
        .args(["lint", "--explain", "nope"])
        .assert()
        .code(2);
}

/// `--json` works on lint as on every other command; a different
/// `--format` beside it is a usage error.
#[test]
fn json_is_an_alias_of_format_json() {
    let dir = project("");
    write(
        dir.path(),
        "orders",
        "V1__t.sql",
        "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n",
    );
    let a = json(silo(dir.path()).args(["lint", "--json"]));
    let b = json(silo(dir.path()).args(["lint", "--format", "json"]));
    assert_eq!(a, b);
    assert!(a["summary"].is_object(), "{a:#}");
    silo(dir.path())
        .args(["lint", "--json", "--format", "json"])
        .assert()
        .success();
    silo(dir.path())
        .args(["lint", "--json", "--format", "sarif"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--json asks for JSON but --format asks for sarif",
        ));
}
