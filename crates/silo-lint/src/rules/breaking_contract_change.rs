//! `breaking-contract-change`: a version of an event type's contract that
//! breaks the compatibility the type keeps (`[events] compatibility`,
//! BACKWARD by default) with the version before it. One finding per
//! change, at the property in the newer file. `silo_contracts::compat`
//! says which change each level refuses.

use silo_contracts::compat::{self, Direction};

use super::events::{EventHit, EventsContext, EventsRule};
use crate::{RuleId, Severity};

pub struct BreakingContractChange;

impl EventsRule for BreakingContractChange {
    fn id(&self) -> RuleId {
        RuleId::BreakingContractChange
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }

    fn check(&self, ctx: &EventsContext, out: &mut Vec<EventHit>) {
        for s in &ctx.manifest.services {
            for t in &s.publishes {
                let level = ctx.manifest.events.compatibility_of(t);
                let versions: Vec<_> = ctx.catalog.versions(&s.name, t).collect();
                for pair in versions.windows(2) {
                    let (old, new) = (pair[0], pair[1]);
                    for b in compat::check(&old.schema, &new.schema, level) {
                        let (line, column) = new.position(&b.pointer);
                        let offset = new.offset(&b.pointer);
                        let broken: Vec<&str> = b.breaks.iter().map(|d| d.as_str()).collect();
                        let promises: Vec<&str> = b.breaks.iter().map(|d| d.promise()).collect();
                        out.push(EventHit {
                            service: s.name.clone(),
                            path: new.path.clone(),
                            file: new.display.clone(),
                            line,
                            column,
                            span: offset..offset,
                            message: format!(
                                "{t} v{} breaks {} compatibility with v{}: {}",
                                new.name.version,
                                broken.join(" and "),
                                old.name.version,
                                b.message
                            ),
                            help: format!(
                                "{} promises {}. {} If the break is meant, publish it as a new event type, or set `[events.types.\"{t}\"] compatibility = \"NONE\"` in silo.toml while every consumer moves",
                                broken.join(" and "),
                                promises.join(", and "),
                                fix(&b.breaks)
                            ),
                            other_service: None,
                        });
                    }
                }
            }
        }
    }
}

/// What usually keeps the promise.
fn fix(breaks: &[Direction]) -> &'static str {
    if breaks.contains(&Direction::Forward) {
        "Keep old readers' fields and values: leave required fields in place, add values and fields only where the old contract allows them."
    } else {
        "Let new readers take old events: give a new required field a `default` or make it optional, and loosen rather than tighten types, values and bounds."
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const V1: &str = r#"{
  "type": "object",
  "required": ["order_id"],
  "properties": {
    "order_id": {"type": "integer"},
    "status": {"enum": ["open", "paid", "void"]}
  }
}
"#;

    fn project(compatibility: &str) -> Project {
        let p = Project::events(&format!(
            "[services.orders]\npublishes = [\"order.placed\"]\n[events]\ncompatibility = \"{compatibility}\"\n"
        ));
        p.contract("orders", "order.placed.v1.json", V1);
        p
    }

    /// A new required field without default and a narrowed enum: two
    /// BACKWARD breaks, each at its property in v2.
    const V2_NARROWER: &str = r#"{
  "type": "object",
  "required": ["order_id", "currency"],
  "properties": {
    "order_id": {"type": "integer"},
    "currency": {"type": "string"},
    "status": {"enum": ["open", "paid"]}
  }
}
"#;

    /// An optional field added, an enum value added.
    const V2_WIDER: &str = r#"{
  "type": "object",
  "required": ["order_id"],
  "properties": {
    "order_id": {"type": "integer"},
    "note": {"type": "string"},
    "status": {"enum": ["open", "paid", "void", "refunded"]}
  }
}
"#;

    #[test]
    fn backward_refuses_a_narrower_version_once_per_change() {
        let p = project("BACKWARD");
        p.contract("orders", "order.placed.v2.json", V2_NARROWER);
        assert_eq!(
            p.found("breaking-contract-change"),
            [
                (
                    6,
                    5,
                    "order.placed v2 breaks BACKWARD compatibility with v1: new required field `currency` without a default".into()
                ),
                (
                    7,
                    16,
                    "order.placed v2 breaks BACKWARD compatibility with v1: `status`: enum narrowed: `\"void\"` removed".into()
                ),
            ]
        );
        let hits = p.hits("breaking-contract-change");
        assert_eq!(
            hits[0].file.display().to_string(),
            "services/orders/events/order.placed.v2.json"
        );
    }

    #[test]
    fn backward_spares_a_wider_version_forward_refuses_it() {
        let p = project("BACKWARD");
        p.contract("orders", "order.placed.v2.json", V2_WIDER);
        assert_eq!(p.found("breaking-contract-change"), []);

        let p = project("FORWARD");
        p.contract("orders", "order.placed.v2.json", V2_WIDER);
        let found = p.found("breaking-contract-change");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].2.contains("FORWARD compatibility"), "{found:?}");
        assert!(found[0].2.contains("enum extended"), "{found:?}");

        let p = project("FORWARD");
        p.contract("orders", "order.placed.v2.json", V2_NARROWER);
        assert_eq!(p.found("breaking-contract-change"), []);
    }

    #[test]
    fn full_refuses_both_and_none_refuses_nothing() {
        for (v2, count) in [(V2_NARROWER, 2), (V2_WIDER, 1)] {
            let p = project("FULL");
            p.contract("orders", "order.placed.v2.json", v2);
            assert_eq!(p.found("breaking-contract-change").len(), count);
            let p = project("NONE");
            p.contract("orders", "order.placed.v2.json", v2);
            assert_eq!(p.found("breaking-contract-change"), []);
        }
    }

    #[test]
    fn each_pair_of_consecutive_versions_is_compared_at_the_types_own_level() {
        let p = Project::events(
            "[services.orders]\npublishes = [\"order.placed\"]\n\
             [events.types.\"order.placed\"]\ncompatibility = \"FORWARD\"\n",
        );
        // v1 -> v2 narrows (fine under FORWARD), v2 -> v10 widens back.
        p.contract("orders", "order.placed.v1.json", V1)
            .contract("orders", "order.placed.v2.json", V2_NARROWER)
            .contract("orders", "order.placed.v10.json", V1);
        let found = p.found("breaking-contract-change");
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|f| f
                .2
                .starts_with("order.placed v10 breaks FORWARD compatibility with v2")),
            "{found:?}"
        );
    }
}
