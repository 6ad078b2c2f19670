//! `event-types`: a service's event tables hold only the types silo.toml
//! declares for it: its outbox only types it `publishes`, its inbox only
//! types it `consumes`. A type outside its declarations is data crossing a
//! boundary that the manifest, the contracts and `silo events contracts`
//! know nothing about. Each store is read as its own service.

use silo_events::EventsError;
use silo_events::status::{StoredTypes, stored_types};
use silo_manifest::{Manifest, Service};
use silo_store::{StoreError, Stores};

use crate::{Check, Finding, Report, Skipped};

/// Reads the event types in every service's store and reports those it
/// does not declare. A store that does not exist yet has none; a store
/// that cannot be read is listed as skipped.
pub async fn run(manifest: &Manifest, stores: &Stores, report: &mut Report) {
    let services: Vec<&Service> = manifest.services.iter().collect();
    let results = stores
        .for_each(
            &services,
            |_, service| stored_types(stores, service),
            |_, _| {},
        )
        .await;
    for (service, result) in results {
        match result {
            Ok(Some(types)) => findings(service, &types, &mut report.findings),
            Ok(None) => {}
            Err(e) if never_made(&e) => {}
            Err(e) => report.skipped.push(Skipped {
                check: Check::EventTypes,
                reason: format!(
                    "cannot read the event tables of {}: {}",
                    service.name,
                    silo_store::root_cause(&e)
                ),
            }),
        }
    }
}

/// A store that was never made: no credentials, or no SQLite file.
fn never_made(e: &EventsError) -> bool {
    match e {
        EventsError::Store(StoreError::NoCredentials { .. }) => true,
        EventsError::Store(StoreError::OpenFile { source, .. }) => {
            source.kind() == std::io::ErrorKind::NotFound
        }
        _ => false,
    }
}

/// One finding per type in `service`'s tables that it does not declare.
pub fn findings(service: &Service, types: &StoredTypes, out: &mut Vec<Finding>) {
    let name = &service.name;
    for (event_type, count) in &types.outbox {
        if service.publishes.contains(event_type) {
            continue;
        }
        out.push(
            Finding::new(
                Check::EventTypes,
                name,
                format!(
                    "the outbox of {name} holds {count} `{event_type}` event(s), a type {name} does not declare in `publishes`"
                ),
                format!(
                    "if {name} owns `{event_type}`, add it to `publishes` under [services.{name}] in silo.toml; \
                     else stop publishing it and, as {name}, `DELETE FROM silo_outbox WHERE type = {}`",
                    literal(event_type)
                ),
            )
            .store(&service.database),
        );
    }
    for (event_type, count) in &types.inbox {
        if service.consumes.contains(event_type) {
            continue;
        }
        out.push(
            Finding::new(
                Check::EventTypes,
                name,
                format!(
                    "the inbox of {name} holds {count} `{event_type}` event(s), a type {name} does not declare in `consumes`"
                ),
                format!(
                    "if {name} needs `{event_type}`, add it to `consumes` under [services.{name}] in silo.toml; \
                     else, as {name}, `DELETE FROM silo_inbox WHERE type = {}`",
                    literal(event_type)
                ),
            )
            .store(&service.database),
        );
    }
}

/// A SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn service(publishes: &[&str], consumes: &[&str]) -> Service {
        let manifest = Manifest::from_str(
            &format!(
                "[project]\nname = \"t\"\n[services.orders]\npublishes = {publishes:?}\nconsumes = {consumes:?}\n"
            ),
            std::path::Path::new("silo.toml"),
            &Default::default(),
        )
        .unwrap();
        manifest.services[0].clone()
    }

    #[test]
    fn only_undeclared_types_are_findings() {
        let orders = service(&["order.placed"], &["payment.made"]);
        let types = StoredTypes {
            outbox: vec![("order.placed".into(), 3), ("order.shipped".into(), 2)],
            inbox: vec![("payment.made".into(), 1), ("user.updated".into(), 4)],
        };
        let mut out = Vec::new();
        findings(&orders, &types, &mut out);
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|f| f.check == Check::EventTypes && f.severity == Severity::Error)
        );
        assert_eq!(
            out[0].message,
            "the outbox of orders holds 2 `order.shipped` event(s), a type orders does not declare in `publishes`"
        );
        assert!(
            out[0]
                .remediation
                .ends_with("`DELETE FROM silo_outbox WHERE type = 'order.shipped'`"),
            "{}",
            out[0].remediation
        );
        assert_eq!(
            out[1].message,
            "the inbox of orders holds 4 `user.updated` event(s), a type orders does not declare in `consumes`"
        );
        assert_eq!(out[1].location.store(), Some("orders"));
    }

    #[test]
    fn declared_types_are_clean_and_literals_are_quoted() {
        let orders = service(&["order.placed"], &["payment.made"]);
        let types = StoredTypes {
            outbox: vec![("order.placed".into(), 1)],
            inbox: vec![("payment.made".into(), 1)],
        };
        let mut out = Vec::new();
        findings(&orders, &types, &mut out);
        assert!(out.is_empty());
        assert_eq!(literal("it's"), "'it''s'");
    }
}
