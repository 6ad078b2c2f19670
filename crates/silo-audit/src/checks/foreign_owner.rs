//! `foreign-owner`: every object in a service's database, and the database
//! itself, is owned by the service's role. An owner can do anything to
//! what it owns, whatever the grants say. Objects owned by the
//! administrator silo runs as are warnings (usually a migration run by
//! hand); objects owned by anyone else are errors.

use crate::live::Live;
use crate::{Check, Finding, Fix};

use super::ident;

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for server in &live.servers {
        for name in &server.services {
            let s = live.service(name);
            let role = ident(&s.role);
            let mut owned = Vec::new();
            if let Some(db) = server.catalog.databases.get(&s.database)
                && db.owner != s.role
            {
                owned.push((
                    "DATABASE".to_string(),
                    ident(&s.database),
                    db.owner.clone(),
                    None,
                ));
            }
            for object in server
                .databases
                .get(name)
                .into_iter()
                .flat_map(|d| &d.foreign_owned)
            {
                owned.push((
                    object.kind.clone(),
                    object.name.clone(),
                    object.owner.clone(),
                    Some(s.database.as_str()),
                ));
            }
            for (kind, object, owner, database) in owned {
                let statement = format!("ALTER {kind} {object} OWNER TO {role};");
                let other = live.role_owner(&owner).map(|o| o.name.as_str());
                let mut finding = Finding::new(
                    Check::ForeignOwner,
                    name,
                    format!(
                        "{} {object} in `{}` is owned by `{owner}`{}",
                        kind.to_lowercase(),
                        s.database,
                        match other {
                            Some(o) => format!(", the role of service `{o}`"),
                            None if owner == server.catalog.admin => ", the administrator".into(),
                            None => String::new(),
                        }
                    ),
                    statement.clone(),
                )
                .store(&s.database)
                .other(other)
                .fix(Fix::sql(&server.key, database, vec![statement]));
                if owner == server.catalog.admin {
                    finding = finding.warning();
                }
                out.push(finding);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use crate::catalog::Object;
    use crate::checks::snapshot::{clean, fix_sql, run as check, summary};
    use crate::{Check, Severity};

    #[test]
    fn objects_owned_by_the_service_are_clean() {
        assert!(check(run, &clean()).is_empty());
    }

    #[test]
    fn a_sibling_owner_is_an_error_and_the_administrator_a_warning() {
        let mut live = clean();
        let server = &mut live.servers[0];
        server.catalog.databases.get_mut("orders").unwrap().owner = "billing_svc".into();
        let inside = server.databases.get_mut("orders").unwrap();
        inside.foreign_owned.push(Object {
            kind: "TABLE".into(),
            name: "public.carts".into(),
            owner: "postgres".into(),
        });
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [
                (
                    Check::ForeignOwner,
                    "orders",
                    Some("billing"),
                    Some("orders"),
                    Severity::Error,
                    "database \"orders\" in `orders` is owned by `billing_svc`, the role of \
                     service `billing`",
                    "ALTER DATABASE \"orders\" OWNER TO \"orders_svc\";"
                ),
                (
                    Check::ForeignOwner,
                    "orders",
                    None,
                    Some("orders"),
                    Severity::Warning,
                    "table public.carts in `orders` is owned by `postgres`, the administrator",
                    "ALTER TABLE public.carts OWNER TO \"orders_svc\";"
                ),
            ]
        );
        // The database is altered from the admin database, its objects
        // from inside it.
        assert_eq!(fix_sql(&found[0]).unwrap().0, None);
        assert_eq!(
            fix_sql(&found[1]),
            Some((
                Some("orders"),
                vec!["ALTER TABLE public.carts OWNER TO \"orders_svc\";"]
            ))
        );
    }
}
