//! `foreign-data`: no way from one service database into another's: no
//! `dblink` or `*_fdw` extension, no foreign server or user mapping that
//! points at another service's database or role, no logical-replication
//! subscription that reads from one. (SQLite's `ATTACH` of another
//! service's file is found by the source scan.)

use crate::live::Live;
use crate::{Check, Finding, Fix};

use super::ident;

/// A `key=value` option's value.
fn option<'a>(options: &'a [String], key: &str) -> Option<&'a str> {
    options
        .iter()
        .find_map(|o| o.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// The `dbname` of a libpq connection string (`key=value` or URL form).
fn conninfo_dbname(conninfo: &str) -> Option<String> {
    if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        let url = url::Url::parse(conninfo).ok()?;
        return Some(url.path().trim_start_matches('/').to_string()).filter(|d| !d.is_empty());
    }
    conninfo.split_whitespace().find_map(|pair| {
        pair.split_once('=')
            .filter(|(k, _)| k.trim() == "dbname")
            .map(|(_, v)| v.trim_matches('\'').to_string())
    })
}

pub fn run(live: &Live<'_>, out: &mut Vec<Finding>) {
    for (server, s, inside) in live.service_databases() {
        let name = &s.name;
        for fs in &inside.foreign_servers {
            let target = option(&fs.options, "dbname")
                .and_then(|db| live.database_owner(server, db))
                .filter(|o| o.name != *name);
            let mapped: Vec<&str> = fs
                .mappings
                .iter()
                .filter_map(|(_, remote)| remote.as_deref())
                .filter(|u| live.role_owner(u).is_some_and(|o| o.name != *name))
                .collect();
            if target.is_none() && mapped.is_empty() {
                continue;
            }
            let other = target.or_else(|| mapped.first().and_then(|u| live.role_owner(u)));
            let statement = format!("DROP SERVER {} CASCADE;", ident(&fs.name));
            let mut message = format!(
                "foreign server `{}` ({}) in `{}`",
                fs.name, fs.wrapper, s.database
            );
            if let Some(t) = target {
                message.push_str(&format!(
                    " points at `{}`, the store of `{}`",
                    t.database, t.name
                ));
            }
            if !mapped.is_empty() {
                message.push_str(&format!(
                    "{} maps users to `{}`",
                    if target.is_some() { " and" } else { "" },
                    mapped.join("`, `")
                ));
            }
            out.push(
                Finding::new(Check::ForeignData, name, message, statement.clone())
                    .store(&s.database)
                    .other(other.map(|o| o.name.as_str()))
                    .fix(Fix::Sql {
                        server: server.key.clone(),
                        database: Some(s.database.clone()),
                        statements: vec![statement],
                        phase: 0,
                    }),
            );
        }
        for extension in &inside.remote_extensions {
            let statement = format!("DROP EXTENSION {};", ident(extension));
            out.push(
                    Finding::new(
                        Check::ForeignData,
                        name,
                        format!(
                            "extension `{extension}` is installed in `{}`: it can reach other databases",
                            s.database
                        ),
                        format!(
                            "{statement} (exchange data through events instead; drop its foreign \
                             servers first)"
                        ),
                    )
                    .store(&s.database)
                    .fix(Fix::Sql {
                        server: server.key.clone(),
                        database: Some(s.database.clone()),
                        statements: vec![statement],
                        phase: 2,
                    }),
                );
        }
    }
    for server in &live.servers {
        for sub in server.catalog.subscriptions.iter().flatten() {
            let Some(subscriber) = live.database_owner(server, &sub.database) else {
                continue;
            };
            let Some(source) = conninfo_dbname(&sub.conninfo)
                .and_then(|db| live.database_owner(server, &db))
                .filter(|o| o.name != subscriber.name)
            else {
                continue;
            };
            out.push(
                Finding::new(
                    Check::ForeignData,
                    &subscriber.name,
                    format!(
                        "subscription `{}` in `{}` replicates from `{}`, the store of `{}`",
                        sub.name, sub.database, source.database, source.name
                    ),
                    format!(
                        "ALTER SUBSCRIPTION {0} DISABLE; ALTER SUBSCRIPTION {0} SET (slot_name = NONE); \
                         DROP SUBSCRIPTION {0}; then drop the slot on the publisher (consume `{1}`'s \
                         events instead)",
                        ident(&sub.name),
                        source.name
                    ),
                )
                .store(&sub.database)
                .other(Some(&source.name)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use crate::catalog::{ForeignServer, Subscription};
    use crate::checks::snapshot::{clean, fix_sql, run as check, summary};

    #[test]
    fn no_foreign_data_is_clean() {
        assert!(check(run, &clean()).is_empty());
    }

    #[test]
    fn a_foreign_server_into_a_sibling_and_a_remote_extension() {
        let mut live = clean();
        let inside = live.servers[0].databases.get_mut("orders").unwrap();
        inside.foreign_servers.push(ForeignServer {
            name: "to_billing".into(),
            wrapper: "postgres_fdw".into(),
            options: vec!["host=127.0.0.1".into(), "dbname=billing".into()],
            mappings: vec![("orders_svc".into(), Some("billing_svc".into()))],
        });
        inside.remote_extensions.push("dblink".into());
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [
                (
                    Check::ForeignData,
                    "orders",
                    Some("billing"),
                    Some("orders"),
                    Severity::Error,
                    "foreign server `to_billing` (postgres_fdw) in `orders` points at `billing`, \
                     the store of `billing` and maps users to `billing_svc`",
                    "DROP SERVER \"to_billing\" CASCADE;"
                ),
                (
                    Check::ForeignData,
                    "orders",
                    None,
                    Some("orders"),
                    Severity::Error,
                    "extension `dblink` is installed in `orders`: it can reach other databases",
                    "DROP EXTENSION \"dblink\"; (exchange data through events instead; drop its \
                     foreign servers first)"
                ),
            ]
        );
        // The server goes before the extension it needs.
        let phase = |f: &Finding| match &f.fix {
            Some(Fix::Sql { phase, .. }) => *phase,
            _ => panic!("fixable"),
        };
        assert_eq!((phase(&found[0]), phase(&found[1])), (0, 2));
        assert_eq!(fix_sql(&found[0]).unwrap().0, Some("orders"));
    }

    #[test]
    fn a_subscription_from_a_sibling_store_is_the_subscribers() {
        let mut live = clean();
        live.servers[0].catalog.subscriptions = Ok(vec![Subscription {
            name: "orders_feed".into(),
            database: "billing".into(),
            conninfo: "host=127.0.0.1 dbname=orders user=replicator".into(),
        }]);
        let found = check(run, &live);
        assert_eq!(
            found.iter().map(summary).collect::<Vec<_>>(),
            [(
                Check::ForeignData,
                "billing",
                Some("orders"),
                Some("billing"),
                Severity::Error,
                "subscription `orders_feed` in `billing` replicates from `orders`, the store of \
                 `orders`",
                "ALTER SUBSCRIPTION \"orders_feed\" DISABLE; ALTER SUBSCRIPTION \"orders_feed\" \
                 SET (slot_name = NONE); DROP SUBSCRIPTION \"orders_feed\"; then drop the slot \
                 on the publisher (consume `orders`'s events instead)"
            )]
        );
        assert_eq!(found[0].fix, None);
    }

    #[test]
    fn dbname_from_either_form() {
        assert_eq!(
            conninfo_dbname("host=localhost port=5432 dbname=billing user=x").as_deref(),
            Some("billing")
        );
        assert_eq!(
            conninfo_dbname("postgres://u@h:5432/orders?sslmode=disable").as_deref(),
            Some("orders")
        );
        assert_eq!(conninfo_dbname("host=localhost"), None);
    }
}
