//! Each change between two contract versions, under each compatibility
//! level: refused where the level promises something the change breaks,
//! spared everywhere else.

use serde_json::{Value, json};
use silo_contracts::compat::{self, Direction};
use silo_manifest::Compatibility;

/// Which directions a change breaks: B (backward), F (forward), both, none.
#[derive(Clone, Copy, Debug)]
enum Breaks {
    B,
    F,
    Both,
    Neither,
}

fn refused(breaks: Breaks, level: Compatibility) -> bool {
    use Breaks::*;
    use Compatibility as C;
    match level {
        C::None => false,
        C::Backward => matches!(breaks, B | Both),
        C::Forward => matches!(breaks, F | Both),
        C::Full => !matches!(breaks, Neither),
    }
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

/// (what, old, new, which directions it breaks)
fn cases() -> Vec<(&'static str, Value, Value, Breaks)> {
    use Breaks::*;
    let base = || json!({"id": {"type": "integer"}, "name": {"type": "string"}});
    vec![
        (
            "new required field without default",
            object(base(), &["id"]),
            object(
                json!({"id": {"type": "integer"}, "name": {"type": "string"}, "system_id": {"type": "integer"}}),
                &["id", "system_id"],
            ),
            B,
        ),
        (
            "optional field made required",
            object(base(), &["id"]),
            object(base(), &["id", "name"]),
            B,
        ),
        (
            "new required field with a default",
            object(base(), &["id"]),
            object(
                json!({"id": {"type": "integer"}, "name": {"type": "string"}, "region": {"type": "string", "default": "unknown"}}),
                &["id", "region"],
            ),
            Neither,
        ),
        (
            "required field removed",
            object(base(), &["id", "name"]),
            object(json!({"id": {"type": "integer"}}), &["id"]),
            F,
        ),
        (
            "required field made optional",
            object(base(), &["id", "name"]),
            object(base(), &["id"]),
            F,
        ),
        (
            "required field with a default removed",
            object(
                json!({"id": {"type": "integer"}, "name": {"type": "string", "default": "-"}}),
                &["id", "name"],
            ),
            object(json!({"id": {"type": "integer"}}), &["id"]),
            Neither,
        ),
        (
            "optional field added",
            object(base(), &["id"]),
            object(
                json!({"id": {"type": "integer"}, "name": {"type": "string"}, "note": {"type": "string"}}),
                &["id"],
            ),
            Neither,
        ),
        (
            "optional field removed",
            object(base(), &["id"]),
            object(json!({"id": {"type": "integer"}}), &["id"]),
            Neither,
        ),
        (
            "field removed from a closed object",
            json!({"type": "object", "properties": base(), "additionalProperties": false}),
            json!({"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false}),
            B,
        ),
        (
            "field added to a closed object",
            json!({"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": base(), "additionalProperties": false}),
            F,
        ),
        (
            "type changed",
            object(base(), &["id"]),
            object(
                json!({"id": {"type": "string"}, "name": {"type": "string"}}),
                &["id"],
            ),
            Both,
        ),
        (
            "type narrowed: null no longer allowed",
            object(json!({"name": {"type": ["string", "null"]}}), &[]),
            object(json!({"name": {"type": "string"}}), &[]),
            B,
        ),
        (
            "type narrowed: number to integer",
            json!({"type": "number"}),
            json!({"type": "integer"}),
            B,
        ),
        (
            "type widened: integer to number",
            json!({"type": "integer"}),
            json!({"type": "number"}),
            F,
        ),
        (
            "type added where any was allowed",
            json!({"properties": {"x": {}}}),
            json!({"properties": {"x": {"type": "string"}}}),
            B,
        ),
        (
            "enum narrowed",
            json!({"enum": ["highsec", "lowsec", "nullsec"]}),
            json!({"enum": ["highsec", "lowsec"]}),
            B,
        ),
        (
            "enum extended",
            json!({"enum": ["highsec", "lowsec"]}),
            json!({"enum": ["highsec", "lowsec", "wormhole"]}),
            F,
        ),
        (
            "enum reordered",
            json!({"enum": ["a", "b"]}),
            json!({"enum": ["b", "a"]}),
            Neither,
        ),
        (
            "enum added",
            json!({"type": "string"}),
            json!({"type": "string", "enum": ["a"]}),
            B,
        ),
        (
            "const changed",
            json!({"const": 1}),
            json!({"const": 2}),
            Both,
        ),
        (
            "maxLength lowered",
            json!({"type": "string", "maxLength": 10}),
            json!({"type": "string", "maxLength": 5}),
            B,
        ),
        (
            "maxLength raised",
            json!({"type": "string", "maxLength": 5}),
            json!({"type": "string", "maxLength": 10}),
            F,
        ),
        (
            "minimum added",
            json!({"type": "integer"}),
            json!({"type": "integer", "minimum": 0}),
            B,
        ),
        (
            "minimum removed",
            json!({"type": "integer", "minimum": 0}),
            json!({"type": "integer"}),
            F,
        ),
        (
            "bound on another type ignored",
            json!({"type": "string"}),
            json!({"type": "string", "minimum": 3}),
            Neither,
        ),
        (
            "multipleOf made coarser",
            json!({"type": "integer", "multipleOf": 2}),
            json!({"type": "integer", "multipleOf": 4}),
            B,
        ),
        (
            "multipleOf made finer",
            json!({"type": "integer", "multipleOf": 4}),
            json!({"type": "integer", "multipleOf": 2}),
            F,
        ),
        (
            "pattern added",
            json!({"type": "string"}),
            json!({"type": "string", "pattern": "^[a-z]+$"}),
            B,
        ),
        (
            "format added",
            json!({"type": "string"}),
            json!({"type": "string", "format": "date-time"}),
            B,
        ),
        (
            "uniqueItems turned on",
            json!({"type": "array"}),
            json!({"type": "array", "uniqueItems": true}),
            B,
        ),
        (
            "nested field: type changed",
            object(
                json!({"victim": object(json!({"character_id": {"type": "integer"}}), &["character_id"])}),
                &["victim"],
            ),
            object(
                json!({"victim": object(json!({"character_id": {"type": "string"}}), &["character_id"])}),
                &["victim"],
            ),
            Both,
        ),
        (
            "nested field: new required field",
            object(
                json!({"victim": object(json!({"a": {"type": "integer"}}), &[])}),
                &[],
            ),
            object(
                json!({"victim": object(json!({"a": {"type": "integer"}, "b": {"type": "integer"}}), &["b"])}),
                &[],
            ),
            B,
        ),
        (
            "array items: type changed",
            json!({"type": "array", "items": {"type": "integer"}}),
            json!({"type": "array", "items": {"type": "string"}}),
            Both,
        ),
        (
            "array items: required field removed",
            json!({"type": "array", "items": object(base(), &["id", "name"])}),
            json!({"type": "array", "items": object(base(), &["id"])}),
            F,
        ),
        (
            "array items: enum narrowed",
            json!({"type": "array", "items": {"enum": [1, 2, 3]}}),
            json!({"type": "array", "items": {"enum": [1, 2]}}),
            B,
        ),
        (
            "tuple item changed",
            json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]}),
            json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "integer"}]}),
            Both,
        ),
        (
            "$ref target changed",
            json!({"$defs": {"id": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/id"}}}),
            json!({"$defs": {"id": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/id"}}}),
            Both,
        ),
        (
            "recursive $ref unchanged",
            json!({"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}}, "$ref": "#/$defs/node"}),
            json!({"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}}, "$ref": "#/$defs/node"}),
            Neither,
        ),
        (
            "nullable as oneOf, same values",
            json!({"type": ["string", "null"]}),
            json!({"oneOf": [{"type": "string"}, {"type": "null"}]}),
            Neither,
        ),
        (
            "anyOf branch removed",
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            json!({"anyOf": [{"type": "string"}]}),
            B,
        ),
        (
            "anyOf branch added",
            json!({"anyOf": [{"type": "string"}]}),
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            F,
        ),
        (
            "not added",
            json!({"type": "string"}),
            json!({"type": "string", "not": {"const": ""}}),
            B,
        ),
        (
            "type stated for an enum of that type",
            json!({"enum": ["a", "b"]}),
            json!({"type": "string", "enum": ["a", "b"]}),
            Neither,
        ),
        (
            "identical",
            object(base(), &["id"]),
            object(base(), &["id"]),
            Neither,
        ),
        (
            "description and title changed",
            json!({"type": "integer", "description": "old"}),
            json!({"type": "integer", "description": "new", "title": "Id"}),
            Neither,
        ),
    ]
}

#[test]
fn each_change_is_refused_exactly_where_its_level_forbids_it() {
    let levels = [
        Compatibility::Backward,
        Compatibility::Forward,
        Compatibility::Full,
        Compatibility::None,
    ];
    let mut wrong = Vec::new();
    for (what, old, new, breaks) in cases() {
        for level in levels {
            let found = compat::check(&old, &new, level);
            if found.is_empty() == refused(breaks, level) {
                wrong.push(format!(
                    "{what} under {level}: expected {}, got {found:#?}",
                    if refused(breaks, level) {
                        "a break"
                    } else {
                        "none"
                    }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_break_names_the_property_and_points_into_the_new_schema() {
    let old = object(
        json!({"victim": object(json!({"character_id": {"type": "integer"}, "name": {"type": "string"}}), &["character_id"]),
               "attackers": {"type": "array", "items": object(json!({"ship_type_id": {"type": "integer"}}), &[])}}),
        &["victim"],
    );
    let new = object(
        json!({"victim": object(json!({"character_id": {"type": "string"}, "name": {"type": "string"}, "corp": {"type": "string"}}), &["character_id", "corp"]),
               "attackers": {"type": "array", "items": object(json!({"ship_type_id": {"type": "number"}}), &[])}}),
        &["victim"],
    );
    let found = compat::check(&old, &new, Compatibility::Backward);
    let seen: Vec<(&str, &str, &str)> = found
        .iter()
        .map(|b| (b.path.as_str(), b.pointer.as_str(), b.message.as_str()))
        .collect();
    assert!(
        seen.contains(&(
            "victim.corp",
            "/properties/victim/properties/corp",
            "new required field `victim.corp` without a default"
        )),
        "{seen:#?}"
    );
    assert!(
        seen.contains(&(
            "victim.character_id",
            "/properties/victim/properties/character_id/type",
            "`victim.character_id`: type changed from `integer` to `string`"
        )),
        "{seen:#?}"
    );
    // Widening an item's type is fine for new readers.
    assert_eq!(found.len(), 2, "{seen:#?}");
    assert!(found.iter().all(|b| b.breaks == vec![Direction::Backward]));

    let found = compat::check(&old, &new, Compatibility::Forward);
    let seen: Vec<(&str, &str)> = found
        .iter()
        .map(|b| (b.path.as_str(), b.message.as_str()))
        .collect();
    assert!(
        seen.contains(&(
            "attackers[].ship_type_id",
            "`attackers[].ship_type_id`: type changed from `integer` to `number`"
        )),
        "{seen:#?}"
    );
}

#[test]
fn removed_required_field_points_at_the_new_required_list() {
    let old = object(
        json!({"a": {"type": "integer"}, "b": {"type": "integer"}}),
        &["a", "b"],
    );
    let new = object(json!({"a": {"type": "integer"}}), &["a"]);
    let found = compat::check(&old, &new, Compatibility::Forward);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].path, "b");
    assert_eq!(found[0].pointer, "/required");
    assert_eq!(found[0].message, "required field `b` was removed");
}

#[test]
fn under_full_a_change_breaking_both_ways_is_one_break() {
    let found = compat::check(
        &json!({"type": "integer"}),
        &json!({"type": "string"}),
        Compatibility::Full,
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        found[0].breaks,
        vec![Direction::Backward, Direction::Forward]
    );
    assert_eq!(found[0].place(), "the payload");
}
