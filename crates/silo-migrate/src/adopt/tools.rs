//! Where each tool keeps its history and how to read it: one query per
//! tool and engine that returns the same text columns, so the rest of
//! adopt never looks at a tool's table layout.
//!
//! The layouts are the tools' own:
//! - Flyway (`createMetaDataTable.sql`): `installed_rank, version,
//!   description, type, script, checksum INT, installed_by, installed_on
//!   TIMESTAMP, execution_time INT (ms), success BOOLEAN`.
//! - sqlx (`_sqlx_migrations`): `version BIGINT, description, installed_on
//!   TIMESTAMPTZ, success BOOLEAN, checksum BYTEA (SHA-384), execution_time
//!   BIGINT (ns)`.
//! - diesel (`__diesel_schema_migrations`): `version VARCHAR(50), run_on
//!   TIMESTAMP`; the version is the folder name's prefix without dashes.
//! - refinery (`refinery_schema_history`): `version INT4 (INT8 with
//!   int8-versions), name, applied_on VARCHAR (RFC 3339), checksum VARCHAR
//!   (SipHash-1-3, decimal)`.
//!
//! Times come back as ISO 8601 in UTC. A `timestamp` without time zone
//! (Flyway's and diesel's on PostgreSQL) is read in the session's time zone,
//! which silo's connections set to UTC.

use serde::Serialize;
use silo_manifest::Engine;

/// The tools whose history silo can adopt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    Flyway,
    Sqlx,
    Diesel,
    Refinery,
}

impl Tool {
    /// Every tool, in the order `detect` reports them.
    pub const ALL: [Tool; 4] = [Tool::Flyway, Tool::Sqlx, Tool::Diesel, Tool::Refinery];

    /// The name used on the command line (`--from flyway`).
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Flyway => "flyway",
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::Refinery => "refinery",
        }
    }

    /// The tool's name in prose.
    pub fn title(self) -> &'static str {
        match self {
            Tool::Flyway => "Flyway",
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::Refinery => "refinery",
        }
    }

    /// The table the tool keeps its history in unless told otherwise.
    pub fn default_table(self) -> &'static str {
        match self {
            Tool::Flyway => "flyway_schema_history",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Refinery => "refinery_schema_history",
        }
    }

    /// Whether the tool records a checksum of each file.
    pub fn keeps_checksums(self) -> bool {
        !matches!(self, Tool::Diesel)
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of another tool's history, with its values as text.
#[derive(Debug, Clone)]
pub struct ForeignRow {
    pub version: Option<String>,
    pub description: String,
    /// Flyway's `type` (`SQL`, `BASELINE`, `UNDO_SQL`, `JDBC`, ...); `SQL`
    /// for the other tools.
    pub kind: String,
    /// Flyway's `script`: the file name, maybe under a folder.
    pub script: Option<String>,
    /// As the tool stored it: Flyway's signed integer, sqlx's hex, refinery's
    /// decimal.
    pub checksum: Option<String>,
    pub installed_by: Option<String>,
    /// ISO 8601, UTC.
    pub installed_on: String,
    pub execution_time_ms: i32,
    pub success: bool,
}

/// Checks a `--table` value: a name, or `schema.name`, of letters, digits
/// and underscores, so it can be quoted into SQL safely.
pub fn check_table_name(name: &str) -> Result<(), String> {
    let ok = |part: &str| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() <= 2 && parts.iter().all(|p| ok(p)) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a table name: use letters, digits and `_`, optionally as schema.table"
        ))
    }
}

/// The table name quoted for SQL (`"schema"."name"`); checked first.
pub(crate) fn quoted(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// The query that returns whether the table exists: one row, one column,
/// non-null when it does. Its argument is [`exists_arg`].
pub(crate) fn exists_query(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "SELECT to_regclass($1)::text",
        Engine::Sqlite => {
            "SELECT (SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?)"
        }
    }
}

/// The argument of [`exists_query`]: the quoted name for PostgreSQL (the
/// tools create their tables with quoted names, so case counts), the bare
/// name for SQLite.
pub(crate) fn exists_arg(engine: Engine, table: &str) -> String {
    match engine {
        Engine::Postgres => quoted(table),
        Engine::Sqlite => table.rsplit('.').next().unwrap_or(table).to_string(),
    }
}

/// The query that counts the table's rows, as text.
pub(crate) fn count_query(engine: Engine, table: &str) -> String {
    match engine {
        Engine::Postgres => format!("SELECT count(*)::text FROM {}", quoted(table)),
        Engine::Sqlite => format!("SELECT CAST(count(*) AS TEXT) FROM {}", quoted(table)),
    }
}

/// The query that reads `tool`'s history in `table` as nine text columns:
/// version, description, type, script, checksum, installed_by, installed_on
/// (ISO 8601, UTC), execution time (ms), success.
pub(crate) fn read_query(tool: Tool, engine: Engine, table: &str) -> String {
    let t = quoted(table);
    match (tool, engine) {
        (Tool::Flyway, Engine::Postgres) => format!(
            "SELECT version::text, description::text, type::text, script::text, checksum::text,
                    installed_by::text, {}, execution_time::text, success::text
             FROM {t} ORDER BY installed_rank",
            pg_time("installed_on")
        ),
        (Tool::Flyway, Engine::Sqlite) => format!(
            "SELECT CAST(version AS TEXT), CAST(description AS TEXT), CAST(type AS TEXT),
                    CAST(script AS TEXT), CAST(checksum AS TEXT), CAST(installed_by AS TEXT),
                    {}, CAST(execution_time AS TEXT), CAST(success AS TEXT)
             FROM {t} ORDER BY installed_rank",
            sqlite_time("installed_on")
        ),
        (Tool::Sqlx, Engine::Postgres) => format!(
            "SELECT version::text, description, 'SQL', NULL::text, encode(checksum, 'hex'),
                    NULL::text, {}, greatest(execution_time / 1000000, 0)::text, success::text
             FROM {t} ORDER BY version",
            pg_time("installed_on")
        ),
        (Tool::Sqlx, Engine::Sqlite) => format!(
            "SELECT CAST(version AS TEXT), CAST(description AS TEXT), 'SQL', NULL,
                    lower(hex(checksum)), NULL, {},
                    CAST(max(execution_time / 1000000, 0) AS TEXT), CAST(success AS TEXT)
             FROM {t} ORDER BY version",
            sqlite_time("installed_on")
        ),
        (Tool::Diesel, Engine::Postgres) => format!(
            "SELECT version::text, '', 'SQL', NULL::text, NULL::text, NULL::text, {}, '0', 'true'
             FROM {t} ORDER BY run_on, version",
            pg_time("run_on")
        ),
        (Tool::Diesel, Engine::Sqlite) => format!(
            "SELECT CAST(version AS TEXT), '', 'SQL', NULL, NULL, NULL, {}, '0', 'true'
             FROM {t} ORDER BY run_on, version",
            sqlite_time("run_on")
        ),
        (Tool::Refinery, Engine::Postgres) => format!(
            "SELECT version::text, name::text, 'SQL', NULL::text, checksum::text, NULL::text,
                    {}, '0', 'true'
             FROM {t} ORDER BY version",
            pg_time("applied_on")
        ),
        (Tool::Refinery, Engine::Sqlite) => format!(
            "SELECT CAST(version AS TEXT), CAST(name AS TEXT), 'SQL', NULL,
                    CAST(checksum AS TEXT), NULL, {}, '0', 'true'
             FROM {t} ORDER BY version",
            sqlite_time("applied_on")
        ),
    }
}

/// A PostgreSQL time column (timestamp, timestamptz or RFC 3339 text) as
/// ISO 8601 in UTC, to the microsecond.
fn pg_time(column: &str) -> String {
    format!(
        "to_char({column}::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    )
}

/// A SQLite time column as ISO 8601 in UTC (SQLite keeps milliseconds);
/// a value SQLite cannot read is kept as it is.
fn sqlite_time(column: &str) -> String {
    format!("coalesce(strftime('%Y-%m-%dT%H:%M:%fZ', {column}), CAST({column} AS TEXT))")
}

/// Turns the nine text columns of [`read_query`] into a row.
pub(crate) fn parse_row(columns: Vec<Option<String>>) -> ForeignRow {
    let mut c = columns.into_iter();
    let mut next = || c.next().flatten();
    let version = next();
    let description = next().unwrap_or_default();
    let kind = next().unwrap_or_else(|| "SQL".into());
    let script = next();
    let checksum = next();
    let installed_by = next();
    let installed_on = next().unwrap_or_default();
    let execution_time_ms = next()
        .and_then(|t| t.parse::<i64>().ok())
        .map_or(0, |ms| i32::try_from(ms.max(0)).unwrap_or(i32::MAX));
    let success = next().is_some_and(|s| matches!(s.as_str(), "true" | "t" | "1" | "TRUE"));
    ForeignRow {
        version,
        description,
        kind,
        script,
        checksum,
        installed_by,
        installed_on,
        execution_time_ms,
        success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(check_table_name("flyway_schema_history").is_ok());
        assert!(check_table_name("app.flyway_history").is_ok());
        assert!(check_table_name("_sqlx_migrations").is_ok());
        for bad in ["", "a.b.c", "1abc", "x; DROP TABLE y", "a\"b", "a-b", "a."] {
            assert!(check_table_name(bad).is_err(), "{bad}");
        }
        assert_eq!(quoted("app.hist"), "\"app\".\"hist\"");
    }
}
