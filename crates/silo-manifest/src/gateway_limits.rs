//! What `silo gateway` allows each service (`[services.<name>.gateway]`
//! over `[defaults.gateway]` over built-in defaults): its pool, how long a
//! statement may run, how many rows a request may read or change, how big
//! a body may be, how fast it may call, and whether its writes raise
//! database events.
//!
//! Limits are per service so that one service's flood or runaway query
//! stays that service's problem: each value is checked here, at its place
//! in silo.toml, and the gateway applies the resolved [`GatewayLimits`].

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::backup::Refusal;

/// One service's gateway limits, every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Connections the gateway keeps to the service's store (default
    /// [`GatewayLimits::DEFAULT_POOL_SIZE`]). The gateway caps it at the
    /// role's `connection_limit` on PostgreSQL, and says so.
    pub pool_size: u32,
    /// Longest a statement may run before the store cancels it (default
    /// 30 s).
    pub statement_timeout: Duration,
    /// Longest a request waits for a free connection of the service's
    /// pool before it is refused (503 `PoolExhausted`; default 5 s).
    pub acquire_timeout: Duration,
    /// Most rows one query returns: the page size when a query names no
    /// `limit`, and the largest `limit` it may name (default 1000).
    pub max_rows: u64,
    /// Most rows one write transaction may insert, update or delete; past
    /// it the transaction rolls back. `None`: no limit (the default).
    pub max_rows_affected: Option<u64>,
    /// Largest request body, in bytes (default 1 MiB).
    pub max_body_bytes: u64,
    /// Requests per second and burst; `None`: unlimited (the default).
    pub rate: Option<RateLimit>,
    /// Whether the gateway writes database events for the service's
    /// operations (default true).
    pub events: bool,
}

/// A token bucket: `burst` requests at once, refilled at
/// `requests_per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: u32,
    /// Requests that may arrive at once after a quiet spell (default
    /// `requests_per_second`).
    pub burst: u32,
}

impl GatewayLimits {
    /// The pool size when nothing sets one.
    pub const DEFAULT_POOL_SIZE: u32 = 10;
    /// The statement timeout when nothing sets one.
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The acquire timeout when nothing sets one.
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
    /// `max_rows` when nothing sets it.
    pub const DEFAULT_MAX_ROWS: u64 = 1000;
    /// `max_body_bytes` when nothing sets it: 1 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            pool_size: Self::DEFAULT_POOL_SIZE,
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            max_rows: Self::DEFAULT_MAX_ROWS,
            max_rows_affected: None,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            rate: None,
            events: true,
        }
    }
}

/// `[defaults.gateway]` and `[services.<name>.gateway]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGatewayLimits {
    pool_size: Option<Spanned<i64>>,
    statement_timeout: Option<Spanned<String>>,
    acquire_timeout: Option<Spanned<String>>,
    max_rows: Option<Spanned<i64>>,
    max_rows_affected: Option<Spanned<i64>>,
    max_body_bytes: Option<Spanned<i64>>,
    requests_per_second: Option<Spanned<i64>>,
    burst: Option<Spanned<i64>>,
    events: Option<bool>,
}

/// One table's valid values, before a service's are laid over the
/// defaults'. A refused value is reported and left out.
#[derive(Default)]
pub(crate) struct PartialLimits {
    pool_size: Option<u32>,
    statement_timeout: Option<Duration>,
    acquire_timeout: Option<Duration>,
    max_rows: Option<u64>,
    max_rows_affected: Option<u64>,
    max_body_bytes: Option<u64>,
    requests_per_second: Option<u32>,
    burst: Option<(u32, Range<usize>)>,
    events: Option<bool>,
}

/// The longest statement timeout: PostgreSQL keeps `statement_timeout` in
/// milliseconds in a 32-bit integer (about 24.8 days).
const MAX_TIMEOUT_MS: u128 = i32::MAX as u128;

/// Checks one table's values. `refuse` receives each refused value's span
/// and why.
pub(crate) fn partial(
    raw: &RawGatewayLimits,
    refuse: &mut impl FnMut(Range<usize>, Refusal),
) -> PartialLimits {
    let mut count = |value: &Option<Spanned<i64>>, key: &str, help: &str| {
        value
            .as_ref()
            .and_then(|v| match u32::try_from(*v.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    refuse(
                        v.span(),
                        (
                            format!(
                                "`{key}` must be a whole number from 1 to {}, not {}",
                                u32::MAX,
                                v.get_ref()
                            ),
                            Some(help.to_string()),
                        ),
                    );
                    None
                }
            })
    };
    let pool_size = count(
        &raw.pool_size,
        "pool_size",
        "the connections the gateway keeps to the store; leave it out for 10",
    );
    let max_rows = count(
        &raw.max_rows,
        "max_rows",
        "the most rows one query returns; leave it out for 1000",
    );
    let max_rows_affected = count(
        &raw.max_rows_affected,
        "max_rows_affected",
        "the most rows one write may change; leave it out for no limit",
    );
    let max_body_bytes = count(
        &raw.max_body_bytes,
        "max_body_bytes",
        "the largest request body in bytes; leave it out for 1048576 (1 MiB)",
    );
    let requests_per_second = count(
        &raw.requests_per_second,
        "requests_per_second",
        "leave it out for no rate limit",
    );
    let burst = count(
        &raw.burst,
        "burst",
        "the requests allowed at once; leave it out for `requests_per_second`",
    )
    .map(|n| (n, raw.burst.as_ref().expect("burst was given").span()));
    let statement_timeout = raw.statement_timeout.as_ref().and_then(|t| {
        parse_timeout(t.get_ref())
            .map_err(|refusal| refuse(t.span(), refusal))
            .ok()
    });
    let acquire_timeout = raw.acquire_timeout.as_ref().and_then(|t| {
        parse_acquire_timeout(t.get_ref())
            .map_err(|refusal| refuse(t.span(), refusal))
            .ok()
    });
    PartialLimits {
        pool_size,
        statement_timeout,
        acquire_timeout,
        max_rows: max_rows.map(u64::from),
        max_rows_affected: max_rows_affected.map(u64::from),
        max_body_bytes: max_body_bytes.map(u64::from),
        requests_per_second,
        burst,
        events: raw.events,
    }
}

/// A service's limits: its own values over the defaults', field by field,
/// over the built-in defaults. A `burst` without `requests_per_second`
/// (in either table) is refused: a bucket needs a refill rate.
pub(crate) fn resolve(
    own: Option<&PartialLimits>,
    defaults: Option<&PartialLimits>,
    refuse: &mut impl FnMut(Range<usize>, Refusal),
) -> GatewayLimits {
    let empty = PartialLimits::default();
    let own = own.unwrap_or(&empty);
    let defaults = defaults.unwrap_or(&empty);
    let built_in = GatewayLimits::default();
    let rps = own.requests_per_second.or(defaults.requests_per_second);
    let burst = own.burst.as_ref().or(defaults.burst.as_ref());
    let rate = match (rps, burst) {
        (Some(rps), burst) => Some(RateLimit {
            requests_per_second: rps,
            burst: burst.map_or(rps, |(b, _)| *b),
        }),
        (None, Some((_, span))) => {
            refuse(
                span.clone(),
                (
                    "`burst` without `requests_per_second`".into(),
                    Some("a burst is refilled at `requests_per_second`: set both, or neither for no rate limit".into()),
                ),
            );
            None
        }
        (None, None) => None,
    };
    GatewayLimits {
        pool_size: own
            .pool_size
            .or(defaults.pool_size)
            .unwrap_or(built_in.pool_size),
        statement_timeout: own
            .statement_timeout
            .or(defaults.statement_timeout)
            .unwrap_or(built_in.statement_timeout),
        acquire_timeout: own
            .acquire_timeout
            .or(defaults.acquire_timeout)
            .unwrap_or(built_in.acquire_timeout),
        max_rows: own
            .max_rows
            .or(defaults.max_rows)
            .unwrap_or(built_in.max_rows),
        max_rows_affected: own.max_rows_affected.or(defaults.max_rows_affected),
        max_body_bytes: own
            .max_body_bytes
            .or(defaults.max_body_bytes)
            .unwrap_or(built_in.max_body_bytes),
        rate,
        events: own.events.or(defaults.events).unwrap_or(built_in.events),
    }
}

/// Parses a statement timeout: a duration as humantime writes it (`30s`,
/// `1500ms`, `2m`, `1h 30m`), from 1 ms to PostgreSQL's largest.
pub fn parse_timeout(text: &str) -> Result<Duration, Refusal> {
    parse_duration(
        "statement_timeout",
        "every statement would be cancelled",
        "30s",
        text,
    )
}

/// Parses an acquire timeout, as [`parse_timeout`] does.
pub fn parse_acquire_timeout(text: &str) -> Result<Duration, Refusal> {
    parse_duration(
        "acquire_timeout",
        "every request would be refused while the pool is busy",
        "5s",
        text,
    )
}

/// A duration for `key` in whole milliseconds, from 1 ms to the largest
/// PostgreSQL keeps; `zero` says what a duration under 1 ms would do.
fn parse_duration(key: &str, zero: &str, default: &str, text: &str) -> Result<Duration, Refusal> {
    let help = || {
        Some(format!(
            "a duration such as `30s`, `1500ms` or `2m`; leave it out for {default}"
        ))
    };
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| (format!("invalid {key} `{text}`: {e}"), help()))?;
    if duration.as_millis() == 0 {
        return Err((
            format!("{key} `{text}` is under a millisecond: {zero}"),
            help(),
        ));
    }
    if duration.as_millis() > MAX_TIMEOUT_MS {
        return Err((
            format!("{key} `{text}` is longer than PostgreSQL allows (about 24 days)"),
            help(),
        ));
    }
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err((
            format!("{key} `{text}` is not a whole number of milliseconds"),
            help(),
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_humantime_in_whole_milliseconds() {
        assert_eq!(parse_timeout("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(
            parse_timeout("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(parse_timeout("1m 30s").unwrap(), Duration::from_secs(90));
        for (bad, says) in [
            ("", "invalid"),
            ("30", "invalid"),
            ("soon", "invalid"),
            ("-1s", "invalid"),
            ("0s", "under a millisecond"),
            ("500us", "under a millisecond"),
            ("1500us", "whole number of milliseconds"),
            ("30d", "longer than PostgreSQL allows"),
        ] {
            let (message, _) = parse_timeout(bad).unwrap_err();
            assert!(message.contains(says), "{bad}: {message}");
        }
    }
}
