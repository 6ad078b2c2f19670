//! The rules, one file each. A rule looks at one file at a time, with the
//! whole project (every service's tables) in its [`Context`].

mod adding_field_with_default;
mod adding_foreign_key_constraint;
mod adding_required_field;
mod adding_serial_primary_key_field;
mod applied_migration_modified;
mod ban_char_field;
mod ban_concurrent_index_creation_in_transaction;
mod ban_drop_column;
mod ban_drop_database;
mod ban_drop_not_null;
mod ban_drop_table;
mod ban_truncate_cascade;
mod breaking_contract_change;
mod changing_column_type;
mod column_name;
mod constraint_missing_not_valid;
mod contract_file_name;
mod cross_service_reference;
pub(crate) mod ddl;
mod disallow_unique_constraint;
mod duplicate_version;
mod event_published_twice;
mod event_without_contract;
mod event_without_publisher;
pub mod events;
mod foreign_data_access;
mod grant_outside_service;
mod index_name;
mod invalid_contract;
mod migration_file_name;
mod missing_undo;
pub(crate) mod naming;
mod prefer_bigint_over_int;
mod prefer_bigint_over_smallint;
mod prefer_identity;
mod prefer_text_field;
mod prefer_timestamptz;
mod renaming_column;
mod renaming_table;
mod require_concurrent_index_creation;
mod require_concurrent_index_deletion;
mod require_timeout_settings;
mod shared_migration;
mod table_name;
mod transaction_nesting;
pub(crate) mod type_rules;
mod undo_without_version;
mod undocumented_breaking_change;
mod unindexed_reference;

use std::collections::HashMap;
use std::ops::Range;

use pg_query::NodeEnum;

use crate::finding::{Group, Severity};
use crate::source::SourceFile;

/// What every rule sees besides its file.
pub struct Context<'a> {
    pub manifest: &'a silo_manifest::Manifest,
    /// Every file of every service.
    pub files: &'a [SourceFile],
    /// Table name -> the services that create it.
    pub tables: HashMap<String, Vec<String>>,
    /// Database name -> its service.
    pub databases: HashMap<String, String>,
    /// Each service's committed `silo.sum`.
    pub sums: crate::sum::SumFiles,
    /// (folder, kind, version) -> the files that have it.
    pub versions: HashMap<
        (
            &'a std::path::Path,
            silo_migration_files::Kind,
            silo_migration_files::Version,
        ),
        Vec<&'a SourceFile>,
    >,
}

impl Context<'_> {
    /// The files of `service`.
    pub fn service_files<'f>(&'f self, service: &'f str) -> impl Iterator<Item = &'f SourceFile> {
        self.files.iter().filter(move |f| f.service == service)
    }
}

/// One problem a rule found, before it becomes a [`crate::Finding`].
pub struct Hit {
    pub span: Range<usize>,
    pub message: String,
    pub help: String,
    /// The other service involved (whose table is referenced, whose role
    /// is granted to), for the audit and the machine formats: never to be
    /// read back out of the message.
    pub other_service: Option<String>,
}

/// A lint rule.
pub trait Rule: Sync {
    /// The rule's id.
    fn id(&self) -> crate::RuleId;
    fn group(&self) -> Group;
    fn severity(&self) -> Severity;
    /// Looks at one file.
    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>);
}

/// The id (a [`crate::RuleId`] variant), group and default severity of a
/// rule, inside `impl Rule`.
macro_rules! meta {
    ($id:ident, $group:ident, $severity:ident) => {
        fn id(&self) -> $crate::RuleId {
            $crate::RuleId::$id
        }
        fn group(&self) -> $crate::finding::Group {
            $crate::finding::Group::$group
        }
        fn severity(&self) -> $crate::finding::Severity {
            $crate::finding::Severity::$severity
        }
    };
}
pub(crate) use meta;

/// Whether `table` existed before `file` (the file does not create it):
/// lock rules only matter for tables others may be using.
pub(crate) fn existing(file: &SourceFile, table: &str) -> bool {
    !file.facts.tables.iter().any(|t| t.name == table)
}

/// Whether `file` is an undo (`U`) file: its job is to remove what its V
/// file added, so drop and breaking-change rules leave it alone.
pub(crate) fn is_undo(file: &SourceFile) -> bool {
    file.name
        .as_ref()
        .is_ok_and(|n| n.kind == silo_migration_files::Kind::Undo)
}

/// Every rule, in id order.
pub fn all() -> Vec<&'static dyn Rule> {
    let mut rules: Vec<&'static dyn Rule> = vec![
        &adding_field_with_default::AddingFieldWithDefault,
        &adding_foreign_key_constraint::AddingForeignKeyConstraint,
        &adding_required_field::AddingRequiredField,
        &adding_serial_primary_key_field::AddingSerialPrimaryKeyField,
        &applied_migration_modified::AppliedMigrationModified,
        &ban_char_field::BanCharField,
        &ban_concurrent_index_creation_in_transaction::BanConcurrentIndexCreationInTransaction,
        &ban_drop_column::BanDropColumn,
        &ban_drop_database::BanDropDatabase,
        &ban_drop_not_null::BanDropNotNull,
        &ban_drop_table::BanDropTable,
        &ban_truncate_cascade::BanTruncateCascade,
        &changing_column_type::ChangingColumnType,
        &column_name::ColumnName,
        &constraint_missing_not_valid::ConstraintMissingNotValid,
        &cross_service_reference::CrossServiceReference,
        &disallow_unique_constraint::DisallowUniqueConstraint,
        &duplicate_version::DuplicateVersion,
        &foreign_data_access::ForeignDataAccess,
        &grant_outside_service::GrantOutsideService,
        &index_name::IndexName,
        &migration_file_name::MigrationFileName,
        &missing_undo::MissingUndo,
        &prefer_bigint_over_int::PreferBigintOverInt,
        &prefer_bigint_over_smallint::PreferBigintOverSmallint,
        &prefer_identity::PreferIdentity,
        &prefer_text_field::PreferTextField,
        &prefer_timestamptz::PreferTimestamptz,
        &renaming_column::RenamingColumn,
        &renaming_table::RenamingTable,
        &require_concurrent_index_creation::RequireConcurrentIndexCreation,
        &require_concurrent_index_deletion::RequireConcurrentIndexDeletion,
        &require_timeout_settings::RequireTimeoutSettings,
        &shared_migration::SharedMigration,
        &table_name::TableName,
        &transaction_nesting::TransactionNesting,
        &undo_without_version::UndoWithoutVersion,
        &undocumented_breaking_change::UndocumentedBreakingChange,
        &unindexed_reference::UnindexedReference,
    ];
    rules.sort_by_key(|r| r.id());
    rules
}

/// Every events rule, in id order.
pub fn events_rules() -> Vec<&'static dyn events::EventsRule> {
    let mut rules: Vec<&'static dyn events::EventsRule> = vec![
        &breaking_contract_change::BreakingContractChange,
        &contract_file_name::ContractFileName,
        &event_published_twice::EventPublishedTwice,
        &event_without_contract::EventWithoutContract,
        &event_without_publisher::EventWithoutPublisher,
        &invalid_contract::InvalidContract,
    ];
    rules.sort_by_key(|r| r.id());
    rules
}

/// Tables a file creates (for rules that spare tables new in the file).
pub(crate) fn created_tables(file: &SourceFile) -> Vec<String> {
    file.facts.tables.iter().map(|t| t.name.clone()).collect()
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

#[cfg(test)]
mod tests {
    use crate::RuleId;

    /// Each id but `parse-error` (the parser's, not a rule's) is one rule's.
    #[test]
    fn every_rule_id_is_one_rule() {
        let mut rules: Vec<RuleId> = super::all().iter().map(|r| r.id()).collect();
        rules.extend(super::events_rules().iter().map(|r| r.id()));
        rules.sort();
        let expected: Vec<RuleId> = RuleId::ALL
            .iter()
            .copied()
            .filter(|r| *r != RuleId::ParseError)
            .collect();
        assert_eq!(rules, expected);
    }
}
