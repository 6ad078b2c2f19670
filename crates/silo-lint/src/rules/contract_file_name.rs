//! `contract-file-name`: a `.json` file in a contracts folder that is not
//! `<type>.v<N>.json` of a type its service publishes, so no check ever
//! uses it.

use silo_contracts::ProblemKind;

use super::events::{EventHit, EventsContext, EventsRule};
use crate::{RuleId, Severity};

pub struct ContractFileName;

impl EventsRule for ContractFileName {
    fn id(&self) -> RuleId {
        RuleId::ContractFileName
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }

    fn check(&self, ctx: &EventsContext, out: &mut Vec<EventHit>) {
        for p in &ctx.catalog.problems {
            let help = match p.kind {
                ProblemKind::Name => "rename it `<type>.v<N>.json` (such as `order.placed.v1.json`), or move it out of the contracts folder".to_string(),
                ProblemKind::NotPublished => match &p.name {
                    Some(name) => match ctx.manifest.publishers_of(&name.event_type).next() {
                        Some(owner) => format!(
                            "`{}` is `{}`'s event: move the file to {}",
                            name.event_type,
                            owner.name,
                            owner.contracts.display()
                        ),
                        None => format!(
                            "add `{}` to `publishes` of `{}` in silo.toml, or delete the file",
                            name.event_type, p.service
                        ),
                    },
                    None => continue,
                },
                _ => continue,
            };
            out.push(EventHit {
                service: p.service.clone(),
                path: p.path.clone(),
                file: p.display.clone(),
                line: 1,
                column: 1,
                span: 0..0,
                message: p.message.clone(),
                help,
                other_service: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn misnamed_files_and_types_not_published_fire() {
        let p = Project::events(
            "[services.orders]\npublishes = [\"order.placed\"]\n\
             [services.billing]\npublishes = [\"invoice.sent\"]\n",
        );
        p.contract("orders", "order.placed.json", "{}")
            .contract("orders", "order.placed.v01.json", "{}")
            .contract("orders", "invoice.sent.v1.json", "{}")
            .contract("orders", "order.placed.v1.json", "{}")
            .contract("orders", "README.md", "not a contract");
        let hits = p.hits("contract-file-name");
        let files: Vec<String> = hits
            .iter()
            .map(|h| h.file.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            [
                "invoice.sent.v1.json",
                "order.placed.json",
                "order.placed.v01.json"
            ]
        );
        assert!(
            hits[0].message.contains("which `orders` does not publish"),
            "{}",
            hits[0].message
        );
        assert!(
            hits[0].help.contains("services/billing/events"),
            "{}",
            hits[0].help
        );
        assert!(
            hits[1].message.contains("not a version"),
            "{}",
            hits[1].message
        );
        assert!(
            hits[2].message.contains("starts with 0"),
            "{}",
            hits[2].message
        );
    }

    #[test]
    fn well_named_contracts_are_spared() {
        let p = Project::events("[services.orders]\npublishes = [\"order.placed\"]\n");
        p.contract("orders", "order.placed.v1.json", "{}")
            .contract("orders", "order.placed.v2.json", "{}")
            .contract("orders", ".order.placed.v3.json.swp", "");
        assert_eq!(p.found("contract-file-name"), []);
    }
}
