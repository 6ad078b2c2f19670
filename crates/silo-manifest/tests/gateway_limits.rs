//! `[defaults.gateway]` and `[services.<name>.gateway]`: how a service's
//! gateway limits resolve (service over defaults over built-ins), and one
//! test per refused value, each with the line and column it points at.

use std::path::Path;
use std::time::Duration;

use silo_manifest::{GatewayLimits, Manifest, Overrides, Problem, RateLimit};

fn manifest(text: &str) -> Manifest {
    Manifest::from_str(
        text,
        Path::new("/srv/proj/silo.toml"),
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{:#?}", e.problems().collect::<Vec<_>>()))
}

fn problems(text: &str) -> Vec<Problem> {
    match Manifest::from_str(
        text,
        Path::new("/srv/proj/silo.toml"),
        &Overrides::default(),
    ) {
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

const HEAD: &str = "[project]\nname = \"p\"\n";

#[test]
fn without_tables_every_service_gets_the_built_in_limits() {
    let m = manifest(&format!("{HEAD}[services.a]\n"));
    let limits = &m.service("a").unwrap().gateway;
    assert_eq!(*limits, GatewayLimits::default());
    assert_eq!(limits.pool_size, 10);
    assert_eq!(limits.statement_timeout, Duration::from_secs(30));
    assert_eq!(limits.max_rows, 1000);
    assert_eq!(limits.max_rows_affected, None);
    assert_eq!(limits.max_body_bytes, 1024 * 1024);
    assert_eq!(limits.rate, None);
    assert!(limits.events);
}

#[test]
fn services_override_defaults_field_by_field() {
    let m = manifest(&format!(
        r#"{HEAD}[defaults.gateway]
pool_size = 100
statement_timeout = "5s"
max_rows = 500
requests_per_second = 200
burst = 400
events = false
[services.a]
[services.b.gateway]
pool_size = 20
statement_timeout = "1500ms"
acquire_timeout = "250ms"
max_rows_affected = 50
max_body_bytes = 4096
requests_per_second = 10
events = true
"#
    ));
    let a = &m.service("a").unwrap().gateway;
    assert_eq!(
        *a,
        GatewayLimits {
            pool_size: 100,
            statement_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            max_rows: 500,
            max_rows_affected: None,
            max_body_bytes: 1024 * 1024,
            rate: Some(RateLimit {
                requests_per_second: 200,
                burst: 400
            }),
            events: false,
        }
    );
    let b = &m.service("b").unwrap().gateway;
    assert_eq!(
        *b,
        GatewayLimits {
            pool_size: 20,
            statement_timeout: Duration::from_millis(1500),
            acquire_timeout: Duration::from_millis(250),
            max_rows: 500,
            max_rows_affected: Some(50),
            max_body_bytes: 4096,
            // The service's rate with the defaults' burst.
            rate: Some(RateLimit {
                requests_per_second: 10,
                burst: 400
            }),
            events: true,
        }
    );
}

#[test]
fn burst_defaults_to_the_rate() {
    let m = manifest(&format!(
        "{HEAD}[services.a.gateway]\nrequests_per_second = 7\n"
    ));
    assert_eq!(
        m.service("a").unwrap().gateway.rate,
        Some(RateLimit {
            requests_per_second: 7,
            burst: 7
        })
    );
}

#[test]
fn zero_and_negative_counts_are_refused_where_they_are() {
    for key in [
        "pool_size",
        "max_rows",
        "max_rows_affected",
        "max_body_bytes",
        "requests_per_second",
    ] {
        for value in ["0", "-5"] {
            let (line, column, message) =
                one(&format!("{HEAD}[services.a.gateway]\n{key} = {value}\n"));
            assert_eq!((line, column), (4, key.len() + 4), "{key} = {value}");
            assert!(
                message.contains(&format!("`{key}` must be a whole number from 1"))
                    && message.contains(value),
                "{message}"
            );
        }
    }
    // In the defaults too.
    let (line, column, message) = one(&format!(
        "{HEAD}[defaults.gateway]\npool_size = 0\n[services.a]\n"
    ));
    assert_eq!((line, column), (4, 13));
    assert!(message.contains("pool_size"), "{message}");
}

#[test]
fn a_count_past_u32_is_refused() {
    let (_, _, message) = one(&format!(
        "{HEAD}[services.a.gateway]\nmax_rows = 99999999999\n"
    ));
    assert!(message.contains("from 1 to 4294967295"), "{message}");
}

#[test]
fn bad_durations_are_refused_with_their_reason() {
    for (value, says) in [
        ("\"30\"", "invalid statement_timeout `30`"),
        ("\"soon\"", "invalid statement_timeout `soon`"),
        ("\"0s\"", "under a millisecond"),
        ("\"40d\"", "longer than PostgreSQL allows"),
    ] {
        let (line, column, message) = one(&format!(
            "{HEAD}[services.a.gateway]\nstatement_timeout = {value}\n"
        ));
        assert_eq!((line, column), (4, 21), "{value}");
        assert!(message.contains(says), "{value}: {message}");
    }
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.gateway]\nacquire_timeout = \"0ms\"\n"
    ));
    assert_eq!((line, column), (4, 19));
    assert!(
        message.contains("acquire_timeout `0ms` is under a millisecond"),
        "{message}"
    );
    // A number is not a duration: TOML's own type error, at its place.
    let (line, _, _) = one(&format!(
        "{HEAD}[services.a.gateway]\nstatement_timeout = 30\n"
    ));
    assert_eq!(line, 4);
}

#[test]
fn unknown_keys_are_refused_with_their_place() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.gateway]\npool_size = 5\nmax_row = 5\n"
    ));
    assert_eq!((line, column), (5, 1));
    assert!(message.contains("unknown field `max_row`"), "{message}");
    let all = problems(&format!(
        "{HEAD}[defaults.gateway]\nrate = 5\n[services.a]\n"
    ));
    assert_eq!(all[0].line, 4);
    assert!(all[0].help.as_deref().unwrap().contains("docs/manifest.md"));
}

#[test]
fn burst_needs_a_rate() {
    let (line, column, message) = one(&format!("{HEAD}[services.a.gateway]\nburst = 5\n"));
    assert_eq!((line, column), (4, 9));
    assert!(
        message.contains("`burst` without `requests_per_second`"),
        "{message}"
    );
    // A burst in the defaults that no service gives a rate is one
    // problem, not one per service.
    let (line, _, message) = one(&format!(
        "{HEAD}[defaults.gateway]\nburst = 5\n[services.a]\n[services.b]\n"
    ));
    assert_eq!(line, 4);
    assert!(message.contains("`burst` without"), "{message}");
    // A rate in the defaults gives the service's burst its refill.
    let m = manifest(&format!(
        "{HEAD}[defaults.gateway]\nrequests_per_second = 3\n[services.a.gateway]\nburst = 5\n"
    ));
    assert_eq!(
        m.service("a").unwrap().gateway.rate,
        Some(RateLimit {
            requests_per_second: 3,
            burst: 5
        })
    );
}

#[test]
fn a_pool_above_the_connection_limit_is_kept_for_the_gateway_to_cap() {
    // The seed asks for 100+ connections per service; the role's limit
    // still wins, and the gateway says so when it starts.
    let m = manifest(&format!(
        "{HEAD}[services.a]\nconnection_limit = 20\n[services.a.gateway]\npool_size = 100\n"
    ));
    let a = m.service("a").unwrap();
    assert_eq!(a.gateway.pool_size, 100);
    assert_eq!(a.connection_limit, Some(20));
}
