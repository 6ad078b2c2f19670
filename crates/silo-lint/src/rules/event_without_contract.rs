//! `event-without-contract`: a service publishes an event type with no
//! contract file. Seed 001: contract-first, all events have JSON schemas.

use silo_manifest::Declared;

use super::events::{EventHit, EventsContext, EventsRule};
use crate::{RuleId, Severity};

pub struct EventWithoutContract;

impl EventsRule for EventWithoutContract {
    fn id(&self) -> RuleId {
        RuleId::EventWithoutContract
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }

    fn check(&self, ctx: &EventsContext, out: &mut Vec<EventHit>) {
        for s in &ctx.manifest.services {
            for t in &s.publishes {
                if ctx.catalog.latest(&s.name, t).is_some() {
                    continue;
                }
                let folder = ctx.folder(s);
                out.push(ctx.in_manifest(
                    &s.name,
                    Declared::Publishes,
                    t,
                    format!(
                        "`{}` publishes `{t}` without a contract: there is no `{t}.v<N>.json` in {folder}",
                        s.name
                    ),
                    format!(
                        "write the payload's JSON Schema to {folder}/{t}.v1.json; the worker then refuses payloads that do not match it, and `silo lint` checks each new version against the last"
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn a_published_type_without_a_contract_fires_at_its_entry() {
        let p =
            Project::events("[services.orders]\npublishes = [\"order.placed\", \"order.paid\"]\n");
        p.contract("orders", "order.paid.v1.json", r#"{"type": "object"}"#);
        assert_eq!(
            p.found("event-without-contract"),
            [(
                4,
                14,
                "`orders` publishes `order.placed` without a contract: there is no `order.placed.v<N>.json` in services/orders/events".into()
            )]
        );
        let hits = p.hits("event-without-contract");
        assert_eq!(hits[0].file.display().to_string(), "silo.toml");
    }

    #[test]
    fn a_broken_contract_is_still_a_contract_here() {
        // invalid-contract reports it; this rule does not pile on.
        let p = Project::events("[services.orders]\npublishes = [\"order.placed\"]\n");
        p.contract("orders", "order.placed.v1.json", "{");
        assert_eq!(p.found("event-without-contract"), []);
    }
}
