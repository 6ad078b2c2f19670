//! `hba-rules`: what pg_hba.conf lets a service role do. pg_hba.conf is
//! the outer wall, before any privilege; two kinds of line break it:
//!
//! - **Reach**: a line that names a service role (or a group it belongs
//!   to) and lets it in to `all` databases. Lines for `all` users are the
//!   server's general policy and are left to the CONNECT privileges that
//!   `cross-access` checks.
//! - **No proof of the password**: a line that matches a service role's
//!   connections to its own database and lets them in without the role's
//!   password, or with it exposed: `trust` (anyone), `password` (sent in
//!   clear text), `md5` (where SCRAM is possible: a stolen MD5 hash logs
//!   in like the password), `ident` over TCP (the client host's ident
//!   server vouches for the user), and `peer` (or `ident` on a socket)
//!   with a user-name map that lets OS users other than the role's
//!   namesake in. `peer` without a map lets in only the OS user of the
//!   role's own name, whom the kernel vouches for: that is not reported.
//!
//! A line counts for a role when its user list is `all`, the role, or
//! `+group` of a group the role is in, and its database list is `all`,
//! the service's database, `sameuser` (when the database is named like the
//! role) or `samerole` (when the role is in a role named like the
//! database). PostgreSQL uses the first line that matches a connection, so
//! a line is left out when an earlier line for the role and database has
//! the same connection type (or `host`, which covers every TCP type) and
//! the same address (or `all`). A `/regex` entry (PostgreSQL 16) is taken
//! to match.

use crate::catalog::{HbaRule, IdentMapping, Verifier};
use crate::live::Live;
use crate::{Check, Finding};

/// Server versions from which SCRAM authentication exists.
const SCRAM_SINCE: i32 = 100_000;

/// How a pg_hba.conf line lets a role in without proving it knows its
/// password, or exposes the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weakness {
    /// `trust`: no password at all.
    Trust,
    /// `password`: the password travels in clear text.
    Password,
    /// `md5` where SCRAM is possible.
    Md5,
    /// `ident` on a TCP line: the client host's ident server names the
    /// user.
    IdentOverTcp,
    /// `peer` (or `ident` on a socket) with a user-name map that lets these
    /// OS users in as the role.
    Map { map: String, os_users: Vec<String> },
}

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for server in &live.servers {
        let Ok(rules) = &server.catalog.hba else {
            continue;
        };
        let ident: &[IdentMapping] = server.catalog.ident.as_deref().unwrap_or(&[]);
        for name in &server.services {
            let s = live.service(name);
            let memberships = server.catalog.memberships(&s.role);
            let member_of = |group: &str| group == s.role || memberships.contains_key(group);
            for rule in rules {
                if rule.method == "reject" || !rule.databases.iter().any(|d| d == "all") {
                    continue;
                }
                let names_role = rule
                    .users
                    .iter()
                    .any(|u| u == &s.role || u.strip_prefix('+').is_some_and(member_of));
                if !names_role {
                    continue;
                }
                out.push(
                    Finding::new(
                        Check::HbaRules,
                        name,
                        format!(
                            "pg_hba.conf line {} (`{rule}`) lets `{}` reach every database on {}",
                            rule.line, s.role, server.label
                        ),
                        format!(
                            "in pg_hba.conf line {}, name the service's database `{}` instead of \
                             `all`, then reload the server (SELECT pg_reload_conf())",
                            rule.line, s.database
                        ),
                    )
                    .store(&s.database)
                    .warning(),
                );
            }
            let scram_possible = server.catalog.version_num >= SCRAM_SINCE;
            for (rule, weakness) in weak_rules(
                rules,
                ident,
                &s.role,
                &s.database,
                &member_of,
                scram_possible,
            ) {
                out.push(
                    Finding::new(
                        Check::HbaRules,
                        name,
                        message(rule, &weakness, &s.role, &s.database, &server.label),
                        remediation(
                            rule,
                            &weakness,
                            &s.name,
                            &s.role,
                            &s.database,
                            server.catalog.verifiers.get(&s.role).copied(),
                        ),
                    )
                    .store(&s.database)
                    .warning(),
                );
            }
        }
    }
}

/// Whether `rule` matches connections of `role` to `database`.
/// `member_of(group)` tells whether the role is in `group`, directly or
/// not (a role is in itself).
pub fn applies(
    rule: &HbaRule,
    role: &str,
    database: &str,
    member_of: &dyn Fn(&str) -> bool,
) -> bool {
    let user = rule.users.iter().any(|u| {
        u == "all" || u == role || u.starts_with('/') || u.strip_prefix('+').is_some_and(member_of)
    });
    let db = rule.databases.iter().any(|d| match d.as_str() {
        "all" => true,
        "sameuser" => database == role,
        "samerole" | "samegroup" => member_of(database),
        "replication" => false,
        other => other == database || other.starts_with('/'),
    });
    user && db
}

/// Whether `earlier` catches every connection `later` would (both apply
/// to the same role and database).
fn shadows(earlier: &HbaRule, later: &HbaRule) -> bool {
    let kind = earlier.kind == later.kind || (earlier.kind == "host" && later.kind != "local");
    let address = earlier.address.as_deref() == Some("all")
        || (earlier.address == later.address && earlier.netmask == later.netmask);
    kind && address
}

/// The lines that let `role` into `database` without a proof of its
/// password, each with how, in file order. `scram_possible`: the server
/// knows SCRAM, so `md5` is a choice rather than a need.
pub fn weak_rules<'r>(
    rules: &'r [HbaRule],
    ident: &[IdentMapping],
    role: &str,
    database: &str,
    member_of: &dyn Fn(&str) -> bool,
    scram_possible: bool,
) -> Vec<(&'r HbaRule, Weakness)> {
    let matching: Vec<&HbaRule> = rules
        .iter()
        .filter(|r| applies(r, role, database, member_of))
        .collect();
    matching
        .iter()
        .enumerate()
        .filter(|(i, rule)| !matching[..*i].iter().any(|e| shadows(e, rule)))
        .filter_map(|(_, rule)| {
            weakness(rule, ident, role, member_of, scram_possible).map(|w| (*rule, w))
        })
        .collect()
}

/// What is weak about `rule` for `role`, if anything.
pub fn weakness(
    rule: &HbaRule,
    ident: &[IdentMapping],
    role: &str,
    member_of: &dyn Fn(&str) -> bool,
    scram_possible: bool,
) -> Option<Weakness> {
    match rule.method.as_str() {
        "trust" => Some(Weakness::Trust),
        "password" => Some(Weakness::Password),
        "md5" if scram_possible => Some(Weakness::Md5),
        "ident" if rule.kind != "local" => Some(Weakness::IdentOverTcp),
        "peer" | "ident" => {
            let map = rule.option("map")?;
            let os_users: Vec<String> = ident
                .iter()
                .filter(|m| m.map == map && maps_others(m, role, member_of))
                .map(|m| m.system_user.clone())
                .collect();
            (!os_users.is_empty()).then(|| Weakness::Map {
                map: map.to_string(),
                os_users,
            })
        }
        _ => None,
    }
}

/// Whether a pg_ident.conf line lets an OS user other than `role`'s
/// namesake in as `role`. A regex whose group becomes the role name
/// (`/^(.*)$  \1`) maps each OS user to its namesake, which is harmless;
/// any other substitution is taken to reach the role.
fn maps_others(m: &IdentMapping, role: &str, member_of: &dyn Fn(&str) -> bool) -> bool {
    if m.pg_user.contains("\\1") {
        return !(m.pg_user == "\\1" && m.system_user == "/^(.*)$");
    }
    let reaches = m.pg_user == role
        || m.pg_user == "all"
        || m.pg_user.strip_prefix('+').is_some_and(member_of);
    reaches && m.system_user != role
}

fn message(rule: &HbaRule, w: &Weakness, role: &str, database: &str, server: &str) -> String {
    let (who, from) = match rule.address_text().as_str() {
        "" => (
            "any user of the server's machine",
            "through the server's socket".to_string(),
        ),
        "all" => ("anyone", "from any address".to_string()),
        address => ("anyone", format!("from {address}")),
    };
    let what = match w {
        Weakness::Trust => format!(
            "lets {who} log in {from} as `{role}` to `{database}` without a password (`trust`)"
        ),
        Weakness::Password => format!(
            "asks `{role}` for its password in clear text (`password`) {from}: whoever reads the \
             connection, or answers in the server's place, learns it"
        ),
        Weakness::Md5 => format!(
            "uses `md5` for `{role}` {from} where SCRAM is possible: a stolen MD5 hash logs in \
             like the password itself"
        ),
        Weakness::IdentOverTcp => format!(
            "lets `{role}` in {from} on the word of the client host's ident server (`ident` over \
             TCP): whoever controls a client machine there can claim to be `{role}`"
        ),
        Weakness::Map { map, os_users } => format!(
            "lets OS user{} {} log in as `{role}` without a password (`{}` with map `{map}`)",
            if os_users.len() == 1 { "" } else { "s" },
            os_users
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", "),
            rule.method
        ),
    };
    format!(
        "pg_hba.conf line {} (`{rule}`) on {server} {what}",
        rule.line
    )
}

/// The pg_hba.conf lines to write above `rule`: the role may reach its own
/// database with SCRAM from where `rule` let it in, and nothing else.
fn remediation(
    rule: &HbaRule,
    w: &Weakness,
    service: &str,
    role: &str,
    database: &str,
    verifier: Option<Verifier>,
) -> String {
    let address = rule.address_text();
    let line = |db: &str, method: &str| {
        let mut fields = vec![rule.kind.as_str(), db, role];
        if !address.is_empty() {
            fields.push(&address);
        }
        fields.push(method);
        fields.join(" ")
    };
    let rotate = match verifier {
        Some(Verifier::Md5 | Verifier::Other) => format!(
            "first run `silo credentials rotate {service}` (the role's password is not stored as \
             a SCRAM verifier, which scram-sha-256 needs); then "
        ),
        _ => String::new(),
    };
    let alternative = match w {
        Weakness::Map { map, .. } => {
            format!(" (or keep only `{role}` itself in map `{map}` of pg_ident.conf)")
        }
        _ => format!(" (or change line {}'s method to scram-sha-256)", rule.line),
    };
    format!(
        "{rotate}above line {} of pg_hba.conf write `{}` and `{}`{alternative}, then reload the \
         server: SELECT pg_reload_conf();",
        rule.line,
        line(database, "scram-sha-256"),
        line("all", "reject"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use crate::checks::snapshot::{clean, hba, run as check, summary};

    #[test]
    fn scram_for_every_service_role_is_clean() {
        assert!(check(run, &clean()).is_empty());
    }

    /// A `trust` line above the SCRAM one lets both roles in without a
    /// password; a line that names a role for `all` databases lets it
    /// reach every database. Warnings, with the lines to write.
    #[test]
    fn trust_and_a_line_for_all_databases_are_warnings() {
        let mut live = clean();
        live.servers[0].catalog.hba = Ok(vec![
            hba(1, "local", "all", "postgres", None, "peer"),
            hba(
                2,
                "host",
                "all",
                "orders_svc",
                Some("10.0.0.0/8"),
                "scram-sha-256",
            ),
            hba(3, "host", "all", "all", Some("127.0.0.1/32"), "trust"),
            hba(
                4,
                "host",
                "all",
                "all",
                Some("127.0.0.1/32"),
                "scram-sha-256",
            ),
        ]);
        let found = check(run, &live);
        let trust = |service: &str, role: &str| {
            (
                Check::HbaRules,
                service.to_string(),
                None,
                Some(service.to_string()),
                Severity::Warning,
                format!(
                    "pg_hba.conf line 3 (`host all all 127.0.0.1/32 trust`) on 127.0.0.1:5432 \
                     lets anyone log in from 127.0.0.1/32 as `{role}` to `{service}` without a \
                     password (`trust`)"
                ),
                format!(
                    "above line 3 of pg_hba.conf write `host {service} {role} 127.0.0.1/32 \
                     scram-sha-256` and `host all {role} 127.0.0.1/32 reject` (or change line \
                     3's method to scram-sha-256), then reload the server: SELECT \
                     pg_reload_conf();"
                ),
            )
        };
        let owned = |f: &Finding| {
            let (c, s, o, st, sev, m, r) = summary(f);
            (
                c,
                s.to_string(),
                o.map(str::to_string),
                st.map(str::to_string),
                sev,
                m.to_string(),
                r.to_string(),
            )
        };
        assert_eq!(
            found.iter().map(owned).collect::<Vec<_>>(),
            [
                (
                    Check::HbaRules,
                    "orders".to_string(),
                    None,
                    Some("orders".to_string()),
                    Severity::Warning,
                    "pg_hba.conf line 2 (`host all orders_svc 10.0.0.0/8 scram-sha-256`) lets \
                     `orders_svc` reach every database on 127.0.0.1:5432"
                        .to_string(),
                    "in pg_hba.conf line 2, name the service's database `orders` instead of \
                     `all`, then reload the server (SELECT pg_reload_conf())"
                        .to_string(),
                ),
                trust("orders", "orders_svc"),
                trust("billing", "billing_svc"),
            ]
        );
        assert!(found.iter().all(|f| f.fix.is_none()));
    }

    /// A pg_hba.conf row: `kind databases users [address] method`.
    fn row(line: i32, text: &str) -> HbaRule {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let list = |f: &str| f.split(',').map(str::to_string).collect();
        let (address, rest) = if fields[0] == "local" {
            (None, &fields[3..])
        } else {
            (Some(fields[3]), &fields[4..])
        };
        // `a.b.c.d/n` is shown by pg_hba_file_rules as an address and a mask.
        let (address, netmask) = match address.map(|a| a.split_once('/')) {
            Some(Some((a, bits))) => {
                let bits: u32 = bits.parse().unwrap();
                let mask = match a.parse::<std::net::IpAddr>().unwrap() {
                    std::net::IpAddr::V4(_) => {
                        std::net::Ipv4Addr::from_bits(u32::MAX.checked_shl(32 - bits).unwrap_or(0))
                            .to_string()
                    }
                    std::net::IpAddr::V6(_) => std::net::Ipv6Addr::from_bits(
                        u128::MAX.checked_shl(128 - bits).unwrap_or(0),
                    )
                    .to_string(),
                };
                (Some(a.to_string()), Some(mask))
            }
            Some(None) => (address.map(str::to_string), None),
            None => (None, None),
        };
        HbaRule {
            line,
            kind: fields[0].to_string(),
            databases: list(fields[1]),
            users: list(fields[2]),
            address,
            netmask,
            method: rest[0].to_string(),
            options: rest[1..].iter().map(|o| o.to_string()).collect(),
        }
    }

    fn rows(lines: &[&str]) -> Vec<HbaRule> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| row(i as i32 + 1, l))
            .collect()
    }

    fn mapping(map: &str, system_user: &str, pg_user: &str) -> IdentMapping {
        IdentMapping {
            map: map.into(),
            system_user: system_user.into(),
            pg_user: pg_user.into(),
        }
    }

    /// `orders_svc` is a member of `apps`.
    fn in_apps(group: &str) -> bool {
        group == "orders_svc" || group == "apps"
    }

    /// (line, weakness) of the weak lines for `orders_svc` in `orders`.
    fn weak(rules: &[HbaRule], ident: &[IdentMapping]) -> Vec<(i32, Weakness)> {
        weak_rules(rules, ident, "orders_svc", "orders", &in_apps, true)
            .into_iter()
            .map(|(r, w)| (r.line, w))
            .collect()
    }

    #[test]
    fn a_line_applies_by_user_and_database() {
        let applies_to = |text: &str| applies(&row(1, text), "orders_svc", "orders", &in_apps);
        for yes in [
            "local all all trust",
            "local orders orders_svc trust",
            "local all +apps trust",
            "local all +orders_svc trust",
            "host orders,billing all 10.0.0.0/8 trust",
        ] {
            assert!(applies_to(yes), "{yes}");
        }
        for no in [
            "local billing all trust",
            "local all billing_svc trust",
            "local all +ops trust",
            "local sameuser all trust",
            "local samerole all trust",
            "local replication all trust",
        ] {
            assert!(!applies_to(no), "{no}");
        }
        // samerole reaches a database named like a role the role is in...
        assert!(applies(
            &row(1, "local samerole all trust"),
            "orders_svc",
            "apps",
            &in_apps
        ));
        // ... and sameuser one named like the role.
        assert!(applies(
            &row(1, "local sameuser all trust"),
            "orders",
            "orders",
            &|_| false
        ));
    }

    #[test]
    fn weak_methods_are_found_and_strong_ones_are_not() {
        let rules = rows(&[
            "local all all trust",
            "host all all 127.0.0.1/32 password",
            "host orders orders_svc 10.0.0.0/8 md5",
            "hostssl all +apps 192.168.0.0/16 ident",
            "host all all ::1/128 scram-sha-256",
            "hostssl all all all cert",
            "local all all peer",
        ]);
        assert_eq!(
            weak(&rules, &[]),
            [
                (1, Weakness::Trust),
                (2, Weakness::Password),
                (3, Weakness::Md5),
                (4, Weakness::IdentOverTcp),
            ]
        );
        // Without SCRAM on the server, md5 is the best there is.
        let old = weak_rules(&rules, &[], "orders_svc", "orders", &in_apps, false);
        assert!(old.iter().all(|(_, w)| *w != Weakness::Md5));
    }

    #[test]
    fn lines_for_other_roles_and_databases_are_not_weak_for_this_one() {
        let rules = rows(&[
            "local all postgres trust",
            "local billing all trust",
            "host all billing_svc 127.0.0.1/32 trust",
            "local all all scram-sha-256",
        ]);
        assert!(weak(&rules, &[]).is_empty());
    }

    #[test]
    fn an_earlier_line_for_the_same_connections_wins() {
        let rules = rows(&[
            "local all all scram-sha-256",
            "local all all trust",
            "host all all 127.0.0.1/32 scram-sha-256",
            "hostssl all all 127.0.0.1/32 trust",
            "hostssl all all 10.0.0.0/8 trust",
            "host all orders_svc all reject",
            "host all all 172.16.0.0/12 trust",
        ]);
        assert_eq!(weak(&rules, &[]), [(5, Weakness::Trust)]);
    }

    #[test]
    fn peer_is_weak_only_through_a_map_that_lets_others_in() {
        let rules = rows(&["local all all peer"]);
        assert!(weak(&rules, &[]).is_empty());
        let ident = [
            mapping("svc", "orders_svc", "orders_svc"),
            mapping("svc", "/^(.*)$", "\\1"),
            mapping("svc", "backup", "billing_svc"),
            mapping("id", "deploy", "orders_svc"),
            mapping("id", "ops", "+apps"),
        ];
        // The namesake and the identity regex let no one else in.
        assert!(weak(&rows(&["local all all peer map=svc"]), &ident).is_empty());
        // `ident` on a socket is `peer`.
        assert_eq!(
            weak(&rows(&["local all all ident map=id"]), &ident),
            [(
                1,
                Weakness::Map {
                    map: "id".into(),
                    os_users: vec!["deploy".into(), "ops".into()]
                }
            )]
        );
        let rules = rows(&["local all all peer map=svc"]);
        let ident = [mapping("svc", "/^(.*)-app$", "\\1_svc")];
        assert_eq!(
            weak(&rules, &ident),
            [(
                1,
                Weakness::Map {
                    map: "svc".into(),
                    os_users: vec!["/^(.*)-app$".into()]
                }
            )]
        );
    }

    #[test]
    fn the_fix_names_the_lines_to_write() {
        let rule = row(7, "host all all 127.0.0.1/32 trust");
        assert_eq!(rule.to_string(), "host all all 127.0.0.1/32 trust");
        let fix = remediation(
            &rule,
            &Weakness::Trust,
            "orders",
            "orders_svc",
            "orders",
            Some(Verifier::Scram),
        );
        assert_eq!(
            fix,
            "above line 7 of pg_hba.conf write `host orders orders_svc 127.0.0.1/32 scram-sha-256` \
             and `host all orders_svc 127.0.0.1/32 reject` (or change line 7's method to \
             scram-sha-256), then reload the server: SELECT pg_reload_conf();"
        );
        let local = remediation(
            &row(1, "local all all md5"),
            &Weakness::Md5,
            "orders",
            "orders_svc",
            "orders",
            Some(Verifier::Md5),
        );
        assert!(
            local.starts_with("first run `silo credentials rotate orders`"),
            "{local}"
        );
        assert!(
            local.contains(
                "`local orders orders_svc scram-sha-256` and `local all orders_svc reject`"
            ),
            "{local}"
        );
        let message = message(
            &rule,
            &Weakness::Trust,
            "orders_svc",
            "orders",
            "127.0.0.1:5432",
        );
        assert_eq!(
            message,
            "pg_hba.conf line 7 (`host all all 127.0.0.1/32 trust`) on 127.0.0.1:5432 lets anyone \
             log in from 127.0.0.1/32 as `orders_svc` to `orders` without a password (`trust`)"
        );
    }
}
