//! One contract: a JSON Schema file of one event type at one version,
//! parsed, compiled, and able to check a payload.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::locate::Locator;
use crate::name::ContractName;

/// A parsed and compiled contract.
#[derive(Clone)]
pub struct Contract {
    /// The publishing service whose folder holds it.
    pub service: String,
    /// Its type and version, from its file name.
    pub name: ContractName,
    /// The file.
    pub path: PathBuf,
    /// The file, relative to the folder that holds silo.toml.
    pub display: PathBuf,
    /// The file's text.
    pub text: String,
    /// The schema.
    pub schema: Value,
    /// The CloudEvents `dataschema` of events checked against it; see
    /// [`dataschema`].
    pub dataschema: String,
    validator: Arc<jsonschema::Validator>,
    locator: Arc<Locator>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("service", &self.service)
            .field("name", &self.name)
            .field("display", &self.display)
            .finish_non_exhaustive()
    }
}

/// The `dataschema` URI of `event_type` at `version` in `project`:
/// `urn:silo:<project>:<type>:v<N>`, the project name percent-encoded
/// outside letters, digits, `-`, `.`, `_` and `~`. It names the contract
/// by what it is (project, type, version), never by where its file lies,
/// so moving a contracts folder changes no event's envelope.
pub fn dataschema(project: &str, event_type: &str, version: u32) -> String {
    let mut encoded = String::new();
    for b in project.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("urn:silo:{encoded}:{event_type}:v{version}")
}

/// Why a contract's text is not a contract, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// Whether the text is JSON at all (`false`: a schema that is not valid).
    pub parses: bool,
    /// Byte offset in the text.
    pub offset: usize,
    /// 1-based line and column (in characters).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// What a contract refused in a payload: the instance path and what
/// failed, for each of the first few problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `at /victim/ship_type_id: "abc" is not of type "integer"`, and so on,
    /// joined with `; `.
    pub problems: String,
}

/// How many of a payload's problems a refusal names.
const NAMED: usize = 3;
/// How long one problem's text may be: a value quoted in it is cut.
const PROBLEM_CHARS: usize = 200;

impl Contract {
    /// Parses and compiles `text`, the contract of `name` in `service`'s
    /// folder. Compiling is offline: a `$ref` to anything outside the
    /// file is refused. `format` is checked, not only noted.
    #[allow(clippy::too_many_arguments)]
    pub fn compile(
        project: &str,
        service: &str,
        name: ContractName,
        path: PathBuf,
        display: PathBuf,
        text: String,
    ) -> Result<Contract, Unusable> {
        let schema: Value = serde_json::from_str(&text).map_err(|e| {
            let line = e.line().max(1);
            let offset = byte_offset(&text, line, e.column());
            let (line, column) = silo_manifest::line_column(&text, offset);
            Unusable {
                parses: false,
                offset,
                line,
                column,
                message: format!("not JSON: {}", strip_position(&e.to_string())),
            }
        })?;
        let locator = Locator::new(&text);
        let unusable = |pointer: &str, message: String| {
            let offset = locator.offset(pointer);
            let (line, column) = silo_manifest::line_column(&text, offset);
            Unusable {
                parses: true,
                offset,
                line,
                column,
                message,
            }
        };
        if !(schema.is_object() || schema.is_boolean()) {
            return Err(unusable(
                "",
                "a contract is a JSON Schema: an object (or `true`/`false`)".into(),
            ));
        }
        if let Err(e) = jsonschema::meta::validate(&schema) {
            let at = e.instance_path().as_str().to_string();
            return Err(unusable(
                &at,
                format!("not a valid JSON Schema: {}", short(&e)),
            ));
        }
        let validator = jsonschema::options()
            .offline()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| {
                let at = e.instance_path().as_str().to_string();
                unusable(&at, format!("not a usable JSON Schema: {e}"))
            })?;
        Ok(Contract {
            service: service.to_string(),
            dataschema: dataschema(project, &name.event_type, name.version),
            name,
            path,
            display,
            text,
            schema,
            validator: Arc::new(validator),
            locator: Arc::new(locator),
        })
    }

    /// The 1-based line and column of a JSON Pointer into the schema (the
    /// member's key), or of its nearest ancestor that is there.
    pub fn position(&self, pointer: &str) -> (usize, usize) {
        silo_manifest::line_column(&self.text, self.offset(pointer))
    }

    /// The byte offset of a JSON Pointer into the schema, as
    /// [`Contract::position`] finds it.
    pub fn offset(&self, pointer: &str) -> usize {
        self.locator.offset(pointer)
    }

    /// Checks a payload. A required property that is missing but has a
    /// `default` in the contract counts as given: a consumer fills it, as
    /// the compatibility levels assume (see [`crate::compat`]).
    pub fn check(&self, payload: &Value) -> Result<(), Refusal> {
        if self.validator.is_valid(payload) {
            return Ok(());
        }
        let mut filled = payload.clone();
        let checked = if crate::defaults::fill(&self.schema, &mut filled) {
            if self.validator.is_valid(&filled) {
                return Ok(());
            }
            &filled
        } else {
            payload
        };
        let mut problems = Vec::new();
        let mut more = 0;
        for e in self.validator.iter_errors(checked) {
            if problems.len() == NAMED {
                more += 1;
                continue;
            }
            let at = e.instance_path().as_str();
            let at = if at.is_empty() { "the root" } else { at };
            problems.push(format!("at {at}: {}", short(&e)));
        }
        let mut problems = problems.join("; ");
        if more > 0 {
            problems.push_str(&format!(" (and {more} more)"));
        }
        Err(Refusal { problems })
    }
}

/// One validation error's text, short: objects and arrays are not quoted
/// whole, and a long value is cut.
fn short(e: &jsonschema::ValidationError) -> String {
    let text = match e.instance().as_ref() {
        Value::Object(_) => e.masked_with("the object").to_string(),
        Value::Array(_) => e.masked_with("the array").to_string(),
        _ => e.to_string(),
    };
    if text.chars().count() <= PROBLEM_CHARS {
        text
    } else {
        let cut: String = text.chars().take(PROBLEM_CHARS).collect();
        format!("{cut}…")
    }
}

/// serde_json's message without its trailing ` at line L column C`: the
/// position is given apart.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// The byte offset of 1-based `line` and `column` (serde_json counts the
/// column in bytes; 0 means the line's end before it).
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let line_len = text[start.min(text.len())..]
        .split('\n')
        .next()
        .map_or(0, str::len);
    (start + column.saturating_sub(1).min(line_len)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract(text: &str) -> Result<Contract, Unusable> {
        Contract::compile(
            "shop",
            "orders",
            crate::name::parse("order.placed.v1.json").unwrap(),
            "/p/services/orders/events/order.placed.v1.json".into(),
            "services/orders/events/order.placed.v1.json".into(),
            text.to_string(),
        )
    }

    const ORDER: &str = r#"{
  "type": "object",
  "required": ["order_id", "lines"],
  "properties": {
    "order_id": {"type": "integer"},
    "currency": {"type": "string", "default": "EUR"},
    "lines": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["sku"],
        "properties": {"sku": {"type": "string", "maxLength": 8}}
      }
    }
  }
}"#;

    #[test]
    fn a_payload_is_checked_and_a_refusal_names_the_path() {
        let c = contract(ORDER).unwrap();
        assert_eq!(c.dataschema, "urn:silo:shop:order.placed:v1");
        c.check(&json!({"order_id": 1, "lines": [{"sku": "a"}]}))
            .unwrap();
        let r = c
            .check(&json!({"order_id": "1", "lines": [{"sku": "a"}, {}]}))
            .unwrap_err();
        assert!(
            r.problems
                .contains(r#"at /order_id: "1" is not of type "integer""#),
            "{}",
            r.problems
        );
        assert!(
            r.problems
                .contains(r#"at /lines/1: "sku" is a required property"#),
            "{}",
            r.problems
        );
        let r = c.check(&json!({"lines": []})).unwrap_err();
        assert_eq!(
            r.problems,
            r#"at the root: "order_id" is a required property"#
        );
        let r = c.check(&json!([1, 2])).unwrap_err();
        assert_eq!(
            r.problems,
            r#"at the root: the array is not of type "object""#
        );
        let long = "x".repeat(1000);
        let r = c
            .check(&json!({"order_id": 1, "lines": [{"sku": long}]}))
            .unwrap_err();
        assert!(r.problems.chars().count() < 260, "{}", r.problems);
    }

    #[test]
    fn a_missing_required_field_with_a_default_counts_as_given() {
        let c = contract(
            r#"{"type": "object", "required": ["a", "b"],
                "properties": {"a": {"type": "integer"}, "b": {"type": "string", "default": "x"}}}"#,
        )
        .unwrap();
        c.check(&json!({"a": 1})).unwrap();
        let r = c.check(&json!({"a": "1"})).unwrap_err();
        assert_eq!(r.problems, r#"at /a: "1" is not of type "integer""#);
    }

    #[test]
    fn formats_are_checked() {
        let c = contract(r#"{"properties": {"at": {"type": "string", "format": "date-time"}}}"#)
            .unwrap();
        c.check(&json!({"at": "2024-05-01T10:00:00Z"})).unwrap();
        assert!(c.check(&json!({"at": "yesterday"})).is_err());
    }

    #[test]
    fn text_that_is_not_json_points_at_the_problem() {
        let e = contract("{\n  \"type\": \"object\",\n  \"properties\": {,}\n}").unwrap_err();
        assert!(!e.parses);
        assert_eq!((e.line, e.column), (3, 18), "{e:?}");
        assert!(e.message.starts_with("not JSON: "), "{}", e.message);
        assert!(!e.message.contains("line 3"), "{}", e.message);
    }

    #[test]
    fn a_schema_that_is_not_valid_points_at_the_keyword() {
        let e = contract("{\n  \"type\": \"object\",\n  \"properties\": {\n    \"a\": {\"type\": \"strin\"}\n  }\n}")
            .unwrap_err();
        assert!(e.parses);
        assert_eq!((e.line, e.column), (4, 11), "{e:?}");
        assert!(
            e.message.contains("not a valid JSON Schema"),
            "{}",
            e.message
        );
        let e = contract("[1]").unwrap_err();
        assert!(e.message.contains("an object"), "{}", e.message);
        let e = contract(r#"{"$ref": "https://example.com/other.json"}"#).unwrap_err();
        assert!(
            e.message.contains("not a usable JSON Schema"),
            "{}",
            e.message
        );
    }

    #[test]
    fn dataschema_encodes_the_project_name() {
        assert_eq!(
            dataschema("Battle Scope", "battle.created", 2),
            "urn:silo:Battle%20Scope:battle.created:v2"
        );
    }
}
