//! Migrating a SQLite store.
//!
//! Each step runs in an immediate (write-locking) transaction that re-reads
//! the history first, so concurrent runs apply each migration exactly once
//! without a lock table. Flyway, sqlx and refinery take no lock on SQLite.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use silo_manifest::Engine;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use crate::error::{MigrateError, sql};
use crate::history::{self, COLUMNS, FORMAT, HistoryRow, NewRow, TABLE};
use crate::split::{Statement, split_sqlite};
use crate::target::{DbError, LockPolicy, Target};

/// A SQLite store file.
pub struct SqliteTarget {
    conn: SqliteConnection,
    policy: LockPolicy,
    user: String,
}

impl SqliteTarget {
    /// Wraps a connection opened by `silo_store::sqlite::open`.
    pub async fn new(mut conn: SqliteConnection, policy: LockPolicy) -> Result<Self, MigrateError> {
        // We wait for the write lock ourselves, to say that we are waiting.
        sqlx::raw_sql("PRAGMA busy_timeout = 0")
            .execute(&mut conn)
            .await
            .map_err(sql("configuring the connection"))?;
        let user = std::env::var("USER").unwrap_or_else(|_| "silo".into());
        Ok(SqliteTarget { conn, policy, user })
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
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        let mut told = false;
        loop {
            match sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut self.conn)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_busy(&e) => {
                    if !told {
                        (self.policy.on_wait)("another writer of this SQLite store");
                        told = true;
                    }
                    if started.elapsed() >= self.policy.timeout {
                        return Err(MigrateError::LockTimeout(self.policy.timeout));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(sql("starting a write transaction")(e)),
            }
        }
    }

    async fn commit(&mut self) -> Result<(), MigrateError> {
        self.run("COMMIT", "committing").await
    }

    async fn rollback(&mut self) -> Result<(), MigrateError> {
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
        rows.iter().map(history::from_row).collect()
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

    async fn snapshot(&mut self) -> Result<silo_store::schema::Schema, MigrateError> {
        silo_store::schema::snapshot_sqlite(&mut self.conn)
            .await
            .map_err(sql("reading the schema"))
    }

    async fn execute(&mut self, text: &str) -> Result<(), DbError> {
        sqlx::raw_sql(AssertSqlSafe(text.to_string()))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(|e| match &e {
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
