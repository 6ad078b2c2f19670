//! Migrating a SQLite store.
//!
//! Each step runs in an immediate (write-locking) transaction that re-reads
//! the history first, so concurrent runs apply each migration exactly once
//! without a lock table. Flyway, sqlx and refinery take no lock on SQLite.
//!
//! A cancelled run interrupts its running statement through the
//! connection's progress handler (SQLite checks it every few thousand
//! virtual machine steps), which ends it with `SQLITE_INTERRUPT`; then it
//! rolls back as after any error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use silo_manifest::Engine;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use crate::cancel::Cancel;
use crate::error::{Cancelled, MigrateError, Stopped, sql};
use crate::history::{
    self, COLUMNS, FORMAT, HistoryRow, NewRow, PROGRESS_COLUMNS, PROGRESS_TABLE, Progress,
    StopReason, TABLE,
};
use crate::split::{Statement, split_sqlite};
use crate::target::{DbError, LockPolicy, Target};

/// How many virtual machine steps SQLite runs between two looks at the
/// interrupt flag.
const INTERRUPT_CHECK_STEPS: i32 = 1000;

/// A SQLite store file.
pub struct SqliteTarget {
    conn: SqliteConnection,
    policy: LockPolicy,
    user: String,
    /// Raised while a cancelled statement runs: the progress handler then
    /// interrupts it.
    interrupt: Arc<AtomicBool>,
}

impl SqliteTarget {
    /// Wraps a connection opened by `silo_store::sqlite::open`.
    pub async fn new(mut conn: SqliteConnection, policy: LockPolicy) -> Result<Self, MigrateError> {
        // We wait for the write lock ourselves, to say that we are waiting.
        sqlx::raw_sql("PRAGMA busy_timeout = 0")
            .execute(&mut conn)
            .await
            .map_err(sql("configuring the connection"))?;
        let interrupt = Arc::new(AtomicBool::new(false));
        let flag = interrupt.clone();
        conn.lock_handle()
            .await
            .map_err(sql("configuring the connection"))?
            .set_progress_handler(INTERRUPT_CHECK_STEPS, move || !flag.load(Ordering::SeqCst));
        let user = std::env::var("USER").unwrap_or_else(|_| "silo".into());
        Ok(SqliteTarget {
            conn,
            policy,
            user,
            interrupt,
        })
    }

    /// Whether a transaction is open: an interrupted or failed write can
    /// end it on its own, and then there is nothing to roll back.
    async fn in_transaction(&mut self) -> Result<bool, MigrateError> {
        let mut handle = self
            .conn
            .lock_handle()
            .await
            .map_err(sql("reading the transaction state"))?;
        // SAFETY: the handle is locked out of sqlx's worker for the call,
        // and sqlite3_get_autocommit only reads the connection's state.
        let autocommit =
            unsafe { libsqlite3_sys::sqlite3_get_autocommit(handle.as_raw_handle().as_ptr()) };
        Ok(autocommit == 0)
    }

    /// `BEGIN IMMEDIATE`, waiting for another writer per the lock policy;
    /// a cancelled run stops waiting when `honour_cancel`.
    async fn begin_immediate(&mut self, honour_cancel: bool) -> Result<(), MigrateError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        let mut told = false;
        loop {
            // A cancelled run still records how it stopped when the lock is
            // free: only waiting is cut short.
            match sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut self.conn)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_busy(&e) => {
                    if honour_cancel && self.policy.cancel.is_cancelled() {
                        return Err(cancelled_waiting());
                    }
                    if !told {
                        (self.policy.on_wait)("another writer of this SQLite store");
                        told = true;
                    }
                    if started.elapsed() >= self.policy.timeout {
                        return Err(MigrateError::LockTimeout(self.policy.timeout));
                    }
                    let cancel = self.policy.cancel.clone();
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = cancel.cancelled(), if honour_cancel => {
                            return Err(cancelled_waiting());
                        }
                    }
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(sql("starting a write transaction")(e)),
            }
        }
    }

    async fn progress_table_exists(&mut self) -> Result<bool, MigrateError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)",
        )
        .bind(PROGRESS_TABLE)
        .fetch_one(&mut self.conn)
        .await
        .map_err(sql("reading the progress table"))
    }

    /// The connection, for callers that need the store itself.
    pub fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    async fn run(&mut self, text: &str, action: &str) -> Result<(), MigrateError> {
        sqlx::raw_sql(AssertSqlSafe(text.to_string()))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(sql(action.to_string()))
    }
}

fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c == "5" || c == "517" || c == "261"))
}

#[async_trait]
impl Target for SqliteTarget {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn cancel(&self) -> &Cancel {
        &self.policy.cancel
    }

    fn split(&self, script: &str) -> Vec<Statement> {
        split_sqlite(script)
    }

    fn run_lock(&self) -> bool {
        false
    }

    async fn lock(&mut self) -> Result<(), MigrateError> {
        Ok(())
    }

    async fn unlock(&mut self) -> Result<(), MigrateError> {
        Ok(())
    }

    async fn begin(&mut self) -> Result<(), MigrateError> {
        self.begin_immediate(true).await
    }

    async fn begin_record(&mut self) -> Result<(), MigrateError> {
        self.begin_immediate(false).await
    }

    async fn commit(&mut self) -> Result<(), MigrateError> {
        self.run("COMMIT", "committing").await
    }

    async fn rollback(&mut self) -> Result<(), MigrateError> {
        if !self.in_transaction().await? {
            return Ok(());
        }
        self.run("ROLLBACK", "rolling back").await
    }

    async fn ensure_history(&mut self) -> Result<(), MigrateError> {
        self.run(
            &format!(
                "CREATE TABLE IF NOT EXISTS silo_store (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS {TABLE} (
                    installed_rank INTEGER PRIMARY KEY,
                    version TEXT,
                    description TEXT NOT NULL,
                    type TEXT NOT NULL,
                    script TEXT NOT NULL,
                    checksum TEXT,
                    installed_by TEXT NOT NULL,
                    installed_on TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                    execution_time_ms INTEGER NOT NULL,
                    success INTEGER NOT NULL
                 );
                 INSERT OR IGNORE INTO silo_store (key, value) VALUES ('history_format', '{FORMAT}');"
            ),
            "creating the history table",
        )
        .await?;
        let found: String =
            sqlx::query_scalar("SELECT value FROM silo_store WHERE key = 'history_format'")
                .fetch_one(&mut self.conn)
                .await
                .map_err(sql("reading the history format"))?;
        let found: u32 = found.parse().unwrap_or(FORMAT);
        if found > FORMAT {
            return Err(MigrateError::NewerHistory {
                found,
                supported: FORMAT,
            });
        }
        Ok(())
    }

    async fn history(&mut self) -> Result<Vec<HistoryRow>, MigrateError> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)",
        )
        .bind(TABLE)
        .fetch_one(&mut self.conn)
        .await
        .map_err(sql("reading the history"))?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS},
                    installed_on, execution_time_ms, success
             FROM {TABLE} ORDER BY installed_rank"
        )))
        .fetch_all(&mut self.conn)
        .await
        .map_err(sql("reading the history"))?;
        let mut rows: Vec<HistoryRow> = rows
            .iter()
            .map(history::from_row)
            .collect::<Result<_, _>>()?;
        if rows.iter().any(|r| !r.success) && self.progress_table_exists().await? {
            let progress = sqlx::query(AssertSqlSafe(format!(
                "SELECT {PROGRESS_COLUMNS} FROM {PROGRESS_TABLE}"
            )))
            .fetch_all(&mut self.conn)
            .await
            .map_err(sql(
                "reading the progress of files run outside a transaction",
            ))?;
            history::attach(
                &mut rows,
                progress.iter().map(history::progress_from_row).collect(),
            );
        }
        Ok(rows)
    }

    async fn record(&mut self, row: &NewRow) -> Result<(), MigrateError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {TABLE}
               (installed_rank, version, description, type, script, checksum, installed_by,
                execution_time_ms, success)
             VALUES ((SELECT coalesce(max(installed_rank), 0) + 1 FROM {TABLE}),
                     ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(&row.version)
        .bind(&row.description)
        .bind(row.kind.as_str())
        .bind(&row.script)
        .bind(&row.checksum)
        .bind(&self.user)
        .bind(row.execution_time_ms)
        .bind(row.success)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("recording the migration"))
    }

    async fn record_adopted(
        &mut self,
        row: &NewRow,
        installed_by: &str,
        installed_on: &str,
    ) -> Result<(), MigrateError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {TABLE}
               (installed_rank, version, description, type, script, checksum, installed_by,
                installed_on, execution_time_ms, success)
             VALUES ((SELECT coalesce(max(installed_rank), 0) + 1 FROM {TABLE}),
                     ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )))
        .bind(&row.version)
        .bind(&row.description)
        .bind(row.kind.as_str())
        .bind(&row.script)
        .bind(&row.checksum)
        .bind(installed_by)
        .bind(installed_on)
        .bind(row.execution_time_ms)
        .bind(row.success)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("recording an adopted migration"))
    }

    async fn query_text(
        &mut self,
        text: &str,
        args: &[&str],
        action: &str,
    ) -> Result<Vec<Vec<Option<String>>>, MigrateError> {
        let mut query = sqlx::query(AssertSqlSafe(text.to_string()));
        for arg in args {
            query = query.bind(*arg);
        }
        let rows = query
            .fetch_all(&mut self.conn)
            .await
            .map_err(sql(action.to_string()))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<Option<String>, _>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action.to_string()))
    }

    async fn delete_row(&mut self, installed_rank: i32) -> Result<(), MigrateError> {
        // The progress row first, for the foreign key (its cascade needs
        // foreign keys on, which a connection opened elsewhere may not have).
        if self.progress_table_exists().await? {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {PROGRESS_TABLE} WHERE installed_rank = ?"
            )))
            .bind(installed_rank)
            .execute(&mut self.conn)
            .await
            .map_err(sql("deleting a progress row"))?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {TABLE} WHERE installed_rank = ?"
        )))
        .bind(installed_rank)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("deleting a history row"))
    }

    async fn set_checksum(
        &mut self,
        installed_rank: i32,
        checksum: &str,
    ) -> Result<(), MigrateError> {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {TABLE} SET checksum = ? WHERE installed_rank = ?"
        )))
        .bind(checksum)
        .bind(installed_rank)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("updating a checksum"))
    }

    async fn start_progress(
        &mut self,
        row: &NewRow,
        progress: &Progress,
    ) -> Result<i32, MigrateError> {
        self.run(
            &format!(
                "CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (
                    installed_rank INTEGER PRIMARY KEY
                        REFERENCES {TABLE} (installed_rank) ON DELETE CASCADE,
                    statements INTEGER NOT NULL,
                    done INTEGER NOT NULL,
                    running INTEGER,
                    stopped TEXT,
                    error TEXT,
                    done_checksum TEXT NOT NULL,
                    started_by TEXT NOT NULL,
                    updated_on TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                 )"
            ),
            "creating the progress table",
        )
        .await?;
        let rank: i32 = sqlx::query_scalar(AssertSqlSafe(format!(
            "INSERT INTO {TABLE}
               (installed_rank, version, description, type, script, checksum, installed_by,
                execution_time_ms, success)
             VALUES ((SELECT coalesce(max(installed_rank), 0) + 1 FROM {TABLE}),
                     ?, ?, ?, ?, ?, ?, ?, 0)
             RETURNING installed_rank"
        )))
        .bind(&row.version)
        .bind(&row.description)
        .bind(row.kind.as_str())
        .bind(&row.script)
        .bind(&row.checksum)
        .bind(&self.user)
        .bind(row.execution_time_ms)
        .fetch_one(&mut self.conn)
        .await
        .map_err(sql("recording the start of the migration"))?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {PROGRESS_TABLE}
               (installed_rank, statements, done, done_checksum, started_by)
             VALUES (?, ?, ?, ?, ?)"
        )))
        .bind(rank)
        .bind(count(progress.statements))
        .bind(count(progress.done))
        .bind(&progress.done_checksum)
        .bind(&progress.started_by)
        .execute(&mut self.conn)
        .await
        .map_err(sql("recording the start of the migration"))?;
        Ok(rank)
    }

    async fn claim_progress(
        &mut self,
        installed_rank: i32,
        stopped_by: &str,
    ) -> Result<bool, MigrateError> {
        let claimed = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {PROGRESS_TABLE} SET started_by = ?
             WHERE installed_rank = ? AND started_by = ?"
        )))
        .bind(crate::history::this_process())
        .bind(installed_rank)
        .bind(stopped_by)
        .execute(&mut self.conn)
        .await
        .map_err(sql("claiming the stopped migration for --resume"))?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn set_progress(
        &mut self,
        installed_rank: i32,
        done: usize,
        running: Option<usize>,
        stopped: Option<&StopReason>,
        done_checksum: &str,
    ) -> Result<(), MigrateError> {
        let (stopped, error) = stopped.map_or((None, None), |s| {
            let (a, b) = s.columns();
            (Some(a), b)
        });
        // A write transaction of its own, waited for as any other write.
        self.begin_record().await?;
        let updated = sqlx::query(AssertSqlSafe(format!(
            "UPDATE {PROGRESS_TABLE}
             SET done = ?, running = ?, stopped = ?, error = ?, done_checksum = ?,
                 updated_on = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE installed_rank = ?"
        )))
        .bind(count(done))
        .bind(running.map(count))
        .bind(stopped)
        .bind(error)
        .bind(done_checksum)
        .bind(installed_rank)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("recording the progress of the migration"));
        match updated {
            Ok(()) => self.commit().await,
            Err(e) => {
                let _ = self.rollback().await;
                Err(e)
            }
        }
    }

    async fn finish_progress(
        &mut self,
        installed_rank: i32,
        checksum: Option<&str>,
        execution_time_ms: i32,
    ) -> Result<(), MigrateError> {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {PROGRESS_TABLE} WHERE installed_rank = ?"
        )))
        .bind(installed_rank)
        .execute(&mut self.conn)
        .await
        .map_err(sql("recording the migration"))?;
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {TABLE}
             SET success = 1, checksum = ?, execution_time_ms = ?,
                 installed_on = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE installed_rank = ?"
        )))
        .bind(checksum)
        .bind(execution_time_ms)
        .bind(installed_rank)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("recording the migration"))
    }

    fn conn(&mut self) -> crate::target::Conn<'_> {
        crate::target::Conn::Sqlite(&mut self.conn)
    }

    async fn snapshot(&mut self) -> Result<silo_store::schema::Schema, MigrateError> {
        silo_store::schema::snapshot_sqlite(&mut self.conn)
            .await
            .map_err(sql("reading the schema"))
    }

    async fn execute(&mut self, text: &str) -> Result<(), DbError> {
        let cancel = self.policy.cancel.clone();
        let SqliteTarget {
            conn, interrupt, ..
        } = self;
        let query = sqlx::raw_sql(AssertSqlSafe(text.to_string())).execute(&mut *conn);
        tokio::pin!(query);
        // Awaited to its end after the interrupt, as on PostgreSQL.
        let result = tokio::select! {
            biased;
            r = &mut query => r,
            () = cancel.cancelled() => {
                interrupt.store(true, Ordering::SeqCst);
                query.await
            }
        };
        interrupt.store(false, Ordering::SeqCst);
        result.map(|_| ()).map_err(|e| match &e {
            sqlx::Error::Database(db) => DbError {
                message: db.message().to_string(),
                code: db.code().map(|c| c.to_string()),
                offset: None,
            },
            other => DbError {
                message: other.to_string(),
                code: None,
                offset: None,
            },
        })
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn cancelled_waiting() -> MigrateError {
    MigrateError::Cancelled(Box::new(Cancelled::new(Stopped::BetweenFiles)))
}
