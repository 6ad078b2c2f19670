//! Each rule on a file that fires and on a near miss that must not.

use silo_lint::{Options, Report, RuleId, lint, load};
use silo_manifest::{Manifest, Overrides};

/// A postgres project of `orders` and `billing` with the given files.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("silo.toml"),
            "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n\
             [services.orders]\ndatabase = \"orders_db\"\n[services.billing]\n",
        )
        .unwrap();
        for s in ["orders", "billing"] {
            std::fs::create_dir_all(dir.path().join(format!("services/{s}/migrations"))).unwrap();
        }
        Project { dir }
    }

    fn write(&self, service: &str, name: &str, sql: &str) -> &Self {
        std::fs::write(
            self.dir
                .path()
                .join(format!("services/{service}/migrations/{name}")),
            sql,
        )
        .unwrap();
        self
    }

    fn lint(&self, rule: RuleId) -> Report {
        let m = Manifest::load(&self.dir.path().join("silo.toml"), &Overrides::default()).unwrap();
        let files = load(&m).unwrap();
        lint(
            &m,
            &files,
            &Options {
                rules: vec![rule],
                ..Default::default()
            },
        )
    }

    /// `(file, line, column)` of each finding of `rule`.
    fn hits(&self, rule: &str) -> Vec<(String, usize, usize)> {
        self.lint(RuleId::from_id(rule).expect("a rule id"))
            .findings
            .into_iter()
            .map(|f| (f.file.display().to_string(), f.line, f.column))
            .collect()
    }
}

#[test]
fn cross_service_foreign_key_fires() {
    let p = Project::new();
    p.write("billing", "V1__invoices.sql", "CREATE TABLE invoices (id bigint PRIMARY KEY);")
        .write("billing", "U1__invoices.sql", "DROP TABLE invoices;")
        .write(
            "orders",
            "V1__orders.sql",
            "CREATE TABLE orders (\n  id bigint PRIMARY KEY,\n  invoice_id bigint REFERENCES invoices(id)\n);",
        );
    let report = p.lint(RuleId::CrossServiceReference);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!(f.service, "orders");
    assert_eq!(f.other_service.as_deref(), Some("billing"));
    assert_eq!((f.line, f.column), (3, 32));
    assert!(
        f.message
            .contains("`invoices` belongs to service `billing`"),
        "{}",
        f.message
    );
}

#[test]
fn same_service_foreign_key_is_fine() {
    let p = Project::new();
    p.write(
        "orders",
        "V1__orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY);\n\
         CREATE TABLE order_lines (order_id bigint REFERENCES orders(id));",
    );
    assert!(p.hits("cross-service-reference").is_empty());
}

#[test]
fn name_qualified_with_another_database_fires() {
    let p = Project::new();
    p.write(
        "billing",
        "V1__v.sql",
        "CREATE VIEW late AS SELECT * FROM orders_db.public.orders;",
    );
    let hits = p.hits("cross-service-reference");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].0.ends_with("billing/migrations/V1__v.sql"));
}

#[test]
fn foreign_data_access_fires_and_plain_extensions_do_not() {
    let p = Project::new();
    p.write(
        "orders",
        "V1__fdw.sql",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;\nCREATE EXTENSION postgres_fdw;\n\
         CREATE SERVER billing_srv FOREIGN DATA WRAPPER postgres_fdw;\n\
         SELECT * FROM dblink('dbname=billing', 'select 1') AS t(x int);",
    );
    let lines: Vec<usize> = p.hits("foreign-data-access").iter().map(|h| h.1).collect();
    assert_eq!(lines, [2, 3, 4]);
}

#[test]
fn missing_undo_fires_unless_irreversible_or_present() {
    let p = Project::new();
    p.write("orders", "V1__a.sql", "SELECT 1;")
        .write("orders", "U1__a.sql", "SELECT 1;")
        .write("orders", "V2__b.sql", "SELECT 1;")
        .write(
            "orders",
            "V3__c.sql",
            "-- silo:irreversible drops data that cannot come back\nSELECT 1;",
        )
        .write("orders", "V4__d.sql", "-- silo:irreversible\nSELECT 1;");
    let hits: Vec<String> = p
        .hits("missing-undo")
        .into_iter()
        .map(|h| h.0.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(hits, ["V2__b.sql", "V4__d.sql"], "a reason is required");
}

#[test]
fn migration_file_name_fires_on_bad_names() {
    let p = Project::new();
    p.write("orders", "V1__good_name.sql", "SELECT 1;")
        .write("orders", "V2__Bad-Name.sql", "SELECT 1;")
        .write("orders", "003_diesel_style.sql", "SELECT 1;");
    let hits: Vec<String> = p
        .hits("migration-file-name")
        .into_iter()
        .map(|h| h.0.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(hits, ["003_diesel_style.sql", "V2__Bad-Name.sql"]);
}

#[test]
fn index_on_existing_table_needs_concurrently() {
    let p = Project::new();
    p.write(
        "orders",
        "V1__t.sql",
        "CREATE TABLE t (id bigint, x bigint);\nCREATE INDEX idx_t_x ON t (x);",
    )
    .write(
        "orders",
        "V2__i.sql",
        "CREATE INDEX CONCURRENTLY idx_t_id ON t (id);\n\n-- silo:ignore require-concurrent-index-creation small table\nCREATE INDEX idx_t_a ON t (id);\nCREATE INDEX idx_t_b ON t (x, id);",
    );
    let hits = p.hits("require-concurrent-index-creation");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].0.ends_with("V2__i.sql"));
    assert_eq!((hits[0].1, hits[0].2), (5, 1));
}

#[test]
fn parse_error_is_one_finding_and_linting_goes_on() {
    let p = Project::new();
    p.write("orders", "V1__ok.sql", "CREATE TABLE t (id bigint);")
        .write(
            "orders",
            "V2__broken.sql",
            "SELECT 1;\n\nCREAT TABLE nope (id int);",
        )
        .write(
            "orders",
            "V3__index.sql",
            "CREATE INDEX idx_t_id ON t (id);",
        );
    let m = Manifest::load(&p.dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let files = load(&m).unwrap();
    let report = lint(&m, &files, &Options::default());
    let parse: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == RuleId::ParseError)
        .collect();
    assert_eq!(parse.len(), 1);
    assert_eq!(parse[0].line, 3);
    assert!(
        parse[0].message.contains("syntax error"),
        "{}",
        parse[0].message
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.rule == RuleId::RequireConcurrentIndexCreation)
    );
}

/// `(rule, sql that fires, sql that must not)` for the statement rules.
const CASES: &[(&str, &str, &str)] = &[
    ("ban-drop-table", "DROP TABLE t;", "DROP INDEX idx_t_x;"),
    (
        "ban-drop-column",
        "ALTER TABLE t DROP COLUMN x;",
        "ALTER TABLE t ADD COLUMN y text;",
    ),
    (
        "ban-drop-database",
        "DROP DATABASE other;",
        "DROP TABLE IF EXISTS nothing_here;",
    ),
    (
        "changing-column-type",
        "ALTER TABLE t ALTER COLUMN x TYPE bigint;",
        "ALTER TABLE t ALTER COLUMN x SET DEFAULT 0;",
    ),
    (
        "adding-required-field",
        "ALTER TABLE t ADD COLUMN y text NOT NULL;",
        "ALTER TABLE t ADD COLUMN y text NOT NULL DEFAULT '';",
    ),
    (
        "renaming-column",
        "ALTER TABLE t RENAME COLUMN x TO z;",
        "ALTER TABLE t RENAME CONSTRAINT c TO d;",
    ),
    (
        "renaming-table",
        "ALTER TABLE t RENAME TO u;",
        "ALTER TABLE t RENAME COLUMN x TO z;",
    ),
    (
        "prefer-text-field",
        "CREATE TABLE a (name varchar(255));",
        // A varchar without a length has no length to change.
        "CREATE TABLE a (name text, nick varchar);",
    ),
    (
        "prefer-timestamptz",
        "ALTER TABLE t ADD COLUMN at timestamp;",
        "ALTER TABLE t ADD COLUMN at timestamptz;",
    ),
    (
        "ban-char-field",
        "CREATE TABLE a (code char(2));",
        "CREATE TABLE a (code text);",
    ),
    (
        "prefer-bigint-over-int",
        "CREATE TABLE a (id serial PRIMARY KEY, n integer);",
        "CREATE TABLE a (id bigint GENERATED ALWAYS AS IDENTITY, n bigint);",
    ),
];

#[test]
fn statement_rules_fire_and_spare_near_misses() {
    for (rule, fires, spared) in CASES {
        let p = Project::new();
        p.write("orders", "V1__base.sql", "CREATE TABLE t (x int);")
            .write("orders", "V2__fires.sql", fires)
            .write("orders", "V3__spared.sql", spared);
        let hits: Vec<String> = p
            .hits(rule)
            .into_iter()
            .map(|h| h.0.rsplit('/').next().unwrap().to_string())
            .filter(|f| f != "V1__base.sql")
            .collect();
        assert!(
            !hits.is_empty() && hits.iter().all(|f| f == "V2__fires.sql"),
            "{rule}: {hits:?}"
        );
    }
}

/// A SQLite project: the same two services on the SQLite engine.
fn sqlite_project() -> Project {
    let p = Project::new();
    std::fs::write(
        p.dir.path().join("silo.toml"),
        "[project]\nname = \"t\"\n[services.orders]\ndatabase = \"orders_db\"\n[services.billing]\n",
    )
    .unwrap();
    p
}

#[test]
fn sqlite_boundary_rules_fire_and_spare_own_tables() {
    let p = sqlite_project();
    p.write("billing", "V1__invoices.sql", "CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
        .write(
            "orders",
            "V1__orders.sql",
            "CREATE TABLE carts (id INTEGER PRIMARY KEY);\n\
             CREATE TABLE orders (\n  id INTEGER PRIMARY KEY,\n  cart_id INTEGER REFERENCES carts (id),\n  invoice_id INTEGER REFERENCES invoices (id)\n);\n\
             ATTACH DATABASE 'billing.db' AS billing;",
        );
    assert_eq!(
        p.hits("cross-service-reference"),
        [("services/orders/migrations/V1__orders.sql".into(), 5, 33)]
    );
    assert_eq!(
        p.hits("foreign-data-access"),
        [("services/orders/migrations/V1__orders.sql".into(), 7, 1)]
    );
}

#[test]
fn sqlite_syntax_error_is_located() {
    let p = sqlite_project();
    p.write(
        "orders",
        "V1__orders.sql",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY);\nCREATE TABLE carts (id INTEGER PRIMARY KEY,, n TEXT);\n",
    );
    let report = p.lint(silo_lint::PARSE_ERROR);
    assert_eq!(report.findings.len(), 1, "{:#?}", report.findings);
    let f = &report.findings[0];
    assert_eq!((f.line, f.column), (2, 44));
    assert!(f.message.contains("Expected"), "{}", f.message);
}

/// An ignore comment above a statement covers findings on any of its
/// lines; several ignore lines stack; one without a reason silences
/// nothing.
#[test]
fn ignore_comments_cover_the_statement_below_them() {
    let p = Project::new();
    p.write(
        "orders",
        "V1__t.sql",
        "-- silo:irreversible first\n\
         -- silo:ignore prefer-identity -- ids match the Flyway-era tables\n\
         -- silo:ignore prefer-text-field, prefer-bigint-over-int -- same\n\
         CREATE TABLE t (\n    id serial PRIMARY KEY,\n    name varchar(20)\n);\n\
         -- silo:ignore prefer-identity --\n\
         CREATE TABLE u (\n    id serial PRIMARY KEY\n);\n\
         CREATE TABLE w (\n    -- silo:ignore prefer-identity on its own line\n    id serial PRIMARY KEY\n);\n",
    );
    assert!(p.hits("prefer-text-field").is_empty());
    // `t` is ignored; `u`'s ignore has no reason; `w`'s comment stands on
    // the column's own line.
    let identity: Vec<usize> = p.hits("prefer-identity").iter().map(|h| h.1).collect();
    assert_eq!(identity, [10], "only `u` (line 10) is reported");
    // prefer-bigint-over-int is named for `t` only.
    let bigint: Vec<usize> = p
        .hits("prefer-bigint-over-int")
        .iter()
        .map(|h| h.1)
        .collect();
    assert_eq!(bigint, [10, 14]);
}

/// `(line, column, message)` of the `parse-error` findings of `p`.
fn parse_errors(p: &Project) -> Vec<(usize, usize, String)> {
    p.lint(silo_lint::PARSE_ERROR)
        .findings
        .into_iter()
        .map(|f| (f.line, f.column, f.message))
        .collect()
}

/// A file that ends inside a comment, a string or a trigger's body is a
/// parse error at what it leaves open, on both engines: SQLite would read
/// an unterminated `/*` as a comment to the end and skip the rest.
#[test]
fn incomplete_files_are_parse_errors_where_they_open() {
    let p = sqlite_project();
    for (sql, at, message) in [
        (
            "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n/* CREATE TABLE carts (id INTEGER);\n",
            (2, 1),
            "unterminated `/*` comment: the rest of the file is inside it",
        ),
        (
            "CREATE TABLE orders (id INTEGER PRIMARY KEY);\nINSERT INTO orders VALUES ('x);\n",
            (2, 28),
            "unterminated string: the rest of the file is inside it",
        ),
        (
            "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n  CREATE TRIGGER t AFTER INSERT ON orders BEGIN\n    DELETE FROM orders;\n",
            (2, 3),
            "CREATE TRIGGER without `END;`: the rest of the file is inside its body",
        ),
    ] {
        p.write("orders", "V1__orders.sql", sql);
        assert_eq!(
            parse_errors(&p),
            [(at.0, at.1, message.to_string())],
            "sqlite: {sql}"
        );
    }
    let p = Project::new();
    for (sql, at, message) in [
        (
            "CREATE TABLE orders (id bigint);\n\n/* CREATE TABLE carts (id bigint);\n",
            (3, 1),
            "unterminated `/*` comment: the rest of the file is inside it",
        ),
        (
            "CREATE TABLE orders (id bigint);\nCREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $$ LANGUAGE sql;",
            (2, 36),
            "unterminated dollar-quoted string `$body$`: the rest of the file is inside it",
        ),
    ] {
        p.write("orders", "V1__orders.sql", sql);
        assert_eq!(
            parse_errors(&p),
            [(at.0, at.1, message.to_string())],
            "postgres: {sql}"
        );
    }
}

/// A file that is not text (not UTF-8, or holding a NUL byte) is a
/// finding on that file; the other files are still linted.
#[test]
fn binary_files_are_findings_and_the_rest_is_linted() {
    for p in [Project::new(), sqlite_project()] {
        p.write(
            "orders",
            "V1__orders.sql",
            "CREATE TABLE order_item (id bigint);",
        );
        std::fs::write(
            p.dir.path().join("services/orders/migrations/V2__blob.sql"),
            b"SELECT 1;\nSELECT \xff\xfe;\n",
        )
        .unwrap();
        std::fs::write(
            p.dir.path().join("services/orders/migrations/V3__nul.sql"),
            b"SELECT 1;\n  SELECT\0;\n",
        )
        .unwrap();
        let m = Manifest::load(&p.dir.path().join("silo.toml"), &Overrides::default()).unwrap();
        let loaded = load(&m).expect("a binary file does not stop the run");
        let report = lint(&m, &loaded, &Options::default());
        let found: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.rule == RuleId::ParseError || f.rule == RuleId::TableName)
            .map(|f| {
                (
                    f.rule,
                    f.file.file_name().unwrap().to_str().unwrap().to_string(),
                    f.line,
                    f.column,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (RuleId::TableName, "V1__orders.sql".into(), 1, 14),
                (RuleId::ParseError, "V2__blob.sql".into(), 2, 8),
                (RuleId::ParseError, "V3__nul.sql".into(), 2, 9),
            ]
        );
        let messages: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.rule == RuleId::ParseError)
            .map(|f| f.message.as_str())
            .collect();
        assert!(messages[0].starts_with("not UTF-8 text (byte 0xFF here)"));
        assert!(messages[1].starts_with("a NUL byte"));
        assert_eq!(report.summary.files, 3);
    }
    // Two different binary files are not one shared file, and their bytes
    // never reach the terminal.
    let p = Project::new();
    let folder = |s: &str| p.dir.path().join(format!("services/{s}/migrations"));
    std::fs::write(folder("orders").join("V1__png.sql"), b"\x89PNG\r\n\x1a\n").unwrap();
    std::fs::write(folder("billing").join("V1__gif.sql"), b"\xffGIF\x1b[2J").unwrap();
    let m = Manifest::load(&p.dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let loaded = load(&m).unwrap();
    let report = lint(&m, &loaded, &Options::default());
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.rule != RuleId::SharedMigration),
        "{:#?}",
        report.findings
    );
    let human = silo_lint::render::human(&report, &loaded.files);
    assert!(!human.contains(['\r', '\x1a', '\x1b']), "{human:?}");
}

/// A migrations folder that does not exist is an error naming it, not a
/// run over no files.
#[test]
fn a_missing_migrations_folder_is_an_error() {
    let p = Project::new();
    std::fs::write(
        p.dir.path().join("silo.toml"),
        "[project]\nname = \"t\"\n[services.orders]\nmigrations = \"db/orders\"\n",
    )
    .unwrap();
    let m = Manifest::load(&p.dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let err = load(&m).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the migrations folder of service `orders`, db/orders, does not exist"
    );
    assert!(err.help().contains("[services.orders]"), "{}", err.help());
    // The audit checks what there is, and lists the folder as skipped.
    let loaded = silo_lint::load_available(&m).unwrap();
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].reason, err.to_string());
    // A file where the folder should be is no folder either.
    std::fs::create_dir_all(p.dir.path().join("db")).unwrap();
    std::fs::write(p.dir.path().join("db/orders"), "").unwrap();
    assert!(matches!(
        load(&m),
        Err(silo_lint::LoadError::MissingFolder { .. })
    ));
}

/// What lint did not read is listed in the summary, never passed over.
#[test]
fn skipped_paths_are_counted_and_listed() {
    let p = sqlite_project();
    let orders = p.dir.path().join("services/orders/migrations");
    std::fs::create_dir_all(orders.join("sqlite/old")).unwrap();
    std::fs::create_dir_all(orders.join("postgres")).unwrap();
    std::fs::write(orders.join("sqlite/V1__orders.sql"), "SELECT 1;").unwrap();
    std::fs::write(orders.join("sqlite/README.md"), "notes").unwrap();
    std::fs::write(orders.join("sqlite/.gitkeep"), "").unwrap();
    std::fs::write(orders.join("V9__stray.sql"), "SELECT 1;").unwrap();
    let m = Manifest::load(&p.dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let loaded = load(&m).unwrap();
    let report = lint(&m, &loaded, &Options::default());
    let skipped: Vec<_> = report
        .summary
        .skipped_paths
        .iter()
        .map(|s| (s.path.display().to_string(), s.reason.as_str()))
        .collect();
    let base = "services/orders/migrations";
    assert_eq!(
        skipped,
        [
            (
                format!("{base}/V9__stray.sql"),
                "outside the `sqlite/` folder, which is all silo reads for sqlite"
            ),
            (
                format!("{base}/postgres"),
                "migrations for postgres; this service's store is sqlite (`silo --engine postgres lint` reads them)"
            ),
            (format!("{base}/sqlite/README.md"), "not a .sql file"),
            (
                format!("{base}/sqlite/old"),
                "a folder: silo runs only the files directly in the migrations folder"
            ),
        ]
    );
    assert_eq!(report.summary.skipped, 4);
    assert_eq!(report.summary.files, 1);
    // Reporting other services only leaves them out.
    let billing = lint(
        &m,
        &loaded,
        &Options {
            services: vec!["billing".into()],
            ..Default::default()
        },
    );
    assert_eq!(billing.summary.skipped, 0);
    let human = silo_lint::render::human(&report, &loaded.files);
    assert!(
        human.contains(
            "4 path(s) skipped, not linted:\n  services/orders/migrations/V9__stray.sql: outside"
        ),
        "{human}"
    );
}

/// A project whose events are all in order: every published type has a
/// contract, every consumed type a publisher, versions evolve within
/// their level. No events rule says anything, and the contracts count as
/// files linted.
#[test]
fn events_rules_are_silent_on_a_clean_project() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        "[project]\nname = \"t\"\n\
         [services.orders]\npublishes = [\"order.placed\"]\nconsumes = [\"invoice.sent\"]\n\
         [services.billing]\npublishes = [\"invoice.sent\"]\nconsumes = [\"order.placed\"]\n\
         contracts = \"contracts/billing\"\n\
         [events.types.\"invoice.sent\"]\ncompatibility = \"FULL\"\n",
    )
    .unwrap();
    for s in ["orders", "billing"] {
        std::fs::create_dir_all(dir.path().join(format!("services/{s}/migrations"))).unwrap();
    }
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "services/orders/events/order.placed.v1.json",
        r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}"#,
    );
    write(
        "services/orders/events/order.placed.v2.json",
        r#"{"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}, "note": {"type": "string"}}}"#,
    );
    write("services/orders/events/README.md", "order events");
    write(
        "contracts/billing/invoice.sent.v1.json",
        r#"{"type": "object", "properties": {"total": {"type": "number"}}}"#,
    );
    let m = Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let loaded = load(&m).unwrap();
    let report = lint(&m, &loaded, &Options::default());
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(report.summary.files, 3);
}
