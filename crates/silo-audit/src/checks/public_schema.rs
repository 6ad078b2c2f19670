//! `public-schema`: PUBLIC may not CREATE in a service database's `public`
//! schema (PostgreSQL 15 changed that default only for new clusters; a
//! server upgraded from 14 or older keeps it), and no SECURITY DEFINER
//! routine is executable by PUBLIC.

use crate::live::Live;
use crate::{Check, Finding, Fix};

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for (server, s, inside) in live.service_databases() {
        if inside
            .public_schema_privileges
            .iter()
            .any(|p| p == "CREATE")
        {
            let fix = "REVOKE CREATE ON SCHEMA public FROM PUBLIC;".to_string();
            out.push(
                Finding::new(
                    Check::PublicSchema,
                    &s.name,
                    format!(
                        "PUBLIC may create objects in schema `public` of `{}` (the default \
                             before PostgreSQL 15, kept by upgraded clusters)",
                        s.database
                    ),
                    fix.clone(),
                )
                .store(&s.database)
                .fix(Fix::sql(&server.key, Some(&s.database), vec![fix])),
            );
        }
        for routine in &inside.public_definers {
            let fix = format!("REVOKE EXECUTE ON ROUTINE {routine} FROM PUBLIC;");
            out.push(
                Finding::new(
                    Check::PublicSchema,
                    &s.name,
                    format!(
                        "SECURITY DEFINER routine {routine} in `{}` is executable by PUBLIC",
                        s.database
                    ),
                    fix.clone(),
                )
                .store(&s.database)
                .fix(Fix::sql(&server.key, Some(&s.database), vec![fix])),
            );
        }
    }
}
