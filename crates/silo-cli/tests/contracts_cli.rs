//! `silo events contracts`: the event map, as a table and as JSON.

mod common;

use common::{json, silo};
use predicates::prelude::*;

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        "[project]\nname = \"shop\"\n\
         [services.orders]\npublishes = [\"order.placed\", \"order.paid\"]\n\
         [services.billing]\nconsumes = [\"order.placed\", \"refund.made\"]\n\
         [events.types.\"order.placed\"]\ncompatibility = \"FULL\"\n",
    )
    .unwrap();
    let events = dir.path().join("services/orders/events");
    std::fs::create_dir_all(&events).unwrap();
    for v in [1, 2] {
        std::fs::write(
            events.join(format!("order.placed.v{v}.json")),
            r#"{"type": "object"}"#,
        )
        .unwrap();
    }
    dir
}

#[test]
fn the_map_names_owner_consumers_contract_and_what_is_missing() {
    let dir = project();
    let doc = json(silo(dir.path()).args(["events", "contracts", "--json"]));
    assert_eq!(doc["project"], "shop");
    let types = doc["types"].as_array().unwrap();
    let names: Vec<&str> = types.iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(names, ["order.paid", "order.placed", "refund.made"]);
    assert_eq!(types[0]["flags"], serde_json::json!(["no-contract"]));
    assert_eq!(types[0]["contract"], serde_json::Value::Null);
    let placed = &types[1];
    assert_eq!(placed["publishers"], serde_json::json!(["orders"]));
    assert_eq!(placed["consumers"], serde_json::json!(["billing"]));
    assert_eq!(placed["compatibility"], "FULL");
    assert_eq!(placed["contract"]["version"], 2);
    assert_eq!(
        placed["contract"]["file"],
        "services/orders/events/order.placed.v2.json"
    );
    assert_eq!(
        placed["contract"]["dataschema"],
        "urn:silo:shop:order.placed:v2"
    );
    assert_eq!(placed["contract"]["versions"], serde_json::json!([1, 2]));
    assert_eq!(placed["flags"], serde_json::json!([]));
    assert_eq!(types[2]["flags"], serde_json::json!(["no-publisher"]));

    silo(dir.path())
        .args(["events", "contracts"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "v2 services/orders/events/order.placed.v2.json",
        ))
        .stdout(predicate::str::contains("no service publishes it"))
        .stderr(predicate::str::contains("2 of 3 type(s) flagged"));
}
