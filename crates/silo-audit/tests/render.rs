//! The audit's output formats, as snapshots of a hand-built report: the
//! human matrix and findings, the JSON document, SARIF 2.1.0 and GitHub
//! annotations. Nothing here depends on the machine: no server, no paths
//! outside the project, the version redacted.

use std::path::{Path, PathBuf};

use silo_audit::{
    Access, Cell, Check, Finding, Fix, Position, Report, Skipped, SkippedPath, render,
};

/// A report with an open cell, one finding of each kind of place (a live
/// store, a role with no store, a place in the source, a file on disk), a
/// warning, a fixable and an unfixable finding, a skipped check and a path
/// not read.
fn report() -> Report {
    let cell = |role: &str, store: &str, access| Cell {
        role_service: role.into(),
        store_service: store.into(),
        access,
    };
    let mut report = Report {
        matrix: vec![
            cell("orders", "orders", Access::Own),
            cell("orders", "billing", Access::Open),
            cell("billing", "orders", Access::Denied),
            cell("billing", "billing", Access::Own),
        ],
        findings: vec![
            Finding::new(
                Check::CrossAccess,
                "orders",
                "`orders_svc` can connect to `billing`, the store of `billing`: `orders_svc` was \
                 granted CONNECT on `billing`",
                "REVOKE ALL ON DATABASE billing FROM orders_svc;",
            )
            .other(Some("billing"))
            .store("billing")
            .fix(Fix::sql(
                &silo_store::ServerId::SHARED,
                None,
                vec!["REVOKE ALL ON DATABASE billing FROM orders_svc;".into()],
            )),
            Finding::new(
                Check::RoleAttributes,
                "billing",
                "role `billing_svc` has CREATEDB",
                "ALTER ROLE billing_svc NOCREATEDB;",
            ),
            Finding::new(
                Check::HbaRules,
                "orders",
                "pg_hba.conf line 7 (`host all all 127.0.0.1/32 md5`) on 127.0.0.1:5432 lets \
                 `orders_svc` log in to `orders` with an MD5 password",
                "above line 7 of pg_hba.conf write `host orders orders_svc 127.0.0.1/32 \
                 scram-sha-256`, then reload the server: SELECT pg_reload_conf();",
            )
            .store("orders")
            .warning(),
            Finding::new(
                Check::CodeSecret,
                "billing",
                "a literal password under `DB_PASSWORD`\nin source",
                "read it from the environment (`BILLING_DB_PASSWORD`); 100% of secrets belong \
                 in .silo/secrets",
            )
            .at(Position {
                file: PathBuf::from("services/billing/config dev.env"),
                line: 3,
                column: 13,
            }),
        ],
        skipped: vec![Skipped {
            check: Check::HbaRules,
            reason: "cannot read pg_hba_file_rules on 127.0.0.1:5432: permission denied".into(),
        }],
        skipped_paths: vec![SkippedPath {
            service: "orders".into(),
            path: PathBuf::from("services/orders/pipe"),
            reason: "not a regular file (a FIFO, socket or device)".into(),
        }],
        probes: 6,
    };
    report.sort();
    report
}

#[test]
fn human() {
    insta::assert_snapshot!(render::human(&report(), false));
}

#[test]
fn human_in_colour_paints_the_labels() {
    let text = render::human(&report(), true);
    assert!(
        text.contains("\x1b[1;31merror\x1b[0m[cross-access]"),
        "{text}"
    );
    assert!(
        text.contains("\x1b[1;33mwarning\x1b[0m[hba-rules]"),
        "{text}"
    );
    assert!(text.contains("\x1b[1;31mOPEN ✗  \x1b[0m"), "{text}");
}

#[test]
fn clean_human() {
    let clean = Report {
        probes: 4,
        ..Report::default()
    };
    insta::assert_snapshot!(render::human(&clean, false), @"clean: no findings (4 connection probes)");
}

/// No findings, but a path not read: the verdict says so and never
/// "clean".
#[test]
fn no_findings_with_a_path_not_read_is_not_clean() {
    let report = Report {
        skipped_paths: vec![SkippedPath {
            service: "billing".into(),
            path: PathBuf::from("services/billing/migrations"),
            reason: "does not exist".into(),
        }],
        probes: 4,
        ..Report::default()
    };
    insta::assert_snapshot!(render::human(&report, false), @r"
    1 path(s) not read:
      services/billing/migrations: does not exist
    no findings in what was read; 1 path(s) not read (4 connection probes)
    ");
}

#[test]
fn json() {
    insta::assert_json_snapshot!(render::json(&report()));
}

#[test]
fn github() {
    insta::assert_snapshot!(render::github(&report()));
}

#[test]
fn sarif() {
    let mut sarif = render::sarif(&report(), Path::new("silo.toml"));
    let run = &mut sarif["runs"][0];
    // Each reported check carries its whole page as help; check it, then
    // keep the snapshot to the structure.
    for rule in run["tool"]["driver"]["rules"].as_array_mut().unwrap() {
        let id = rule["id"].as_str().unwrap().to_string();
        assert_eq!(
            rule["help"]["markdown"].as_str(),
            silo_audit::docs::PAGES.page(&id),
            "{id}"
        );
        rule["help"] = serde_json::json!("<docs/audit page>");
    }
    // Every result points at the check it names.
    let rules = run["tool"]["driver"]["rules"].clone();
    for result in run["results"].as_array().unwrap() {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
    }
    assert_eq!(run["tool"]["driver"]["version"], env!("CARGO_PKG_VERSION"));
    run["tool"]["driver"]["version"] = serde_json::json!("<version>");
    insta::assert_json_snapshot!(sarif);
}
