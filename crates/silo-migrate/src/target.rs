//! The seam between the migration logic and an engine: a connection to one
//! service's store, as that service.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use silo_manifest::Engine;

use crate::error::MigrateError;
use crate::history::{HistoryRow, NewRow};
use crate::split::Statement;

/// A database error, located in the text that was sent when the server
/// said where.
#[derive(Debug, Clone)]
pub struct DbError {
    pub message: String,
    pub code: Option<String>,
    /// Byte offset in the text sent.
    pub offset: Option<usize>,
}

/// How to wait for another migrator.
#[derive(Clone)]
pub struct LockPolicy {
    pub timeout: Duration,
    /// Called once when we start waiting, with who we wait for.
    pub on_wait: Arc<dyn Fn(&str) + Send + Sync>,
}

/// A connection to one store, as its service, for migrating it.
#[async_trait]
pub trait Target: Send {
    fn engine(&self) -> Engine;

    /// Splits a script with the engine's own lexer.
    fn split(&self, script: &str) -> Vec<Statement>;

    /// Whether [`Target::lock`] excludes other migrators for the whole run
    /// (PostgreSQL), so history read once stays true. When false, every
    /// step re-reads it inside its own write transaction (SQLite).
    fn run_lock(&self) -> bool;

    /// Takes the run lock (PostgreSQL); a no-op where steps lock.
    async fn lock(&mut self) -> Result<(), MigrateError>;
    async fn unlock(&mut self) -> Result<(), MigrateError>;

    /// Starts a step's transaction (SQLite: a write transaction, waiting
    /// per the lock policy).
    async fn begin(&mut self) -> Result<(), MigrateError>;
    async fn commit(&mut self) -> Result<(), MigrateError>;
    async fn rollback(&mut self) -> Result<(), MigrateError>;

    /// Creates the history table if it is missing; refuses a newer format.
    async fn ensure_history(&mut self) -> Result<(), MigrateError>;
    /// The history, oldest first; empty when there is no table yet.
    async fn history(&mut self) -> Result<Vec<HistoryRow>, MigrateError>;
    async fn record(&mut self, row: &NewRow) -> Result<(), MigrateError>;
    async fn delete_row(&mut self, installed_rank: i32) -> Result<(), MigrateError>;
    async fn set_checksum(
        &mut self,
        installed_rank: i32,
        checksum: &str,
    ) -> Result<(), MigrateError>;

    /// Records a row another tool wrote (`silo migrations adopt`), keeping
    /// who installed it and when (`installed_on`: ISO 8601 in UTC).
    async fn record_adopted(
        &mut self,
        row: &NewRow,
        installed_by: &str,
        installed_on: &str,
    ) -> Result<(), MigrateError>;

    /// Runs a query whose every column is text (cast in the SQL), binding
    /// `args` as text (`$1`.. on PostgreSQL, `?` on SQLite); every row.
    async fn query_text(
        &mut self,
        sql: &str,
        args: &[&str],
        action: &str,
    ) -> Result<Vec<Vec<Option<String>>>, MigrateError>;

    /// Runs SQL text (one or more statements).
    async fn execute(&mut self, sql: &str) -> Result<(), DbError>;

    /// The store's schema, read from its catalog.
    async fn snapshot(&mut self) -> Result<silo_store::schema::Schema, MigrateError>;
}

/// Converts a 1-based character position into a byte offset in `text`.
pub(crate) fn char_position_to_offset(text: &str, position: usize) -> usize {
    text.char_indices()
        .nth(position.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i)
}
