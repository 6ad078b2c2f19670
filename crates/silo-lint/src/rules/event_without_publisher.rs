//! `event-without-publisher`: a service consumes an event type that no
//! service publishes, so its inbox never sees one.

use silo_manifest::Declared;

use super::events::{EventHit, EventsContext, EventsRule};
use crate::{RuleId, Severity};

pub struct EventWithoutPublisher;

impl EventsRule for EventWithoutPublisher {
    fn id(&self) -> RuleId {
        RuleId::EventWithoutPublisher
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }

    fn check(&self, ctx: &EventsContext, out: &mut Vec<EventHit>) {
        for s in &ctx.manifest.services {
            for t in &s.consumes {
                if ctx.manifest.publishers_of(t).next().is_some() {
                    continue;
                }
                out.push(ctx.in_manifest(
                    &s.name,
                    Declared::Consumes,
                    t,
                    format!("`{}` consumes `{t}`, which no service publishes", s.name),
                    format!(
                        "add `{t}` to the `publishes` of the service that owns it, or fix the type's spelling in `consumes`"
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
    fn a_consumed_type_nobody_publishes_fires_at_its_entry() {
        let p = Project::events(
            "[services.orders]\npublishes = [\"order.placed\"]\n\
             [services.billing]\nconsumes = [\"order.placed\", \"order.paid\"]\n",
        );
        assert_eq!(
            p.found("event-without-publisher"),
            [(
                6,
                29,
                "`billing` consumes `order.paid`, which no service publishes".into()
            )]
        );
    }
}
