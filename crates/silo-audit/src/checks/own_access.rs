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
