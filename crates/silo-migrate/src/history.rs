//! `silo_schema_history`: each store's own record of its migrations. There
//! is no central registry that could become a shared database.

use serde::Serialize;

/// The history table's layout version. A store whose table says a higher
/// number was written by a newer silo and is refused.
pub const FORMAT: u32 = 1;

/// The history table's name in every store.
pub const TABLE: &str = "silo_schema_history";

/// One row of the history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryRow {
    pub installed_rank: i32,
    pub version: Option<String>,
    pub description: String,
    /// `versioned`, `undo`, `repeatable` or `baseline`.
    #[serde(rename = "type")]
    pub kind: String,
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
    pub kind: &'static str,
    pub script: String,
    pub checksum: Option<String>,
    pub execution_time_ms: i32,
    pub success: bool,
}

/// The columns every engine reads, in [`HistoryRow`] order.
pub(crate) const COLUMNS: &str =
    "installed_rank, version, description, type, script, checksum, installed_by";

/// Maps a row selected as [`COLUMNS`] + installed_on (text),
/// execution_time_ms, success.
pub(crate) fn from_row<R>(r: &R) -> HistoryRow
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'a> i32: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> bool: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    HistoryRow {
        installed_rank: r.get(0),
        version: r.get(1),
        description: r.get(2),
        kind: r.get(3),
        script: r.get(4),
        checksum: r.get(5),
        installed_by: r.get(6),
        installed_on: r.get(7),
        execution_time_ms: r.get(8),
        success: r.get(9),
    }
}
