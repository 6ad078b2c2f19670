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
