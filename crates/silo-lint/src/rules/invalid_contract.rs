//! `invalid-contract`: a contract file that is not JSON, or not a valid
//! JSON Schema (or one silo cannot compile offline), or cannot be read.

use silo_contracts::ProblemKind;

use super::events::{EventHit, EventsContext, EventsRule};
use crate::{RuleId, Severity};

pub struct InvalidContract;

impl EventsRule for InvalidContract {
    fn id(&self) -> RuleId {
        RuleId::InvalidContract
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }

    fn check(&self, ctx: &EventsContext, out: &mut Vec<EventHit>) {
        for p in &ctx.catalog.problems {
            let help = match p.kind {
                ProblemKind::Parse => {
                    "fix the JSON; until then the worker refuses to start if this is the type's newest version"
                }
                ProblemKind::Schema => {
                    "fix the schema (JSON Schema 2020-12 unless `$schema` names another draft; `$ref`s stay inside the file); until then the worker refuses to start if this is the type's newest version"
                }
                ProblemKind::Unreadable => "make it readable by the user running silo",
                ProblemKind::Name | ProblemKind::NotPublished => continue,
            };
            out.push(EventHit {
                service: p.service.clone(),
                path: p.path.clone(),
                file: p.display.clone(),
                line: p.line,
                column: p.column,
                span: p.offset..p.offset,
                message: p.message.clone(),
                help: help.into(),
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn text_that_is_not_json_and_schemas_that_are_not_valid_fire_where_they_are() {
        let p =
            Project::events("[services.orders]\npublishes = [\"order.placed\", \"order.paid\"]\n");
        p.contract(
            "orders",
            "order.placed.v1.json",
            "{\n  \"type\": \"object\",\n}\n",
        )
        .contract(
            "orders",
            "order.paid.v1.json",
            "{\n  \"properties\": {\n    \"id\": {\"type\": 5}\n  }\n}\n",
        );
        let found = p.found("invalid-contract");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].0, found[0].1), (3, 12), "{found:?}");
        assert!(found[0].2.contains("not a valid JSON Schema"), "{found:?}");
        let hits = p.hits("invalid-contract");
        assert_eq!(
            hits[1].file.display().to_string(),
            "services/orders/events/order.placed.v1.json"
        );
        assert_eq!((hits[1].line, hits[1].column), (3, 1));
        assert!(
            hits[1].message.starts_with("not JSON: "),
            "{}",
            hits[1].message
        );
    }

    #[test]
    fn a_valid_contract_is_spared() {
        let p = Project::events("[services.orders]\npublishes = [\"order.placed\"]\n");
        p.contract("orders", "order.placed.v1.json", r#"{"type": "object"}"#);
        assert_eq!(p.found("invalid-contract"), []);
    }
}
