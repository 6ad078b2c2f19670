//! `cross-access`: no service role reaches another service's store. The
//! catalog is read for every pair (CONNECT privilege, ownership,
//! membership in the other's role or in its database's owner, superuser),
//! and real connection attempts back it up: a probe passes only when the
//! server refuses with 42501 or 28000.

use crate::live::{Live, Server};
use crate::probe::Probe;
use crate::{Access, Cell, Check, Finding, Fix};

use super::ident;

/// Predefined roles that read or write every table of every database the
/// role can connect to.
const DATA_ROLES: [&str; 2] = ["pg_read_all_data", "pg_write_all_data"];

/// One way a role reaches a store, with its fix.
struct Cause {
    why: String,
    fix: Option<Vec<String>>,
    /// The fix is a role statement (run in the admin database).
    cluster_wide: bool,
}

/// Why `role_service`'s role reaches `store_service`'s database on
/// `server`; empty when it does not (PUBLIC's CONNECT is left to
/// `public-privileges`, which reports it once per store).
fn causes(live: &Live<'_>, server: &Server, role_service: &str, store_service: &str) -> Vec<Cause> {
    let role = &live.service(role_service).role;
    let store = live.service(store_service);
    let catalog = &server.catalog;
    let Some(db) = catalog.databases.get(&store.database) else {
        return Vec::new();
    };
    let Some(info) = catalog.roles.get(role) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    if info.superuser {
        causes.push(Cause {
            why: format!("`{role}` is a superuser"),
            fix: Some(vec![format!("ALTER ROLE {} NOSUPERUSER;", ident(role))]),
            cluster_wide: true,
        });
    }
    if &db.owner == role {
        causes.push(Cause {
            why: format!("`{role}` owns database `{}`", store.database),
            fix: Some(vec![format!(
                "ALTER DATABASE {} OWNER TO {};",
                ident(&store.database),
                ident(&store.role)
            )]),
            cluster_wide: true,
        });
    }
    let memberships = catalog.memberships(role);
    for (ancestor, via) in &memberships {
        if ancestor == &store.role || ancestor == &db.owner {
            let what = if ancestor == &store.role {
                format!("the role of service `{store_service}`")
            } else {
                format!("the owner of database `{}`", store.database)
            };
            let through = if via == ancestor {
                String::new()
            } else {
                format!(" (through `{via}`)")
            };
            causes.push(Cause {
                why: format!("`{role}` is a member of `{ancestor}`, {what}{through}"),
                fix: Some(vec![format!("REVOKE {} FROM {};", ident(via), ident(role))]),
                cluster_wide: true,
            });
        }
    }
    for grantee in &db.connect_grantees {
        if grantee == role {
            causes.push(Cause {
                why: format!("`{role}` was granted CONNECT on `{}`", store.database),
                fix: Some(vec![format!(
                    "REVOKE ALL ON DATABASE {} FROM {};",
                    ident(&store.database),
                    ident(role)
                )]),
                cluster_wide: true,
            });
        } else if grantee != &store.role
            && grantee != &db.owner
            && let Some(via) = memberships.get(grantee)
        {
            causes.push(Cause {
                why: format!(
                    "`{role}` is a member of `{grantee}`, which was granted CONNECT on `{}`",
                    store.database
                ),
                fix: Some(vec![format!("REVOKE {} FROM {};", ident(via), ident(role))]),
                cluster_wide: true,
            });
        }
    }
    causes
}

/// Whether PUBLIC may connect to `database` on `server`.
fn public_connect(server: &Server, database: &str) -> bool {
    server
        .catalog
        .databases
        .get(database)
        .is_some_and(|d| d.public_privileges.iter().any(|p| p == "CONNECT"))
}

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    // Roles are per server: with instance isolation a role may also exist,
    // by the same name, on another service's server.
    let everyone: Vec<&String> = live.servers.iter().flat_map(|s| &s.services).collect();
    for server in &live.servers {
        for &role_service in &everyone {
            let role = &live.service(role_service).role;
            let memberships = server.catalog.memberships(role);
            let home = server.services.contains(role_service);
            for data_role in DATA_ROLES.into_iter().filter(|_| home) {
                if let Some(via) = memberships.get(data_role) {
                    out.push(
                        Finding::new(
                            Check::CrossAccess,
                            role_service,
                            format!(
                                "`{role}` is a member of `{data_role}`: it can use every table of \
                                 every database it can connect to"
                            ),
                            format!("REVOKE {} FROM {};", ident(via), ident(role)),
                        )
                        .fix(Fix::sql(
                            &server.key,
                            None,
                            vec![format!("REVOKE {} FROM {};", ident(via), ident(role))],
                        )),
                    );
                }
            }
            for store_service in &server.services {
                if store_service == role_service {
                    continue;
                }
                let store = live.service(store_service);
                let causes = causes(live, server, role_service, store_service);
                let probe = live
                    .probes
                    .get(&(role_service.clone(), store_service.clone()));
                let finding = |message: String, remediation: String| {
                    Finding::new(Check::CrossAccess, role_service, message, remediation)
                        .other(Some(store_service))
                        .store(&store.database)
                };
                for cause in &causes {
                    let remediation = cause
                        .fix
                        .as_ref()
                        .map(|f| f.join(" "))
                        .unwrap_or_else(|| "revoke the access".into());
                    let mut f = finding(
                        format!(
                            "`{role}` can connect to `{}`, the store of `{store_service}`: {}",
                            store.database, cause.why
                        ),
                        remediation,
                    );
                    if let Some(statements) = &cause.fix {
                        let database = (!cause.cluster_wide).then_some(store.database.as_str());
                        f = f.fix(Fix::sql(&server.key, database, statements.clone()));
                    }
                    out.push(f);
                }
                let explained = !causes.is_empty()
                    || public_connect(server, &store.database)
                    || server
                        .catalog
                        .connect
                        .contains(&(role.clone(), store.database.clone()));
                let login = live.secrets[role_service].user.as_deref();
                match probe {
                    Some(Probe::Connected) if !explained && login != Some(role.as_str()) => out
                        .push(
                            finding(
                                format!(
                                    "the credentials of `{role_service}` log in as `{}` and reach \
                                     `{}`, the store of `{store_service}`",
                                    login.unwrap_or_default(),
                                    store.database
                                ),
                                format!(
                                    "give `{role_service}` its own credentials: `silo credentials \
                                     rotate {role_service}`"
                                ),
                            )
                            .fix(Fix::Rotate {
                                service: role_service.clone(),
                            }),
                        ),
                    Some(Probe::Connected) if !explained => out.push(finding(
                        format!(
                            "`{role}` connected to `{}`, the store of `{store_service}`, though the \
                             catalog shows no privilege",
                            store.database
                        ),
                        "check pg_hba.conf and role memberships; revoke the access".into(),
                    )),
                    Some(Probe::BadPassword) => out.push(finding(
                        format!(
                            "probe broken: the server rejected `{role}`'s password (28P01), so \
                             denial of `{}` is unproven",
                            store.database
                        ),
                        format!(
                            "rotate the credentials (`silo credentials rotate {role_service}`) and \
                             audit again"
                        ),
                    )),
                    Some(Probe::Failed { message, .. }) => out.push(finding(
                        format!(
                            "probe broken: connecting as `{role}` to `{}` failed: {message}",
                            store.database
                        ),
                        "fix the cause and audit again".into(),
                    )),
                    _ => {}
                }
                if !causes.is_empty() {
                    continue;
                }
                let catalog_open = server
                    .catalog
                    .connect
                    .contains(&(role.clone(), store.database.clone()));
                if catalog_open && !public_connect(server, &store.database) {
                    out.push(finding(
                        format!(
                            "`{role}` has CONNECT on `{}`, the store of `{store_service}`",
                            store.database
                        ),
                        format!(
                            "REVOKE ALL ON DATABASE {} FROM {};",
                            ident(&store.database),
                            ident(role)
                        ),
                    ));
                }
            }
        }
    }
}

/// The access matrix: every PostgreSQL service's role against every
/// PostgreSQL store, in manifest order.
pub fn matrix(live: &Live<'_>) -> Vec<Cell> {
    let mut cells = Vec::new();
    let postgres: Vec<&str> = live
        .servers
        .iter()
        .flat_map(|s| s.services.iter().map(String::as_str))
        .collect();
    let mut ordered: Vec<&str> = live
        .manifest
        .services
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| postgres.contains(n))
        .collect();
    ordered.dedup();
    for role_service in &ordered {
        let role = &live.service(role_service).role;
        for store_service in &ordered {
            let store = live.service(store_service);
            let server = live
                .servers
                .iter()
                .find(|s| s.services.iter().any(|n| n == store_service))
                .expect("every PostgreSQL service is on a server");
            let access = if role_service == store_service {
                Access::Own
            } else {
                let probed = live
                    .probes
                    .get(&(role_service.to_string(), store_service.to_string()))
                    .is_some_and(Probe::connected);
                let open = probed
                    || !causes(live, server, role_service, store_service).is_empty()
                    || (server.catalog.roles.contains_key(role)
                        && (public_connect(server, &store.database)
                            || server
                                .catalog
                                .connect
                                .contains(&(role.clone(), store.database.clone()))));
                if open { Access::Open } else { Access::Denied }
            };
            cells.push(Cell {
                role_service: role_service.to_string(),
                store_service: store_service.to_string(),
                access,
            });
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::{matrix, run};
    use crate::checks::snapshot::{clean, fix_sql, run as check, summary};
    use crate::probe::Probe;
    use crate::{Access, Check, Severity};

    fn cells(live: &crate::live::Live<'_>) -> Vec<(String, String, Access)> {
        matrix(live)
            .into_iter()
            .map(|c| (c.role_service, c.store_service, c.access))
            .collect()
    }

    #[test]
    fn roles_that_reach_only_their_own_store_are_clean() {
        let live = clean();
        assert!(check(run, &live).is_empty());
        assert_eq!(
            cells(&live),
            [
                ("orders".into(), "orders".into(), Access::Own),
                ("orders".into(), "billing".into(), Access::Denied),
                ("billing".into(), "orders".into(), Access::Denied),
                ("billing".into(), "billing".into(), Access::Own),
            ]
        );
    }

    #[test]
    fn connect_granted_to_a_sibling_role_is_an_open_cell_with_its_revoke() {
        let mut live = clean();
        let catalog = &mut live.servers[0].catalog;
        let billing = catalog.databases.get_mut("billing").unwrap();
        billing.connect_grantees.push("orders_svc".into());
        catalog
            .connect
            .insert(("orders_svc".into(), "billing".into()));
        live.probes
            .insert(("orders".into(), "billing".into()), Probe::Connected);
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::CrossAccess,
                "orders",
                Some("billing"),
                Some("billing"),
                Severity::Error,
                "`orders_svc` can connect to `billing`, the store of `billing`: `orders_svc` was \
                 granted CONNECT on `billing`",
                "REVOKE ALL ON DATABASE \"billing\" FROM \"orders_svc\";"
            )]
        );
        assert_eq!(
            fix_sql(&found[0]),
            Some((
                None,
                vec!["REVOKE ALL ON DATABASE \"billing\" FROM \"orders_svc\";"]
            ))
        );
        assert_eq!(cells(&live)[1].2, Access::Open);
    }

    #[test]
    fn membership_in_read_all_data_is_reported_without_a_store() {
        let mut live = clean();
        live.servers[0]
            .catalog
            .granted
            .insert("billing_svc".into(), vec!["pg_read_all_data".into()]);
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::CrossAccess,
                "billing",
                None,
                None,
                Severity::Error,
                "`billing_svc` is a member of `pg_read_all_data`: it can use every table of every \
                 database it can connect to",
                "REVOKE \"pg_read_all_data\" FROM \"billing_svc\";"
            )]
        );
        assert!(fix_sql(&found[0]).is_some());
    }

    #[test]
    fn a_connection_the_catalog_cannot_explain_is_still_a_finding() {
        let mut live = clean();
        live.probes
            .insert(("billing".into(), "orders".into()), Probe::Connected);
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::CrossAccess,
                "billing",
                Some("orders"),
                Some("orders"),
                Severity::Error,
                "`billing_svc` connected to `orders`, the store of `orders`, though the catalog \
                 shows no privilege",
                "check pg_hba.conf and role memberships; revoke the access"
            )]
        );
        assert_eq!(found[0].fix, None);
        assert_eq!(cells(&live)[2].2, Access::Open);
    }
}
