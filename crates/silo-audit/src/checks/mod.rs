//! One module per check. Live checks are pure functions of the snapshot in
//! [`crate::live::Live`]; each pushes its findings, with remediation and,
//! where SQL or a command can repair it, a [`crate::Fix`].

pub mod cross_access;
pub mod event_types;
pub mod foreign_data;
pub mod foreign_owner;
pub mod hba_rules;
pub mod instance_sharing;
pub mod leftovers;
pub mod own_access;
pub mod public_privileges;
pub mod public_schema;
pub mod role_attributes;
pub mod shared_credentials;
#[cfg(test)]
pub(crate) mod snapshot;
pub mod store_files;

use crate::live::Live;
use crate::{Check, Report, Skipped};

/// Runs every live PostgreSQL check.
pub fn run_live(live: &Live<'_>, report: &mut Report) {
    let out = &mut report.findings;
    own_access::run(live, out);
    cross_access::run(live, out);
    public_privileges::run(live, out);
    role_attributes::run(live, out);
    shared_credentials::run(live, out);
    foreign_owner::run(live, out);
    foreign_data::run(live, out);
    public_schema::run(live, out);
    instance_sharing::run(live, out);
    hba_rules::run(live, out);
    for server in &live.servers {
        if let Err(reason) = &server.catalog.hba {
            let why = if server.catalog.admin_is_superuser {
                String::new()
            } else {
                format!(
                    "; reading it needs a superuser, and `{}` is not one",
                    server.catalog.admin
                )
            };
            report.skipped.push(Skipped {
                check: Check::HbaRules,
                reason: format!(
                    "cannot read pg_hba_file_rules on {}: {reason}{why}",
                    server.label
                ),
            });
        }
        if let (Ok(rules), Err(reason)) = (&server.catalog.hba, &server.catalog.ident) {
            let mapped: Vec<String> = rules
                .iter()
                .filter(|r| r.option("map").is_some())
                .map(|r| r.line.to_string())
                .collect();
            if !mapped.is_empty() {
                report.skipped.push(Skipped {
                    check: Check::HbaRules,
                    reason: format!(
                        "cannot read pg_ident_file_mappings on {} ({reason}): the user-name maps \
                         of pg_hba.conf line(s) {} were not checked",
                        server.label,
                        mapped.join(", ")
                    ),
                });
            }
        }
        if let Err(reason) = &server.catalog.subscriptions {
            report.skipped.push(Skipped {
                check: Check::ForeignData,
                reason: format!("subscriptions on {}: {reason}", server.label),
            });
        }
    }
}

/// Quotes an identifier for remediation SQL.
pub(crate) fn ident(name: &str) -> String {
    silo_store::postgres::quote_ident(name)
}
