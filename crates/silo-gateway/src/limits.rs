//! Each service's limits, applied: its rate (a token bucket), its body
//! size, its page size, the rows a write may change, and the statement
//! deadline SQLite has no setting for. The values come from the manifest
//! (`[services.<name>.gateway]`, see silo-manifest's `GatewayLimits`),
//! with the gateway's command-line overrides laid over them.
//!
//! Every limit belongs to one service, so one service's flood or runaway
//! query fills its own bucket, pool and deadline, never another's.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use silo_manifest::{Engine, GatewayLimits, Service};

use crate::GatewayConfig;
use crate::error::GatewayError;

/// One service's limits as the gateway applies them.
pub struct Limits {
    service: String,
    /// The resolved values, overrides applied and the pool capped.
    pub values: GatewayLimits,
    rate: Option<DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("service", &self.service)
            .field("values", &self.values)
            .finish()
    }
}

impl Limits {
    /// `service`'s limits: the manifest's, with `config`'s overrides over
    /// them. Returns a note for each value the gateway had to change.
    pub fn new(service: &Service, config: &GatewayConfig) -> (Self, Vec<String>) {
        let mut values = service.gateway.clone();
        let mut notes = Vec::new();
        if let Some(pool_size) = config.pool_size {
            values.pool_size = pool_size;
        }
        if let Some(timeout) = config.statement_timeout {
            values.statement_timeout = timeout;
        }
        if let Some(timeout) = config.acquire_timeout {
            values.acquire_timeout = timeout;
        }
        values.pool_size = values.pool_size.max(1);
        // More connections than the role may open would fail at the
        // server (53300) under load instead of queueing in the gateway.
        if service.engine == Engine::Postgres
            && let Some(limit) = service.connection_limit
            && values.pool_size > limit
        {
            notes.push(format!(
                "`{}`: pool_size {} capped at the role's connection_limit {limit}",
                service.name, values.pool_size
            ));
            values.pool_size = limit;
        }
        let rate = values.rate.map(|r| {
            let per_second = NonZeroU32::new(r.requests_per_second).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(r.burst).unwrap_or(per_second);
            RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
        });
        let limits = Limits {
            service: service.name.clone(),
            values,
            rate,
        };
        (limits, notes)
    }

    /// Takes one token from the service's bucket, or refuses the request
    /// (429 `RateLimited`) with the whole seconds until one is free.
    pub fn admit(&self) -> Result<(), GatewayError> {
        let Some(limiter) = &self.rate else {
            return Ok(());
        };
        limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            GatewayError::rate_limited(&self.service, retry_after_secs(wait))
        })
    }

    /// Refuses a body over the service's `max_body_bytes` (413).
    pub fn check_body(&self, len: usize) -> Result<(), GatewayError> {
        let max = self.values.max_body_bytes;
        if u64::try_from(len).unwrap_or(u64::MAX) > max {
            return Err(GatewayError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                format!("the body is {len} bytes; `{}` may send {max}", self.service),
            )
            .with_hint("split the write into smaller transactions"));
        }
        Ok(())
    }

    /// The rows a query returns: its `limit`, or `max_rows` when it names
    /// none. A `limit` above `max_rows` is refused rather than cut short,
    /// so a caller never takes a short page for the whole answer.
    pub fn page_size(&self, requested: Option<u64>) -> Result<u64, GatewayError> {
        let max = self.values.max_rows;
        match requested {
            Some(n) if n > max => Err(GatewayError::new(
                StatusCode::BAD_REQUEST,
                "LimitTooLarge",
                format!(
                    "`limit` is {n}; `{}` may read {max} rows a query",
                    self.service
                ),
            )
            .with_hint(format!(
                "ask for at most {max} rows and follow `next_cursor` for the rest"
            ))),
            Some(n) => Ok(n),
            None => Ok(max),
        }
    }

    /// Refuses a write that has changed more than `max_rows_affected`
    /// rows so far (422); the caller rolls it back.
    pub fn check_affected(&self, rows: u64) -> Result<(), GatewayError> {
        match self.values.max_rows_affected {
            Some(max) if rows > max => Err(GatewayError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "TooManyRowsAffected",
                format!(
                    "the write changed {rows} rows; `{}` may change {max} in one transaction; nothing was changed",
                    self.service
                ),
            )
            .with_hint("narrow the `where`, or split the write into smaller transactions")),
            _ => Ok(()),
        }
    }
}

/// Whole seconds to wait, at least 1 (`Retry-After` has no fractions).
fn retry_after_secs(wait: Duration) -> u16 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u16::try_from(secs.max(1)).unwrap_or(u16::MAX)
}

/// A SQLite connection's statement deadline. SQLite has no statement
/// timeout: each connection gets a progress handler that interrupts the
/// running statement once the deadline armed before it has passed
/// (SQLITE_INTERRUPT, reported as SQLSTATE 57014 like PostgreSQL's
/// `statement_timeout`).
#[derive(Debug)]
pub struct Deadline {
    base: Instant,
    /// Microseconds after `base`; 0: none armed.
    at: AtomicU64,
    timeout: Duration,
}

/// SQLite virtual-machine steps between two looks at the clock: cheap
/// enough to be unseen, often enough to stop within a millisecond or so.
const STEPS_PER_CHECK: i32 = 1000;

impl Deadline {
    /// Installs a deadline of `timeout` per statement on `conn`.
    pub async fn install(
        conn: &mut sqlx::SqliteConnection,
        timeout: Duration,
    ) -> Result<Arc<Deadline>, sqlx::Error> {
        let deadline = Arc::new(Deadline {
            base: Instant::now(),
            at: AtomicU64::new(0),
            timeout,
        });
        let watched = deadline.clone();
        conn.lock_handle()
            .await?
            .set_progress_handler(STEPS_PER_CHECK, move || !watched.passed());
        Ok(deadline)
    }

    /// Starts the clock for the next statement.
    pub fn arm(&self) {
        let at = (self.base.elapsed() + self.timeout).as_micros();
        self.at.store(
            u64::try_from(at).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
    }

    /// Lets statements run without a deadline (the catalog reads between
    /// requests).
    pub fn disarm(&self) {
        self.at.store(0, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        let at = self.at.load(Ordering::Relaxed);
        at != 0 && self.base.elapsed().as_micros() >= u128::from(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(1 << 20)), u16::MAX);
    }
}
