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
