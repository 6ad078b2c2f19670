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
