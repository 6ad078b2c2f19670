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
