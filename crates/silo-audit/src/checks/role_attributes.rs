//! `role-attributes`: no service role is SUPERUSER, CREATEDB, CREATEROLE,
//! REPLICATION or BYPASSRLS, or a member of a role that is, or of the
//! predefined roles that read and write the server's files or run
//! programs on it.

use crate::live::Live;
use crate::{Check, Finding, Fix};

use super::ident;

/// Predefined roles that reach outside the database.
const SERVER_ROLES: [&str; 3] = [
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
];

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for server in &live.servers {
        for name in &server.services {
            let role = &live.service(name).role;
            let Some(info) = server.catalog.roles.get(role) else {
                continue;
            };
            let attributes: Vec<&str> = [
                (info.superuser, "SUPERUSER"),
                (info.createdb, "CREATEDB"),
                (info.createrole, "CREATEROLE"),
                (info.replication, "REPLICATION"),
                (info.bypassrls, "BYPASSRLS"),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect();
            if !attributes.is_empty() {
                let negated: Vec<String> = attributes.iter().map(|a| format!("NO{a}")).collect();
                let fix = format!("ALTER ROLE {} {};", ident(role), negated.join(" "));
                out.push(
                    Finding::new(
                        Check::RoleAttributes,
                        name,
                        format!("role `{role}` is {}", attributes.join(", ")),
                        fix.clone(),
                    )
                    .fix(Fix::sql(&server.key, None, vec![fix])),
                );
            }
            for (ancestor, via) in server.catalog.memberships(role) {
                let privileged = server.catalog.roles.get(&ancestor).is_some_and(|r| {
                    r.superuser || r.createdb || r.createrole || r.replication || r.bypassrls
                });
                if !privileged && !SERVER_ROLES.contains(&ancestor.as_str()) {
                    continue;
                }
                let fix = format!("REVOKE {} FROM {};", ident(&via), ident(role));
                let what = if privileged {
                    "a privileged role"
                } else {
                    "a predefined role that reaches the server's files or programs"
                };
                out.push(
                    Finding::new(
                        Check::RoleAttributes,
                        name,
                        format!("role `{role}` is a member of `{ancestor}`, {what}"),
                        fix.clone(),
                    )
                    .other(live.role_owner(&ancestor).map(|s| s.name.as_str()))
                    .fix(Fix::sql(&server.key, None, vec![fix])),
                );
            }
        }
    }
}
