//! Schema snapshots: what a store holds, read from its catalog, as a sorted
//! set of objects that can be printed, compared and diffed. Used to prove
//! that an undo restores the schema (`silo verify`), to find drift
//! (`silo diff`) and by `silo schema dump`.
//!
//! silo's own bookkeeping (`silo_*` tables) and objects that belong to
//! extensions are left out: they are not the service's schema.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row, SqliteConnection};

/// The kinds of object a snapshot records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    Table,
    Column,
    Index,
    Constraint,
    View,
    Function,
    Trigger,
    Sequence,
    EnumType,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Table => "table",
            ObjectKind::Column => "column",
            ObjectKind::Index => "index",
            ObjectKind::Constraint => "constraint",
            ObjectKind::View => "view",
            ObjectKind::Function => "function",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Sequence => "sequence",
            ObjectKind::EnumType => "enum type",
        }
    }
}

/// A store's schema: every object by kind and qualified name, with its
/// definition as the catalog renders it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub objects: BTreeMap<(ObjectKind, String), String>,
}

/// One difference between two schemas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub kind: ObjectKind,
    pub name: String,
    /// `None`: the object was added.
    pub before: Option<String>,
    /// `None`: the object was removed.
    pub after: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.as_str();
        match (&self.before, &self.after) {
            (None, Some(a)) => write!(f, "+ {kind} {}: {a}", self.name),
            (Some(b), None) => write!(f, "- {kind} {}: {b}", self.name),
            (Some(b), Some(a)) => write!(f, "~ {kind} {}: {b} -> {a}", self.name),
            (None, None) => write!(f, "? {kind} {}", self.name),
        }
    }
}

impl Schema {
    fn add(&mut self, kind: ObjectKind, name: String, definition: String) {
        self.objects.insert((kind, name), definition);
    }

    /// What changed from `self` to `after`, in kind and name order.
    pub fn diff(&self, after: &Schema) -> Vec<Difference> {
        let mut out = Vec::new();
        for (key, before) in &self.objects {
            match after.objects.get(key) {
                None => out.push(Difference {
                    kind: key.0,
                    name: key.1.clone(),
                    before: Some(before.clone()),
                    after: None,
                }),
                Some(a) if a != before => out.push(Difference {
                    kind: key.0,
                    name: key.1.clone(),
                    before: Some(before.clone()),
                    after: Some(a.clone()),
                }),
                Some(_) => {}
            }
        }
        for (key, a) in &after.objects {
            if !self.objects.contains_key(key) {
                out.push(Difference {
                    kind: key.0,
                    name: key.1.clone(),
                    before: None,
                    after: Some(a.clone()),
                });
            }
        }
        out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        out
    }

    /// The objects as JSON-friendly rows.
    pub fn rows(&self) -> Vec<serde_json::Value> {
        self.objects
            .iter()
            .map(|((kind, name), def)| {
                serde_json::json!({"kind": kind, "name": name, "definition": def})
            })
            .collect()
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for ((kind, name), def) in &self.objects {
            if def.is_empty() {
                writeln!(f, "{} {name}", kind.as_str())?;
            } else {
                writeln!(f, "{} {name}: {}", kind.as_str(), one_line(def))?;
            }
        }
        Ok(())
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Schemas that are not the user's.
const PG_USER_NS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

fn qualify(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

fn not_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass \
         AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

/// Reads a PostgreSQL store's schema.
pub async fn snapshot_postgres(conn: &mut PgConnection) -> Result<Schema, sqlx::Error> {
    let mut schema = Schema::default();
    let rel_filter = format!(
        "{PG_USER_NS} AND c.relname NOT LIKE 'silo\\_%' AND {}",
        not_extension("pg_class", "c.oid")
    );
    let queries: Vec<(ObjectKind, String)> = vec![
        (
            ObjectKind::Table,
            format!(
                "SELECT n.nspname, c.relname, '' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND {rel_filter}"
            ),
        ),
        (
            ObjectKind::Column,
            format!(
                "SELECT n.nspname, c.relname || '.' || a.attname,
                        format_type(a.atttypid, a.atttypmod)
                        || CASE WHEN a.attnotnull THEN ' not null' ELSE ' null' END
                        || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
                        || CASE a.attidentity WHEN 'a' THEN ' generated always as identity'
                                              WHEN 'd' THEN ' generated by default as identity' ELSE '' END
                 FROM pg_attribute a
                 JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {rel_filter}"
            ),
        ),
        (
            ObjectKind::Index,
            format!(
                "SELECT n.nspname, c.relname, pg_get_indexdef(c.oid)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 JOIN pg_class t ON t.oid = i.indrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE {PG_USER_NS} AND t.relname NOT LIKE 'silo\\_%' AND {}",
                not_extension("pg_class", "t.oid")
            ),
        ),
        (
            ObjectKind::Constraint,
            format!(
                "SELECT n.nspname, t.relname || '.' || con.conname, pg_get_constraintdef(con.oid)
                 FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                 WHERE {PG_USER_NS} AND t.relname NOT LIKE 'silo\\_%' AND {}",
                not_extension("pg_class", "t.oid")
            ),
        ),
        (
            ObjectKind::View,
            format!(
                "SELECT n.nspname, c.relname,
                        CASE c.relkind WHEN 'm' THEN 'materialized: ' ELSE '' END || pg_get_viewdef(c.oid)
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('v', 'm') AND {rel_filter}"
            ),
        ),
        (
            ObjectKind::Function,
            format!(
                "SELECT n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                        pg_get_functiondef(p.oid)
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE p.prokind IN ('f', 'p') AND {PG_USER_NS} AND {}",
                not_extension("pg_proc", "p.oid")
            ),
        ),
        (
            ObjectKind::Trigger,
            format!(
                "SELECT n.nspname, c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE NOT t.tgisinternal AND {rel_filter}"
            ),
        ),
        (
            ObjectKind::Sequence,
            format!(
                "SELECT n.nspname, c.relname,
                        format_type(s.seqtypid, NULL) || ' start ' || s.seqstart || ' increment ' || s.seqincrement
                        || ' min ' || s.seqmin || ' max ' || s.seqmax || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
                 FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE {rel_filter}"
            ),
        ),
        (
            ObjectKind::EnumType,
            format!(
                "SELECT n.nspname, t.typname, string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                 FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
                 JOIN pg_namespace n ON n.oid = t.typnamespace
                 WHERE {PG_USER_NS} AND {}
                 GROUP BY n.nspname, t.typname",
                not_extension("pg_type", "t.oid")
            ),
        ),
    ];
    for (kind, sql) in queries {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            let ns: String = r.get(0);
            let name: String = r.get(1);
            let def: Option<String> = r.get(2);
            schema.add(kind, qualify(&ns, &name), def.unwrap_or_default());
        }
    }
    Ok(schema)
}

/// Reads a SQLite store's schema.
pub async fn snapshot_sqlite(conn: &mut SqliteConnection) -> Result<Schema, sqlx::Error> {
    let mut schema = Schema::default();
    let rows = sqlx::query(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND tbl_name NOT LIKE 'silo\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let (kind, name, table, sql): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        match kind.as_str() {
            "table" => {
                schema.add(ObjectKind::Table, name.clone(), String::new());
                let columns = sqlx::query(
                    "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)",
                )
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
                for c in columns {
                    let (col, ty, notnull, default, pk): (
                        String,
                        String,
                        i64,
                        Option<String>,
                        i64,
                    ) = (c.get(0), c.get(1), c.get(2), c.get(3), c.get(4));
                    let mut def =
                        format!("{ty} {}", if notnull != 0 { "not null" } else { "null" });
                    if let Some(d) = default {
                        def.push_str(&format!(" default {d}"));
                    }
                    if pk != 0 {
                        def.push_str(&format!(" primary key {pk}"));
                    }
                    schema.add(ObjectKind::Column, format!("{name}.{col}"), def);
                }
                let fks = sqlx::query(
                    "SELECT id, \"table\", \"from\", coalesce(\"to\", ''), on_update, on_delete
                     FROM pragma_foreign_key_list(?) ORDER BY id, seq",
                )
                .bind(&name)
                .fetch_all(&mut *conn)
                .await?;
                let mut grouped: BTreeMap<i64, Vec<String>> = BTreeMap::new();
                for fk in fks {
                    let (id, target, from, to, upd, del): (
                        i64,
                        String,
                        String,
                        String,
                        String,
                        String,
                    ) = (
                        fk.get(0),
                        fk.get(1),
                        fk.get(2),
                        fk.get(3),
                        fk.get(4),
                        fk.get(5),
                    );
                    grouped.entry(id).or_default().push(format!(
                        "{from} references {target}({to}) on update {upd} on delete {del}"
                    ));
                }
                for (id, parts) in grouped {
                    schema.add(
                        ObjectKind::Constraint,
                        format!("{name}.fk{id}"),
                        parts.join(", "),
                    );
                }
            }
            "index" if !sql.is_empty() => schema.add(ObjectKind::Index, name, one_line(&sql)),
            "view" => schema.add(ObjectKind::View, name, one_line(&sql)),
            "trigger" => schema.add(
                ObjectKind::Trigger,
                format!("{table}.{name}"),
                one_line(&sql),
            ),
            _ => {}
        }
    }
    Ok(schema)
}
