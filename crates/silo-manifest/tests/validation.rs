//! One test per manifest rule: each asserts the exact message and the line
//! and column it points at.

use std::path::Path;

use silo_manifest::{Engine, Isolation, Manifest, Overrides, Problem};

fn problems(text: &str) -> Vec<Problem> {
    match Manifest::from_str(text, Path::new("proj/silo.toml"), &Overrides::default()) {
        Ok(m) => panic!("expected problems, got a manifest: {m:?}"),
        Err(e) => e.problems().cloned().collect(),
    }
}

/// The single problem of `text`, as `(line, column, message)`.
fn one(text: &str) -> (usize, usize, String) {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    let p = all.remove(0);
    (p.line, p.column, p.message)
}

#[test]
fn defaults_are_applied() {
    let m = Manifest::from_str(
        "[project]\nname = \"p\"\n[services.orders]\n",
        Path::new("proj/silo.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let s = &m.services[0];
    assert_eq!(s.engine, Engine::Sqlite);
    assert_eq!(s.isolation, Isolation::Database);
    assert_eq!(s.database, "orders");
    assert_eq!(s.role, "orders_svc");
    assert_eq!(s.migrations, Path::new("services/orders/migrations"));
    assert_eq!(m.data_dir, Path::new("proj/.silo"));
    assert_eq!(m.root, Path::new("proj"));
}

#[test]
fn services_keep_manifest_order() {
    let m = Manifest::from_str(
        "[project]\nname = \"p\"\n[services.zeta]\n[services.alpha]\n[services.mid]\n",
        Path::new("silo.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let names: Vec<_> = m.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha", "mid"]);
}

#[test]
fn engine_override_skips_services_that_choose_their_own() {
    let text = "[project]\nname = \"p\"\n[services.a]\n[services.b]\nengine = \"sqlite\"\n";
    let overrides = Overrides {
        engine: Some(Engine::Postgres),
        data_dir: Some("/tmp/elsewhere".into()),
    };
    let m = Manifest::from_str(text, Path::new("silo.toml"), &overrides).unwrap();
    assert_eq!(m.service("a").unwrap().engine, Engine::Postgres);
    assert_eq!(m.service("b").unwrap().engine, Engine::Sqlite);
    assert_eq!(m.data_dir, Path::new("/tmp/elsewhere"));
}

#[test]
fn unknown_key_in_service() {
    let (line, column, message) =
        one("[project]\nname = \"p\"\n\n[services.orders]\ndatabse = \"orders_db\"\n");
    assert_eq!((line, column), (5, 1));
    assert!(
        message.starts_with("unknown field `databse`, expected one of `database`"),
        "{message}"
    );
}

#[test]
fn unknown_top_level_table() {
    let (line, _, message) = one("[project]\nname = \"p\"\n[servics.orders]\n");
    assert_eq!(line, 3);
    assert!(message.starts_with("unknown field `servics`"), "{message}");
}

#[test]
fn toml_syntax_error_points_at_line() {
    let (line, _, _) = one("[project]\nname = \"p\n[services.a]\n");
    assert_eq!(line, 2);
}

#[test]
fn missing_project() {
    let (line, column, message) = one("[services.a]\n");
    assert_eq!((line, column), (1, 1));
    assert_eq!(message, "missing `[project]` table");
}

#[test]
fn no_services() {
    let (line, _, message) = one("[project]\nname = \"p\"\n");
    assert_eq!(line, 1);
    assert_eq!(message, "the manifest declares no services");
}

#[test]
fn invalid_service_name() {
    let (line, column, message) = one("[project]\nname = \"p\"\n[services.Orders]\n");
    assert_eq!((line, column), (3, 11));
    assert_eq!(
        message,
        "invalid service name `Orders`: it must start with a lowercase letter"
    );
}

#[test]
fn service_name_with_dash() {
    let (line, column, message) = one("[project]\nname = \"p\"\n[services.\"auth-service\"]\n");
    assert_eq!((line, column), (3, 11));
    assert_eq!(
        message,
        "invalid service name `auth-service`: it contains '-'; only lowercase letters, digits and `_` are allowed"
    );
}

#[test]
fn reserved_service_name() {
    let (_, _, message) = one("[project]\nname = \"p\"\n[services.user]\n");
    assert_eq!(
        message,
        "invalid service name `user`: it is a reserved word in PostgreSQL"
    );
}

#[test]
fn invalid_database_name() {
    let (line, column, message) =
        one("[project]\nname = \"p\"\n[services.a]\ndatabase = \"A-db\"\n");
    assert_eq!((line, column), (4, 12));
    assert_eq!(
        message,
        "invalid database name `A-db`: it must start with a lowercase letter"
    );
}

#[test]
fn database_name_too_long() {
    let long = "d".repeat(64);
    let (line, _, message) = one(&format!(
        "[project]\nname = \"p\"\n[services.a]\ndatabase = \"{long}\"\n"
    ));
    assert_eq!(line, 4);
    assert_eq!(
        message,
        format!(
            "invalid database name `{long}`: it is 64 bytes long; PostgreSQL identifiers hold at most 63"
        )
    );
}

#[test]
fn invalid_role_name() {
    let (line, column, message) = one("[project]\nname = \"p\"\n[services.a]\nrole = \"pg_a\"\n");
    assert_eq!((line, column), (4, 8));
    assert_eq!(
        message,
        "invalid role name `pg_a`: names starting with `pg_` are reserved by PostgreSQL"
    );
}

#[test]
fn default_role_too_long() {
    let name = "s".repeat(61);
    let (line, _, message) = one(&format!("[project]\nname = \"p\"\n[services.{name}]\n"));
    assert_eq!(line, 3);
    assert_eq!(
        message,
        format!(
            "invalid role name `{name}_svc`: it is 65 bytes long; PostgreSQL identifiers hold at most 63"
        )
    );
}

#[test]
fn shared_database() {
    let (line, column, message) = one(concat!(
        "[project]\nname = \"p\"\n",
        "[services.orders]\ndatabase = \"shop\"\n",
        "[services.billing]\ndatabase = \"shop\"\n",
    ));
    assert_eq!((line, column), (6, 12));
    assert_eq!(
        message,
        "services `orders` and `billing` both use database `shop`"
    );
}

#[test]
fn default_database_collides_with_explicit_one() {
    let (line, _, message) = one(concat!(
        "[project]\nname = \"p\"\n",
        "[services.orders]\n",
        "[services.billing]\ndatabase = \"orders\"\n",
    ));
    assert_eq!(line, 5);
    assert_eq!(
        message,
        "services `orders` and `billing` both use database `orders`"
    );
}

#[test]
fn shared_role() {
    let (line, column, message) = one(concat!(
        "[project]\nname = \"p\"\n",
        "[services.orders]\nrole = \"app\"\n",
        "[services.billing]\nrole = \"app\"\n",
    ));
    assert_eq!((line, column), (6, 8));
    assert_eq!(
        message,
        "services `orders` and `billing` both use role `app`"
    );
}

#[test]
fn shared_migrations_folder() {
    let (line, column, message) = one(concat!(
        "[project]\nname = \"p\"\n",
        "[services.orders]\nmigrations = \"db/migrations\"\n",
        "[services.billing]\nmigrations = \"./db/migrations/\"\n",
    ));
    assert_eq!((line, column), (6, 14));
    assert_eq!(
        message,
        "services `orders` and `billing` share the migrations folder `db/migrations`"
    );
}

#[test]
fn nested_migrations_folder() {
    let (line, _, message) = one(concat!(
        "[project]\nname = \"p\"\n",
        "[services.orders]\nmigrations = \"db\"\n",
        "[services.billing]\nmigrations = \"db/billing\"\n",
    ));
    assert_eq!(line, 6);
    assert_eq!(
        message,
        "the migrations folder of `billing` (`db/billing`) is inside the migrations folder of `orders` (`db`)"
    );
}

#[test]
fn nested_migrations_folder_declared_first() {
    let (line, _, message) = one(concat!(
        "[project]\nname = \"p\"\n",
        "[services.billing]\nmigrations = \"db/billing\"\n",
        "[services.orders]\nmigrations = \"db\"\n",
    ));
    assert_eq!(line, 6);
    assert_eq!(
        message,
        "the migrations folder of `billing` (`db/billing`) is inside the migrations folder of `orders` (`db`)"
    );
}

#[test]
fn sibling_folders_with_common_prefix_are_fine() {
    let text = concat!(
        "[project]\nname = \"p\"\n",
        "[services.orders]\nmigrations = \"db/order\"\n",
        "[services.billing]\nmigrations = \"db/orders\"\n",
    );
    assert!(Manifest::from_str(text, Path::new("silo.toml"), &Overrides::default()).is_ok());
}

#[test]
fn migrations_outside_project() {
    let (line, _, message) =
        one("[project]\nname = \"p\"\n[services.a]\nmigrations = \"../elsewhere\"\n");
    assert_eq!(line, 4);
    assert_eq!(
        message,
        "the migrations folder `../elsewhere` must be inside the project folder"
    );
}

#[test]
fn instance_isolation_shared_url_env() {
    let (line, column, message) = one(concat!(
        "[project]\nname = \"p\"\n",
        "[defaults]\nengine = \"postgres\"\nisolation = \"instance\"\n",
        "[services.orders]\nurl_env = \"PG_URL\"\n",
        "[services.billing]\nurl_env = \"PG_URL\"\n",
    ));
    assert_eq!((line, column), (9, 11));
    assert_eq!(
        message,
        "services `orders` and `billing` both read their server from `PG_URL`; instance isolation needs one server per service"
    );
}

#[test]
fn instance_isolation_allows_same_names_on_different_servers() {
    let text = concat!(
        "[project]\nname = \"p\"\n",
        "[defaults]\nengine = \"postgres\"\nisolation = \"instance\"\n",
        "[services.orders]\nurl_env = \"ORDERS_URL\"\ndatabase = \"app\"\nrole = \"app\"\n",
        "[services.billing]\nurl_env = \"BILLING_URL\"\ndatabase = \"app\"\nrole = \"app\"\n",
    );
    assert!(Manifest::from_str(text, Path::new("silo.toml"), &Overrides::default()).is_ok());
}

#[test]
fn instance_isolation_needs_url_env() {
    let (line, _, message) = one(concat!(
        "[project]\nname = \"p\"\n",
        "[defaults]\nengine = \"postgres\"\nisolation = \"instance\"\n",
        "[services.orders]\n",
    ));
    assert_eq!(line, 6);
    assert_eq!(
        message,
        "service `orders` uses instance isolation but has no `url_env`"
    );
}

#[test]
fn invalid_url_env() {
    let (line, _, message) = one("[project]\nname = \"p\"\n[services.a]\nurl_env = \"pg-url\"\n");
    assert_eq!(line, 4);
    assert_eq!(
        message,
        "invalid url_env `pg-url`: it must start with an uppercase letter or `_`"
    );
}

#[test]
fn unknown_engine() {
    let (line, column, message) =
        one("[project]\nname = \"p\"\n[defaults]\nengine = \"mysql\"\n[services.a]\n");
    assert_eq!((line, column), (4, 10));
    assert_eq!(
        message,
        "unknown engine `mysql`; expected `sqlite` or `postgres`"
    );
}

#[test]
fn unknown_isolation() {
    let (line, _, message) =
        one("[project]\nname = \"p\"\n[defaults]\nisolation = \"schema\"\n[services.a]\n");
    assert_eq!(line, 4);
    assert_eq!(
        message,
        "unknown isolation `schema`; expected `database` or `instance`"
    );
}

#[test]
fn bad_connection_limit() {
    let (line, _, message) = one("[project]\nname = \"p\"\n[services.a]\nconnection_limit = 0\n");
    assert_eq!(line, 4);
    assert_eq!(message, "connection_limit must be a positive number, not 0");
}

#[test]
fn bad_event_type() {
    let (line, column, message) =
        one("[project]\nname = \"p\"\n[services.a]\npublishes = [\"ok.event\", \"Bad\"]\n");
    assert_eq!((line, column), (4, 26));
    assert_eq!(
        message,
        "invalid event type `Bad`: event types have at least two dot-separated parts, like `battle.created`"
    );
}

#[test]
fn all_problems_reported_in_source_order() {
    let all = problems(concat!(
        "[project]\nname = \"p\"\n",
        "[services.B]\n",
        "[services.c]\ndatabase = \"x\"\n",
        "[services.d]\ndatabase = \"x\"\n",
    ));
    let lines: Vec<usize> = all.iter().map(|p| p.line).collect();
    assert_eq!(lines, [3, 7]);
}

#[test]
fn error_display_names_file_line_and_column() {
    let err = Manifest::from_str(
        "[project]\nname = \"p\"\n[services.a]\nrole = \"pg_a\"\n",
        Path::new("proj/silo.toml"),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "proj/silo.toml:4:8: invalid role name `pg_a`: names starting with `pg_` are reserved by PostgreSQL"
    );
}

#[test]
fn lint_levels_are_read_per_project_and_service() {
    let m = Manifest::from_str(
        "[project]\nname = \"p\"\n[services.orders.lint.rules]\ntable-name = \"error\"\n\
         [lint.rules]\nprefer-identity = \"off\"\n",
        Path::new("proj/silo.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let project = &m.lint.rules["prefer-identity"];
    assert_eq!(
        (project.level, project.line, project.column),
        (silo_manifest::RuleLevel::Off, 6, 1)
    );
    assert_eq!(
        m.services[0].lint.rules["table-name"].level,
        silo_manifest::RuleLevel::Error
    );
}

#[test]
fn unknown_lint_level() {
    assert_eq!(
        one("[project]\nname = \"p\"\n[services.orders]\n[lint.rules]\ntable-name = \"loud\"\n"),
        (
            5,
            14,
            "unknown rule level `loud`; expected `off`, `info`, `warning` or `error`".into()
        )
    );
}

#[test]
fn migrations_climbing_out_twice_is_not_folded_into_the_project() {
    let (line, column, message) =
        one("[project]\nname = \"p\"\n[services.a]\nmigrations = \"../../etc\"\n");
    assert_eq!((line, column), (4, 14));
    assert_eq!(
        message,
        "the migrations folder `../../etc` must be inside the project folder"
    );
    let (line, _, message) =
        one("[project]\nname = \"p\"\n[services.a]\nmigrations = \"db/../../../etc\"\n");
    assert_eq!(line, 4);
    assert_eq!(
        message,
        "the migrations folder `../../etc` must be inside the project folder"
    );
}

#[test]
fn source_outside_project_is_refused() {
    for (value, shown) in [("../../etc", "../../etc"), ("/etc", "/etc")] {
        let (line, column, message) = one(&format!(
            "[project]\nname = \"p\"\n[services.a]\nsource = \"{value}\"\n"
        ));
        assert_eq!((line, column), (4, 10), "{value}");
        assert_eq!(
            message,
            format!("the source folder `{shown}` must be inside the project folder")
        );
    }
}

#[test]
fn absolute_paths_count_inside_the_project_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let text = format!(
        "[project]\nname = \"p\"\n[services.a]\nmigrations = \"{}\"\nsource = \"{}\"\n",
        root.join("db/a").display(),
        root.join("src/../a").display()
    );
    let m = Manifest::from_str(&text, &root.join("silo.toml"), &Overrides::default()).unwrap();
    assert_eq!(m.services[0].migrations, Path::new("db/a"));
    assert_eq!(m.services[0].source, Path::new("a"));

    let outside = root.parent().unwrap().join("elsewhere");
    let text = format!(
        "[project]\nname = \"p\"\n[services.a]\nmigrations = \"{}\"\n",
        outside.display()
    );
    let err =
        Manifest::from_str(&text, &root.join("silo.toml"), &Overrides::default()).unwrap_err();
    let p: Vec<_> = err.problems().collect();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].line, p[0].column), (4, 14));
    assert_eq!(
        p[0].message,
        format!(
            "the migrations folder `{}` must be inside the project folder",
            outside.display()
        )
    );
}

#[test]
fn data_dir_holding_the_manifest_is_refused() {
    for value in [".", "./", "..", "sub/../.", "../proj"] {
        let (line, column, message) = one(&format!(
            "[project]\nname = \"p\"\n[defaults]\ndata_dir = \"{value}\"\n[services.a]\n"
        ));
        assert_eq!((line, column), (4, 12), "{value}");
        assert_eq!(
            message,
            format!(
                "the data dir `{value}` holds the project folder and silo.toml; silo keeps it private (mode 0700) and out of git, which would hide the project"
            )
        );
    }
}

#[test]
fn data_dir_may_live_outside_the_project() {
    for value in ["../proj-data", "/var/lib/shop", ".silo", "data/silo"] {
        let text =
            format!("[project]\nname = \"p\"\n[defaults]\ndata_dir = \"{value}\"\n[services.a]\n");
        let m = Manifest::from_str(&text, Path::new("proj/silo.toml"), &Overrides::default())
            .unwrap_or_else(|e| panic!("{value}: {e}"));
        assert!(!m.data_dir_holds_manifest(), "{value}");
    }
}

#[test]
fn data_dir_override_holding_the_manifest_is_detected() {
    let text = "[project]\nname = \"p\"\n[services.a]\n";
    for dir in ["proj", "proj/.", "."] {
        let overrides = Overrides {
            engine: None,
            data_dir: Some(dir.into()),
        };
        let m = Manifest::from_str(text, Path::new("proj/silo.toml"), &overrides).unwrap();
        assert!(m.data_dir_holds_manifest(), "{dir}");
    }
}

/// A manifest of many services: the cross-service rules still find the
/// one shared database and the one nested migrations folder among them,
/// and look-ups by name find every service.
#[test]
fn cross_service_rules_hold_at_scale() {
    const N: usize = 5000;
    let mut text = String::from("[project]\nname = \"p\"\n");
    for i in 0..N {
        text.push_str(&format!("[services.s{i:05}]\n"));
    }
    text.push_str("[services.late]\ndatabase = \"s00042\"\nmigrations = \"services/s00007/migrations/late\"\n");
    let all = problems(&text);
    let messages: Vec<&str> = all.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "services `s00042` and `late` both use database `s00042`",
            "the migrations folder of `late` (`services/s00007/migrations/late`) is inside the migrations folder of `s00007` (`services/s00007/migrations`)",
        ]
    );
    assert_eq!(all[0].line, 2 + N + 2);

    let text = text.replace("[services.late]\ndatabase = \"s00042\"\nmigrations = \"services/s00007/migrations/late\"\n", "");
    let m = Manifest::from_str(&text, Path::new("silo.toml"), &Overrides::default()).unwrap();
    assert_eq!(m.services.len(), N);
    for (i, s) in m.services.iter().enumerate() {
        assert!(std::ptr::eq(m.service(&s.name).unwrap(), s), "{i}");
    }
    let names: Vec<String> = (0..N)
        .rev()
        .step_by(2)
        .map(|i| format!("s{i:05}"))
        .collect();
    let selected = m.select(&names).unwrap();
    assert_eq!(selected.len(), N / 2);
    assert_eq!(selected[0].name, "s00001", "selection keeps manifest order");
    assert_eq!(m.select(&["nope".into()]).unwrap_err(), ["nope"]);
}

#[test]
fn service_lookup_follows_changes_to_the_list() {
    let mut m = Manifest::from_str(
        "[project]\nname = \"p\"\n[services.a]\n[services.b]\n",
        Path::new("silo.toml"),
        &Overrides::default(),
    )
    .unwrap();
    m.services.remove(0);
    assert_eq!(m.service("b").unwrap().name, "b");
    assert!(m.service("a").is_none());
}

#[test]
fn events_defaults_and_settings() {
    use silo_manifest::{Bus, Compatibility, Retention};
    let base = "[project]\nname = \"p\"\n[services.orders]\npublishes = [\"order.placed\"]\n";
    let m = Manifest::from_str(base, Path::new("proj/silo.toml"), &Overrides::default()).unwrap();
    assert_eq!(m.events.bus, Bus::Embedded);
    assert_eq!(m.events.max_attempts, 5);
    assert_eq!(m.events.retention, Retention::Delete);
    assert_eq!(m.events.duplicate_window_secs, 120);
    assert_eq!(m.services[0].contracts, Path::new("services/orders/events"));
    assert_eq!(
        m.events.compatibility_of("order.placed"),
        Compatibility::Backward
    );

    let text = format!(
        "{base}contracts = \"contracts/orders\"\n[events]\nbus = \"nats\"\nnats_auth = true\nmax_attempts = 3\n\
         retention = \"keep\"\nduplicate_window_seconds = 30\ncompatibility = \"full\"\n\
         [events.types.\"order.placed\"]\ncompatibility = \"NONE\"\n"
    );
    let m = Manifest::from_str(&text, Path::new("proj/silo.toml"), &Overrides::default()).unwrap();
    assert_eq!(m.events.bus, Bus::Nats);
    assert!(m.events.nats_auth);
    assert_eq!(m.events.max_attempts, 3);
    assert_eq!(m.events.retention, Retention::Keep);
    assert_eq!(m.events.duplicate_window_secs, 30);
    assert_eq!(
        m.events.compatibility_of("order.placed"),
        Compatibility::None
    );
    assert_eq!(m.events.compatibility_of("order.paid"), Compatibility::Full);
    assert_eq!(m.services[0].contracts, Path::new("contracts/orders"));
}

#[test]
fn events_settings_are_checked_where_they_are() {
    let base = "[project]\nname = \"p\"\n[services.orders]\n[events]\n";
    assert_eq!(
        one(&format!("{base}bus = \"kafka\"\n")),
        (
            5,
            7,
            "unknown bus `kafka`; expected `embedded` or `nats`".into()
        )
    );
    assert_eq!(
        one(&format!("{base}max_attempts = 0\n")),
        (5, 16, "max_attempts must be 1 or more, not 0".into())
    );
    assert_eq!(
        one(&format!(
            "{base}duplicate_window_seconds = 9999999999
"
        )),
        (
            5,
            28,
            "duplicate_window_seconds must be from 1 to 604800 (7 days), not 9999999999".into()
        )
    );
    let week = format!(
        "{base}duplicate_window_seconds = 604800
"
    );
    let m = Manifest::from_str(&week, Path::new("proj/silo.toml"), &Overrides::default()).unwrap();
    assert_eq!(m.events.duplicate_window_secs, 604800);
    assert_eq!(
        one(&format!(
            "{base}[events.types.\"Order\"]\ncompatibility = \"full\"\n"
        ))
        .2,
        "invalid event type `Order`: event types have at least two dot-separated parts, like `battle.created`"
    );
    assert_eq!(
        one(&format!(
            "{base}[events.types.\"order.placed\"]\ncompatibility = \"sideways\"\n"
        )),
        (
            6,
            17,
            "unknown compatibility `sideways`; expected `BACKWARD`, `FORWARD`, `FULL` or `NONE`"
                .into()
        )
    );
}

#[test]
fn event_declarations_keep_their_place_in_the_file() {
    use silo_manifest::Declared;
    let text = "[project]\nname = \"p\"\n[services.orders]\npublishes = [\"order.placed\", \"order.paid\"]\n\
                [services.billing]\nconsumes = [\n  \"order.paid\",\n]\n";
    let m = Manifest::from_str(text, Path::new("silo.toml"), &Overrides::default()).unwrap();
    assert_eq!(
        m.declared_at("orders", Declared::Publishes, "order.placed"),
        Some((4, 14))
    );
    assert_eq!(
        m.declared_at("orders", Declared::Publishes, "order.paid"),
        Some((4, 30))
    );
    assert_eq!(
        m.declared_at("billing", Declared::Consumes, "order.paid"),
        Some((7, 3))
    );
    assert_eq!(
        m.declared_at("billing", Declared::Publishes, "order.paid"),
        None
    );
}
