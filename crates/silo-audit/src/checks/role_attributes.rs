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

#[cfg(test)]
mod tests {
    use super::run;
    use crate::checks::snapshot::{clean, fix_sql, run as check, summary};
    use crate::{Check, Severity};

    #[test]
    fn plain_roles_are_clean() {
        assert!(check(run, &clean()).is_empty());
    }

    #[test]
    fn attributes_are_taken_back_in_one_statement() {
        let mut live = clean();
        let role = live.servers[0].catalog.roles.get_mut("orders_svc").unwrap();
        role.createdb = true;
        role.bypassrls = true;
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::RoleAttributes,
                "orders",
                None,
                None,
                Severity::Error,
                "role `orders_svc` is CREATEDB, BYPASSRLS",
                "ALTER ROLE \"orders_svc\" NOCREATEDB NOBYPASSRLS;"
            )]
        );
        assert_eq!(
            fix_sql(&found[0]),
            Some((
                None,
                vec!["ALTER ROLE \"orders_svc\" NOCREATEDB NOBYPASSRLS;"]
            ))
        );
    }

    #[test]
    fn membership_in_a_server_files_role_or_a_privileged_sibling() {
        let mut live = clean();
        let catalog = &mut live.servers[0].catalog;
        catalog
            .granted
            .insert("billing_svc".into(), vec!["pg_read_server_files".into()]);
        catalog
            .granted
            .insert("orders_svc".into(), vec!["billing_svc".into()]);
        catalog.roles.get_mut("billing_svc").unwrap().createrole = true;
        let mut found = check(run, &live);
        found.sort_by(|a, b| a.message.cmp(&b.message));
        let summaries: Vec<_> = found.iter().map(summary).collect();
        // orders_svc reaches pg_read_server_files through billing_svc too.
        assert_eq!(summaries.len(), 4, "{summaries:#?}");
        assert!(summaries.contains(&(
            Check::RoleAttributes,
            "orders",
            Some("billing"),
            None,
            Severity::Error,
            "role `orders_svc` is a member of `billing_svc`, a privileged role",
            "REVOKE \"billing_svc\" FROM \"orders_svc\";"
        )));
        assert!(summaries.contains(&(
            Check::RoleAttributes,
            "billing",
            None,
            None,
            Severity::Error,
            "role `billing_svc` is a member of `pg_read_server_files`, a predefined role that \
             reaches the server's files or programs",
            "REVOKE \"pg_read_server_files\" FROM \"billing_svc\";"
        )));
        assert!(summaries.contains(&(
            Check::RoleAttributes,
            "billing",
            None,
            None,
            Severity::Error,
            "role `billing_svc` is CREATEROLE",
            "ALTER ROLE \"billing_svc\" NOCREATEROLE;"
        )));
    }
}
