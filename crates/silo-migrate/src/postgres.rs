//! Migrating a PostgreSQL store, as the service's own role.
//!
//! The run lock is a session-level advisory lock keyed by the database. A
//! waiter polls `pg_try_advisory_lock` instead of blocking in
//! `pg_advisory_lock`: a blocked call is a running statement with a
//! snapshot, and `CREATE INDEX CONCURRENTLY` in the lock holder waits for
//! every such snapshot, which would deadlock the two runs.
//!
//! A cancelled run cancels its running statement with `pg_cancel_backend`
//! from a second connection as the same role (sqlx keeps the backend's
//! cancel key to itself), then rolls back as after any error. The session
//! lock goes with `pg_advisory_unlock`, or with the session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use silo_manifest::Engine;
use sqlx::postgres::PgDatabaseError;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

use crate::cancel::Cancel;
use crate::error::{Cancelled, MigrateError, Stopped, sql};
use crate::history::{
    self, COLUMNS, FORMAT, HistoryRow, NewRow, PROGRESS_COLUMNS, PROGRESS_TABLE, Progress,
    StopReason, TABLE,
};
use crate::split::{Statement, split_postgres};
use crate::target::{DbError, LockPolicy, Target, char_position_to_offset};

const LOCK_KEY: &str = "hashtextextended('silo:migrate:' || current_database(), 0)";

/// Opens another connection to the same store as the same role: the one a
/// running statement is cancelled from.
pub type Connector =
    Arc<dyn Fn() -> BoxFuture<'static, Result<PgConnection, MigrateError>> + Send + Sync>;

/// The history rows of the store `conn` is connected to, in rank order
/// (none without a history table). Runs in whatever transaction `conn` is
/// in, so a backup reads them in its own snapshot.
async fn history_rows(conn: &mut PgConnection) -> Result<Vec<HistoryRow>, MigrateError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("public.{TABLE}"))
        .fetch_one(&mut *conn)
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
    .fetch_all(&mut *conn)
    .await
    .map_err(sql("reading the history"))?;
    rows.iter().map(history::from_row).collect()
}

/// The store's migration version (the newest applied version, after
/// undos), read through `conn` as it is: `None` for a store without
/// history. What a backup records as the version it holds.
pub async fn migration_version(conn: &mut PgConnection) -> Result<Option<String>, MigrateError> {
    let rows = history_rows(conn).await?;
    Ok(crate::state::replay(&rows).newest().map(|v| v.to_string()))
}

/// A PostgreSQL store, connected as its service.
pub struct PgTarget {
    conn: PgConnection,
    server_version: u32,
    /// The server process of `conn`, for `pg_cancel_backend`.
    pid: i32,
    policy: LockPolicy,
    connector: Option<Connector>,
}

impl PgTarget {
    /// Wraps a connection made with the service's credentials.
    pub async fn new(mut conn: PgConnection, policy: LockPolicy) -> Result<Self, MigrateError> {
        let (version, pid): (String, i32) =
            sqlx::query_as("SELECT current_setting('server_version_num'), pg_backend_pid()")
                .fetch_one(&mut conn)
                .await
                .map_err(sql("reading the server version"))?;
        Ok(PgTarget {
            conn,
            server_version: version.parse().unwrap_or(0),
            pid,
            policy,
            connector: None,
        })
    }

    /// How to open a second connection to cancel a running statement when
    /// the run is cancelled. Without one, a cancelled run waits for the
    /// running statement to end, then rolls back.
    pub fn cancel_with(mut self, connector: Connector) -> Self {
        self.connector = Some(connector);
        self
    }

    async fn progress_table_exists(&mut self) -> Result<bool, MigrateError> {
        sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(format!("public.{PROGRESS_TABLE}"))
            .fetch_one(&mut self.conn)
            .await
            .map_err(sql("reading the progress table"))
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

    fn cancel(&self) -> &Cancel {
        &self.policy.cancel
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
            if self.policy.cancel.is_cancelled() {
                return Err(cancelled_waiting());
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
            let wait = pause.min(self.policy.timeout.saturating_sub(started.elapsed()));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.policy.cancel.cancelled() => return Err(cancelled_waiting()),
            }
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

    async fn begin_record(&mut self) -> Result<(), MigrateError> {
        self.begin().await
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
        let mut rows = history_rows(&mut self.conn).await?;
        if rows.iter().any(|r| !r.success) && self.progress_table_exists().await? {
            let progress = sqlx::query(AssertSqlSafe(format!(
                "SELECT {PROGRESS_COLUMNS} FROM public.{PROGRESS_TABLE}"
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
        let query = sqlx::query(AssertSqlSafe(format!(
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
        .bind(row.success);
        let PgTarget {
            conn,
            pid,
            connector,
            policy,
            ..
        } = self;
        until_cancelled(
            &policy.cancel,
            connector.as_ref(),
            *pid,
            query.execute(&mut *conn),
        )
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
        let PgTarget {
            conn,
            pid,
            connector,
            policy,
            ..
        } = self;
        // Another tool's table may be locked by a run of that tool: a
        // cancelled run must not wait for it.
        let rows = until_cancelled(
            &policy.cancel,
            connector.as_ref(),
            *pid,
            query.fetch_all(&mut *conn),
        )
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

    async fn start_progress(
        &mut self,
        row: &NewRow,
        progress: &Progress,
    ) -> Result<i32, MigrateError> {
        // The foreign key takes a progress row with its history row, also
        // when a silo that does not know this table repairs the history.
        self.run(
            &format!(
                "CREATE TABLE IF NOT EXISTS public.{PROGRESS_TABLE} (
                    installed_rank integer PRIMARY KEY
                        REFERENCES public.{TABLE} (installed_rank) ON DELETE CASCADE,
                    statements integer NOT NULL,
                    done integer NOT NULL,
                    running integer,
                    stopped text,
                    error text,
                    done_checksum text NOT NULL,
                    started_by text NOT NULL,
                    updated_on timestamptz NOT NULL DEFAULT now()
                 )"
            ),
            "creating the progress table",
        )
        .await?;
        let rank: i32 = sqlx::query_scalar(AssertSqlSafe(format!(
            "INSERT INTO public.{TABLE}
               (installed_rank, version, description, type, script, checksum, execution_time_ms, success)
             VALUES ((SELECT coalesce(max(installed_rank), 0) + 1 FROM public.{TABLE}),
                     $1, $2, $3, $4, $5, $6, false)
             RETURNING installed_rank"
        )))
        .bind(&row.version)
        .bind(&row.description)
        .bind(row.kind.as_str())
        .bind(&row.script)
        .bind(&row.checksum)
        .bind(row.execution_time_ms)
        .fetch_one(&mut self.conn)
        .await
        .map_err(sql("recording the start of the migration"))?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO public.{PROGRESS_TABLE}
               (installed_rank, statements, done, done_checksum, started_by)
             VALUES ($1, $2, $3, $4, $5)"
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
            "UPDATE public.{PROGRESS_TABLE} SET started_by = $1
             WHERE installed_rank = $2 AND started_by = $3"
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
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE public.{PROGRESS_TABLE}
             SET done = $2, running = $3, stopped = $4, error = $5, done_checksum = $6,
                 updated_on = now()
             WHERE installed_rank = $1"
        )))
        .bind(installed_rank)
        .bind(count(done))
        .bind(running.map(count))
        .bind(stopped)
        .bind(error)
        .bind(done_checksum)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("recording the progress of the migration"))
    }

    async fn finish_progress(
        &mut self,
        installed_rank: i32,
        checksum: Option<&str>,
        execution_time_ms: i32,
    ) -> Result<(), MigrateError> {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE public.{TABLE}
             SET success = true, checksum = $2, execution_time_ms = $3, installed_on = now()
             WHERE installed_rank = $1"
        )))
        .bind(installed_rank)
        .bind(checksum)
        .bind(execution_time_ms)
        .execute(&mut self.conn)
        .await
        .map_err(sql("recording the migration"))?;
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM public.{PROGRESS_TABLE} WHERE installed_rank = $1"
        )))
        .bind(installed_rank)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(sql("recording the migration"))
    }

    fn conn(&mut self) -> crate::target::Conn<'_> {
        crate::target::Conn::Postgres(&mut self.conn)
    }

    async fn snapshot(&mut self) -> Result<silo_store::schema::Schema, MigrateError> {
        silo_store::schema::snapshot_postgres(&mut self.conn)
            .await
            .map_err(sql("reading the schema"))
    }

    async fn execute(&mut self, text: &str) -> Result<(), DbError> {
        let cancel = self.policy.cancel.clone();
        let PgTarget {
            conn,
            pid,
            connector,
            ..
        } = self;
        let query = sqlx::raw_sql(AssertSqlSafe(text.to_string())).execute(&mut *conn);
        // After the cancel request the statement is awaited to its end, so
        // the rollback after it works.
        let result = until_cancelled(&cancel, connector.as_ref(), *pid, query).await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(db_error(e, text)),
        }
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Awaits `query`; when the run is cancelled meanwhile, asks the server to
/// cancel it and awaits its end (a query is never dropped half way, so the
/// connection stays in step with the server).
async fn until_cancelled<T>(
    cancel: &Cancel,
    connector: Option<&Connector>,
    pid: i32,
    query: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(query);
    tokio::select! {
        biased;
        r = &mut query => r,
        () = cancel.cancelled() => {
            cancel_backend(connector, pid).await;
            query.await
        }
    }
}

fn cancelled_waiting() -> MigrateError {
    MigrateError::Cancelled(Box::new(Cancelled::new(Stopped::BetweenFiles)))
}

/// Asks the server to cancel what backend `pid` is running, from a second
/// connection as the same role (a role may cancel its own backends).
async fn cancel_backend(connector: Option<&Connector>, pid: i32) {
    let Some(connect) = connector else {
        tracing::warn!("cannot cancel the running statement: waiting for it to end");
        return;
    };
    let mut conn = match connect().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(
                "cannot cancel the running statement ({}): waiting for it to end",
                e.describe()
            );
            return;
        }
    };
    match sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .fetch_one(&mut conn)
        .await
    {
        Ok(true) => tracing::debug!("cancel request sent to server process {pid}"),
        Ok(false) => tracing::warn!(
            "the server did not take the cancel request for process {pid}: waiting for the statement to end"
        ),
        Err(e) => {
            tracing::warn!("cannot cancel the running statement ({e}): waiting for it to end")
        }
    }
    let _ = conn.close().await;
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
