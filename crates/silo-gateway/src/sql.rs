//! Statements built from checked names and bound parameters only.
//!
//! A table or column reaches SQL only after [`crate::catalog`] found it,
//! and then as a quoted identifier spelt as the catalog spells it. Every
//! value is a parameter: `CAST($n AS <column type>)` on PostgreSQL (the
//! type is the catalog's, so a JSON string meets an integer column as an
//! integer), `?n` on SQLite. Operators come from a closed list. Nothing a
//! caller sends is pasted into SQL.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::catalog::{TableInfo, Tables};
use crate::error::GatewayError;
use crate::request::{Direction, Operation, OperationKind, Operator, Select, Where};

/// The SQL flavour of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

/// One statement and its parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
    /// Whether it returns rows (as columns, see [`pg_output`] for
    /// PostgreSQL's) rather than a count.
    pub returns_rows: bool,
}

/// Whether a column of catalog type `ty` is read from PostgreSQL as it is
/// (integers, booleans, text): its value is the same JSON that `to_json`
/// would give, and decoding it costs neither side a JSON round trip.
fn pg_native(ty: &str) -> bool {
    matches!(ty, "smallint" | "integer" | "bigint" | "boolean" | "text")
        || ty.starts_with("character varying")
}

/// A column as a PostgreSQL statement returns it: as it is when
/// [`pg_native`], else `to_json(column)`, PostgreSQL's own JSON for its
/// value (what `row_to_json` gives for it), under the column's name.
fn pg_output(table: &TableInfo, column: &str) -> Result<String, GatewayError> {
    let ty = table.column(column)?;
    let col = ident(column);
    Ok(if pg_native(ty) {
        col
    } else {
        let mut out = String::with_capacity(2 * col.len() + 13);
        out.push_str("to_json(");
        out.push_str(&col);
        out.push_str(") AS ");
        out.push_str(&col);
        out
    })
}

/// Appends `parts` to `out`, `sep` between them.
fn push_joined(out: &mut String, parts: &[String], sep: &str) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(part);
    }
}

/// A quoted identifier.
pub fn ident(name: &str) -> String {
    // Built by hand: this runs for every column of every statement.
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A table as SQL names it: `"accounts"`, `"app"."accounts"`.
fn table_ref(table: &TableInfo, dialect: Dialect) -> String {
    match (dialect, table.name.split_once('.')) {
        (Dialect::Postgres, Some((schema, name))) => format!("{}.{}", ident(schema), ident(name)),
        _ => ident(&table.name),
    }
}

/// Builds one statement.
struct Builder<'a> {
    dialect: Dialect,
    table: &'a TableInfo,
    params: Vec<Param>,
}

impl<'a> Builder<'a> {
    fn new(dialect: Dialect, table: &'a TableInfo) -> Self {
        Builder {
            dialect,
            table,
            params: Vec::new(),
        }
    }

    fn column(&self, name: &str) -> Result<String, GatewayError> {
        self.table.column(name)?;
        Ok(ident(name))
    }

    /// A placeholder for `value`, to be compared with or stored in a
    /// column of type `ty`.
    fn bind(&mut self, ty: &str, value: &Value) -> String {
        let param = match (self.dialect, value) {
            (_, Value::Null) => Param::Null,
            (Dialect::Postgres, Value::String(s)) => Param::Text(s.clone()),
            (Dialect::Postgres, v) => Param::Text(v.to_string()),
            (Dialect::Sqlite, Value::Bool(b)) => Param::Int(i64::from(*b)),
            (Dialect::Sqlite, Value::Number(n)) => match n.as_i64() {
                Some(i) => Param::Int(i),
                None => Param::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            (Dialect::Sqlite, Value::String(s)) => Param::Text(s.clone()),
            (Dialect::Sqlite, v) => Param::Text(v.to_string()),
        };
        self.params.push(param);
        let n = self.params.len();
        match self.dialect {
            // The type is the catalog's own spelling (format_type), never
            // the caller's.
            Dialect::Postgres => format!("CAST(${n} AS {ty})"),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    /// A text placeholder (patterns).
    fn bind_text(&mut self, text: String) -> String {
        self.params.push(Param::Text(text));
        let n = self.params.len();
        match self.dialect {
            Dialect::Postgres => format!("CAST(${n} AS text)"),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    fn condition(&mut self, w: &Where) -> Result<String, GatewayError> {
        Ok(match w {
            Where::And(items) if items.is_empty() => "(1=1)".into(),
            Where::Or(items) if items.is_empty() => "(1=0)".into(),
            Where::And(items) | Where::Or(items) => {
                let glue = if matches!(w, Where::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts = items
                    .iter()
                    .map(|i| self.condition(i))
                    .collect::<Result<Vec<_>, _>>()?;
                format!("({})", parts.join(glue))
            }
            Where::Not(inner) => format!("(NOT {})", self.condition(inner)?),
            Where::Compare {
                field,
                operator,
                value,
            } => {
                let ty = self.table.column(field)?.to_string();
                let col = ident(field);
                let simple =
                    |op: &str, b: &mut Self| format!("({col} {op} {})", b.bind(&ty, value));
                match operator {
                    Operator::Eq => simple("=", self),
                    Operator::Ne => simple("<>", self),
                    Operator::Lt => simple("<", self),
                    Operator::Le => simple("<=", self),
                    Operator::Gt => simple(">", self),
                    Operator::Ge => simple(">=", self),
                    Operator::In | Operator::NotIn => {
                        let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
                        let negate = *operator == Operator::NotIn;
                        if items.is_empty() {
                            return Ok(if negate { "(1=1)" } else { "(1=0)" }.into());
                        }
                        let list: Vec<String> = items.iter().map(|v| self.bind(&ty, v)).collect();
                        let op = if negate { "NOT IN" } else { "IN" };
                        format!("({col} {op} ({}))", list.join(", "))
                    }
                    Operator::IsNull => match value {
                        Value::Bool(false) => format!("({col} IS NOT NULL)"),
                        _ => format!("({col} IS NULL)"),
                    },
                    Operator::Like | Operator::Ilike => {
                        let pattern = value.as_str().unwrap_or_default().to_string();
                        let ilike = *operator == Operator::Ilike;
                        match self.dialect {
                            Dialect::Postgres => {
                                let p = self.bind_text(pattern);
                                let op = if ilike { "ILIKE" } else { "LIKE" };
                                format!("(CAST({col} AS text) {op} {p})")
                            }
                            // SQLite's LIKE ignores ASCII case; GLOB keeps
                            // it, so `like` is translated to GLOB to mean
                            // what it means on PostgreSQL.
                            Dialect::Sqlite => {
                                let p = self.bind_text(like_to_glob(&pattern));
                                if ilike {
                                    format!("(lower({col}) GLOB lower({p}))")
                                } else {
                                    format!("({col} GLOB {p})")
                                }
                            }
                        }
                    }
                }
            }
        })
    }
}

/// A LIKE pattern (`%`, `_`, `\` escapes) as a GLOB pattern.
pub fn like_to_glob(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    let literal = |c: char, out: &mut String| match c {
        '*' | '?' | '[' => {
            out.push('[');
            out.push(c);
            out.push(']');
        }
        c => out.push(c),
    };
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => literal(chars.next().unwrap_or('\\'), &mut out),
            c => literal(c, &mut out),
        }
    }
    out
}

/// A built query: its statement and how to read its rows back.
#[derive(Debug, Clone)]
pub struct BuiltQuery {
    pub statement: Statement,
    /// Columns the caller asked for (others were selected for the cursor).
    pub fields: Vec<String>,
    /// The cursor's columns, in order, with their direction.
    pub keys: Vec<(String, Direction)>,
    /// The page size asked for (one more row is fetched).
    pub limit: u64,
}

/// The opaque cursor: the sort columns and the last row's values.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Cursor {
    k: Vec<String>,
    v: Vec<Value>,
}

/// The `next_cursor` after `row`.
pub fn encode_cursor(keys: &[(String, Direction)], row: &Map<String, Value>) -> String {
    let cursor = Cursor {
        k: keys.iter().map(|(k, _)| k.clone()).collect(),
        v: keys
            .iter()
            .map(|(k, _)| row.get(k).cloned().unwrap_or(Value::Null))
            .collect(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).expect("serializable"))
}

fn decode_cursor(text: &str, keys: &[(String, Direction)]) -> Result<Vec<Value>, GatewayError> {
    let bad = || GatewayError::bad_request("`after` is not a cursor this query returned");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let same = cursor.k.len() == keys.len() && cursor.k.iter().zip(keys).all(|(a, (b, _))| a == b);
    if !same || cursor.v.len() != keys.len() {
        return Err(bad());
    }
    Ok(cursor.v)
}

/// The SELECT for a query. Rows come back ordered by `order_by` then the
/// primary key, so a page boundary (the cursor) is exact.
pub fn select(
    dialect: Dialect,
    tables: &Tables,
    q: &Select,
    default_limit: u64,
) -> Result<BuiltQuery, GatewayError> {
    let table = tables.table(&q.table)?;
    let mut b = Builder::new(dialect, table);
    let fields: Vec<String> = match &q.fields {
        Some(f) if f.is_empty() => {
            return Err(GatewayError::bad_request(
                "`fields` is empty; leave it out for every column",
            ));
        }
        Some(f) => {
            for name in f {
                table.column(name)?;
            }
            f.clone()
        }
        None => table
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    let mut keys: Vec<(String, Direction)> = Vec::new();
    for o in &q.order_by {
        table.column(o.field())?;
        if !keys.iter().any(|(k, _)| k == o.field()) {
            keys.push((o.field().to_string(), o.direction()));
        }
    }
    for pk in &table.primary_key {
        if !keys.iter().any(|(k, _)| k == pk) {
            keys.push((pk.clone(), Direction::Asc));
        }
    }
    let mut selected = fields.clone();
    for (k, _) in &keys {
        if !selected.contains(k) {
            selected.push(k.clone());
        }
    }
    let mut conditions = Vec::new();
    if let Some(w) = &q.filter {
        conditions.push(b.condition(w)?);
    }
    if let Some(after) = &q.after {
        if table.primary_key.is_empty() {
            return Err(GatewayError::bad_request(format!(
                "the table `{}` has no primary key to page by",
                table.name
            )));
        }
        let values = decode_cursor(after, &keys)?;
        // (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...
        let mut alternatives = Vec::new();
        for i in 0..keys.len() {
            let mut parts = Vec::new();
            for (j, (k, _)) in keys.iter().enumerate().take(i) {
                let ty = table.column(k)?.to_string();
                parts.push(format!("{} = {}", ident(k), b.bind(&ty, &values[j])));
            }
            let (k, dir) = &keys[i];
            let ty = table.column(k)?.to_string();
            let op = if *dir == Direction::Asc { ">" } else { "<" };
            parts.push(format!("{} {op} {}", ident(k), b.bind(&ty, &values[i])));
            alternatives.push(format!("({})", parts.join(" AND ")));
        }
        conditions.push(format!("({})", alternatives.join(" OR ")));
    }
    let limit = q.limit.unwrap_or(default_limit);
    let cols: Vec<String> = selected
        .iter()
        .map(|c| match dialect {
            Dialect::Postgres => pg_output(table, c),
            Dialect::Sqlite => b.column(c),
        })
        .collect::<Result<_, _>>()?;
    // Assembled in one string: this runs for every query.
    let from = table_ref(table, dialect);
    let mut sql = String::with_capacity(128 + 16 * cols.len());
    sql.push_str("SELECT ");
    push_joined(&mut sql, &cols, ", ");
    sql.push_str(" FROM ");
    sql.push_str(&from);
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        push_joined(&mut sql, &conditions, " AND ");
    }
    for (i, (k, d)) in keys.iter().enumerate() {
        sql.push_str(if i == 0 { " ORDER BY " } else { ", " });
        // On PostgreSQL the sort keys are qualified: a bare name in ORDER
        // BY would be the output column, which for a `to_json` column is
        // JSON.
        if dialect == Dialect::Postgres {
            sql.push_str(&from);
            sql.push('.');
        }
        sql.push_str(&ident(k));
        sql.push_str(if *d == Direction::Asc {
            " ASC"
        } else {
            " DESC"
        });
    }
    // One row more than asked tells whether there is a next page.
    let _ = write!(sql, " LIMIT {}", limit.saturating_add(1));
    if let Some(offset) = q.offset {
        let _ = write!(sql, " OFFSET {offset}");
    }
    Ok(BuiltQuery {
        statement: Statement {
            sql,
            params: b.params,
            returns_rows: true,
        },
        fields,
        keys,
        limit,
    })
}

/// The statements of one write operation (an insert of several rows is
/// one statement per row).
pub fn operation(
    dialect: Dialect,
    tables: &Tables,
    op: &Operation,
) -> Result<Vec<Statement>, GatewayError> {
    let table = tables.table(&op.table)?;
    let returning = match &op.returning {
        Some(cols) if !cols.is_empty() => {
            for c in cols {
                table.column(c)?;
            }
            Some(cols.clone())
        }
        _ => None,
    };
    let rows: Vec<&Map<String, Value>> = match (&op.kind, &op.data) {
        (OperationKind::Delete, None) => Vec::new(),
        (OperationKind::Delete, Some(_)) => {
            return Err(GatewayError::bad_request("a delete takes no `data`"));
        }
        (_, Some(Value::Object(row))) => vec![row],
        (OperationKind::Insert | OperationKind::Upsert, Some(Value::Array(items))) => items
            .iter()
            .map(|v| {
                v.as_object()
                    .ok_or_else(|| GatewayError::bad_request("`data` rows must be objects"))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(GatewayError::bad_request(
                "`data` must be an object (or, for insert and upsert, a list of objects)",
            ));
        }
    };
    let needs_where = matches!(op.kind, OperationKind::Update | OperationKind::Delete);
    if needs_where && op.filter.is_none() {
        return Err(GatewayError::bad_request(
            "an update or delete needs `where` (`{\"and\":[]}` means every row)",
        ));
    }
    if !needs_where && op.filter.is_some() {
        return Err(GatewayError::bad_request(
            "an insert or upsert takes no `where`",
        ));
    }
    let mut out = Vec::new();
    match op.kind {
        OperationKind::Delete => {
            let mut b = Builder::new(dialect, table);
            let cond = b.condition(op.filter.as_ref().expect("checked"))?;
            let sql = format!("DELETE FROM {} WHERE {cond}", table_ref(table, dialect));
            out.push(finish(b, sql, &returning, dialect)?);
        }
        OperationKind::Update => {
            let row = rows[0];
            if row.is_empty() {
                return Err(GatewayError::bad_request(
                    "an update needs columns in `data`",
                ));
            }
            let mut b = Builder::new(dialect, table);
            let mut sets = Vec::new();
            for (k, v) in row {
                let ty = table.column(k)?.to_string();
                sets.push(format!("{} = {}", ident(k), b.bind(&ty, v)));
            }
            let cond = b.condition(op.filter.as_ref().expect("checked"))?;
            let sql = format!(
                "UPDATE {} SET {} WHERE {cond}",
                table_ref(table, dialect),
                sets.join(", ")
            );
            out.push(finish(b, sql, &returning, dialect)?);
        }
        OperationKind::Insert | OperationKind::Upsert => {
            if rows.is_empty() {
                return Err(GatewayError::bad_request("`data` holds no rows"));
            }
            let conflict: Vec<String> = match (&op.kind, &op.conflict) {
                (OperationKind::Insert, Some(_)) => {
                    return Err(GatewayError::bad_request(
                        "`conflict` belongs to an upsert; use `\"type\":\"upsert\"`",
                    ));
                }
                (OperationKind::Upsert, Some(c)) if !c.is_empty() => c.clone(),
                (OperationKind::Upsert, _) if !table.primary_key.is_empty() => {
                    table.primary_key.clone()
                }
                (OperationKind::Upsert, _) => {
                    return Err(GatewayError::bad_request(format!(
                        "the table `{}` has no primary key; name the unique columns in `conflict`",
                        table.name
                    )));
                }
                _ => Vec::new(),
            };
            for c in &conflict {
                table.column(c)?;
            }
            for row in rows {
                let mut b = Builder::new(dialect, table);
                let target = table_ref(table, dialect);
                let mut sql = if row.is_empty() {
                    format!("INSERT INTO {target} DEFAULT VALUES")
                } else {
                    let mut cols = Vec::new();
                    let mut vals = Vec::new();
                    for (k, v) in row {
                        let ty = table.column(k)?.to_string();
                        cols.push(ident(k));
                        vals.push(b.bind(&ty, v));
                    }
                    format!(
                        "INSERT INTO {target} ({}) VALUES ({})",
                        cols.join(", "),
                        vals.join(", ")
                    )
                };
                if op.kind == OperationKind::Upsert {
                    let keys: Vec<String> = conflict.iter().map(|c| ident(c)).collect();
                    let updates: Vec<String> = row
                        .keys()
                        .filter(|k| !conflict.contains(k))
                        .map(|k| format!("{0} = excluded.{0}", ident(k)))
                        .collect();
                    if updates.is_empty() {
                        sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
                    } else {
                        sql.push_str(&format!(
                            " ON CONFLICT ({}) DO UPDATE SET {}",
                            keys.join(", "),
                            updates.join(", ")
                        ));
                    }
                }
                out.push(finish(b, sql, &returning, dialect)?);
            }
        }
    }
    Ok(out)
}

/// Adds `RETURNING`, its columns as [`pg_output`] on PostgreSQL.
fn finish(
    b: Builder<'_>,
    mut sql: String,
    returning: &Option<Vec<String>>,
    dialect: Dialect,
) -> Result<Statement, GatewayError> {
    let Some(cols) = returning else {
        return Ok(Statement {
            sql,
            params: b.params,
            returns_rows: false,
        });
    };
    let list: Vec<String> = cols
        .iter()
        .map(|c| match dialect {
            Dialect::Postgres => pg_output(b.table, c),
            Dialect::Sqlite => Ok(ident(c)),
        })
        .collect::<Result<_, _>>()?;
    sql.push_str(&format!(" RETURNING {}", list.join(", ")));
    Ok(Statement {
        sql,
        params: b.params,
        returns_rows: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a"), "\"a\"");
        assert_eq!(
            ident("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
    }

    #[test]
    fn like_patterns_become_globs() {
        assert_eq!(like_to_glob("a%b_c"), "a*b?c");
        assert_eq!(like_to_glob("50\\%*?["), "50%[*][?][[]");
    }
}
