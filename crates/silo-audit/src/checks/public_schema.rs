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

#[cfg(test)]
mod tests {
    use super::run;
    use crate::checks::snapshot::{clean, fix_sql, run as check, summary};
    use crate::{Check, Severity};

    #[test]
    fn a_locked_public_schema_is_clean() {
        assert!(check(run, &clean()).is_empty());
    }

    #[test]
    fn public_create_and_a_public_security_definer() {
        let mut live = clean();
        let inside = live.servers[0].databases.get_mut("billing").unwrap();
        inside.public_schema_privileges = vec!["USAGE".into(), "CREATE".into()];
        inside.public_definers.push("public.pay(bigint)".into());
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [
                (
                    Check::PublicSchema,
                    "billing",
                    None,
                    Some("billing"),
                    Severity::Error,
                    "PUBLIC may create objects in schema `public` of `billing` (the default \
                     before PostgreSQL 15, kept by upgraded clusters)",
                    "REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
                ),
                (
                    Check::PublicSchema,
                    "billing",
                    None,
                    Some("billing"),
                    Severity::Error,
                    "SECURITY DEFINER routine public.pay(bigint) in `billing` is executable by \
                     PUBLIC",
                    "REVOKE EXECUTE ON ROUTINE public.pay(bigint) FROM PUBLIC;"
                ),
            ]
        );
        assert_eq!(
            fix_sql(&found[1]),
            Some((
                Some("billing"),
                vec!["REVOKE EXECUTE ON ROUTINE public.pay(bigint) FROM PUBLIC;"]
            ))
        );
    }
}
