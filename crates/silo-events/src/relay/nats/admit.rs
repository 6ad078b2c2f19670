//! What the delivery believes of a message from the stream.
//!
//! Headers are whatever the publisher wrote: a service allowed only its
//! own subjects could still write another service's name in `ce-source`,
//! another type in `ce-type` and any `ce-dataschema`. So the delivery takes
//! only what it can check:
//!
//! - the type from the **subject** (`<project>.<type>`), which the server
//!   lets a service publish on only if it may (under `nats_auth`);
//! - the source from the **manifest**: the service that publishes the type;
//!   when several do, the `ce-source` must name one of them;
//! - the payload checked against the type's **contract** here, and the
//!   `dataschema` the contract gives, never the header's.
//!
//! A message that fails any of this is refused with the reason; the
//! delivery acks it, skips it and counts it.

use std::collections::HashMap;

use async_nats::HeaderMap;
use silo_manifest::Manifest;

use super::envelope::Envelope;
use super::names;
use crate::contracts::{self, Contracts, Verdict};

/// The checks, set up once per delivery.
pub struct Gate {
    project: String,
    /// Each type's publishing services, from the manifest.
    publishers: HashMap<String, Vec<String>>,
    contracts: Contracts,
}

impl Gate {
    /// The checks for `manifest`'s project with its `contracts`.
    pub fn new(manifest: &Manifest, contracts: Contracts) -> Self {
        let mut publishers: HashMap<String, Vec<String>> = HashMap::new();
        for s in &manifest.services {
            for t in &s.publishes {
                publishers
                    .entry(t.clone())
                    .or_default()
                    .push(s.name.clone());
            }
        }
        Gate {
            project: manifest.project.clone(),
            publishers,
            contracts,
        }
    }

    /// The event a message on `subject` carries, its type, source and
    /// `dataschema` as the subject, the manifest and the contract say; or
    /// why it is refused.
    pub fn admit(
        &self,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Result<Envelope, String> {
        let event_type = names::type_of_subject(&self.project, subject)
            .ok_or_else(|| "its subject is not one of the project's".to_string())?;
        let mut e = Envelope::from_message(headers, payload)?;
        let source = match self.publishers.get(event_type).map(Vec::as_slice) {
            None | Some([]) => return Err(format!("no service publishes {event_type}")),
            Some([only]) => only.clone(),
            Some(several) if several.contains(&e.source) => e.source.clone(),
            Some(several) => {
                return Err(format!(
                    "its ce-source {:?} is not one of the services that publish {event_type} ({})",
                    e.source,
                    several.join(", ")
                ));
            }
        };
        if e.source != source || e.event_type != event_type {
            tracing::debug!(
                subject,
                claimed_source = %e.source,
                claimed_type = %e.event_type,
                "the headers name another source or type than the subject and the manifest"
            );
        }
        match contracts::check(&self.contracts, &source, event_type, &e.payload) {
            Verdict::Deliver { dataschema } => e.dataschema = dataschema,
            Verdict::Refuse { reason } => return Err(reason),
        }
        e.event_type = event_type.to_string();
        e.source = source;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_manifest::Overrides;

    fn gate(dir: &std::path::Path) -> Gate {
        let path = dir.join("silo.toml");
        std::fs::write(
            &path,
            "[project]\nname = \"shop\"\n\
             [services.orders]\npublishes = [\"order.placed\", \"audit.noted\"]\n\
             [services.billing]\npublishes = [\"audit.noted\"]\nconsumes = [\"order.placed\"]\n",
        )
        .unwrap();
        let manifest = Manifest::load(&path, &Overrides::default()).unwrap();
        Gate::new(&manifest, Contracts::none())
    }

    fn message(source: &str, event_type: &str) -> HeaderMap {
        Envelope {
            id: "0190a4a2-7b1c-7cde-8f00-0123456789ab".into(),
            source: source.into(),
            event_type: event_type.into(),
            key: "k".into(),
            time: "2026-11-27T10:00:00Z".into(),
            dataschema: Some("https://example.com/made-up".into()),
            headers: "{}".into(),
            payload: "{}".into(),
        }
        .to_headers()
    }

    #[test]
    fn the_subject_and_the_manifest_say_who_published_what() {
        let dir = tempfile::tempdir().unwrap();
        let g = gate(dir.path());
        // One publisher: the headers' claims give way.
        let e = g
            .admit("shop.order.placed", Some(&message("billing", "x.y")), b"{}")
            .unwrap();
        assert_eq!(
            (e.source.as_str(), e.event_type.as_str(), e.dataschema),
            ("orders", "order.placed", None)
        );
        // Several publishers: ce-source must name one of them.
        let e = g
            .admit("shop.audit.noted", Some(&message("billing", "x.y")), b"{}")
            .unwrap();
        assert_eq!(e.source, "billing");
        let why = g
            .admit("shop.audit.noted", Some(&message("shipping", "x.y")), b"{}")
            .unwrap_err();
        assert!(why.contains("orders, billing"), "{why}");
        // A type nobody publishes, a subject of another project.
        let why = g
            .admit("shop.payment.made", Some(&message("orders", "x")), b"{}")
            .unwrap_err();
        assert!(why.contains("no service publishes payment.made"), "{why}");
        assert!(
            g.admit("other.order.placed", Some(&message("orders", "x")), b"{}")
                .is_err()
        );
    }
}
