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
        ("dnd", &["sqlite", "postgres"]),
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

/// Capsule keeps seed 004's Flyway files as Flyway applied them (SERIAL,
/// VARCHAR, no timeouts), so it is not clean: these are exactly its
/// findings. Its silo.toml lowers the style rules every Flyway file breaks
/// to info, so the warnings left are the ones worth a new migration; none
/// is an error, and auth-service/V003's `-- silo:ignore` lines silence what
/// they name.
#[test]
fn capsule_lints_with_the_findings_its_flyway_files_carry() {
    let dir = init("capsule");
    let out = silo(dir.path())
        .args(["lint", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "warnings and infos exit 0");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = doc["findings"].as_array().unwrap();
    let of = |severity: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|f| f["severity"] == severity)
            .map(|f| {
                format!(
                    "{} {}:{}",
                    f["rule"].as_str().unwrap(),
                    f["file"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("infrastructure/migrations/"),
                    f["line"]
                )
            })
            .collect()
    };
    assert_eq!(of("error"), Vec::<String>::new());
    assert_eq!(
        of("warning"),
        [
            "require-timeout-settings auth-service/V002__add_user_preferences.sql:5",
            "unindexed-reference deploy-service/V001__create_deployments_table.sql:10",
            "require-timeout-settings deploy-service/V002__add_deployment_logs.sql:5",
            "unindexed-reference project-service/V001__create_projects_table.sql:6",
            "require-timeout-settings project-service/V002__add_project_settings.sql:5",
        ]
    );
    let infos = of("info");
    let count = |rule: &str| {
        infos
            .iter()
            .filter(|i| i.starts_with(&format!("{rule} ")))
            .count()
    };
    assert_eq!(
        (
            count("prefer-text-field"),
            count("prefer-bigint-over-int"),
            count("prefer-identity"),
            count("index-name")
        ),
        (19, 12, 6, 1)
    );
    assert_eq!(infos.len(), 38, "{infos:#?}");
    // The seed's own files are there, as Flyway applied them.
    assert!(
        infos.contains(&"prefer-identity auth-service/V001__create_users_table.sql:6".to_string())
    );
    assert!(infos.contains(&"index-name auth-service/V001__create_users_table.sql:19".to_string()));
    // V003's ignore comment names prefer-identity and prefer-bigint-over-int
    // for its CREATE TABLE: neither is reported there.
    assert!(
        !infos
            .iter()
            .any(|i| i.contains("V003__add_user_profiles.sql")
                && (i.starts_with("prefer-identity") || i.starts_with("prefer-bigint"))),
        "{infos:#?}"
    );
    // Without the [lint] levels, the same files are all warnings.
    let toml = dir.path().join("silo.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let start = text.find("[lint.rules]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    std::fs::write(&toml, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let doc = json(silo(dir.path()).args(["lint", "--format", "json"]));
    assert_eq!(doc["summary"]["infos"], 0);
    assert_eq!(doc["summary"]["warnings"], 43);
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
        .stderr(predicate::str::contains(
            "`services/nowhere` does not exist",
        ));
    std::fs::create_dir_all(d.join("docs")).unwrap();
    silo(d)
        .args(["lint", "docs"])
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

/// lint fails closed: a folder it cannot find is a usage error, a file it
/// cannot parse or that silo would never run is a finding, and whatever it
/// did not read is listed; none of them makes a clean, exit-0 run.
#[test]
fn lint_fails_closed() {
    let dir = project("");
    let d = dir.path();
    let ok = "-- silo:irreversible first\nCREATE TABLE {t} (id bigint PRIMARY KEY);";
    write(d, "orders", "V1__a.sql", &ok.replace("{t}", "orders"));
    write(d, "billing", "V1__a.sql", &ok.replace("{t}", "invoices"));
    silo(d).arg("lint").assert().code(0);

    // Not UTF-8: a finding on that file; the others are still linted.
    std::fs::write(
        d.join("services/orders/migrations/V2__blob.sql"),
        b"\x89PNG\r\n\x1a\n\0\0",
    )
    .unwrap();
    write(
        d,
        "billing",
        "V2__b.sql",
        "CREATE TABLE carts (id int PRIMARY KEY);",
    );
    let doc = json(silo(d).args(["lint", "--format", "json"]));
    assert_eq!(
        rules(&doc),
        [
            "missing-undo:services/billing/migrations/V2__b.sql",
            "prefer-bigint-over-int:services/billing/migrations/V2__b.sql",
            "missing-undo:services/orders/migrations/V2__blob.sql",
            "parse-error:services/orders/migrations/V2__blob.sql",
        ]
    );
    silo(d).arg("lint").assert().code(1);
    std::fs::remove_file(d.join("services/orders/migrations/V2__blob.sql")).unwrap();
    std::fs::remove_file(d.join("services/billing/migrations/V2__b.sql")).unwrap();

    // Named like migrations, never run by silo: findings, exit 1.
    write(d, "orders", "V8__x.SQL", "SELECT 1;");
    std::fs::create_dir(d.join("services/orders/migrations/V9__dir.sql")).unwrap();
    write(d, "orders", "U7__gone.sql", "SELECT 1;");
    let doc = json(silo(d).args(["lint", "--format", "json"]));
    assert_eq!(
        rules(&doc),
        [
            "undo-without-version:services/orders/migrations/U7__gone.sql",
            "migration-file-name:services/orders/migrations/V8__x.SQL",
            "migration-file-name:services/orders/migrations/V9__dir.sql",
        ]
    );
    silo(d).arg("lint").assert().code(1);
    std::fs::remove_file(d.join("services/orders/migrations/V8__x.SQL")).unwrap();
    std::fs::remove_dir(d.join("services/orders/migrations/V9__dir.sql")).unwrap();
    std::fs::remove_file(d.join("services/orders/migrations/U7__gone.sql")).unwrap();

    // What was not read is counted and listed, in every format.
    write(d, "orders", "notes.txt", "not SQL");
    silo(d)
        .arg("lint")
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "1 path(s) skipped, not linted:\n  services/orders/migrations/notes.txt: not a .sql file",
        ));
    let doc = json(silo(d).args(["lint", "--format", "json"]));
    assert_eq!(doc["summary"]["skipped"], 1);
    assert_eq!(
        doc["summary"]["skipped_paths"][0]["path"],
        "services/orders/migrations/notes.txt"
    );
    silo(d)
        .args(["lint", "--format", "github"])
        .assert()
        .stdout(predicate::str::contains(
            "::notice file=services/orders/migrations/notes.txt,title=silo lint skipped this path::not a .sql file",
        ));
    let sarif = json(silo(d).args(["lint", "--format", "sarif"]));
    let notes = &sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"];
    assert_eq!(notes.as_array().unwrap().len(), 1, "{sarif}");

    // A migrations folder that does not exist: exit 2, naming it.
    std::fs::remove_dir_all(d.join("services/billing/migrations")).unwrap();
    silo(d)
        .arg("lint")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the migrations folder of service `billing`, services/billing/migrations,",
        ))
        .stderr(predicate::str::contains("does not exist"))
        .stderr(predicate::str::contains("silo new billing"));
}

/// `silo migrate` refuses BEGIN/COMMIT/ROLLBACK in a file on every engine;
/// lint says so as an error on both.
#[test]
fn transaction_control_is_an_error_on_both_engines() {
    for engine in ["postgres", "sqlite"] {
        let dir = project("");
        let d = dir.path();
        write(
            d,
            "orders",
            "V1__a.sql",
            "-- silo:irreversible first\nCREATE TABLE orders (id bigint PRIMARY KEY);\nCOMMIT;",
        );
        silo(d)
            .args(["--engine", engine, "lint"])
            .assert()
            .code(1)
            .stdout(predicate::str::contains(
                "error[transaction-nesting]: COMMIT inside a migration",
            ))
            .stdout(predicate::str::contains(
                "--> services/orders/migrations/V1__a.sql:3:1",
            ));
    }
}

/// A file that ends inside a comment is a parse error where it opens, on
/// both engines.
#[test]
fn an_unterminated_comment_is_a_parse_error() {
    for engine in ["postgres", "sqlite"] {
        let dir = project("");
        let d = dir.path();
        write(
            d,
            "orders",
            "V1__a.sql",
            "-- silo:irreversible first\nCREATE TABLE orders (id bigint PRIMARY KEY);\n/* CREATE TABLE carts (id bigint PRIMARY KEY);\n",
        );
        silo(d)
            .args(["--engine", engine, "lint"])
            .assert()
            .code(1)
            .stdout(predicate::str::contains(
                "error[parse-error]: unterminated `/*` comment",
            ))
            .stdout(predicate::str::contains(
                "--> services/orders/migrations/V1__a.sql:3:1",
            ));
    }
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

/// A FIFO or a link loop among the migrations is a finding on that file:
/// lint neither waits forever for a writer nor stops the run, and `silo
/// new` refuses instead of hanging.
#[test]
fn unreadable_files_are_findings_not_hangs() {
    let dir = project("");
    let d = dir.path();
    let ok = "-- silo:irreversible first\nCREATE TABLE orders (id bigint PRIMARY KEY);";
    write(d, "orders", "V1__a.sql", ok);
    let migrations = d.join("services/orders/migrations");
    let fifo = std::process::Command::new("mkfifo")
        .arg(migrations.join("V2__fifo.sql"))
        .status()
        .unwrap();
    assert!(fifo.success());
    std::os::unix::fs::symlink("V3__loop.sql", migrations.join("V3__loop.sql")).unwrap();
    let out = silo(d)
        .args(["lint", "--format", "json"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parse_errors: Vec<String> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "parse-error")
        .map(|f| format!("{} {}", f["file"], f["message"]))
        .collect();
    assert_eq!(parse_errors.len(), 2, "{parse_errors:?}");
    assert!(
        parse_errors[0].contains("V2__fifo.sql") && parse_errors[0].contains("not a regular file")
    );
    assert!(parse_errors[1].contains("V3__loop.sql") && parse_errors[1].contains("cannot read"));
    silo(d)
        .args(["new", "orders", "next"])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(1);
}

/// The events rules through the binary: a finding at silo.toml's entry, one
/// at the contract file's property, exit 1 for the error, and a PATH that
/// names a contract file lints that file alone.
#[test]
fn events_findings_point_at_silo_toml_and_contract_files() {
    let dir = project("");
    let toml = dir.path().join("silo.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        "[services.orders]\n",
        "[services.orders]\npublishes = [\"order.placed\", \"order.paid\"]\n",
    );
    std::fs::write(&toml, text).unwrap();
    let events = dir.path().join("services/orders/events");
    std::fs::create_dir_all(&events).unwrap();
    std::fs::write(
        events.join("order.placed.v1.json"),
        "{\n  \"required\": [\"id\"],\n  \"properties\": {\"id\": {\"type\": \"integer\"}}\n}\n",
    )
    .unwrap();
    std::fs::write(
        events.join("order.placed.v2.json"),
        "{\n  \"required\": [\"id\"],\n  \"properties\": {\"id\": {\"type\": \"string\"}}\n}\n",
    )
    .unwrap();
    let out = silo(dir.path())
        .args(["lint", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(String, String, u64, u64)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["file"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
                f["column"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "breaking-contract-change".to_string(),
                "services/orders/events/order.placed.v2.json".to_string(),
                3,
                25
            ),
            (
                "event-without-contract".to_string(),
                "silo.toml".to_string(),
                6,
                30
            ),
        ]
    );
    assert_eq!(doc["findings"][0]["group"], "events");

    let only = json(silo(dir.path()).args([
        "lint",
        "--format",
        "json",
        "services/orders/events/order.placed.v2.json",
    ]));
    assert_eq!(
        rules(&only),
        ["breaking-contract-change:services/orders/events/order.placed.v2.json"]
    );
    assert_eq!(only["summary"]["files"], 1);

    silo(dir.path())
        .args(["lint", "--explain", "breaking-contract-change"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("# breaking-contract-change\n"));
}
