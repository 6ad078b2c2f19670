//! The objects a schema snapshot holds, as plain data.
//!
//! Every list is sorted by name (byte order, not the server's collation) so
//! that two snapshots of the same schema are equal value for value and
//! serialize to the same JSON, whatever order the catalog returned rows in
//! or the objects were created in.
//!
//! Names are the catalog's own, unquoted. On PostgreSQL an object in a
//! schema other than `public` carries that schema as a prefix
//! (`app.accounts`); objects that live inside a table (columns, constraints,
//! triggers) are named within that table and point at it by its qualified
//! name.

use serde::{Deserialize, Serialize};

/// One store's schema, read from its catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Non-system schemas other than `public` (PostgreSQL only): a
    /// migration can create an empty one, and an undo must drop it again.
    pub schemas: Vec<String>,
    /// Installed extensions (PostgreSQL only), except `plpgsql`, which
    /// every new database has. Their member objects are left out of every
    /// other list: they come with the extension, not from migrations.
    pub extensions: Vec<Extension>,
    /// Enum types with their labels (PostgreSQL only).
    pub enum_types: Vec<EnumType>,
    /// Sequences, including those behind `serial` and identity columns
    /// (PostgreSQL only).
    pub sequences: Vec<Sequence>,
    /// Tables with their columns.
    pub tables: Vec<Table>,
    /// Indexes that do not back a constraint; those are under
    /// [`Schema::constraints`], so an index is never reported twice.
    pub indexes: Vec<Index>,
    /// Primary key, unique, foreign key, check and exclusion constraints.
    pub constraints: Vec<Constraint>,
    /// Views and materialized views.
    pub views: Vec<View>,
    /// Functions and procedures (PostgreSQL only).
    pub functions: Vec<Function>,
    /// Triggers.
    pub triggers: Vec<Trigger>,
}

/// An installed PostgreSQL extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// The extension's name, e.g. `pgcrypto`.
    pub name: String,
    /// The installed version, e.g. `1.3`.
    pub version: String,
    /// The schema its objects were installed into.
    pub schema: String,
}

/// A PostgreSQL enum type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumType {
    /// Qualified name.
    pub name: String,
    /// Labels in the type's sort order (not alphabetical): the order is part
    /// of the type, since it decides how values compare.
    pub labels: Vec<String>,
}

/// A PostgreSQL sequence. Its current value is data, not schema, so it is
/// not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// Qualified name.
    pub name: String,
    /// The value type, e.g. `bigint`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// `START WITH`.
    pub start: i64,
    /// `INCREMENT BY`.
    pub increment: i64,
    /// `MINVALUE`.
    pub min: i64,
    /// `MAXVALUE`.
    pub max: i64,
    /// `CACHE`.
    pub cache: i64,
    /// `CYCLE`.
    pub cycle: bool,
    /// The column that owns it (`table.column`, table qualified), as for
    /// `serial` and identity columns or `OWNED BY`.
    pub owned_by: Option<String>,
}

/// A table and its columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Qualified name.
    pub name: String,
    /// Columns sorted by name, not by position: an undo that re-adds a
    /// dropped column can only append it, so position would make every such
    /// undo look wrong although the table holds the same columns.
    pub columns: Vec<Column>,
    /// Primary key columns in key order; empty when there is none.
    pub primary_key: Vec<String>,
}

/// A table column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name (unqualified).
    pub name: String,
    /// The type as the catalog prints it: `format_type()` on PostgreSQL
    /// (`character varying(40)`), the declared type as written on SQLite
    /// (`VARCHAR(40)`, possibly empty).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression as the catalog prints it.
    pub default: Option<String>,
    /// `always` or `by default` for identity columns (PostgreSQL).
    pub identity: Option<String>,
    /// For generated columns: on PostgreSQL the expression and storage,
    /// e.g. `(price * qty) stored`; on SQLite only `stored` or `virtual`,
    /// because its pragmas do not expose the expression.
    pub generated: Option<String>,
}

/// A PostgreSQL or SQLite index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Qualified name (index names are per schema, not per table).
    pub name: String,
    /// Qualified name of the indexed table.
    pub table: String,
    /// Whether the index is unique.
    pub unique: bool,
    /// `pg_get_indexdef()` on PostgreSQL; the `CREATE INDEX` text on SQLite,
    /// whitespace collapsed.
    pub definition: String,
}

/// What a constraint enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// `PRIMARY KEY`.
    PrimaryKey,
    /// `UNIQUE`.
    Unique,
    /// `FOREIGN KEY ... REFERENCES`.
    ForeignKey,
    /// `CHECK`.
    Check,
    /// `EXCLUDE` (PostgreSQL).
    Exclusion,
}

impl ConstraintKind {
    /// The kind in plain words, e.g. `foreign key`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintKind::PrimaryKey => "primary key",
            ConstraintKind::Unique => "unique",
            ConstraintKind::ForeignKey => "foreign key",
            ConstraintKind::Check => "check",
            ConstraintKind::Exclusion => "exclusion",
        }
    }
}

/// A table constraint.
///
/// SQLite does not name constraints in its catalog, so silo names them the
/// way PostgreSQL names unnamed ones (`orders_pkey`, `users_email_key`,
/// `orders_user_id_fkey`): the same schema then reads alike on both
/// engines, and the name does not change when SQLite rebuilds a table.
/// SQLite's `CHECK` constraints live only in the `CREATE TABLE` text and are
/// not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// The constraint's name (unique within its table).
    pub name: String,
    /// Qualified name of its table.
    pub table: String,
    /// What it enforces.
    pub kind: ConstraintKind,
    /// `pg_get_constraintdef()` on PostgreSQL, e.g.
    /// `FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE`; the
    /// same form built from the pragmas on SQLite.
    pub definition: String,
}

/// A view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Qualified name.
    pub name: String,
    /// `true` for a materialized view.
    pub materialized: bool,
    /// `pg_get_viewdef()` on PostgreSQL; the `CREATE VIEW` text on SQLite,
    /// whitespace collapsed.
    pub definition: String,
}

/// A PostgreSQL function or procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// Qualified name, without arguments.
    pub name: String,
    /// `pg_get_function_identity_arguments()`, e.g. `a integer, b text`:
    /// with the name, it identifies the function among its overloads.
    pub arguments: String,
    /// `pg_get_function_result()`, e.g. `trigger`; `None` for procedures.
    pub result: Option<String>,
    /// The implementation language, e.g. `plpgsql`.
    pub language: String,
    /// `pg_get_functiondef()`: the full `CREATE OR REPLACE` text, so that a
    /// changed body or attribute (volatility, security) is a change.
    pub definition: String,
}

impl Function {
    /// `name(arguments)`: the function's identity.
    pub fn signature(&self) -> String {
        format!("{}({})", self.name, self.arguments)
    }
}

/// A trigger on a table or view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// The trigger's name (unique within its table on PostgreSQL).
    pub name: String,
    /// Qualified name of its table or view.
    pub table: String,
    /// `pg_get_triggerdef()` on PostgreSQL; the `CREATE TRIGGER` text on
    /// SQLite, whitespace collapsed.
    pub definition: String,
}

/// The kinds of object a snapshot records, in the order dumps and diffs
/// list them (roughly the order they depend on each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A PostgreSQL schema (namespace).
    Schema,
    /// A PostgreSQL extension.
    Extension,
    /// A PostgreSQL enum type.
    EnumType,
    /// A sequence.
    Sequence,
    /// A table.
    Table,
    /// A table column.
    Column,
    /// An index.
    Index,
    /// A table constraint.
    Constraint,
    /// A view or materialized view.
    View,
    /// A function or procedure.
    Function,
    /// A trigger.
    Trigger,
}

impl ObjectKind {
    /// The kind in plain words, e.g. `enum type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Schema => "schema",
            ObjectKind::Extension => "extension",
            ObjectKind::EnumType => "enum type",
            ObjectKind::Sequence => "sequence",
            ObjectKind::Table => "table",
            ObjectKind::Column => "column",
            ObjectKind::Index => "index",
            ObjectKind::Constraint => "constraint",
            ObjectKind::View => "view",
            ObjectKind::Function => "function",
            ObjectKind::Trigger => "trigger",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Schema {
    /// Puts every list in name order. Snapshots call this last, so ordering
    /// never depends on the catalog or on the server's collation.
    pub(crate) fn sort(&mut self) {
        self.schemas.sort();
        self.extensions.sort_by(|a, b| a.name.cmp(&b.name));
        self.enum_types.sort_by(|a, b| a.name.cmp(&b.name));
        self.sequences.sort_by(|a, b| a.name.cmp(&b.name));
        for table in &mut self.tables {
            table.columns.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self.tables.sort_by(|a, b| a.name.cmp(&b.name));
        self.indexes.sort_by(|a, b| a.name.cmp(&b.name));
        self.constraints
            .sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
        self.views.sort_by(|a, b| a.name.cmp(&b.name));
        self.functions
            .sort_by(|a, b| (&a.name, &a.arguments).cmp(&(&b.name, &b.arguments)));
        self.triggers
            .sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
    }
}

/// `name` qualified by its PostgreSQL schema, which is left out when it is
/// `public` so that the common case reads plainly.
pub(crate) fn qualify(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_is_left_out_of_qualified_names() {
        assert_eq!(qualify("public", "users"), "users");
        assert_eq!(qualify("app", "users"), "app.users");
    }
}
