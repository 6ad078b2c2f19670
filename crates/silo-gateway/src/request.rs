//! The JSON a caller sends, in seed 003's shapes (§11.1, §11.2). Unknown
//! fields are refused, so a misspelt `wher` is an error, not a query of
//! every row.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /v1/query`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// `"query"` when given (the seed's messages carry it).
    #[serde(default, deserialize_with = "operation_name")]
    pub operation: Option<String>,
    pub database: String,
    pub query: Select,
}

/// A `select` of one table's rows.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Select {
    #[serde(rename = "type")]
    pub kind: SelectKind,
    pub table: String,
    /// The columns returned; every column when absent.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    #[serde(default, rename = "where")]
    pub filter: Option<Where>,
    #[serde(default)]
    pub order_by: Vec<OrderBy>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub offset: Option<u64>,
    /// The `next_cursor` of the page before.
    #[serde(default)]
    pub after: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SelectKind {
    Select,
}

/// One sort key: `"name"` or `{"field":"name","direction":"desc"}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OrderBy {
    Field(String),
    Spec {
        field: String,
        #[serde(default)]
        direction: Direction,
    },
}

impl OrderBy {
    pub fn field(&self) -> &str {
        match self {
            OrderBy::Field(f) | OrderBy::Spec { field: f, .. } => f,
        }
    }
    pub fn direction(&self) -> Direction {
        match self {
            OrderBy::Field(_) => Direction::Asc,
            OrderBy::Spec { direction, .. } => *direction,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

/// `POST /v1/write`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    #[serde(default, deserialize_with = "operation_name")]
    pub operation: Option<String>,
    pub database: String,
    pub transaction: Transaction,
}

/// Operations run in one transaction: all or nothing.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    #[serde(default)]
    pub isolation: IsolationLevel,
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    #[default]
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    Insert,
    Update,
    Delete,
    Upsert,
}

/// One statement of a write.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WriteOperation)]
pub struct Operation {
    #[serde(rename = "type")]
    pub kind: OperationKind,
    pub table: String,
    /// The row (insert, upsert: an object or a list of objects) or the new
    /// values (update).
    #[serde(default)]
    pub data: Option<Value>,
    /// Which rows (update, delete: required; `{"and":[]}` is every row).
    #[serde(default, rename = "where")]
    pub filter: Option<Where>,
    /// Columns of the changed rows to return.
    #[serde(default)]
    pub returning: Option<Vec<String>>,
    /// Upsert: the unique columns a conflict is on (the primary key when
    /// absent).
    #[serde(default)]
    pub conflict: Option<Vec<String>>,
}

/// `operation` when given: a string. `null` is refused here, so that
/// [`crate::dispatch`] answers it as an operation this endpoint does not
/// run, as it does any other value that is not the endpoint's name.
pub(crate) fn operation_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// A condition tree. Its schema is written by hand in
/// [`crate::openapi`]: it is parsed from JSON by [`TryFrom`], which no
/// derive can see through.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub enum Where {
    Compare {
        field: String,
        operator: Operator,
        value: Value,
    },
    And(Vec<Where>),
    Or(Vec<Where>),
    Not(Box<Where>),
}

/// The comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Like,
    Ilike,
    IsNull,
}

impl Operator {
    pub const ALL: [(&'static str, Operator); 12] = [
        ("=", Operator::Eq),
        ("==", Operator::Eq),
        ("!=", Operator::Ne),
        ("<", Operator::Lt),
        ("<=", Operator::Le),
        (">", Operator::Gt),
        (">=", Operator::Ge),
        ("in", Operator::In),
        ("not_in", Operator::NotIn),
        ("like", Operator::Like),
        ("ilike", Operator::Ilike),
        ("is_null", Operator::IsNull),
    ];

    fn parse(s: &str) -> Option<Operator> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, op)| *op)
    }
}

/// What a caller wrote wrong, kept short: the value itself is not echoed.
fn shape(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

impl TryFrom<Value> for Where {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let Value::Object(mut map) = value else {
            return Err("a `where` must be an object".into());
        };
        let list = |v: Value, name: &str| -> Result<Vec<Where>, String> {
            match v {
                Value::Array(items) => items.into_iter().map(Where::try_from).collect(),
                _ => Err(format!("`{name}` takes a list of conditions")),
            }
        };
        if map.len() == 1 {
            if let Some(v) = map.remove("and") {
                return Ok(Where::And(list(v, "and")?));
            }
            if let Some(v) = map.remove("or") {
                return Ok(Where::Or(list(v, "or")?));
            }
            if let Some(v) = map.remove("not") {
                return Ok(Where::Not(Box::new(Where::try_from(v)?)));
            }
        }
        let field = match map.remove("field") {
            Some(Value::String(f)) => f,
            _ => {
                return Err(
                    "a condition is {\"field\",\"operator\",\"value\"} or one of and/or/not".into(),
                );
            }
        };
        let operator = match map.remove("operator") {
            Some(Value::String(op)) => Operator::parse(&op).ok_or_else(|| {
                format!(
                    "unknown operator `{}` (use = != < <= > >= in not_in like ilike is_null)",
                    shape(&op)
                )
            })?,
            _ => return Err("a condition needs an `operator` string".into()),
        };
        let value = map.remove("value").unwrap_or(Value::Null);
        if let Some(extra) = map.keys().next() {
            return Err(format!("unknown key `{}` in a condition", shape(extra)));
        }
        match (operator, &value) {
            (Operator::In | Operator::NotIn, Value::Array(_)) => {}
            (Operator::In | Operator::NotIn, _) => {
                return Err("`in` and `not_in` take a list `value`".into());
            }
            (Operator::IsNull, Value::Bool(_) | Value::Null) => {}
            (Operator::IsNull, _) => {
                return Err("`is_null` takes `true`, `false` or no value".into());
            }
            (Operator::Like | Operator::Ilike, Value::String(_)) => {}
            (Operator::Like | Operator::Ilike, _) => {
                return Err("`like` and `ilike` take a string pattern".into());
            }
            (_, Value::Null) => {
                return Err("compare with null through `is_null`".into());
            }
            (_, Value::Array(_) | Value::Object(_)) => {
                return Err("a comparison takes one plain value".into());
            }
            _ => {}
        }
        Ok(Where::Compare {
            field,
            operator,
            value,
        })
    }
}

/// What a query returns.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueryResponse {
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, Value>>,
    /// Where the next page starts; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// What a write returns.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WriteResponse {
    pub results: Vec<OperationResult>,
    /// How many times the transaction ran (more than 1 after a retried
    /// serialization failure or deadlock).
    pub attempts: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationResult {
    #[serde(rename = "type")]
    pub kind: OperationKind,
    pub table: String,
    pub rows_affected: u64,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    #[schema(value_type = Vec<Object>)]
    pub returning: Vec<serde_json::Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn where_trees_parse() {
        let w: Where = serde_json::from_value(json!({"and": [
            {"field": "level", "operator": ">", "value": 5},
            {"not": {"field": "name", "operator": "in", "value": ["a", "b"]}},
            {"or": [{"field": "x", "operator": "is_null"}]}
        ]}))
        .unwrap();
        let Where::And(items) = w else { panic!() };
        assert_eq!(items.len(), 3);
        assert!(matches!(items[1], Where::Not(_)));
    }

    #[test]
    fn bad_where_trees_are_refused() {
        for bad in [
            json!({"field": "a", "operator": "; DROP TABLE t", "value": 1}),
            json!({"field": "a", "operator": "=", "value": 1, "extra": 1}),
            json!({"field": "a", "operator": "in", "value": 1}),
            json!({"field": "a", "operator": "=", "value": null}),
            json!({"field": "a", "operator": "=", "value": [1]}),
            json!({"and": 1}),
            json!([1]),
        ] {
            assert!(
                serde_json::from_value::<Where>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = json!({"database": "d", "query": {"type": "select", "table": "t", "wher": {}}});
        assert!(serde_json::from_value::<QueryRequest>(bad).is_err());
    }
}
