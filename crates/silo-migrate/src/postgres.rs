//! Migrating a PostgreSQL store, as the service's own role.
//!
//! The run lock is a session-level advisory lock keyed by the database. A
//! waiter polls `pg_try_advisory_lock` instead of blocking in
//! `pg_advisory_lock`: a blocked call is a running statement with a
//! snapshot, and `CREATE INDEX CONCURRENTLY` in the lock holder waits for
//! every such snapshot, which would deadlock the two runs.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use silo_manifest::Engine;
use sqlx::postgres::PgDatabaseError;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

use crate::error::{MigrateError, sql};
use crate::history::{self, COLUMNS, FORMAT, HistoryRow, NewRow, TABLE};
use crate::split::{Statement, split_postgres};
use crate::target::{DbError, LockPolicy, Target, char_position_to_offset};

const LOCK_KEY: &str = "hashtextextended('silo:migrate:' || current_database(), 0)";

/// A PostgreSQL store, connected as its service.
pub struct PgTarget {
    conn: PgConnection,
    server_version: u32,
    policy: LockPolicy,
}

impl PgTarget {
    /// Wraps a connection made with the service's credentials.
    pub async fn new(mut conn: PgConnection, policy: LockPolicy) -> Result<Self, MigrateError> {
        let version: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&mut conn)
            .await
            .map_err(sql("reading the server version"))?;
        Ok(PgTarget {
            conn,
            server_version: version.parse().unwrap_or(0),
            policy,
        })
    }

    /// The connection, for callers that need the store itself (schema
    /// snapshots).
    pub fn connection(&mut self) -> &mut PgConnection {
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

#[async_trait]
impl Target for PgTarget {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn split(&self, script: &str) -> Vec<Statement> {
        split_postgres(script, self.server_version)
    }

    fn run_lock(&self) -> bool {
        true
    }

    async fn lock(&mut self) -> Result<(), MigrateError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        let mut told = false;
        loop {
            let got: bool = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT pg_try_advisory_lock({LOCK_KEY})"
            )))
            .fetch_one(&mut self.conn)
            .await
            .map_err(sql("taking the migration lock"))?;
            if got {
                return Ok(());
            }
            if !told {
                let holder: Option<i32> = sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND ((l.classid::bigint << 32) | l.objid::bigint) = {LOCK_KEY}
                     LIMIT 1"
                )))
                .fetch_optional(&mut self.conn)
                .await
                .unwrap_or(None);
                let who = holder.map_or("another silo migrate".to_string(), |pid| {
                    format!("another silo migrate (server pid {pid})")
                });
                (self.policy.on_wait)(&who);
                told = true;
            }
            if started.elapsed() >= self.policy.timeout {
                return Err(MigrateError::LockTimeout(self.policy.timeout));
            }
            tokio::time::sleep(pause.min(self.policy.timeout.saturating_sub(started.elapsed())))
                .await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    async fn unlock(&mut self) -> Result<(), MigrateError> {
        self.run(
            &format!("SELECT pg_advisory_unlock({LOCK_KEY})"),
            "releasing the migration lock",
        )
        .await
    }

    async fn begin(&mut self) -> Result<(), MigrateError> {
        self.run("BEGIN", "starting a transaction").await
    }

    async fn commit(&mut self) -> Result<(), MigrateError> {
        self.run("COMMIT", "committing").await
    }

    async fn rollback(&mut self) -> Result<(), MigrateError> {
        self.run("ROLLBACK", "rolling back").await
    }

    async fn ensure_history(&mut self) -> Result<(), MigrateError> {
        let comment: Option<Option<String>> = sqlx::query_scalar(
            "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c
             WHERE c.relname = $1 AND c.relnamespace = 'public'::regnamespace",
        )
        .bind(TABLE)
        .fetch_optional(&mut self.conn)
        .await
        .map_err(sql("reading the history table"))?;
        match comment {
            Some(comment) => check_format(comment.as_deref()),
            None => {
                self.run(
                    &format!(
                        "CREATE TABLE public.{TABLE} (
                            installed_rank integer PRIMARY KEY,
                            version text,
                            description text NOT NULL,
                            type text NOT NULL,
                            script text NOT NULL,
                            checksum text,
                            installed_by text NOT NULL DEFAULT current_user,
                            installed_on timestamptz NOT NULL DEFAULT now(),
                            execution_time_ms integer NOT NULL,
                            success boolean NOT NULL
                         );
                         COMMENT ON TABLE public.{TABLE} IS 'silo schema history, format {FORMAT}';"
                    ),
                    "creating the history table",
                )
                .await
            }
        }
    }

    async fn history(&mut self) -> Result<Vec<HistoryRow>, MigrateError> {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("public.{TABLE}"))
            .fetch_one(&mut self.conn)
            .await
            .map_err(sql("reading the history"))?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS},
                    to_char(installed_on AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    execution_time_ms, success
             FROM public.{TABLE} ORDER BY installed_rank"
        )))
        .fetch_all(&mut self.conn)
        .await
        .map_err(sql("reading the history"))?;
        rows.iter().map(history::from_row).collect()
    }

    async fn record(&mut self, row: &NewRow) -> Result<(), MigrateError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO public.{TABLE}
               (installed_rank, version, description, type, script, checksum, execution_time_ms, success)
             VALUES ((SELECT coalesce(max(installed_rank), 0) + 1 FROM public.{TABLE}),
                     $1, $2, $3, $4, $5, $6, $7)"
        )))
        .bind(&row.version)
        .bind(&row.description)
        .bind(row.kind.as_str())
        .bind(&row.script)
        .bind(&row.checksum)
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
            "INSERT INTO public.{TABLE}
               (installed_rank, version, description, type, script, checksum, installed_by,
                installed_on, execution_time_ms, success)
             VALUES ((SELECT coalesce(max(installed_rank), 0) + 1 FROM public.{TABLE}),
                     $1, $2, $3, $4, $5, $6, $7::timestamptz, $8, $9)"
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
            "DELETE FROM public.{TABLE} WHERE installed_rank = $1"
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
            "UPDATE public.{TABLE} SET checksum = $2 WHERE installed_rank = $1"
        )))
        .bind(installed_rank)
        .bind(checksum)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("updating a checksum"))
    }

    async fn snapshot(&mut self) -> Result<silo_store::schema::Schema, MigrateError> {
        silo_store::schema::snapshot_postgres(&mut self.conn)
            .await
            .map_err(sql("reading the schema"))
    }

    async fn execute(&mut self, text: &str) -> Result<(), DbError> {
        match sqlx::raw_sql(AssertSqlSafe(text.to_string()))
            .execute(&mut self.conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(db_error(e, text)),
        }
    }
}

fn db_error(e: sqlx::Error, sent: &str) -> DbError {
    if let sqlx::Error::Database(db) = &e
        && let Some(pg) = db.try_downcast_ref::<PgDatabaseError>()
    {
        let offset = match pg.position() {
            Some(sqlx::postgres::PgErrorPosition::Original(p)) => {
                Some(char_position_to_offset(sent, p))
            }
            _ => None,
        };
        let mut message = pg.message().to_string();
        if let Some(detail) = pg.detail() {
            message.push_str(&format!(" ({detail})"));
        }
        return DbError {
            message,
            code: Some(pg.code().to_string()),
            offset,
        };
    }
    DbError {
        message: e.to_string(),
        code: None,
        offset: None,
    }
}

/// Reads the format from the table comment `silo schema history, format N`.
pub(crate) fn check_format(comment: Option<&str>) -> Result<(), MigrateError> {
    let found = comment
        .and_then(|c| c.rsplit("format ").next())
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(FORMAT);
    if found > FORMAT {
        return Err(MigrateError::NewerHistory {
            found,
            supported: FORMAT,
        });
    }
    Ok(())
}

/// Opens a connection as the service (its credentials' URL).
pub async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnection::connect(url).await
}
