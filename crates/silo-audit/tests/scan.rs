//! The source scan over a real project tree: true hits in several
//! languages and file kinds, near misses that must stay quiet, `.gitignore`
//! and `[audit] exclude` honoured. Every test compares the whole set of
//! findings, so a false positive fails it as surely as a miss.

use std::collections::BTreeSet;
use std::path::Path;

use silo_audit::{Check, Options, Report};
use silo_manifest::{Manifest, Overrides};
use silo_store::{Stores, StoresConfig};

const MANIFEST: &str = r#"
[project]
name = "shop"

[services.orders]
[services.billing]
[services.users]

[audit]
exclude = ["services/*/tests/fixtures/**"]
"#;

/// A long enough password to be looked for verbatim.
const BILLING_PASSWORD: &str = "Vq3xT9pLm2Wz8sKd";

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn scan(root: &Path) -> Report {
    let manifest = Manifest::load(&root.join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: manifest.data_dir.clone(),
        admin_url: None,
        concurrency: 1,
    });
    let options = Options {
        live: false,
        ..Options::default()
    };
    silo_audit::audit(&manifest, &stores, &options)
        .await
        .unwrap()
}

/// (check, service, other service, file, line) of every finding.
fn places(report: &Report) -> BTreeSet<(String, String, String, String, usize)> {
    report
        .findings
        .iter()
        .map(|f| {
            let location = f.location.position().expect("scan findings have a place");
            (
                f.check.id().to_string(),
                f.service.clone(),
                f.other_service.clone().unwrap_or_default(),
                location.file.display().to_string(),
                location.line,
            )
        })
        .collect()
}

fn expect(
    rows: &[(&str, &str, &str, &str, usize)],
) -> BTreeSet<(String, String, String, String, usize)> {
    rows.iter()
        .map(|(c, s, o, f, l)| {
            (
                c.to_string(),
                s.to_string(),
                o.to_string(),
                f.to_string(),
                *l,
            )
        })
        .collect()
}

#[tokio::test]
async fn hits_and_near_misses_across_languages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "silo.toml", MANIFEST);

    // True hits in the source of `orders`.
    write(
        root,
        "services/orders/app/report.py",
        "import psycopg\n\
         # totals for the billing dashboard\n\
         conn = psycopg.connect(dbname=\"billing\")\n",
    );
    write(
        root,
        "services/orders/cmd/main.go",
        "package main\n\nimport \"os\"\n\nvar pw = os.Getenv(\"BILLING_DB_PASSWORD\")\n",
    );
    write(
        root,
        "services/orders/deploy/k8s.yaml",
        "env:\n  - name: POSTGRES_DB\n    value: users\n  - name: TEAM\n    value: users\n",
    );
    write(
        root,
        "services/orders/Dockerfile",
        "FROM rust:1\nENV PGUSER=billing_svc\n",
    );
    write(
        root,
        "services/orders/src/Sync.java",
        &format!("class Sync {{\n  String key = \"{BILLING_PASSWORD}\";\n}}\n"),
    );
    write(
        root,
        "services/orders/src/db.ts",
        "const pool = new Pool({ connectionString: 'postgres://orders_svc:hunter2hunter2@db/orders' });\n",
    );
    // Near misses: its own names, the word in prose, routes, longer words,
    // a comparison, variables read from the environment, placeholders.
    write(
        root,
        "services/orders/src/lib.rs",
        "// Orders are sent to billing once paid.\n\
         let db = \"orders\";\n\
         let billing_address = form.get(\"billing_address\");\n\
         let url = format!(\"/users/{id}\");\n\
         let billings = 3;\n\
         if database == \"billing\" { return; }\n\
         let password = std::env::var(\"ORDERS_DB_PASSWORD\")?;\n",
    );
    write(
        root,
        "services/orders/config/app.toml",
        "[db]\nuser = \"orders_svc\"\npassword = \"${ORDERS_DB_PASSWORD}\"\nbilling_enabled = true\n",
    );
    write(
        root,
        "services/orders/src/Mailer.kt",
        "val subject = \"Your users account\"\nval oldBilling_svc_v1 = 1\n",
    );

    // A migration that reaches into another service's table.
    write(
        root,
        "services/billing/migrations/V1__create_invoices.sql",
        "CREATE TABLE invoices (id bigint PRIMARY KEY);\n",
    );
    write(
        root,
        "services/orders/migrations/V1__create_orders.sql",
        "CREATE TABLE orders (\n  id bigint PRIMARY KEY,\n  invoice_id bigint REFERENCES invoices (id)\n);\n",
    );

    // billing's secrets, as `silo up` writes them.
    write(
        root,
        ".silo/secrets/billing.env",
        &format!("BILLING_DB_USER=billing_svc\nBILLING_DB_PASSWORD={BILLING_PASSWORD}\n"),
    );

    let report = scan(root).await;
    let cross = "code-cross-reference";
    assert_eq!(
        places(&report),
        expect(&[
            (
                cross,
                "orders",
                "billing",
                "services/orders/app/report.py",
                3
            ),
            (cross, "orders", "billing", "services/orders/cmd/main.go", 5),
            (
                cross,
                "orders",
                "users",
                "services/orders/deploy/k8s.yaml",
                3
            ),
            (cross, "orders", "billing", "services/orders/Dockerfile", 2),
            (
                cross,
                "orders",
                "billing",
                "services/orders/migrations/V1__create_orders.sql",
                3
            ),
            (
                "code-secret",
                "orders",
                "",
                "services/orders/src/Sync.java",
                2
            ),
            ("code-secret", "orders", "", "services/orders/src/db.ts", 1),
        ]),
        "{report:#?}"
    );
    let java = report
        .findings
        .iter()
        .find(|f| f.location.position().unwrap().file.ends_with("Sync.java"))
        .unwrap();
    assert!(
        java.message.contains("password of service `billing`"),
        "{}",
        java.message
    );
    assert!(
        report.findings.iter().all(|f| !f.message.contains(BILLING_PASSWORD)
            && !f.message.contains("hunter2hunter2")),
        "secrets are never repeated in findings"
    );
}

#[tokio::test]
async fn gitignore_and_exclude_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "silo.toml", MANIFEST);
    let hit = "DB_NAME=billing\n";
    write(root, "services/orders/.env", hit);
    write(root, "services/orders/.gitignore", "generated/\n");
    write(root, "services/orders/generated/client.env", hit);
    write(root, "services/orders/tests/fixtures/sample.env", hit);
    write(root, "services/orders/node_modules/.keep", "");
    let report = scan(root).await;
    assert_eq!(
        places(&report),
        expect(&[(
            "code-cross-reference",
            "orders",
            "billing",
            "services/orders/.env",
            1
        )])
    );
}

#[tokio::test]
async fn one_connection_string_in_two_services_is_shared_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "silo.toml", MANIFEST);
    let url = "DATABASE_URL=postgres://app@db.internal:5432/app\n";
    write(root, "services/orders/.env", url);
    write(
        root,
        "services/users/config/.env.production",
        &format!("# shared\n{url}"),
    );
    // The same host with another database is not the same string.
    write(
        root,
        "services/billing/.env",
        "DATABASE_URL=postgres://billing_svc@db.internal:5432/bills\n",
    );
    // A template reads the same everywhere and names no store.
    let template = "DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@${DB_HOST}/${DB_NAME}\n";
    write(root, "services/orders/.env.example", template);
    write(root, "services/billing/.env.example", template);
    let report = scan(root).await;
    assert_eq!(
        places(&report),
        expect(&[
            (
                "shared-credentials",
                "orders",
                "users",
                "services/orders/.env",
                1
            ),
            (
                "shared-credentials",
                "users",
                "orders",
                "services/users/config/.env.production",
                2
            ),
        ]),
        "{report:#?}"
    );
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.check == Check::SharedCredentials)
    );
}

/// A migration's reference into another service is reported with the
/// table's owner as the other service, whatever else its message names:
/// here a table called like a third service, listed before its owner.
#[tokio::test]
async fn migration_findings_name_the_tables_owner() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "silo.toml",
        "[project]\nname = \"shop\"\n[defaults]\nengine = \"postgres\"\n\
         [services.orders]\n[services.shipping]\n[services.billing]\n",
    );
    write(
        root,
        "services/billing/migrations/V1__t.sql",
        "CREATE TABLE shipping (id bigint PRIMARY KEY);\n",
    );
    write(
        root,
        "services/shipping/migrations/V1__t.sql",
        "CREATE TABLE parcels (id bigint PRIMARY KEY);\n",
    );
    write(
        root,
        "services/orders/migrations/V1__t.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY);\nSELECT * FROM shipping;\n",
    );
    let report = scan(root).await;
    assert_eq!(
        places(&report),
        expect(&[(
            "code-cross-reference",
            "orders",
            "billing",
            "services/orders/migrations/V1__t.sql",
            2
        )]),
        "{report:#?}"
    );
    assert_eq!(
        report.findings[0].message,
        "`shipping` belongs to service `billing`; service `orders` must not reference it \
         (cross-service-reference)"
    );
}
