//! Finding contracts on disk, and the contracts in force for the worker.

use silo_contracts::{Catalog, Contracts, ProblemKind};
use silo_manifest::{Manifest, Overrides};

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(services: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("silo.toml"),
            format!("[project]\nname = \"shop\"\n{services}"),
        )
        .unwrap();
        Project { dir }
    }

    fn write(&self, path: &str, text: &str) -> &Project {
        let path = self.dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn manifest(&self) -> Manifest {
        Manifest::load(&self.dir.path().join("silo.toml"), &Overrides::default()).unwrap()
    }
}

const ORDERS: &str = "[services.orders]\npublishes = [\"order.placed\"]\n";

#[test]
fn the_newest_version_is_in_force_by_number_not_by_name_order() {
    let p = Project::new(ORDERS);
    p.write(
        "services/orders/events/order.placed.v2.json",
        r#"{"title": "two"}"#,
    )
    .write(
        "services/orders/events/order.placed.v10.json",
        r#"{"title": "ten"}"#,
    )
    .write(
        "services/orders/events/order.placed.v1.json",
        r#"{"title": "one"}"#,
    );
    let m = p.manifest();
    let catalog = Catalog::load(&m);
    let versions: Vec<u32> = catalog
        .versions("orders", "order.placed")
        .map(|c| c.name.version)
        .collect();
    assert_eq!(versions, [1, 2, 10]);
    let contracts = Contracts::load(&m).unwrap();
    let c = contracts.get("orders", "order.placed").unwrap();
    assert_eq!(c.name.version, 10);
    assert_eq!(c.dataschema, "urn:silo:shop:order.placed:v10");
    assert_eq!(
        c.display.display().to_string(),
        "services/orders/events/order.placed.v10.json"
    );
    assert!(contracts.get("billing", "order.placed").is_none());
}

#[test]
fn a_broken_newest_version_stops_the_worker_with_its_place() {
    let p = Project::new(ORDERS);
    p.write("services/orders/events/order.placed.v1.json", "{}")
        .write(
            "services/orders/events/order.placed.v2.json",
            "{\n  \"type\": \"objec\"\n}\n",
        );
    let err = Contracts::load(&p.manifest()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("services/orders/events/order.placed.v2.json:2:3: not a valid JSON Schema"),
        "{text}"
    );
    // An older broken version does not: the newest is usable.
    let p = Project::new(ORDERS);
    p.write("services/orders/events/order.placed.v1.json", "{")
        .write("services/orders/events/order.placed.v2.json", "{}");
    let contracts = Contracts::load(&p.manifest()).unwrap();
    assert_eq!(contracts.len(), 1);
}

#[test]
fn a_folder_shared_by_two_publishers_gives_each_its_own() {
    let p = Project::new(
        "[services.orders]\npublishes = [\"order.placed\"]\ncontracts = \"contracts\"\n\
         [services.billing]\npublishes = [\"invoice.sent\"]\ncontracts = \"contracts\"\n",
    );
    p.write("contracts/order.placed.v1.json", "{}")
        .write("contracts/invoice.sent.v1.json", "{}")
        .write("contracts/refund.made.v1.json", "{}")
        .write("contracts/notes.txt", "not a contract");
    let catalog = Catalog::load(&p.manifest());
    let owners: Vec<(&str, &str)> = catalog
        .contracts
        .iter()
        .map(|c| (c.service.as_str(), c.name.event_type.as_str()))
        .collect();
    assert_eq!(
        owners,
        [("billing", "invoice.sent"), ("orders", "order.placed")]
    );
    assert_eq!(catalog.problems.len(), 1, "{:?}", catalog.problems);
    assert_eq!(catalog.problems[0].kind, ProblemKind::NotPublished);
    assert!(
        catalog.problems[0]
            .message
            .contains("which `orders` or `billing` does not publish"),
        "{}",
        catalog.problems[0].message
    );
}

#[test]
fn no_folder_means_no_contracts() {
    let p = Project::new(ORDERS);
    let m = p.manifest();
    let catalog = Catalog::load(&m);
    assert!(catalog.contracts.is_empty() && catalog.problems.is_empty());
    assert!(Contracts::load(&m).unwrap().is_empty());
}

/// The BattleScope example's contracts take payloads shaped after seed
/// 000's tables, and refuse one missing what its consumers store.
#[test]
fn battlescope_contracts_load_and_refuse_an_empty_event() {
    // That they accept what the example services publish is proven end to
    // end by the BattleScope flow tests, whose worker checks every payload.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/battlescope/silo.toml");
    let m = Manifest::load(&path, &Overrides::default()).unwrap();
    let contracts = Contracts::load(&m).unwrap();
    assert_eq!(contracts.len(), 4);
    for (service, event_type) in [
        ("ingestion", "killmail.ingested"),
        ("enrichment", "killmail.enriched"),
        ("battles", "battle.created"),
        ("battles", "battle.updated"),
    ] {
        let c = contracts.get(service, event_type).unwrap();
        let refused = c.check(&serde_json::json!({})).unwrap_err();
        assert!(
            refused.problems.contains("is a required property"),
            "{event_type}: {}",
            refused.problems
        );
    }
}
