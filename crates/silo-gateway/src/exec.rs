//! Running requests: a pool of connections per service, each made through
//! silo-store's connect seam as the service's own role (after the store
//! proved it is the service's own), queries, and writes in one
//! transaction, retried on serialization failures and deadlocks.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use silo_manifest::{GatewayLimits, Service};
use silo_store::{Credentials, ServiceConnection, StoreKind, connect_with};
use sqlx::{Column, Row, TypeInfo, ValueRef};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::catalog::Tables;
use crate::error::GatewayError;
use crate::events::Events;
use crate::limits::Deadline;
use crate::request::{
    IsolationLevel, OperationResult, QueryRequest, QueryResponse, WriteRequest, WriteResponse,
};
use crate::sql::{self, Dialect, Param, Statement};
use crate::{GatewayConfig, Served};

/// The name connections carry on the server (`pg_stat_activity`).
pub const APPLICATION: &str = "silo gateway";

/// One service's connections.
pub struct Pool {
    service: Service,
    /// Read at each new connection: [`Pool::set_credentials`] replaces
    /// them after a rotation, and the connections already open go on.
    creds: RwLock<Credentials>,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    size: usize,
    acquire_timeout: Duration,
    statement_timeout: Duration,
}

/// A connection and, on SQLite, the deadline its progress handler
/// watches (PostgreSQL enforces its own `statement_timeout`).
struct Conn {
    conn: ServiceConnection,
    deadline: Option<Arc<Deadline>>,
}

/// A connection taken from a [`Pool`]; back into it when dropped, unless
/// it broke or a transaction on it never finished.
pub struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
    broken: bool,
    /// Set from `BEGIN` until `COMMIT` or `ROLLBACK` has completed. A
    /// request whose future is dropped in between (the client went away)
    /// leaves it set; the next caller of a pooled connection would
    /// otherwise run inside that half-done transaction and see, or commit,
    /// its writes.
    in_transaction: bool,
}

impl Pooled<'_> {
    pub fn conn(&mut self) -> &mut ServiceConnection {
        &mut self
            .conn
            .as_mut()
            .expect("connection present until drop")
            .conn
    }

    /// Starts the statement timeout of the next statement on SQLite
    /// (PostgreSQL's server times every statement itself).
    pub fn arm(&self) {
        if let Some(deadline) = self.deadline() {
            deadline.arm();
        }
    }

    /// The SQLite deadline, for code that holds the connection borrowed.
    fn deadline(&self) -> Option<Arc<Deadline>> {
        self.conn.as_ref().and_then(|c| c.deadline.clone())
    }

    /// Whether the connection is to PostgreSQL or SQLite.
    pub fn dialect(&self) -> Dialect {
        match &self
            .conn
            .as_ref()
            .expect("connection present until drop")
            .conn
        {
            ServiceConnection::Postgres(_) => Dialect::Postgres,
            ServiceConnection::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Keeps the connection out of the pool (its state is unknown).
    pub fn discard(&mut self) {
        self.broken = true;
    }

    /// Runs `BEGIN...` (any of its forms), marking the connection as in a
    /// transaction before the statement is sent: if the future is dropped
    /// while it is in flight, the server may already have begun.
    async fn begin(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        self.in_transaction = true;
        control(self.conn(), sql).await
    }

    /// Runs `COMMIT` or `ROLLBACK`; the mark is cleared only once the
    /// server has answered, so a drop mid-way still closes the connection.
    async fn end(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        control(self.conn(), sql).await?;
        self.in_transaction = false;
        Ok(())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if self.broken || self.in_transaction {
            // Dropping the connection closes its socket: PostgreSQL rolls
            // back whatever it had open, SQLite's handle rolls back on
            // close. It never reaches another caller.
            drop(conn);
            return;
        }
        self.pool.idle.lock().expect("pool lock").push(conn);
    }
}

/// How a pool is used right now (the `silo_gateway_pool_*` metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// The most connections the pool holds at once.
    pub size: usize,
    /// Open connections waiting for a request.
    pub idle: usize,
    /// Connections taken by a request (or being opened for one).
    pub busy: usize,
}

impl Pool {
    /// A pool of `limits.pool_size` connections as `service`, each
    /// statement on them bounded by `limits.statement_timeout`; a request
    /// waits at most `limits.acquire_timeout` for a free one.
    pub fn new(service: Service, creds: Credentials, limits: &GatewayLimits) -> Self {
        let size = usize::try_from(limits.pool_size)
            .unwrap_or(usize::MAX)
            .max(1);
        Pool {
            service,
            creds: RwLock::new(creds),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size),
            size,
            acquire_timeout: limits.acquire_timeout,
            statement_timeout: limits.statement_timeout,
        }
    }

    /// The service's own credentials (a schema request opens the
    /// migration engine's connection with them).
    pub fn credentials(&self) -> Credentials {
        self.creds.read().expect("credentials lock").clone()
    }

    /// The credentials new connections are made with from now on.
    pub fn set_credentials(&self, creds: Credentials) {
        *self.creds.write().expect("credentials lock") = creds;
    }

    /// A connection as the service: an idle one, or a new one. Waits for a
    /// free slot at most the acquire timeout (then 503 `PoolExhausted`).
    pub async fn acquire(&self) -> Result<Pooled<'_>, GatewayError> {
        let permit = tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
            .await
            .map_err(|_| GatewayError::pool_exhausted(&self.service.name))?
            .map_err(|_| GatewayError::pool_exhausted(&self.service.name))?;
        let idle = self.idle.lock().expect("pool lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        // A deadline armed for the last request's statements must not
        // interrupt this one's catalog reads.
        if let Some(deadline) = &conn.deadline {
            deadline.disarm();
        }
        Ok(Pooled {
            conn: Some(conn),
            pool: self,
            _permit: permit,
            broken: false,
            in_transaction: false,
        })
    }

    /// Its use now. A taken permit is a busy connection, so `busy` counts
    /// a request from the moment it holds its slot.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            size: self.size,
            idle: self.idle.lock().expect("pool lock").len(),
            busy: self.size.saturating_sub(self.permits.available_permits()),
        }
    }

    async fn connect(&self) -> Result<Conn, GatewayError> {
        let creds = self.credentials();
        let mut conn = connect_with(&creds, &self.service, StoreKind::Own, APPLICATION)
            .await
            .map_err(|e| GatewayError::store_unavailable(&self.service.name, &e.to_string()))?;
        let deadline = match &mut conn {
            ServiceConnection::Postgres(c) => {
                // The statement timeout is the manifest's number, never
                // input.
                // READ COMMITTED whatever the role's or database's
                // default: a write of one statement runs without `BEGIN`
                // (see `single_statement`).
                let ms = self.statement_timeout.as_millis();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET statement_timeout = {ms}; \
                     SET default_transaction_isolation = 'read committed'"
                )))
                .execute(&mut *c)
                .await
                .map_err(|e| GatewayError::from_sqlx(&e))?;
                None
            }
            ServiceConnection::Sqlite(c) => Some(
                Deadline::install(c, self.statement_timeout)
                    .await
                    .map_err(|e| GatewayError::from_sqlx(&e))?,
            ),
        };
        Ok(Conn { conn, deadline })
    }
}

/// A built statement for the driver. Its text holds catalog-checked,
/// quoted names and placeholders only (see [`crate::sql`]).
fn safe(st: &Statement) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(st.sql.clone())
}

/// `st` with its parameters bound for PostgreSQL: numbers as text, which
/// the statement casts to the column's type.
fn pg_query(st: &Statement) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut q = sqlx::query(safe(st));
    for p in &st.params {
        q = match p {
            Param::Null => q.bind(None::<String>),
            Param::Text(s) => q.bind(s.as_str()),
            Param::Int(i) => q.bind(i.to_string()),
            Param::Float(f) => q.bind(f.to_string()),
        };
    }
    q
}

/// `st` with its parameters bound for SQLite, numbers as numbers.
fn sqlite_query(
    st: &Statement,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut q = sqlx::query(safe(st));
    for p in &st.params {
        q = match p {
            Param::Null => q.bind(None::<String>),
            Param::Text(s) => q.bind(s.as_str()),
            Param::Int(i) => q.bind(*i),
            Param::Float(f) => q.bind(*f),
        };
    }
    q
}

/// Runs a statement that returns rows.
async fn fetch(
    conn: &mut ServiceConnection,
    st: &Statement,
) -> Result<Vec<Map<String, Value>>, sqlx::Error> {
    match conn {
        ServiceConnection::Postgres(c) => {
            let rows = pg_query(st).fetch_all(&mut *c).await?;
            rows.iter().map(pg_row).collect()
        }
        ServiceConnection::Sqlite(c) => {
            let rows = sqlite_query(st).fetch_all(&mut *c).await?;
            rows.iter().map(sqlite_row).collect()
        }
    }
}

/// A PostgreSQL row as JSON. The statement returns integers, booleans and
/// text as they are and every other column as `to_json(column)`
/// ([`crate::sql`]), so each value is what `row_to_json` would give. A
/// type outside that set means the cached catalog is out of date: an
/// error, after which the caller reads the catalog again.
fn pg_row(row: &sqlx::postgres::PgRow) -> Result<Map<String, Value>, sqlx::Error> {
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let ty = raw.type_info();
            match ty.name() {
                "INT2" => Value::from(row.try_get_unchecked::<i16, _>(i)?),
                "INT4" => Value::from(row.try_get_unchecked::<i32, _>(i)?),
                "INT8" => Value::from(row.try_get_unchecked::<i64, _>(i)?),
                "BOOL" => Value::from(row.try_get_unchecked::<bool, _>(i)?),
                "TEXT" | "VARCHAR" => Value::from(row.try_get_unchecked::<&str, _>(i)?),
                "JSON" => serde_json::from_str(row.try_get_unchecked::<&str, _>(i)?)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                other => {
                    return Err(sqlx::Error::Decode(
                        format!(
                            "column `{}` has type {other}, not the catalog's",
                            col.name()
                        )
                        .into(),
                    ));
                }
            }
        };
        out.insert(col.name().to_string(), value);
    }
    Ok(out)
}

/// A SQLite row as JSON, each value as the type it is stored as (blobs as
/// URL-safe base64).
fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<Map<String, Value>, sqlx::Error> {
    use base64::Engine as _;
    let mut out = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let ty = raw.type_info().name().to_string();
            match ty.as_str() {
                "INTEGER" => Value::from(row.try_get_unchecked::<i64, _>(i)?),
                "REAL" => Value::from(row.try_get_unchecked::<f64, _>(i)?),
                "BLOB" => Value::from(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(row.try_get_unchecked::<Vec<u8>, _>(i)?),
                ),
                _ => Value::from(row.try_get_unchecked::<String, _>(i)?),
            }
        };
        out.insert(col.name().to_string(), value);
    }
    Ok(out)
}

/// Runs a statement that returns a count.
async fn execute(conn: &mut ServiceConnection, st: &Statement) -> Result<u64, sqlx::Error> {
    match conn {
        ServiceConnection::Postgres(c) => Ok(pg_query(st).execute(&mut *c).await?.rows_affected()),
        ServiceConnection::Sqlite(c) => {
            Ok(sqlite_query(st).execute(&mut *c).await?.rows_affected())
        }
    }
}

/// Runs fixed SQL (transaction control) without parameters.
async fn control(conn: &mut ServiceConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    match conn {
        ServiceConnection::Postgres(c) => sqlx::raw_sql(sql).execute(&mut *c).await.map(|_| ()),
        ServiceConnection::Sqlite(c) => sqlx::raw_sql(sql).execute(&mut *c).await.map(|_| ()),
    }
}

/// Whether an error means the connection itself is no longer usable:
/// its socket or protocol failed, or the server ended the session
/// (SQLSTATE 57P01-57P05: terminated by an administrator, a crash, the
/// server going down; class 08: connection exceptions).
fn breaks_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")),
        _ => false,
    }
}

/// The tables of `served`'s store; after a name the cached catalog lacks,
/// `build` is tried once more on a freshly read catalog.
async fn with_catalog<T>(
    served: &Served,
    conn: &mut Pooled<'_>,
    build: impl Fn(&Tables) -> Result<T, GatewayError>,
) -> Result<T, GatewayError> {
    let tables = served.catalog.get(conn.conn()).await?;
    match build(&tables) {
        Err(e) if matches!(e.code, "UnknownTable" | "UnknownColumn") => {
            let tables = served.catalog.reload(conn.conn()).await?;
            build(&tables)
        }
        other => other,
    }
}

/// A query of `served`'s store.
pub async fn query(served: &Served, req: &QueryRequest) -> Result<QueryResponse, GatewayError> {
    let page_size = served.limits.page_size(req.query.limit)?;
    let mut conn = served.pool.acquire().await?;
    let dialect = conn.dialect();
    let built = with_catalog(served, &mut conn, |t| {
        sql::select(dialect, t, &req.query, page_size)
    })
    .await?;
    conn.arm();
    let mut rows = match fetch(conn.conn(), &built.statement).await {
        Ok(rows) => rows,
        Err(e) => {
            if breaks_connection(&e) {
                conn.discard();
            }
            let err = GatewayError::from_sqlx(&e);
            if matches!(err.sqlstate.as_deref(), Some("42P01" | "42703"))
                || matches!(e, sqlx::Error::Decode(_))
            {
                served.catalog.invalidate();
            }
            return Err(err);
        }
    };
    drop(conn);
    let limit = usize::try_from(built.limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = match rows.last() {
        Some(last) if more && !built.keys.is_empty() => Some(sql::encode_cursor(&built.keys, last)),
        _ => None,
    };
    for row in &mut rows {
        row.retain(|k, _| built.fields.iter().any(|f| f == k));
    }
    Ok(QueryResponse { rows, next_cursor })
}

/// A write: every operation in one transaction, retried from the start
/// on a serialization failure or deadlock up to `max_attempts` times.
pub async fn write(
    served: &Served,
    config: &GatewayConfig,
    req: &WriteRequest,
    events: &Events,
) -> Result<WriteResponse, GatewayError> {
    if req.transaction.operations.is_empty() {
        return Err(GatewayError::bad_request(
            "the transaction has no operations",
        ));
    }
    let mut conn = served.pool.acquire().await?;
    let dialect = conn.dialect();
    let ops = &req.transaction.operations;
    let statements = with_catalog(served, &mut conn, |t| {
        ops.iter()
            .map(|op| sql::operation(dialect, t, op))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let begin = match (dialect, req.transaction.isolation) {
        (Dialect::Sqlite, _) => "BEGIN IMMEDIATE",
        (Dialect::Postgres, IsolationLevel::ReadCommitted) => {
            "BEGIN ISOLATION LEVEL READ COMMITTED"
        }
        (Dialect::Postgres, IsolationLevel::RepeatableRead) => {
            "BEGIN ISOLATION LEVEL REPEATABLE READ"
        }
        (Dialect::Postgres, IsolationLevel::Serializable) => "BEGIN ISOLATION LEVEL SERIALIZABLE",
    };
    let begin = (!single_statement(dialect, req, &statements, served, events)).then_some(begin);
    let attempts_allowed = config.max_attempts.max(1);
    let deadline = conn.deadline();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let run = Run {
            begin,
            ops,
            statements: &statements,
            deadline: deadline.as_deref(),
            served,
            events,
            isolation: req.transaction.isolation,
            attempt,
        };
        match run.transaction(&mut conn).await {
            Ok(results) => {
                return Ok(WriteResponse {
                    results,
                    attempts: attempt,
                });
            }
            Err(Failed::Limit(err)) => {
                if begin.is_some() && conn.end("ROLLBACK").await.is_err() {
                    conn.discard();
                }
                return Err(err);
            }
            Err(Failed::Store(e)) => {
                // Whatever failed, nothing of the transaction stays (a
                // statement alone rolled back by itself).
                conn.arm();
                let rolled_back = begin.is_none() || conn.end("ROLLBACK").await.is_ok();
                if !rolled_back || breaks_connection(&e) {
                    conn.discard();
                }
                let err = GatewayError::from_sqlx(&e);
                if matches!(err.sqlstate.as_deref(), Some("42P01" | "42703")) {
                    served.catalog.invalidate();
                }
                let retry = err.is_retryable() && attempt < attempts_allowed && !conn.broken;
                if !conn.broken {
                    // Told after the rollback, in a transaction of its own:
                    // the failed write left nothing to go with.
                    let tables: Vec<&str> = ops.iter().map(|op| op.table.as_str()).collect();
                    events
                        .failed(conn.conn(), "write", &tables, attempt, retry, &err)
                        .await;
                }
                if retry {
                    // Backoff grows with each try, with jitter so two
                    // conflicting writers do not meet again.
                    let base = 5u64 << attempt.min(6);
                    let jitter = u64::from(std::process::id() ^ attempt) % base.max(1);
                    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                    continue;
                }
                let mut err = err;
                if err.is_retryable() {
                    err.message = format!("{} (tried {attempt} times)", err.message);
                }
                return Err(err);
            }
        }
    }
}

/// Whether a write is one statement that is a transaction by itself, so
/// `BEGIN` and `COMMIT` would only add two round trips: on PostgreSQL, at
/// the default `read_committed` (each connection's
/// `default_transaction_isolation`, set when it is opened), with no
/// `max_rows_affected` to check before the commit and no event to write
/// beside it. Its effect is the same: the statement commits whole or not
/// at all.
fn single_statement(
    dialect: Dialect,
    req: &WriteRequest,
    statements: &[Vec<Statement>],
    served: &Served,
    events: &Events,
) -> bool {
    dialect == Dialect::Postgres
        && req.transaction.isolation == IsolationLevel::ReadCommitted
        && statements.iter().map(Vec::len).sum::<usize>() == 1
        && served.limits.values.max_rows_affected.is_none()
        && !events.wants(crate::events::WRITE_COMPLETE)
        && !events.wants(crate::events::TRANSACTION_COMPLETE)
}

/// Why a transaction stopped: the store refused a statement, or the
/// service's own limit was reached.
enum Failed {
    Store(sqlx::Error),
    Limit(GatewayError),
}

impl From<sqlx::Error> for Failed {
    fn from(e: sqlx::Error) -> Self {
        Failed::Store(e)
    }
}

/// One try of a write transaction.
struct Run<'r> {
    /// `None`: the one statement is its own transaction
    /// ([`single_statement`]).
    begin: Option<&'static str>,
    ops: &'r [crate::request::Operation],
    statements: &'r [Vec<Statement>],
    /// SQLite's statement deadline, armed before each statement.
    deadline: Option<&'r Deadline>,
    served: &'r Served,
    /// Database events, written in the transaction so they commit with it.
    events: &'r Events,
    isolation: IsolationLevel,
    attempt: u32,
}

impl Run<'_> {
    fn arm(&self) {
        if let Some(deadline) = self.deadline {
            deadline.arm();
        }
    }

    async fn transaction(&self, pooled: &mut Pooled<'_>) -> Result<Vec<OperationResult>, Failed> {
        self.arm();
        if let Some(begin) = self.begin {
            pooled.begin(begin).await?;
        }
        let conn = pooled.conn();
        let mut results = Vec::with_capacity(self.ops.len());
        let mut affected = 0u64;
        for (op, sts) in self.ops.iter().zip(self.statements) {
            let mut result = OperationResult {
                kind: op.kind,
                table: op.table.clone(),
                rows_affected: 0,
                returning: Vec::new(),
            };
            for st in sts {
                self.arm();
                let rows = if st.returns_rows {
                    let rows = fetch(conn, st).await?;
                    let n = rows.len() as u64;
                    result.returning.extend(rows);
                    n
                } else {
                    execute(conn, st).await?
                };
                result.rows_affected += rows;
                affected += rows;
                // Checked after each statement: the rows it changed are
                // inside the transaction, which the caller rolls back.
                self.served
                    .limits
                    .check_affected(affected)
                    .map_err(Failed::Limit)?;
            }
            self.events
                .write_complete(conn, results.len(), &result)
                .await?;
            results.push(result);
        }
        // The events commit with the write, or not at all.
        self.events
            .transaction_complete(conn, self.isolation, self.attempt, &results)
            .await?;
        if self.begin.is_some() {
            self.arm();
            pooled.end("COMMIT").await?;
        }
        Ok(results)
    }
}

/// Whether `served`'s store answers as the service.
pub async fn ping(served: &Served) -> Result<(), GatewayError> {
    let mut conn = served.pool.acquire().await?;
    conn.arm();
    if let Err(e) = control(conn.conn(), "SELECT 1").await {
        conn.discard();
        return Err(GatewayError::from_sqlx(&e));
    }
    Ok(())
}
