//! `own-access`: each service's own credentials open its own store and can
//! create and drop a table there. The positive control: a broken service is
//! a finding too, and a probe that cannot log in proves nothing.

use crate::live::Live;
use crate::probe::Probe;
use crate::{Check, Finding, Fix};

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for server in &live.servers {
        for name in &server.services {
            let s = live.service(name);
            let secrets = &live.secrets[name];
            let finding = |message: String, remediation: &str| {
                Finding::new(Check::OwnAccess, name, message, remediation).store(&s.database)
            };
            if !server.catalog.roles.contains_key(&s.role) {
                out.push(finding(
                    format!("role `{}` does not exist on {}", s.role, server.label),
                    "run `silo up` to provision the service",
                ));
                continue;
            }
            if !server.catalog.databases.contains_key(&s.database) {
                out.push(finding(
                    format!(
                        "database `{}` does not exist on {}",
                        s.database, server.label
                    ),
                    "run `silo up` to provision the service",
                ));
                continue;
            }
            let rotate = Fix::Rotate {
                service: name.clone(),
            };
            let rotate_help = format!(
                "write new credentials with `silo credentials rotate {name}` (or `silo audit --fix`)"
            );
            if !secrets.exists || secrets.password.is_none() || secrets.user.is_none() {
                let what = if secrets.exists {
                    "has no user or password"
                } else {
                    "is missing"
                };
                out.push(
                    finding(
                        format!("the credentials file {} {what}", secrets.path.display()),
                        &rotate_help,
                    )
                    .fix(rotate),
                );
                continue;
            }
            if secrets.user.as_deref() != Some(&s.role) {
                out.push(
                    finding(
                        format!(
                            "the credentials file logs in as `{}`, not as the service's role `{}`",
                            secrets.user.as_deref().unwrap_or_default(),
                            s.role
                        ),
                        &rotate_help,
                    )
                    .fix(rotate),
                );
                continue;
            }
            match live.probes.get(&(name.clone(), name.clone())) {
                Some(Probe::Connected) | None => {}
                Some(Probe::BadPassword) => out.push(
                    finding(
                        format!(
                            "the server rejects the password in {} (28P01)",
                            secrets.path.display()
                        ),
                        &rotate_help,
                    )
                    .fix(rotate),
                ),
                Some(Probe::Denied { code }) => out.push(finding(
                    format!(
                        "role `{}` may not connect to its own database `{}` (SQLSTATE {code})",
                        s.role, s.database
                    ),
                    &format!(
                        "run `silo up`, or: GRANT CONNECT, TEMPORARY ON DATABASE {} TO {};",
                        super::ident(&s.database),
                        super::ident(&s.role)
                    ),
                )),
                Some(Probe::Failed { message, .. }) => out.push(finding(
                    format!("role `{}` in its own database: {message}", s.role),
                    "run `silo up` to restore the service's ownership and privileges",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use crate::checks::snapshot::{clean, run as check, summary};
    use crate::probe::Probe;
    use crate::{Check, Fix, Severity};

    #[test]
    fn a_provisioned_service_is_clean() {
        assert!(check(run, &clean()).is_empty());
    }

    #[test]
    fn a_missing_role_is_an_error_fixed_by_up() {
        let mut live = clean();
        live.servers[0].catalog.roles.remove("orders_svc");
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::OwnAccess,
                "orders",
                None,
                Some("orders"),
                Severity::Error,
                "role `orders_svc` does not exist on 127.0.0.1:5432",
                "run `silo up` to provision the service"
            )]
        );
        assert_eq!(found[0].fix, None);
    }

    #[test]
    fn a_rejected_password_is_fixed_by_a_rotation() {
        let mut live = clean();
        live.probes
            .insert(("billing".into(), "billing".into()), Probe::BadPassword);
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::OwnAccess,
                "billing",
                None,
                Some("billing"),
                Severity::Error,
                "the server rejects the password in /shop/.silo/secrets/billing.env (28P01)",
                "write new credentials with `silo credentials rotate billing` (or `silo audit --fix`)"
            )]
        );
        assert_eq!(
            found[0].fix,
            Some(Fix::Rotate {
                service: "billing".into()
            })
        );
    }

    #[test]
    fn a_denied_own_database_says_what_to_grant() {
        let mut live = clean();
        live.probes.insert(
            ("orders".into(), "orders".into()),
            Probe::Denied {
                code: "42501".into(),
            },
        );
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::OwnAccess,
                "orders",
                None,
                Some("orders"),
                Severity::Error,
                "role `orders_svc` may not connect to its own database `orders` (SQLSTATE 42501)",
                "run `silo up`, or: GRANT CONNECT, TEMPORARY ON DATABASE \"orders\" TO \"orders_svc\";"
            )]
        );
    }

    #[test]
    fn credentials_of_another_role_are_rotated() {
        let mut live = clean();
        live.secrets.get_mut("orders").unwrap().user = Some("billing_svc".into());
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::OwnAccess,
                "orders",
                None,
                Some("orders"),
                Severity::Error,
                "the credentials file logs in as `billing_svc`, not as the service's role `orders_svc`",
                "write new credentials with `silo credentials rotate orders` (or `silo audit --fix`)"
            )]
        );
        assert!(matches!(&found[0].fix, Some(Fix::Rotate { service }) if service == "orders"));
    }
}
