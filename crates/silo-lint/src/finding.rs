//! What a rule reports.

use std::path::PathBuf;

use serde::Serialize;
pub use silo_report::Severity;

/// The family a rule belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// What only silo can know: service boundaries.
    Boundary,
    /// Seed 002's database-lead checklist.
    Review,
    /// Migration files and their history (seed 004).
    Integrity,
    /// Zero-downtime deploys: locks and rewrites.
    Safety,
    /// Event types and their contracts (seed 001: contract-first).
    Events,
}

impl Group {
    /// The group's name, as JSON and SARIF tags show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Boundary => "boundary",
            Group::Review => "review",
            Group::Integrity => "integrity",
            Group::Safety => "safety",
            Group::Events => "events",
        }
    }
}

/// Declares [`RuleId`] from `Variant => "kebab-id"` pairs, in id order.
macro_rules! rule_ids {
    ($($variant:ident => $id:literal,)*) => {
        /// Every rule, by its stable id. Each has a page in
        /// `docs/rules/<id>.md`. Serialized, shown and ordered as its id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RuleId {
            $(
                #[doc = concat!("`", $id, "`")]
                $variant,
            )*
        }

        impl RuleId {
            /// Every rule id, in id order.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant,)*];

            /// The stable kebab-case id.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(RuleId::$variant => $id,)*
                }
            }
        }
    };
}

rule_ids! {
    AddingFieldWithDefault => "adding-field-with-default",
    AddingForeignKeyConstraint => "adding-foreign-key-constraint",
    AddingRequiredField => "adding-required-field",
    AddingSerialPrimaryKeyField => "adding-serial-primary-key-field",
    AppliedMigrationModified => "applied-migration-modified",
    BanCharField => "ban-char-field",
    BanConcurrentIndexCreationInTransaction => "ban-concurrent-index-creation-in-transaction",
    BanDropColumn => "ban-drop-column",
    BanDropDatabase => "ban-drop-database",
    BanDropNotNull => "ban-drop-not-null",
    BanDropTable => "ban-drop-table",
    BanTruncateCascade => "ban-truncate-cascade",
    BreakingContractChange => "breaking-contract-change",
    ChangingColumnType => "changing-column-type",
    ColumnName => "column-name",
    ConstraintMissingNotValid => "constraint-missing-not-valid",
    ContractFileName => "contract-file-name",
    CrossServiceReference => "cross-service-reference",
    DisallowUniqueConstraint => "disallow-unique-constraint",
    DuplicateVersion => "duplicate-version",
    EventPublishedTwice => "event-published-twice",
    EventWithoutContract => "event-without-contract",
    EventWithoutPublisher => "event-without-publisher",
    ForeignDataAccess => "foreign-data-access",
    GrantOutsideService => "grant-outside-service",
    IndexName => "index-name",
    InvalidContract => "invalid-contract",
    MigrationFileName => "migration-file-name",
    MissingUndo => "missing-undo",
    ParseError => "parse-error",
    PreferBigintOverInt => "prefer-bigint-over-int",
    PreferBigintOverSmallint => "prefer-bigint-over-smallint",
    PreferIdentity => "prefer-identity",
    PreferTextField => "prefer-text-field",
    PreferTimestamptz => "prefer-timestamptz",
    RenamingColumn => "renaming-column",
    RenamingTable => "renaming-table",
    RequireConcurrentIndexCreation => "require-concurrent-index-creation",
    RequireConcurrentIndexDeletion => "require-concurrent-index-deletion",
    RequireTimeoutSettings => "require-timeout-settings",
    SharedMigration => "shared-migration",
    TableName => "table-name",
    TransactionNesting => "transaction-nesting",
    UndoWithoutVersion => "undo-without-version",
    UndocumentedBreakingChange => "undocumented-breaking-change",
    UnindexedReference => "unindexed-reference",
}

impl RuleId {
    /// The rule called `id` (as silo.toml, `--rule` and `silo:ignore`
    /// comments spell it).
    pub fn from_id(id: &str) -> Option<RuleId> {
        RuleId::ALL.iter().copied().find(|r| r.as_str() == id)
    }

    /// Every id, in order, as text.
    pub fn ids() -> Vec<&'static str> {
        RuleId::ALL.iter().map(|r| r.as_str()).collect()
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RuleId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleId::from_id(s).ok_or_else(|| format!("unknown rule `{s}`"))
    }
}

impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Ids order as text, so findings sort the same however the enum grows.
impl Ord for RuleId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for RuleId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One problem, located in a file.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: RuleId,
    pub group: Group,
    pub severity: Severity,
    pub service: String,
    /// The other service the finding is about (the owner of a table a
    /// file references, the service whose role a grant names), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_service: Option<String>,
    /// Relative to the folder that holds silo.toml.
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Byte range in the file, for carets.
    #[serde(skip)]
    pub span: std::ops::Range<usize>,
    pub message: String,
    pub help: String,
}

#[cfg(test)]
mod tests {
    use super::RuleId;

    #[test]
    fn ids_are_sorted_unique_and_round_trip() {
        let ids = RuleId::ids();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        for r in RuleId::ALL {
            assert_eq!(RuleId::from_id(r.as_str()), Some(*r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(RuleId::from_id("Parse-Error"), None);
    }
}
