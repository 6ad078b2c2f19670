//! `event-published-twice`: two services publish the same event type.
//! A type has one owner, who owns its contract.

use silo_manifest::Declared;

use super::events::{EventHit, EventsContext, EventsRule};
use crate::{RuleId, Severity};

pub struct EventPublishedTwice;

impl EventsRule for EventPublishedTwice {
    fn id(&self) -> RuleId {
        RuleId::EventPublishedTwice
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }

    fn check(&self, ctx: &EventsContext, out: &mut Vec<EventHit>) {
        for s in &ctx.manifest.services {
            for t in &s.publishes {
                let Some(first) = ctx.manifest.publishers_of(t).next() else {
                    continue;
                };
                if first.name == s.name {
                    continue;
                }
                let mut hit = ctx.in_manifest(
                    &s.name,
                    Declared::Publishes,
                    t,
                    format!(
                        "`{}` publishes `{t}`, which `{}` publishes too",
                        s.name, first.name
                    ),
                    format!(
                        "an event type has one owner, who keeps its contract: leave `{t}` to `{}`, or give `{}`'s event a name of its own (such as `{}.{}`)",
                        first.name,
                        s.name,
                        s.name,
                        t.rsplit('.').next().unwrap_or(t)
                    ),
                );
                hit.other_service = Some(first.name.clone());
                out.push(hit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn the_second_publisher_fires() {
        let p = Project::events(
            "[services.orders]\npublishes = [\"order.placed\"]\n\
             [services.billing]\npublishes = [\"invoice.sent\", \"order.placed\"]\n",
        );
        assert_eq!(
            p.found("event-published-twice"),
            [(
                6,
                30,
                "`billing` publishes `order.placed`, which `orders` publishes too".into()
            )]
        );
        let hit = &p.hits("event-published-twice")[0];
        assert_eq!(hit.service, "billing");
        assert_eq!(hit.other_service.as_deref(), Some("orders"));
    }
}
