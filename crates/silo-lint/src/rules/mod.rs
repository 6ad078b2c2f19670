//! The rules, one file each. A rule looks at one file at a time, with the
//! whole project (every service's tables) in its [`Context`].

mod adding_required_field;
mod ban_char_field;
mod ban_drop_column;
mod ban_drop_database;
mod ban_drop_table;
mod changing_column_type;
mod cross_service_reference;
pub(crate) mod ddl;
mod foreign_data_access;
mod migration_file_name;
mod missing_undo;
mod prefer_bigint_over_int;
mod prefer_text_field;
mod prefer_timestamptz;
mod renaming_column;
mod renaming_table;
mod require_concurrent_index_creation;
pub(crate) mod type_rules;

use std::collections::HashMap;
use std::ops::Range;

use pg_query::NodeEnum;

use crate::finding::{Group, Severity};
use crate::source::SourceFile;

/// What every rule sees besides its file.
pub struct Context<'a> {
    /// Every file of every service.
    pub files: &'a [SourceFile],
    /// Table name -> the services that create it.
    pub tables: HashMap<String, Vec<String>>,
    /// Database name -> its service.
    pub databases: HashMap<String, String>,
}

/// One problem a rule found, before it becomes a [`crate::Finding`].
pub struct Hit {
    pub span: Range<usize>,
    pub message: String,
    pub help: String,
}

/// A lint rule.
pub trait Rule: Sync {
    /// Stable kebab-case id.
    fn id(&self) -> &'static str;
    fn group(&self) -> Group;
    fn severity(&self) -> Severity;
    /// Looks at one file.
    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>);
}

/// Every rule, in id order.
pub fn all() -> Vec<&'static dyn Rule> {
    let mut rules: Vec<&'static dyn Rule> = vec![
        &cross_service_reference::CrossServiceReference,
        &foreign_data_access::ForeignDataAccess,
        &migration_file_name::MigrationFileName,
        &missing_undo::MissingUndo,
        &require_concurrent_index_creation::RequireConcurrentIndexCreation,
        &ban_char_field::BanCharField,
        &prefer_bigint_over_int::PreferBigintOverInt,
        &prefer_text_field::PreferTextField,
        &prefer_timestamptz::PreferTimestamptz,
        &adding_required_field::AddingRequiredField,
        &ban_drop_column::BanDropColumn,
        &ban_drop_database::BanDropDatabase,
        &ban_drop_table::BanDropTable,
        &changing_column_type::ChangingColumnType,
        &renaming_column::RenamingColumn,
        &renaming_table::RenamingTable,
    ];
    rules.sort_by_key(|r| r.id());
    rules
}

/// Tables a file creates (for rules that spare tables new in the file).
pub(crate) fn created_tables(file: &SourceFile) -> Vec<String> {
    file.statements
        .iter()
        .filter_map(|s| match &s.node {
            NodeEnum::CreateStmt(c) => c.relation.as_ref().map(|r| r.relname.clone()),
            _ => None,
        })
        .collect()
}

/// The tables that foreign keys declared in a statement point at
/// (`REFERENCES` on a column, `FOREIGN KEY` in a table or `ALTER TABLE`).
/// The generic node walk of pg_query does not reach them.
pub(crate) fn foreign_key_targets(node: &NodeEnum) -> Vec<&pg_query::protobuf::RangeVar> {
    fn from_constraint<'a>(
        n: &'a pg_query::protobuf::Node,
        out: &mut Vec<&'a pg_query::protobuf::RangeVar>,
    ) {
        match &n.node {
            Some(NodeEnum::Constraint(c)) => out.extend(c.pktable.as_ref()),
            Some(NodeEnum::ColumnDef(col)) => {
                for c in &col.constraints {
                    from_constraint(c, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    match node {
        NodeEnum::CreateStmt(c) => {
            for e in c.table_elts.iter().chain(&c.constraints) {
                from_constraint(e, &mut out);
            }
        }
        NodeEnum::AlterTableStmt(a) => {
            for cmd in &a.cmds {
                if let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node
                    && let Some(def) = &cmd.def
                {
                    from_constraint(def, &mut out);
                }
            }
        }
        _ => {}
    }
    out
}
