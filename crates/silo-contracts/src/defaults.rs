//! Filling a payload's missing properties from the contract's `default`s,
//! the way a consumer reading it would, before checking it again.

use serde_json::Value;

/// How deep `$ref`s and nesting are followed.
const MAX_DEPTH: usize = 64;

/// Adds each property that `schema` gives a `default` and `payload` lacks,
/// through nested objects, array items, `allOf` and local `$ref`s.
/// Returns whether anything was added.
pub(crate) fn fill(schema: &Value, payload: &mut Value) -> bool {
    fill_at(schema, schema, payload, 0)
}

fn fill_at(root: &Value, node: &Value, payload: &mut Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let node = crate::compat::resolve(root, node);
    let mut changed = false;
    if let Some(all) = node.get("allOf").and_then(Value::as_array) {
        for branch in all {
            changed |= fill_at(root, branch, payload, depth + 1);
        }
    }
    match payload {
        Value::Object(map) => {
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (key, sub) in props {
                    let sub = crate::compat::resolve(root, sub);
                    match map.get_mut(key) {
                        Some(value) => changed |= fill_at(root, sub, value, depth + 1),
                        None => {
                            if let Some(default) = sub.get("default") {
                                map.insert(key.clone(), default.clone());
                                changed = true;
                            }
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = node.get("items").filter(|i| i.is_object()) {
                for value in items {
                    changed |= fill_at(root, item, value, depth + 1);
                }
            }
        }
        _ => {}
    }
    changed
}
