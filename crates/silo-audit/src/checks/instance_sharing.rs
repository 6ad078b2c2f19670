//! `instance-sharing`: a service configured with `instance` isolation has
//! a server of its own. Two servers are the same when their
//! `system_identifier`s match, or, where that is unreadable, their
//! `host:port`.

use silo_manifest::Isolation;

use crate::live::{Live, Server};
use crate::{Check, Finding};

fn same(a: &Server, b: &Server) -> bool {
    match (&a.catalog.system_identifier, &b.catalog.system_identifier) {
        (Some(x), Some(y)) => x == y,
        _ => a.catalog.address == b.catalog.address,
    }
}

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for (i, a) in live.servers.iter().enumerate() {
        for b in &live.servers[i + 1..] {
            if !same(a, b) {
                continue;
            }
            // Report each instance-isolated service on either side.
            for (mine, theirs) in [(a, b), (b, a)] {
                for name in &mine.services {
                    let s = live.service(name);
                    if s.isolation != Isolation::Instance {
                        continue;
                    }
                    let other = &theirs.services[0];
                    out.push(
                        Finding::new(
                            Check::InstanceSharing,
                            name,
                            format!(
                                "`{name}` is configured with instance isolation, but its server \
                                 ({}, `{}`) is also the server of `{other}` ({})",
                                mine.label,
                                s.url_env.as_deref().unwrap_or("admin URL"),
                                theirs.label
                            ),
                            format!(
                                "point `{}` at a server of `{name}`'s own, then `silo up`",
                                s.url_env.as_deref().unwrap_or("url_env")
                            ),
                        )
                        .store(&s.database)
                        .other(Some(other)),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run;
    use crate::checks::snapshot::{live, manifest_text, run as check, server, summary};
    use crate::{Check, Severity};

    /// `orders` and `billing` with instance isolation, each read from its
    /// own variable; both servers report `system_identifier`s.
    fn two_servers(same: bool) -> crate::live::Live<'static> {
        let m = manifest_text(
            "[project]\nname = \"shop\"\n[defaults]\nengine = \"postgres\"\nisolation = \"instance\"\n\
             [services.orders]\nurl_env = \"ORDERS_PG_URL\"\n\
             [services.billing]\nurl_env = \"BILLING_PG_URL\"\n",
        );
        let mut live = live(m);
        let mut a = server(m, Some("ORDERS_PG_URL"), &["orders"]);
        let mut b = server(m, Some("BILLING_PG_URL"), &["billing"]);
        b.label = "127.0.0.1:5433".into();
        b.catalog.address = "127.0.0.1:5433".into();
        if !same {
            b.catalog.system_identifier = Some("7300000000000000002".into());
        }
        a.label = "127.0.0.1:5432".into();
        live.servers = vec![a, b];
        live
    }

    #[test]
    fn servers_of_their_own_are_clean() {
        assert!(check(run, &two_servers(false)).is_empty());
    }

    /// Two URLs (here two ports) that lead to one cluster: the same
    /// `system_identifier`.
    #[test]
    fn one_cluster_behind_two_urls_is_reported_on_both_sides() {
        let found = check(run, &two_servers(true));
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [
                (
                    Check::InstanceSharing,
                    "orders",
                    Some("billing"),
                    Some("orders"),
                    Severity::Error,
                    "`orders` is configured with instance isolation, but its server \
                     (127.0.0.1:5432, `ORDERS_PG_URL`) is also the server of `billing` \
                     (127.0.0.1:5433)",
                    "point `ORDERS_PG_URL` at a server of `orders`'s own, then `silo up`"
                ),
                (
                    Check::InstanceSharing,
                    "billing",
                    Some("orders"),
                    Some("billing"),
                    Severity::Error,
                    "`billing` is configured with instance isolation, but its server \
                     (127.0.0.1:5433, `BILLING_PG_URL`) is also the server of `orders` \
                     (127.0.0.1:5432)",
                    "point `BILLING_PG_URL` at a server of `billing`'s own, then `silo up`"
                ),
            ]
        );
        assert!(found.iter().all(|f| f.fix.is_none()));
    }
}
