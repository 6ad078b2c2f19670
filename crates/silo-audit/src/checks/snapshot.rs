//! Hand-built catalog snapshots for the checks' unit tests: no server, the
//! structs the live audit would read, filled in by hand. [`clean`] is a
//! provisioned two-service project as silo leaves it; each test breaks one
//! thing and runs one check.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use silo_manifest::{Manifest, Overrides};
use sqlx::postgres::PgConnectOptions;

use crate::catalog::{DatabaseCatalog, DatabaseInfo, HbaRule, RoleInfo, ServerCatalog, Verifier};
use crate::live::{Live, Server};
use crate::probe::Probe;
use crate::secrets::SecretsFile;
use crate::{Check, Finding, Fix, Severity};

/// Services `orders` and `billing` on PostgreSQL, one shared server.
pub fn manifest() -> &'static Manifest {
    manifest_text(
        "[project]\nname = \"shop\"\n[defaults]\nengine = \"postgres\"\n\
         [services.orders]\n[services.billing]\n",
    )
}

/// The manifest `text`, as if at /shop/silo.toml (nothing is read there),
/// for as long as the test runs.
pub fn manifest_text(text: &str) -> &'static Manifest {
    let manifest = Manifest::from_str(text, Path::new("/shop/silo.toml"), &Overrides::default())
        .expect("a valid manifest");
    Box::leak(Box::new(manifest))
}

/// A server's catalog as `silo up` leaves it for `services`: each role
/// plain, each database owned by its role with nothing for PUBLIC, each
/// role able to connect to its own database only, SCRAM everywhere.
pub fn catalog(manifest: &Manifest, services: &[&str]) -> ServerCatalog {
    let mut roles = HashMap::from([(
        "postgres".to_string(),
        RoleInfo {
            superuser: true,
            createdb: true,
            createrole: true,
            replication: true,
            bypassrls: true,
        },
    )]);
    let mut databases = HashMap::new();
    let mut connect = HashSet::new();
    let mut verifiers = HashMap::new();
    for name in services {
        let s = manifest.service(name).expect("a manifest service");
        roles.insert(s.role.clone(), RoleInfo::default());
        databases.insert(
            s.database.clone(),
            DatabaseInfo {
                owner: s.role.clone(),
                public_privileges: Vec::new(),
                connect_grantees: vec![s.role.clone()],
            },
        );
        connect.insert((s.role.clone(), s.database.clone()));
        verifiers.insert(s.role.clone(), Verifier::Scram);
    }
    ServerCatalog {
        admin: "postgres".into(),
        admin_is_superuser: true,
        version_num: 150_000,
        system_identifier: Some("7300000000000000001".into()),
        address: "127.0.0.1:5432".into(),
        roles,
        granted: HashMap::new(),
        databases,
        connect,
        sessions: Vec::new(),
        subscriptions: Ok(Vec::new()),
        hba: Ok(vec![
            hba(1, "local", "all", "postgres", None, "peer"),
            hba(
                2,
                "host",
                "all",
                "all",
                Some("127.0.0.1/32"),
                "scram-sha-256",
            ),
        ]),
        ident: Ok(Vec::new()),
        verifiers,
    }
}

/// A pg_hba.conf line as `pg_hba_file_rules` shows it.
pub fn hba(
    line: i32,
    kind: &str,
    databases: &str,
    users: &str,
    address: Option<&str>,
    method: &str,
) -> HbaRule {
    let (address, netmask) = match address.and_then(|a| a.split_once('/')) {
        Some((a, "32")) => (Some(a.to_string()), Some("255.255.255.255".to_string())),
        Some((a, "8")) => (Some(a.to_string()), Some("255.0.0.0".to_string())),
        _ => (address.map(str::to_string), None),
    };
    HbaRule {
        line,
        kind: kind.into(),
        databases: databases.split(',').map(str::to_string).collect(),
        users: users.split(',').map(str::to_string).collect(),
        address,
        netmask,
        method: method.into(),
        options: Vec::new(),
    }
}

/// The shared server holding `services`.
pub fn server(manifest: &Manifest, key: Option<&str>, services: &[&str]) -> Server {
    Server {
        key: key.map_or(silo_store::ServerId::SHARED, silo_store::ServerId::instance),
        options: PgConnectOptions::new_without_pgpass(),
        label: "127.0.0.1:5432".into(),
        catalog: catalog(manifest, services),
        services: services.iter().map(|s| s.to_string()).collect(),
        databases: services
            .iter()
            .map(|s| {
                let role = &manifest.service(s).unwrap().role;
                (
                    s.to_string(),
                    DatabaseCatalog {
                        public_schema_owner: Some(role.clone()),
                        ..DatabaseCatalog::default()
                    },
                )
            })
            .collect(),
    }
}

/// A clean live snapshot of [`manifest`]: both stores on one server,
/// each service's secrets file its own, each own probe connected and each
/// cross probe denied.
pub fn clean() -> Live<'static> {
    live(manifest())
}

/// A clean live snapshot of `manifest`, every service on one server.
pub fn live(manifest: &'static Manifest) -> Live<'static> {
    let names: Vec<&str> = manifest.services.iter().map(|s| s.name.as_str()).collect();
    let secrets = manifest
        .services
        .iter()
        .map(|s| {
            let file = SecretsFile {
                path: silo_store::SecretsDir::new(&manifest.data_dir).path(&s.name),
                exists: true,
                user: Some(s.role.clone()),
                password: Some(format!("{}-pw-0123456789", s.name)),
                database: Some(s.database.clone()),
            };
            (s.name.clone(), file)
        })
        .collect();
    let mut probes = HashMap::new();
    for a in &names {
        for b in &names {
            let probe = if a == b {
                Probe::Connected
            } else {
                Probe::Denied {
                    code: "42501".into(),
                }
            };
            probes.insert((a.to_string(), b.to_string()), probe);
        }
    }
    Live {
        manifest,
        servers: vec![server(manifest, None, &names)],
        secrets,
        probes,
    }
}

/// The findings of one check over `live`.
pub fn run(check: fn(&Live<'_>, &mut Vec<Finding>), live: &Live<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    check(live, &mut out);
    out
}

/// What a test asserts of one finding: check, service, other service,
/// store, severity, message and remediation.
pub fn summary(
    f: &Finding,
) -> (
    Check,
    &str,
    Option<&str>,
    Option<&str>,
    Severity,
    &str,
    &str,
) {
    (
        f.check,
        &f.service,
        f.other_service.as_deref(),
        f.location.store(),
        f.severity,
        &f.message,
        &f.remediation,
    )
}

/// The SQL a fixable finding's `--fix` runs, and where (database `None`:
/// the admin URL's own).
pub fn fix_sql(f: &Finding) -> Option<(Option<&str>, Vec<&str>)> {
    match &f.fix {
        Some(Fix::Sql {
            database,
            statements,
            ..
        }) => Some((
            database.as_deref(),
            statements.iter().map(String::as_str).collect(),
        )),
        _ => None,
    }
}
