//! `hba-rules`: a pg_hba.conf line that names a service role (or a group
//! it belongs to) and lets it in to `all` databases. Lines for `all`
//! users are the server's general policy and are left to the CONNECT
//! privileges that `cross-access` checks.

use crate::live::Live;
use crate::{Check, Finding};

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for server in &live.servers {
        let Ok(rules) = &server.catalog.hba else {
            continue;
        };
        for name in &server.services {
            let s = live.service(name);
            let memberships = server.catalog.memberships(&s.role);
            for rule in rules {
                if rule.method == "reject" || !rule.databases.iter().any(|d| d == "all") {
                    continue;
                }
                let names_role = rule.users.iter().any(|u| {
                    u == &s.role
                        || u.strip_prefix('+')
                            .is_some_and(|group| group == s.role || memberships.contains_key(group))
                });
                if !names_role {
                    continue;
                }
                out.push(
                    Finding::new(
                        Check::HbaRules,
                        name,
                        format!(
                            "pg_hba.conf line {} ({} all {} {} {}) lets `{}` reach every database on {}",
                            rule.line,
                            rule.kind,
                            rule.users.join(","),
                            rule.address.as_deref().unwrap_or(""),
                            rule.method,
                            s.role,
                            server.label
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
        }
    }
}
