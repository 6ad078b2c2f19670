//! One error shape for every failure, with PostgreSQL's SQLSTATE when the
//! store said no, and the HTTP status it maps to:
//! `{"error":{"code","sqlstate","message","detail","hint","request_id"}}`.
//!
//! SQLite's result codes are mapped to the SQLSTATE PostgreSQL would give
//! for the same failure, so a caller handles one set of codes whatever the
//! engine. docs/gateway.md holds the table.

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct GatewayError {
    pub status: StatusCode,
    /// A stable name callers match on: `UnknownTable`, `UniqueViolation`.
    pub code: &'static str,
    pub sqlstate: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// Whole seconds after which the request may succeed, sent as the
    /// `Retry-After` header (rate limited, pool exhausted).
    pub retry_after: Option<u16>,
}

/// The JSON body of an error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorFields<'a>,
}

/// What went wrong. Every field is always present (`null` when empty).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorFields<'a> {
    /// A stable name to match on: `UnknownTable`, `UniqueViolation`.
    pub code: &'a str,
    /// PostgreSQL's SQLSTATE when the store refused (SQLite's codes are
    /// mapped to the same states).
    #[schema(required)]
    pub sqlstate: Option<&'a str>,
    pub message: &'a str,
    #[schema(required)]
    pub detail: Option<&'a str>,
    #[schema(required)]
    pub hint: Option<&'a str>,
    /// The request's id, as the transport answering it knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

impl GatewayError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        GatewayError {
            status,
            code,
            sqlstate: None,
            message: message.into(),
            detail: None,
            hint: None,
            retry_after: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Tells the caller to try again after `seconds` (`Retry-After`).
    pub fn with_retry_after(mut self, seconds: u16) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorFields {
                code: self.code,
                sqlstate: self.sqlstate.as_deref(),
                message: &self.message,
                detail: self.detail.as_deref(),
                hint: self.hint.as_deref(),
                request_id: None,
            },
        }
    }

    /// The body naming the request it answers. The id stays out of the
    /// error itself, which every failing path returns by value and so is
    /// kept small.
    pub fn body_for<'a>(&'a self, request_id: &'a str) -> ErrorBody<'a> {
        let mut body = self.body();
        body.error.request_id = Some(request_id);
        body
    }

    pub fn unauthenticated(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthenticated", message)
            .with_hint("send `Authorization: Bearer <token>` with the service's SILO_GATEWAY_TOKEN")
    }

    pub fn invalid_database(database: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "InvalidDatabase",
            format!("no service has the database `{database}`"),
        )
    }

    pub fn unauthorized_access(caller: &str, database: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "UnauthorizedAccess",
            format!("service `{caller}` may not use the database `{database}`"),
        )
        .with_hint("a service reaches its own database only; ask its owner for an event instead")
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the request body is larger than {limit} bytes"),
        )
        .with_hint("split the write into several transactions, or page the query")
    }

    pub fn unknown_operation(operation: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperation",
            format!("the gateway runs no operation `{operation}`"),
        )
        .with_hint("the operations are `query` and `write`")
    }

    pub fn unknown_table(table: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownTable",
            format!("the store has no table `{table}`"),
        )
    }

    pub fn unknown_column(table: &str, column: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownColumn",
            format!("the table `{table}` has no column `{column}`"),
        )
    }

    pub fn pool_exhausted(service: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "PoolExhausted",
            format!("every connection to `{service}`'s store is busy"),
        )
        .with_hint("retry after a second, or raise the service's `pool_size` in silo.toml")
        .with_retry_after(1)
    }

    /// The service sent more requests than its `requests_per_second` and
    /// `burst` allow; a token is free again in `retry_after` seconds.
    pub fn rate_limited(service: &str, retry_after: u16) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimited",
            format!("`{service}` sent more requests than its rate limit allows"),
        )
        .with_hint("wait for `Retry-After` seconds, or raise the service's `requests_per_second` in silo.toml")
        .with_retry_after(retry_after)
    }

    pub fn store_unavailable(service: &str, why: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "StoreUnavailable",
            format!("cannot connect to `{service}`'s store as the service: {why}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", message)
    }

    /// The error for a SQLSTATE the store returned.
    pub fn from_sqlstate(
        sqlstate: &str,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    ) -> Self {
        let (status, code) = status_of(sqlstate);
        GatewayError {
            status,
            code,
            sqlstate: Some(sqlstate.to_string()),
            message,
            detail,
            hint,
            retry_after: None,
        }
    }

    /// Whether a write that failed so may succeed when tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self.sqlstate.as_deref(), Some("40001" | "40P01"))
    }

    /// The error for a driver error.
    pub fn from_sqlx(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => {
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    return Self::from_sqlstate(
                        pg.code(),
                        pg.message().to_string(),
                        pg.detail().map(str::to_string),
                        pg.hint().map(str::to_string),
                    );
                }
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(1);
                let message = db.message().to_string();
                Self::from_sqlstate(sqlite_sqlstate(code, &message), message, None, None)
            }
            sqlx::Error::PoolTimedOut => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "PoolExhausted",
                "no connection was free in time",
            )
            .with_retry_after(1),
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "StoreUnavailable",
                "the store's connection failed",
            ),
            _ => Self::internal("the store's driver failed"),
        }
    }
}

/// The HTTP status and code of a SQLSTATE (docs/gateway.md's table).
pub fn status_of(sqlstate: &str) -> (StatusCode, &'static str) {
    match sqlstate {
        "23505" => (StatusCode::CONFLICT, "UniqueViolation"),
        "23503" => (StatusCode::CONFLICT, "ForeignKeyViolation"),
        "23502" => (StatusCode::UNPROCESSABLE_ENTITY, "NotNullViolation"),
        "23514" => (StatusCode::UNPROCESSABLE_ENTITY, "CheckViolation"),
        "23P01" => (StatusCode::CONFLICT, "ExclusionViolation"),
        "40001" => (StatusCode::CONFLICT, "SerializationFailure"),
        "40P01" => (StatusCode::CONFLICT, "Deadlock"),
        "57014" => (StatusCode::GATEWAY_TIMEOUT, "StatementTimeout"),
        "55P03" => (StatusCode::CONFLICT, "LockNotAvailable"),
        "53300" => (StatusCode::SERVICE_UNAVAILABLE, "TooManyConnections"),
        "42501" => (StatusCode::FORBIDDEN, "InsufficientPrivilege"),
        "42P01" => (StatusCode::BAD_REQUEST, "UnknownTable"),
        "42703" => (StatusCode::BAD_REQUEST, "UnknownColumn"),
        s if s.starts_with("22") => (StatusCode::UNPROCESSABLE_ENTITY, "DataException"),
        s if s.starts_with("23") => (StatusCode::CONFLICT, "IntegrityViolation"),
        s if s.starts_with("42") => (StatusCode::BAD_REQUEST, "InvalidStatement"),
        s if s.starts_with("08") || s.starts_with("57") => {
            (StatusCode::SERVICE_UNAVAILABLE, "StoreUnavailable")
        }
        s if s.starts_with("53") => (StatusCode::SERVICE_UNAVAILABLE, "InsufficientResources"),
        s if s.starts_with("54") => (StatusCode::UNPROCESSABLE_ENTITY, "LimitExceeded"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "StoreError"),
    }
}

/// The SQLSTATE PostgreSQL gives for what SQLite's extended result code
/// `code` (and, for the generic SQLITE_ERROR, its message) says.
pub fn sqlite_sqlstate(code: i32, message: &str) -> &'static str {
    match code {
        2067 | 1555 => "23505", // SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY
        1299 => "23502",        // SQLITE_CONSTRAINT_NOTNULL
        275 => "23514",         // SQLITE_CONSTRAINT_CHECK
        787 => "23503",         // SQLITE_CONSTRAINT_FOREIGNKEY
        c if c & 0xff == 19 => "23000",
        c if c & 0xff == 5 || c & 0xff == 6 => "40001", // SQLITE_BUSY, _LOCKED
        9 => "57014",                                   // SQLITE_INTERRUPT
        20 => "22P02",                                  // SQLITE_MISMATCH
        18 => "54000",                                  // SQLITE_TOOBIG
        25 => "22003",                                  // SQLITE_RANGE
        c if c & 0xff == 8 => "25006",                  // SQLITE_READONLY
        1 if message.starts_with("no such table") => "42P01",
        1 if message.starts_with("no such column") || message.contains("has no column named") => {
            "42703"
        }
        1 => "42000",
        _ => "XX000",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_map_to_postgres_sqlstates() {
        assert_eq!(sqlite_sqlstate(2067, ""), "23505");
        assert_eq!(sqlite_sqlstate(1555, ""), "23505");
        assert_eq!(sqlite_sqlstate(1299, ""), "23502");
        assert_eq!(sqlite_sqlstate(275, ""), "23514");
        assert_eq!(sqlite_sqlstate(787, ""), "23503");
        assert_eq!(sqlite_sqlstate(5, ""), "40001");
        assert_eq!(sqlite_sqlstate(517, ""), "40001");
        assert_eq!(sqlite_sqlstate(1, "no such table: t"), "42P01");
        assert_eq!(sqlite_sqlstate(1, "no such column: x"), "42703");
    }

    #[test]
    fn statuses_follow_the_documented_map() {
        let cases = [
            ("23505", 409, "UniqueViolation"),
            ("23503", 409, "ForeignKeyViolation"),
            ("23502", 422, "NotNullViolation"),
            ("23514", 422, "CheckViolation"),
            ("22P02", 422, "DataException"),
            ("40001", 409, "SerializationFailure"),
            ("40P01", 409, "Deadlock"),
            ("57014", 504, "StatementTimeout"),
            ("XX000", 500, "StoreError"),
        ];
        for (state, status, code) in cases {
            assert_eq!(
                status_of(state),
                (StatusCode::from_u16(status).unwrap(), code)
            );
        }
    }
}
