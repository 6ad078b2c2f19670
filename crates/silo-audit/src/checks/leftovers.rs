//! `leftovers`: what interrupted runs left behind, and stores silo made
//! for services that silo.toml no longer names. A scratch store of a
//! killed `verify` or `diff`, a staged credentials file of a killed `up`,
//! a half-made store: none of them is anyone's, and a scratch database
//! owned by a service role makes a later `silo down` fail half way. An
//! orphan keeps a database, a role and a password that nothing manages.

use silo_manifest::Manifest;
use silo_store::{Leftover, LeftoverKind, Orphan, Stores};

use crate::{AuditError, Check, Finding};

/// What interrupted runs left for one service.
#[derive(Debug, Clone)]
pub struct Left {
    pub service: String,
    /// The service's store (database name or SQLite file name).
    pub store: String,
    /// Each thing left, typed by silo-store.
    pub items: Vec<Leftover>,
}

/// Asks silo-store for each service's leftovers and for the orphans, then
/// reports them.
pub async fn run(
    manifest: &Manifest,
    stores: &Stores,
    out: &mut Vec<Finding>,
) -> Result<(), AuditError> {
    let mut left = Vec::new();
    for service in &manifest.services {
        let engine = stores.engine(service).map_err(AuditError::Store)?;
        let items = engine.leftovers(service).await.map_err(AuditError::Store)?;
        if !items.is_empty() {
            left.push(Left {
                service: service.name.clone(),
                store: service.database.clone(),
                items,
            });
        }
    }
    let orphans = stores
        .orphans(&manifest.services)
        .map_err(AuditError::Store)?;
    report(&left, &orphans, out);
    Ok(())
}

/// The findings for `left` and `orphans`: one per thing left, one per
/// orphan, all warnings (nothing is open, but something is unmanaged).
pub fn report(left: &[Left], orphans: &[Orphan], out: &mut Vec<Finding>) {
    for l in left {
        for item in &l.items {
            let what = match item.kind {
                LeftoverKind::StagedCredentials => format!("staged credentials file {}", item.name),
                LeftoverKind::ScratchStore => format!("scratch store {}", item.name),
                LeftoverKind::HalfMadeStore => format!("half-made store {}", item.name),
                LeftoverKind::ClosedStore => {
                    format!("store {} closed to connections", item.name)
                }
            };
            let remediation = match item.kind {
                LeftoverKind::HalfMadeStore => format!(
                    "`silo up {0}` finishes a half-made store (`silo down {0} --yes` removes it instead)",
                    l.service
                ),
                LeftoverKind::ClosedStore => {
                    format!("`silo up {}` opens it again", l.service)
                }
                _ => format!("`silo down {} --yes` removes them", l.service),
            };
            out.push(
                Finding::new(
                    Check::Leftovers,
                    &l.service,
                    format!("an interrupted run left {what}"),
                    remediation,
                )
                .store(&l.store)
                .warning(),
            );
        }
    }
    for o in orphans {
        out.push(
            Finding::new(
                Check::Leftovers,
                &o.service,
                format!(
                    "silo made a store for `{}`, which silo.toml no longer names: {}",
                    o.service,
                    o.found.join(", ")
                ),
                format!(
                    "`silo down {} --orphan --yes` removes its store, role and credentials (or name the service in silo.toml again)",
                    o.service
                ),
            )
            .store(&o.database)
            .warning(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use silo_manifest::Engine;

    #[test]
    fn each_thing_left_is_a_warning_with_the_command_that_removes_it() {
        let left = [Left {
            service: "orders".into(),
            store: "orders".into(),
            items: vec![
                Leftover::new(LeftoverKind::ScratchStore, "orders_scratch_0123abcd"),
                Leftover::new(LeftoverKind::HalfMadeStore, "orders"),
            ],
        }];
        let mut out = Vec::new();
        report(&left, &[], &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|f| f.check == Check::Leftovers
            && f.service == "orders"
            && f.severity == Severity::Warning
            && f.location.store() == Some("orders")));
        assert_eq!(
            out[0].message,
            "an interrupted run left scratch store orders_scratch_0123abcd"
        );
        assert_eq!(out[0].remediation, "`silo down orders --yes` removes them");
        assert_eq!(
            out[1].message,
            "an interrupted run left half-made store orders"
        );
        assert!(
            out[1].remediation.starts_with("`silo up orders` finishes"),
            "{}",
            out[1].remediation
        );
    }

    #[test]
    fn an_orphan_names_what_was_found_and_the_orphan_command() {
        let orphan = Orphan {
            service: "legacy".into(),
            engine: Engine::Postgres,
            database: "legacy_db".into(),
            role: Some("legacy_svc".into()),
            server: Some("127.0.0.1:5432".into()),
            found: vec!["credentials file .silo/secrets/legacy.env".into()],
        };
        let mut out = Vec::new();
        report(&[], &[orphan], &mut out);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!((f.check, f.severity), (Check::Leftovers, Severity::Warning));
        assert_eq!(f.service, "legacy");
        assert_eq!(f.location.store(), Some("legacy_db"));
        assert_eq!(
            f.message,
            "silo made a store for `legacy`, which silo.toml no longer names: credentials file .silo/secrets/legacy.env"
        );
        assert!(
            f.remediation
                .starts_with("`silo down legacy --orphan --yes`")
        );
    }

    #[test]
    fn nothing_left_and_no_orphans_is_no_finding() {
        let mut out = Vec::new();
        report(&[], &[], &mut out);
        assert!(out.is_empty());
    }
}
