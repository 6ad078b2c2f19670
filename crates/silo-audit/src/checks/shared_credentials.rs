//! `shared-credentials`: no two services use the same role, password or
//! connection string. SCRAM verifiers are salted, so the catalog cannot
//! show a shared password; the secrets files can, and so can sessions that
//! use one role under several services' `application_name`s. Connection
//! strings shared between source folders are the source scan's.

use crate::live::Live;
use crate::{Check, Finding, Fix};

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    let services: Vec<&String> = live.servers.iter().flat_map(|s| &s.services).collect();
    for (i, a) in services.iter().enumerate() {
        let sa = &live.secrets[*a];
        // The role the file logs in with belongs to another service.
        if let Some(user) = &sa.user
            && let Some(owner) = live.role_owner(user)
            && &owner.name != *a
        {
            out.push(
                Finding::new(
                    Check::SharedCredentials,
                    a,
                    format!(
                        "the credentials file {} logs in as `{user}`, the role of service `{}`",
                        sa.path.display(),
                        owner.name
                    ),
                    format!("give `{a}` its own credentials: `silo credentials rotate {a}`"),
                )
                .other(Some(&owner.name))
                .fix(Fix::Rotate {
                    service: a.to_string(),
                }),
            );
        }
        // The same password in two files: report it once, on the later
        // service (the likelier copy), and rotate that one.
        for b in &services[..i] {
            let sb = &live.secrets[*b];
            if sa.password.is_some() && sa.password == sb.password {
                out.push(
                    Finding::new(
                        Check::SharedCredentials,
                        a,
                        format!("services `{a}` and `{b}` have the same password in their credentials files"),
                        format!("give `{a}` a password of its own: `silo credentials rotate {a}`"),
                    )
                    .other(Some(b))
                    .fix(Fix::Rotate {
                        service: a.to_string(),
                    }),
                );
            }
        }
    }
    // One role in sessions named after several services.
    for server in &live.servers {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (user, app) in &server.catalog.sessions {
            let (Some(owner), Some(app_service)) =
                (live.role_owner(user), live.manifest.service(app))
            else {
                continue;
            };
            if owner.name == app_service.name || seen.contains(&(user.as_str(), app.as_str())) {
                continue;
            }
            seen.push((user, app));
            out.push(
                Finding::new(
                    Check::SharedCredentials,
                    &owner.name,
                    format!(
                        "a session on {} uses role `{user}` of `{}` with application_name `{app}`",
                        server.label, owner.name
                    ),
                    format!(
                        "give `{app}` its own credentials (its secrets file) and stop sharing `{}`'s",
                        owner.name
                    ),
                )
                .other(Some(&app_service.name)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use crate::checks::snapshot::{clean, run as check, summary};
    use crate::{Check, Fix, Severity};

    #[test]
    fn own_credentials_are_clean() {
        assert!(check(run, &clean()).is_empty());
    }

    #[test]
    fn a_copied_password_is_reported_once_on_the_later_service() {
        let mut live = clean();
        let password = live.secrets["orders"].password.clone();
        live.secrets.get_mut("billing").unwrap().password = password;
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::SharedCredentials,
                "billing",
                Some("orders"),
                None,
                Severity::Error,
                "services `billing` and `orders` have the same password in their credentials files",
                "give `billing` a password of its own: `silo credentials rotate billing`"
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
    fn another_services_role_in_a_file_or_a_session() {
        let mut live = clean();
        live.secrets.get_mut("orders").unwrap().user = Some("billing_svc".into());
        live.servers[0]
            .catalog
            .sessions
            .push(("billing_svc".into(), "orders".into()));
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [
                (
                    Check::SharedCredentials,
                    "orders",
                    Some("billing"),
                    None,
                    Severity::Error,
                    "the credentials file /shop/.silo/secrets/orders.env logs in as `billing_svc`, \
                     the role of service `billing`",
                    "give `orders` its own credentials: `silo credentials rotate orders`"
                ),
                (
                    Check::SharedCredentials,
                    "billing",
                    Some("orders"),
                    None,
                    Severity::Error,
                    "a session on 127.0.0.1:5432 uses role `billing_svc` of `billing` with \
                     application_name `orders`",
                    "give `orders` its own credentials (its secrets file) and stop sharing \
                     `billing`'s"
                ),
            ]
        );
        assert!(matches!(&found[0].fix, Some(Fix::Rotate { service }) if service == "orders"));
        assert_eq!(found[1].fix, None);
    }
}
