//! Reading a SQLite store's schema from `sqlite_master` and the table
//! pragmas.
//!
//! SQLite has no functions, sequences, enum types, schemas or extensions to
//! record. It keeps constraints only as part of the `CREATE TABLE` text; the
//! pragmas expose the primary key, unique constraints (as automatic indexes)
//! and foreign keys, which are recorded under PostgreSQL-style names. `CHECK`
//! constraints are not exposed and not recorded.
//!
//! SQLite's internal tables (`sqlite_*`) and silo's bookkeeping (`silo_*`
//! tables with their indexes and triggers) are left out.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Connection, SqliteConnection};

use super::model::{Column, Constraint, ConstraintKind, Index, Schema, Table, Trigger, View};

// `substr`, not `LIKE`: LIKE is case-insensitive in SQLite and treats `_`
// as a wildcard.
const OBJECTS: &str = "SELECT type, name, tbl_name, sql FROM sqlite_master
     WHERE substr(name, 1, 7) <> 'sqlite_' AND substr(tbl_name, 1, 5) <> 'silo_'";

// `table_xinfo`, not `table_info`: only the former lists generated columns.
// `hidden` is 2 for virtual and 3 for stored generated columns, 1 for the
// hidden columns of virtual tables, which are not part of their schema.
const COLUMNS: &str = "SELECT name, type, \"notnull\", dflt_value, pk, hidden
     FROM pragma_table_xinfo(?) WHERE hidden <> 1 ORDER BY cid";

const UNIQUE_CONSTRAINTS: &str =
    "SELECT name FROM pragma_index_list(?) WHERE origin = 'u' ORDER BY name";

const INDEX_COLUMNS: &str = "SELECT coalesce(name, '') FROM pragma_index_info(?) ORDER BY seqno";

const INDEX_IS_UNIQUE: &str = "SELECT \"unique\" FROM pragma_index_list(?) WHERE name = ?";

const FOREIGN_KEYS: &str = "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete
     FROM pragma_foreign_key_list(?) ORDER BY id, seq";

/// Reads the schema of the SQLite database `conn` is connected to (its
/// `main` database).
///
/// Runs in a transaction of its own (a savepoint when `conn` is already in
/// one) so that every query sees the same state; nothing is written.
pub async fn snapshot_sqlite(conn: &mut SqliteConnection) -> Result<Schema, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let schema = read(&mut tx).await?;
    tx.rollback().await?;
    Ok(schema)
}

async fn read(conn: &mut SqliteConnection) -> Result<Schema, sqlx::Error> {
    let mut schema = Schema::default();
    let objects: Vec<(String, String, String, Option<String>)> =
        sqlx::query_as(OBJECTS).fetch_all(&mut *conn).await?;
    for (kind, name, table, sql) in objects {
        let sql = sql.as_deref().map(collapse_whitespace).unwrap_or_default();
        match kind.as_str() {
            "table" => read_table(conn, &mut schema, name).await?,
            "index" => {
                let unique: i64 = sqlx::query_scalar(INDEX_IS_UNIQUE)
                    .bind(&table)
                    .bind(&name)
                    .fetch_one(&mut *conn)
                    .await?;
                schema.indexes.push(Index {
                    name,
                    table,
                    unique: unique != 0,
                    definition: sql,
                });
            }
            "view" => schema.views.push(View {
                name,
                materialized: false,
                definition: sql,
            }),
            "trigger" => schema.triggers.push(Trigger {
                name,
                table,
                definition: sql,
            }),
            _ => {}
        }
    }
    schema.sort();
    Ok(schema)
}

/// Records a table with its columns, primary key, unique constraints and
/// foreign keys.
async fn read_table(
    conn: &mut SqliteConnection,
    schema: &mut Schema,
    name: String,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, String, i64, Option<String>, i64, i64)> = sqlx::query_as(COLUMNS)
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
    let mut key: Vec<(i64, String)> = Vec::new();
    let mut columns = Vec::new();
    for (column, data_type, not_null, default, pk, hidden) in rows {
        if pk > 0 {
            key.push((pk, column.clone()));
        }
        columns.push(Column {
            name: column,
            data_type,
            nullable: not_null == 0,
            default,
            identity: None,
            generated: match hidden {
                2 => Some("virtual".to_string()),
                3 => Some("stored".to_string()),
                _ => None,
            },
        });
    }
    key.sort();
    let primary_key: Vec<String> = key.into_iter().map(|(_, c)| c).collect();
    if !primary_key.is_empty() {
        schema.constraints.push(Constraint {
            name: format!("{name}_pkey"),
            table: name.clone(),
            kind: ConstraintKind::PrimaryKey,
            definition: format!("PRIMARY KEY ({})", primary_key.join(", ")),
        });
    }

    // A UNIQUE constraint is an automatic index named by its position
    // (`sqlite_autoindex_users_2`), which changes when the table is rebuilt;
    // its columns do not.
    let unique: Vec<String> = sqlx::query_scalar(UNIQUE_CONSTRAINTS)
        .bind(&name)
        .fetch_all(&mut *conn)
        .await?;
    let mut unique_columns = BTreeSet::new();
    for index in unique {
        let cols: Vec<String> = sqlx::query_scalar(INDEX_COLUMNS)
            .bind(&index)
            .fetch_all(&mut *conn)
            .await?;
        unique_columns.insert(cols);
    }
    for cols in unique_columns {
        schema.constraints.push(Constraint {
            name: format!("{name}_{}_key", cols.join("_")),
            table: name.clone(),
            kind: ConstraintKind::Unique,
            definition: format!("UNIQUE ({})", cols.join(", ")),
        });
    }

    let rows: Vec<(i64, String, String, Option<String>, String, String)> =
        sqlx::query_as(FOREIGN_KEYS)
            .bind(&name)
            .fetch_all(&mut *conn)
            .await?;
    let mut keys: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    for (id, target, from, to, on_update, on_delete) in rows {
        let fk = keys.entry(id).or_insert_with(|| ForeignKey {
            target,
            from: Vec::new(),
            to: Vec::new(),
            on_update,
            on_delete,
        });
        fk.from.push(from);
        fk.to.extend(to);
    }
    // Ids follow declaration order in reverse and change on rebuild, so the
    // names come from the columns; sorting by definition first keeps the
    // numbering of two keys on the same columns stable.
    let mut foreign: Vec<ForeignKey> = keys.into_values().collect();
    foreign.sort_by_key(ForeignKey::definition);
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    for fk in foreign {
        let base = format!("{name}_{}_fkey", fk.from.join("_"));
        let n = taken.entry(base.clone()).or_insert(0);
        let constraint = if *n == 0 { base } else { format!("{base}{n}") };
        *n += 1;
        schema.constraints.push(Constraint {
            name: constraint,
            table: name.clone(),
            kind: ConstraintKind::ForeignKey,
            definition: fk.definition(),
        });
    }

    schema.tables.push(Table {
        name,
        columns,
        primary_key,
    });
    Ok(())
}

/// One foreign key, gathered from its rows in `pragma_foreign_key_list`.
struct ForeignKey {
    target: String,
    from: Vec<String>,
    /// Empty when the key references the target's primary key implicitly.
    to: Vec<String>,
    on_update: String,
    on_delete: String,
}

impl ForeignKey {
    /// The key as `pg_get_constraintdef` would print it: `NO ACTION`, the
    /// default, is left out.
    fn definition(&self) -> String {
        let mut text = format!(
            "FOREIGN KEY ({}) REFERENCES {}",
            self.from.join(", "),
            self.target
        );
        if !self.to.is_empty() {
            text.push_str(&format!("({})", self.to.join(", ")));
        }
        for (event, action) in [("UPDATE", &self.on_update), ("DELETE", &self.on_delete)] {
            if action != "NO ACTION" {
                text.push_str(&format!(" ON {event} {action}"));
            }
        }
        text
    }
}

/// `sql` with each run of whitespace outside quotes turned into one space,
/// and trimmed. SQLite keeps a definition's text as it was written, so
/// without this an undo that re-creates a view with other line breaks would
/// look like a change; inside quoted strings and names, spacing is content
/// and is kept.
fn collapse_whitespace(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut pending_space = false;
    for ch in sql.chars() {
        match quote {
            Some(q) => {
                out.push(ch);
                if ch == q {
                    // A doubled quote closes and reopens: same result.
                    quote = None;
                }
            }
            None if ch.is_whitespace() => pending_space = true,
            None => {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                out.push(ch);
                quote = match ch {
                    '\'' | '"' | '`' => Some(ch),
                    '[' => Some(']'),
                    _ => None,
                };
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_collapses_outside_quotes_only() {
        assert_eq!(
            collapse_whitespace(
                "  CREATE VIEW v AS\n\tSELECT 'a  b',  \"x  y\" , [p  q]\n FROM t  "
            ),
            "CREATE VIEW v AS SELECT 'a  b', \"x  y\" , [p  q] FROM t"
        );
        assert_eq!(
            collapse_whitespace("SELECT 'it''s  here'   FROM t"),
            "SELECT 'it''s  here' FROM t"
        );
    }

    #[test]
    fn foreign_keys_read_like_postgres() {
        let fk = ForeignKey {
            target: "users".into(),
            from: vec!["user_id".into()],
            to: vec!["id".into()],
            on_update: "NO ACTION".into(),
            on_delete: "CASCADE".into(),
        };
        assert_eq!(
            fk.definition(),
            "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE"
        );
        let implicit = ForeignKey { to: vec![], ..fk };
        assert_eq!(
            implicit.definition(),
            "FOREIGN KEY (user_id) REFERENCES users ON DELETE CASCADE"
        );
    }
}
