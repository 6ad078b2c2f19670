//! The seam between the migration logic and an engine: a connection to one
//! service's store, as that service.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use silo_manifest::Engine;
use sqlx::{PgConnection, SqliteConnection};

use crate::cancel::Cancel;
use crate::error::MigrateError;
use crate::history::{HistoryRow, NewRow, Progress, StopReason};
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

/// The store's connection as the run holds it, in whatever transaction is
/// open: what an [`crate::Applied`] hook writes on, so its rows commit or
/// roll back with the migration.
pub enum Conn<'c> {
    Postgres(&'c mut PgConnection),
    Sqlite(&'c mut SqliteConnection),
}

/// How a run waits for another migrator, and when it stops.
#[derive(Clone)]
pub struct LockPolicy {
    pub timeout: Duration,
    /// Called once when we start waiting, with who we wait for.
    pub on_wait: Arc<dyn Fn(&str) + Send + Sync>,
    /// Calls the run off: the running statement is cancelled on the
    /// server, the open transaction rolled back and the lock released
    /// ([`crate::MigrateError::Cancelled`]). `Cancel::new()` when the
    /// caller never cancels.
    pub cancel: Cancel,
}

/// A connection to one store, as its service, for migrating it.
#[async_trait]
pub trait Target: Send {
    fn engine(&self) -> Engine;

    /// The token that calls this run off. [`Target::execute`] and the
    /// waits for a lock honour it; the operations check it between steps.
    fn cancel(&self) -> &Cancel;

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
    /// Starts a transaction that records how a step went (its progress, its
    /// history row): as [`Target::begin`], but a cancelled run still waits
    /// for the write lock, so what it did is recorded.
    async fn begin_record(&mut self) -> Result<(), MigrateError>;
    async fn commit(&mut self) -> Result<(), MigrateError>;
    async fn rollback(&mut self) -> Result<(), MigrateError>;

    /// Creates the history table if it is missing; refuses a newer format.
    async fn ensure_history(&mut self) -> Result<(), MigrateError>;
    /// The history, oldest first; empty when there is no table yet.
    async fn history(&mut self) -> Result<Vec<HistoryRow>, MigrateError>;
    async fn record(&mut self, row: &NewRow) -> Result<(), MigrateError>;
    /// Deletes a history row, and its progress row if it has one.
    async fn delete_row(&mut self, installed_rank: i32) -> Result<(), MigrateError>;

    /// Records that a file which runs outside a transaction starts: its
    /// history row, not successful until [`Target::finish_progress`], and
    /// its progress row (made on first use). Returns the history row's rank.
    async fn start_progress(
        &mut self,
        row: &NewRow,
        progress: &Progress,
    ) -> Result<i32, MigrateError>;

    /// Claims a stopped file for a resume, in the planning transaction:
    /// the progress row of `installed_rank` is marked as this process's if
    /// it still names `stopped_by`. False when another run claimed it
    /// first (two `--resume` at once).
    async fn claim_progress(
        &mut self,
        installed_rank: i32,
        stopped_by: &str,
    ) -> Result<bool, MigrateError>;

    /// Records how far the file of history row `installed_rank` got, at
    /// once (outside any transaction: a write of its own, waiting for the
    /// write lock where there is one, even when the run is cancelled).
    async fn set_progress(
        &mut self,
        installed_rank: i32,
        done: usize,
        running: Option<usize>,
        stopped: Option<&StopReason>,
        done_checksum: &str,
    ) -> Result<(), MigrateError>;

    /// Records the file of history row `installed_rank` as applied (with
    /// the file's checksum now, and the time it took) and drops its
    /// progress row.
    async fn finish_progress(
        &mut self,
        installed_rank: i32,
        checksum: Option<&str>,
        execution_time_ms: i32,
    ) -> Result<(), MigrateError>;
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

    /// Runs SQL text (one or more statements). When the run is cancelled
    /// meanwhile, the statement is cancelled on the server and this
    /// returns its error (or `Ok` if it finished first).
    async fn execute(&mut self, sql: &str) -> Result<(), DbError>;

    /// The store's schema, read from its catalog.
    async fn snapshot(&mut self) -> Result<silo_store::schema::Schema, MigrateError>;

    /// The connection itself, for writes beside a migration in its own
    /// transaction ([`crate::Applied`]).
    fn conn(&mut self) -> Conn<'_>;
}

/// Converts a 1-based character position into a byte offset in `text`.
pub(crate) fn char_position_to_offset(text: &str, position: usize) -> usize {
    text.char_indices()
        .nth(position.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i)
}
