//! The gateway's Prometheus metrics (`GET /metrics`), recorded through
//! the `metrics` facade into a recorder each [`crate::Gateway`] owns: not
//! the process-wide one, so two gateways in one process (or in one test
//! binary) keep their counts apart, and a program that installed its own
//! global recorder is left alone.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `silo_gateway_requests_total` | counter | service, operation, outcome | requests answered; `outcome` is `ok` or the error's code, `service` is empty when the caller was not identified |
//! | `silo_gateway_request_duration_seconds` | histogram | service, operation | from the request's arrival at the gateway's entry to its answer |
//! | `silo_gateway_pool_size` | gauge | service | the most connections the service's pool holds |
//! | `silo_gateway_pool_connections` | gauge | service, state (`idle`, `busy`) | its connections now |
//!
//! Pool gauges are read when scraped, so they cost nothing per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::exec::PoolStats;

pub const REQUESTS: &str = "silo_gateway_requests_total";
pub const DURATION: &str = "silo_gateway_request_duration_seconds";
pub const POOL_SIZE: &str = "silo_gateway_pool_size";
pub const POOL_CONNECTIONS: &str = "silo_gateway_pool_connections";

/// Bucket bounds (seconds) of [`DURATION`]: a primary-key read takes well
/// under a millisecond, a write waiting on locks up to the statement
/// timeout.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Histogram samples are kept raw until drained into buckets; draining
/// every this many requests bounds that memory when nobody scrapes.
const UPKEEP_EVERY: u64 = 4096;

/// One gateway's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    observed: AtomicU64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), DURATION_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, describe);
        // Descriptions become visible to `render` at the next upkeep.
        handle.run_upkeep();
        Metrics {
            recorder,
            handle,
            observed: AtomicU64::new(0),
        }
    }

    /// Counts one answered request.
    pub fn request(
        &self,
        service: &str,
        operation: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        metrics::with_local_recorder(&self.recorder, || {
            counter!(REQUESTS, "service" => service.to_string(), "operation" => operation, "outcome" => outcome)
                .increment(1);
            metrics::histogram!(DURATION, "service" => service.to_string(), "operation" => operation)
                .record(took.as_secs_f64());
        });
        if self.observed.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    /// The exposition text, with each service's pool use as of now.
    pub fn render<'a>(&self, pools: impl IntoIterator<Item = (&'a str, PoolStats)>) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            for (service, stats) in pools {
                gauge!(POOL_SIZE, "service" => service.to_string()).set(stats.size as f64);
                gauge!(POOL_CONNECTIONS, "service" => service.to_string(), "state" => "idle")
                    .set(stats.idle as f64);
                gauge!(POOL_CONNECTIONS, "service" => service.to_string(), "state" => "busy")
                    .set(stats.busy as f64);
            }
        });
        self.handle.render()
    }
}

fn describe() {
    describe_counter!(
        REQUESTS,
        Unit::Count,
        "Requests answered, by service, operation and outcome (ok or the error's code)"
    );
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its answer"
    );
    describe_gauge!(
        POOL_SIZE,
        Unit::Count,
        "The most connections a service's pool holds"
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        Unit::Count,
        "A service's pooled connections, idle or busy"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `prefix`.
    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn two_gateways_count_apart() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.request("orders", "query", "ok", Duration::from_millis(3));
        a.request("orders", "query", "ok", Duration::from_millis(30));
        a.request("", "write", "Unauthenticated", Duration::from_micros(50));
        let text = a.render([(
            "orders",
            PoolStats {
                size: 10,
                idle: 1,
                busy: 2,
            },
        )]);
        let ok = r#"silo_gateway_requests_total{service="orders",operation="query",outcome="ok"}"#;
        assert_eq!(sample(&text, ok), Some(2.0), "{text}");
        let unauth = r#"silo_gateway_requests_total{service="",operation="write",outcome="Unauthenticated"}"#;
        assert_eq!(sample(&text, unauth), Some(1.0), "{text}");
        let le5ms = r#"silo_gateway_request_duration_seconds_bucket{service="orders",operation="query",le="0.005"}"#;
        assert_eq!(sample(&text, le5ms), Some(1.0), "{text}");
        let count =
            r#"silo_gateway_request_duration_seconds_count{service="orders",operation="query"}"#;
        assert_eq!(sample(&text, count), Some(2.0), "{text}");
        assert_eq!(
            sample(&text, r#"silo_gateway_pool_size{service="orders"}"#),
            Some(10.0)
        );
        let busy = r#"silo_gateway_pool_connections{service="orders",state="busy"}"#;
        assert_eq!(sample(&text, busy), Some(2.0), "{text}");
        assert!(
            text.contains("# HELP silo_gateway_requests_total"),
            "{text}"
        );
        assert!(!b.render([]).contains("orders"));
    }
}
