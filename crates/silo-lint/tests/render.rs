//! The output formats, as snapshots: rustc-style text, the JSON document,
//! SARIF 2.1.0 and GitHub annotations.

use silo_lint::{Options, Report, lint, load, render};
use silo_manifest::{Manifest, Overrides};

/// A project with one finding of each severity and a multi-digit line.
fn project() -> (tempfile::TempDir, Manifest) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        "[project]\nname = \"shop\"\n[defaults]\nengine = \"postgres\"\n\
         [services.orders]\n[services.billing]\n\
         [lint.rules]\nprefer-text-field = \"info\"\n",
    )
    .unwrap();
    let write = |service: &str, name: &str, sql: &str| {
        let folder = dir.path().join(format!("services/{service}/migrations"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(name), sql).unwrap();
    };
    write(
        "billing",
        "V1__invoices.sql",
        "-- silo:irreversible first schema\nCREATE TABLE invoices (id bigint PRIMARY KEY);\n",
    );
    write(
        "orders",
        "V1__orders.sql",
        "-- silo:irreversible first schema\n\n\n\n\n\n\n\n\n\
         CREATE TABLE orders (\n  id bigint PRIMARY KEY,\n  note varchar(200),\n  \
         invoice_id bigint REFERENCES invoices (id)\n);\n\
         CREATE INDEX idx_orders_invoice_id ON orders (invoice_id);\n",
    );
    let manifest = Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    (dir, manifest)
}

fn report(manifest: &Manifest) -> (Report, Vec<silo_lint::source::SourceFile>) {
    let loaded = load(manifest).unwrap();
    (lint(manifest, &loaded, &Options::default()), loaded.files)
}

#[test]
fn human() {
    let (_dir, m) = project();
    let (report, files) = report(&m);
    insta::assert_snapshot!(render::human(&report, &files));
}

#[test]
fn json() {
    let (_dir, m) = project();
    let (report, _) = report(&m);
    insta::assert_json_snapshot!(render::json(&report));
}

#[test]
fn github() {
    let (_dir, m) = project();
    let (report, _) = report(&m);
    insta::assert_snapshot!(render::github(&report));
}

#[test]
fn sarif() {
    let (_dir, m) = project();
    let (report, files) = report(&m);
    let mut sarif = render::sarif(&report, &files);
    // Each rule carries its whole page as help; check it, then keep the
    // snapshot to the structure.
    let run = &mut sarif["runs"][0];
    for rule in run["tool"]["driver"]["rules"].as_array_mut().unwrap() {
        let id = rule["id"].as_str().unwrap().to_string();
        assert_eq!(
            rule["help"]["markdown"].as_str(),
            silo_lint::docs::PAGES.page(&id),
            "{id}"
        );
        rule["help"] = serde_json::json!("<docs/rules page>");
    }
    // Every result points at the rule it names.
    let rules = run["tool"]["driver"]["rules"].clone();
    for result in run["results"].as_array().unwrap() {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
    }
    run["tool"]["driver"]["version"] = serde_json::json!("<version>");
    insta::assert_json_snapshot!(sarif);
}
