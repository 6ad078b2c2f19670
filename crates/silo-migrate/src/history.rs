//! `silo_schema_history`: each store's own record of its migrations. There
//! is no central registry that could become a shared database.

use serde::Serialize;

use crate::Kind;
use crate::error::MigrateError;

/// The history table's layout version. A store whose table says a higher
/// number was written by a newer silo and is refused.
pub const FORMAT: u32 = 1;

/// The history table's name in every store.
pub const TABLE: &str = "silo_schema_history";

/// What a history row records, as the table's `type` column spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryKind {
    /// A `V` file applied.
    Versioned,
    /// A `U` file applied: its version is undone.
    Undo,
    /// An `R` file applied (again).
    Repeatable,
    /// `silo baseline` (or an adopted baseline): versions up to this one
    /// never run.
    Baseline,
}

impl HistoryKind {
    /// Every kind.
    pub const ALL: [HistoryKind; 4] = [
        HistoryKind::Versioned,
        HistoryKind::Undo,
        HistoryKind::Repeatable,
        HistoryKind::Baseline,
    ];

    /// The `type` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryKind::Versioned => "versioned",
            HistoryKind::Undo => "undo",
            HistoryKind::Repeatable => "repeatable",
            HistoryKind::Baseline => "baseline",
        }
    }

    /// The kind a `type` column holds, if silo wrote it.
    pub fn parse(text: &str) -> Option<HistoryKind> {
        HistoryKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl From<Kind> for HistoryKind {
    /// The row a file of this kind writes when it is applied.
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Versioned => HistoryKind::Versioned,
            Kind::Undo => HistoryKind::Undo,
            Kind::Repeatable => HistoryKind::Repeatable,
        }
    }
}

impl std::fmt::Display for HistoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryRow {
    pub installed_rank: i32,
    pub version: Option<String>,
    pub description: String,
    #[serde(rename = "type")]
    pub kind: HistoryKind,
    pub script: String,
    pub checksum: Option<String>,
    pub installed_by: String,
    pub installed_on: String,
    pub execution_time_ms: i32,
    pub success: bool,
}

/// A row about to be written (rank and time are the store's).
#[derive(Debug, Clone)]
pub struct NewRow {
    pub version: Option<String>,
    pub description: String,
    pub kind: HistoryKind,
    pub script: String,
    pub checksum: Option<String>,
    pub execution_time_ms: i32,
    pub success: bool,
}

/// The columns every engine reads, in [`HistoryRow`] order.
pub(crate) const COLUMNS: &str =
    "installed_rank, version, description, type, script, checksum, installed_by";

/// Maps a row selected as [`COLUMNS`] + installed_on (text),
/// execution_time_ms, success. A `type` silo does not write is refused:
/// replaying the history without that row would be a silent wrong answer.
pub(crate) fn from_row<R>(r: &R) -> Result<HistoryRow, MigrateError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let installed_rank: i32 = r.get(0);
    let kind: String = r.get(3);
    let kind = HistoryKind::parse(&kind).ok_or(MigrateError::UnknownHistoryKind {
        rank: installed_rank,
        kind,
    })?;
    Ok(HistoryRow {
        installed_rank,
        version: r.get(1),
        description: r.get(2),
        kind,
        script: r.get(4),
        checksum: r.get(5),
        installed_by: r.get(6),
        installed_on: r.get(7),
        execution_time_ms: r.get(8),
        success: r.get(9),
    })
}

#[cfg(test)]
mod tests {
    use super::HistoryKind;

    /// The `type` column and `--json` keep the words silo always wrote.
    #[test]
    fn kinds_keep_their_words() {
        for (kind, text) in [
            (HistoryKind::Versioned, "versioned"),
            (HistoryKind::Undo, "undo"),
            (HistoryKind::Repeatable, "repeatable"),
            (HistoryKind::Baseline, "baseline"),
        ] {
            assert_eq!(kind.as_str(), text);
            assert_eq!(HistoryKind::parse(text), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), text);
        }
        assert_eq!(HistoryKind::parse("SQL"), None);
        assert_eq!(
            HistoryKind::from(crate::Kind::Undo),
            HistoryKind::Undo,
            "a U file writes an undo row"
        );
    }
}
