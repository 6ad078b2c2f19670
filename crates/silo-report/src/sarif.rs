//! SARIF 2.1.0, as GitHub code scanning and other viewers take it.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::{Location, Run};

/// The SARIF document of a run. Each reported rule carries its page as
/// help; columns count Unicode code points, as silo's do. A finding with
/// no place in a file points at line 1 of the run's anchor (the manifest);
/// what the run skipped is listed as notifications of the invocation.
pub fn sarif(run: &Run<'_>) -> Value {
    // Rule id -> its group; sorted, so a result's ruleIndex is a search.
    let mut groups: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for f in &run.findings {
        groups.insert(f.rule, f.group);
    }
    let rule_ids: Vec<&str> = groups.keys().copied().collect();
    let pages = run.tool.pages;
    let rules: Vec<Value> = groups
        .iter()
        .map(|(id, group)| {
            let summary = pages.summary(id).unwrap_or_else(|| id.to_string());
            let page = pages.page(id).unwrap_or_default();
            let mut rule = json!({
                "id": id,
                "name": id,
                "shortDescription": {"text": summary},
                "help": {"text": page, "markdown": page},
            });
            if let Some(group) = group {
                rule["properties"] = json!({"tags": [group]});
            }
            rule
        })
        .collect();
    let results: Vec<Value> = run
        .findings
        .iter()
        .map(|f| {
            let (file, mut region) = match &f.location {
                Location::Source(p) => (
                    Some(p.file.as_path()),
                    json!({"startLine": p.line, "startColumn": p.column}),
                ),
                Location::Live { .. } => (run.anchor, json!({"startLine": 1, "startColumn": 1})),
            };
            if let Some((line, column)) = f.end {
                region["endLine"] = line.into();
                region["endColumn"] = column.into();
            }
            let locations: Vec<Value> = file
                .map(|file| {
                    json!({
                        "physicalLocation": {
                            "artifactLocation": {"uri": uri(file), "uriBaseId": "%SRCROOT%"},
                            "region": region,
                        }
                    })
                })
                .into_iter()
                .collect();
            let mut properties = json!({"service": f.service});
            if let Some(group) = f.group {
                properties["group"] = group.into();
            }
            if let Some(other) = f.other_service {
                properties["other_service"] = other.into();
            }
            if let Some(store) = f.location.store() {
                properties["store"] = store.into();
            }
            json!({
                "ruleId": f.rule,
                "ruleIndex": rule_ids.binary_search(&f.rule).unwrap_or(0),
                "level": f.severity.sarif_level(),
                "message": {"text": run.message(f)},
                "locations": locations,
                "properties": properties,
            })
        })
        .collect();
    let mut sarif = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": run.tool.name,
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the folder that holds silo.toml"}}},
            "results": results,
        }],
    });
    if !run.skipped.is_empty() {
        let verb = match run.tool.command {
            "lint" => "linted",
            "audit" => "audited",
            other => other,
        };
        let notes: Vec<Value> = run
            .skipped
            .iter()
            .map(|k| {
                let text = match k.rule {
                    Some(rule) => format!("skipped {rule}: {}", k.reason),
                    None => format!("skipped, not {verb}: {}", k.reason),
                };
                let mut note = json!({"level": "note", "message": {"text": text}});
                if let Some(path) = k.path {
                    note["locations"] = json!([{"physicalLocation": {"artifactLocation": {
                        "uri": uri(path),
                        "uriBaseId": "%SRCROOT%",
                    }}}]);
                }
                if let Some(rule) = k.rule {
                    note["associatedRule"] = json!({"id": rule});
                }
                note
            })
            .collect();
        sarif["runs"][0]["invocations"] = json!([{
            "executionSuccessful": true,
            "toolExecutionNotifications": notes,
        }]);
    }
    sarif
}

/// A relative path as a URI reference: `/` separators, percent-encoded
/// where a URI needs it.
pub fn uri(path: &Path) -> String {
    let mut out = String::new();
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        for b in part.to_string_lossy().bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_path_becomes_a_uri_reference() {
        assert_eq!(
            super::uri(std::path::Path::new("services/my orders/V1__ä.sql")),
            "services/my%20orders/V1__%C3%A4.sql"
        );
    }
}
