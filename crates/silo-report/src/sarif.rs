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
        let notes: Vec<Value> = run
            .skipped
            .iter()
            .map(|k| {
                let text = match k.rule {
                    Some(rule) => format!("skipped {rule}: {}", k.reason),
                    None => format!("skipped, not {}: {}", run.tool.done, k.reason),
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
    use std::path::Path;

    use include_dir::{Dir, include_dir};

    use crate::{Finding, Location, Pages, Run, Severity, Skipped, Tool};

    static DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/tests/pages");
    static PAGES: Pages = Pages::new(&DIR);

    /// A finding with no place in a file points at the anchor's first line
    /// and names its service in the text; a skipped path is a notification
    /// at that path.
    #[test]
    fn live_findings_point_at_the_anchor_and_skips_are_notifications() {
        let run = Run {
            tool: Tool {
                name: "t",
                command: "check",
                done: "checked",
                title: "t check",
                help: "fix",
                pages: &PAGES,
            },
            findings: vec![Finding {
                rule: "first-rule",
                group: None,
                severity: Severity::Warning,
                service: "orders",
                other_service: Some("billing"),
                location: Location::Live {
                    store: Some("orders_db".into()),
                },
                end: None,
                message: "opens `billing`",
                help: "close it",
            }],
            skipped: vec![Skipped {
                path: Some(Path::new("a b/x.txt")),
                rule: None,
                reason: "not SQL",
            }],
            anchor: Some(Path::new("silo.toml")),
        };
        let sarif = super::sarif(&run);
        let result = &sarif["runs"][0]["results"][0];
        assert_eq!(
            result["message"]["text"],
            "orders → billing: opens `billing` (fix: close it)"
        );
        let place = &result["locations"][0]["physicalLocation"];
        assert_eq!(place["artifactLocation"]["uri"], "silo.toml");
        assert_eq!(
            place["region"],
            serde_json::json!({"startLine": 1, "startColumn": 1})
        );
        assert_eq!(
            result["properties"],
            serde_json::json!({"service": "orders", "other_service": "billing", "store": "orders_db"})
        );
        let rule = &sarif["runs"][0]["tool"]["driver"]["rules"][0];
        assert_eq!(
            rule["shortDescription"]["text"],
            "Flags the first thing, over two lines."
        );
        assert!(rule.get("properties").is_none(), "no group, no tags");
        let note = &sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"][0];
        assert_eq!(note["message"]["text"], "skipped, not checked: not SQL");
        assert_eq!(
            note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "a%20b/x.txt"
        );
        assert_eq!(
            crate::github::github(&run),
            "::warning title=t check first-rule::orders → billing: opens `billing` (fix: close it)\n\
             ::notice file=a b/x.txt,title=silo check skipped this path::not SQL\n"
        );
    }
    #[test]
    fn a_path_becomes_a_uri_reference() {
        assert_eq!(
            super::uri(std::path::Path::new("services/my orders/V1__ä.sql")),
            "services/my%20orders/V1__%C3%A4.sql"
        );
    }
}
