//! `public-privileges`: PUBLIC (every role on the server, present and
//! future) has no CONNECT or TEMPORARY on a service database, no USAGE on
//! its `public` schema, and no grants on its tables, sequences or routines.
//! PUBLIC's CREATE on `public` is `public-schema`'s.

use crate::live::Live;
use crate::{Check, Finding, Fix};

use super::ident;

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for server in &live.servers {
        for name in &server.services {
            let s = live.service(name);
            let finding = |message: String, remediation: &[String]| {
                Finding::new(
                    Check::PublicPrivileges,
                    name,
                    message,
                    remediation.join(" "),
                )
                .store(&s.database)
            };
            if let Some(db) = server.catalog.databases.get(&s.database) {
                let privileges: Vec<&str> = db
                    .public_privileges
                    .iter()
                    .map(String::as_str)
                    .filter(|p| matches!(*p, "CONNECT" | "TEMPORARY" | "CREATE"))
                    .collect();
                if !privileges.is_empty() {
                    let fix = vec![
                        format!("REVOKE ALL ON DATABASE {} FROM PUBLIC;", ident(&s.database)),
                        format!(
                            "GRANT CONNECT, TEMPORARY ON DATABASE {} TO {};",
                            ident(&s.database),
                            ident(&s.role)
                        ),
                    ];
                    let others = server.services.len().saturating_sub(1);
                    out.push(
                        finding(
                            format!(
                                "PUBLIC has {} on database `{}`: every role on {} may use it \
                                 ({others} other service role{})",
                                privileges.join(", "),
                                s.database,
                                server.label,
                                if others == 1 { "" } else { "s" }
                            ),
                            &fix,
                        )
                        .fix(Fix::sql(&server.key, None, fix.clone())),
                    );
                }
            }
            let Some(inside) = server.databases.get(name) else {
                continue;
            };
            if inside.public_schema_privileges.iter().any(|p| p == "USAGE") {
                let fix = vec!["REVOKE USAGE ON SCHEMA public FROM PUBLIC;".to_string()];
                out.push(
                    finding(
                        format!("PUBLIC has USAGE on schema `public` of `{}`", s.database),
                        &fix,
                    )
                    .fix(Fix::sql(&server.key, Some(&s.database), fix.clone())),
                );
            }
            for grant in &inside.public_grants {
                let fix = vec![format!(
                    "REVOKE ALL ON {} {} FROM PUBLIC;",
                    grant.kind, grant.name
                )];
                out.push(
                    finding(
                        format!(
                            "PUBLIC has {} on {} {} in `{}`",
                            grant.privileges,
                            grant.kind.to_lowercase(),
                            grant.name,
                            s.database
                        ),
                        &fix,
                    )
                    .fix(Fix::sql(&server.key, Some(&s.database), fix.clone())),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use crate::catalog::PublicGrant;
    use crate::checks::snapshot::{clean, fix_sql, run as check, summary};
    use crate::{Check, Severity};

    #[test]
    fn nothing_for_public_is_clean() {
        assert!(check(run, &clean()).is_empty());
    }

    #[test]
    fn public_connect_schema_usage_and_table_grants_are_each_revoked() {
        let mut live = clean();
        let server = &mut live.servers[0];
        server
            .catalog
            .databases
            .get_mut("orders")
            .unwrap()
            .public_privileges = vec!["CONNECT".into(), "TEMPORARY".into()];
        let inside = server.databases.get_mut("billing").unwrap();
        inside.public_schema_privileges = vec!["USAGE".into()];
        inside.public_grants.push(PublicGrant {
            kind: "TABLE".into(),
            name: "public.invoices".into(),
            privileges: "SELECT".into(),
        });
        let mut found = check(run, &live);
        found.sort_by(|a, b| a.message.cmp(&b.message));
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [
                (
                    Check::PublicPrivileges,
                    "orders",
                    None,
                    Some("orders"),
                    Severity::Error,
                    "PUBLIC has CONNECT, TEMPORARY on database `orders`: every role on \
                     127.0.0.1:5432 may use it (1 other service role)",
                    "REVOKE ALL ON DATABASE \"orders\" FROM PUBLIC; GRANT CONNECT, TEMPORARY ON \
                     DATABASE \"orders\" TO \"orders_svc\";"
                ),
                (
                    Check::PublicPrivileges,
                    "billing",
                    None,
                    Some("billing"),
                    Severity::Error,
                    "PUBLIC has SELECT on table public.invoices in `billing`",
                    "REVOKE ALL ON TABLE public.invoices FROM PUBLIC;"
                ),
                (
                    Check::PublicPrivileges,
                    "billing",
                    None,
                    Some("billing"),
                    Severity::Error,
                    "PUBLIC has USAGE on schema `public` of `billing`",
                    "REVOKE USAGE ON SCHEMA public FROM PUBLIC;"
                ),
            ]
        );
        // The database's privileges are fixed from the admin database, the
        // rest inside the service's database.
        assert_eq!(fix_sql(&found[0]).unwrap().0, None);
        assert_eq!(fix_sql(&found[1]).unwrap().0, Some("billing"));
        assert_eq!(
            fix_sql(&found[2]),
            Some((
                Some("billing"),
                vec!["REVOKE USAGE ON SCHEMA public FROM PUBLIC;"]
            ))
        );
    }
}
