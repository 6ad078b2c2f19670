//! The backup daemon's figures per service, and their Prometheus text
//! exposition (format 0.0.4) served over HTTP at `/metrics`.
//!
//! The text is written here rather than through a metrics library: a
//! handful of gauges and counters per service, labelled by service, read
//! from one map under one lock, so a scrape always sees one service's
//! figures from the same moment.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

/// One service's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceFigures {
    /// When the newest backup finished (taken by this daemon, or found at
    /// the destination when it started).
    pub last_success: Option<OffsetDateTime>,
    /// How long the last successful backup took, in seconds.
    pub last_duration_seconds: Option<f64>,
    /// The size of the last successful backup.
    pub last_size_bytes: Option<u64>,
    /// Backups this daemon took.
    pub successes: u64,
    /// Backups that failed.
    pub failures: u64,
    /// Prunes that failed.
    pub prune_failures: u64,
    /// Restore drills that passed.
    pub verifications: u64,
    /// Restore drills that failed.
    pub verify_failures: u64,
    /// Whether a backup is running now.
    pub running: bool,
    /// When the next backup is due.
    pub next_run: Option<OffsetDateTime>,
}

/// Every service's figures, shared by the daemon (which writes them) and
/// the metrics endpoint (which reads them).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    services: Arc<Mutex<BTreeMap<String, ServiceFigures>>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes `service`'s figures.
    pub fn update(&self, service: &str, change: impl FnOnce(&mut ServiceFigures)) {
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        change(services.entry(service.to_string()).or_default());
    }

    /// A copy of `service`'s figures.
    pub fn get(&self, service: &str) -> ServiceFigures {
        let services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        services.get(service).cloned().unwrap_or_default()
    }

    /// The Prometheus text exposition of every figure.
    pub fn render(&self) -> String {
        let services = self
            .services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        type Read = fn(&ServiceFigures) -> Option<f64>;
        let families: [(&str, &str, &str, Read); 10] = [
            (
                "silo_backup_last_success_timestamp_seconds",
                "gauge",
                "When the newest backup of the service finished, in seconds since the Unix epoch (0: none yet).",
                |f| Some(f.last_success.map_or(0.0, seconds)),
            ),
            (
                "silo_backup_duration_seconds",
                "gauge",
                "How long the last successful backup of the service took.",
                |f| f.last_duration_seconds,
            ),
            (
                "silo_backup_size_bytes",
                "gauge",
                "The size of the last successful backup of the service.",
                |f| f.last_size_bytes.map(|b| b as f64),
            ),
            (
                "silo_backup_successes_total",
                "counter",
                "Backups of the service this daemon took.",
                |f| Some(f.successes as f64),
            ),
            (
                "silo_backup_failures_total",
                "counter",
                "Backups of the service that failed (each is retried at the next slot).",
                |f| Some(f.failures as f64),
            ),
            (
                "silo_backup_prune_failures_total",
                "counter",
                "Prunes of the service's destination that failed.",
                |f| Some(f.prune_failures as f64),
            ),
            (
                "silo_backup_verifications_total",
                "counter",
                "Restore drills of the service's backups that passed.",
                |f| Some(f.verifications as f64),
            ),
            (
                "silo_backup_verify_failures_total",
                "counter",
                "Restore drills of the service's backups that failed.",
                |f| Some(f.verify_failures as f64),
            ),
            (
                "silo_backup_running",
                "gauge",
                "1 while a backup of the service runs.",
                |f| Some(if f.running { 1.0 } else { 0.0 }),
            ),
            (
                "silo_backup_next_run_timestamp_seconds",
                "gauge",
                "When the next backup of the service is due, in seconds since the Unix epoch.",
                |f| f.next_run.map(seconds),
            ),
        ];
        for (name, kind, help, read) in families {
            let samples: Vec<(&String, f64)> = services
                .iter()
                .filter_map(|(service, f)| read(f).map(|v| (service, v)))
                .collect();
            if samples.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (service, value) in samples {
                let _ = writeln!(out, "{name}{{service=\"{}\"}} {value}", escape(service));
            }
        }
        out
    }
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn seconds(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `metrics` at `GET /metrics` on `listener` until `stop`
/// completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_text_format_has_one_sample_per_service_and_figure() {
        let m = Metrics::new();
        m.update("orders", |f| {
            f.last_success = Some(datetime!(2026-11-28 04:00 UTC));
            f.last_duration_seconds = Some(1.5);
            f.last_size_bytes = Some(4096);
            f.successes = 3;
            f.failures = 1;
        });
        m.update("billing", |f| f.failures = 2);
        let text = m.render();
        assert!(
            text.contains(
                "# TYPE silo_backup_last_success_timestamp_seconds gauge\n\
             silo_backup_last_success_timestamp_seconds{service=\"billing\"} 0\n\
             silo_backup_last_success_timestamp_seconds{service=\"orders\"} 1795838400\n"
            ),
            "{text}"
        );
        assert!(text.contains("silo_backup_duration_seconds{service=\"orders\"} 1.5\n"));
        assert!(!text.contains("silo_backup_duration_seconds{service=\"billing\"}"));
        assert!(text.contains("silo_backup_size_bytes{service=\"orders\"} 4096\n"));
        assert!(text.contains("# TYPE silo_backup_failures_total counter\n"));
        assert!(text.contains("silo_backup_failures_total{service=\"billing\"} 2\n"));
        assert!(text.contains("silo_backup_failures_total{service=\"orders\"} 1\n"));
        assert!(!text.contains("next_run"), "no family without samples");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[tokio::test]
    async fn the_endpoint_serves_the_text_until_stopped() {
        let m = Metrics::new();
        m.update("orders", |f| f.failures = 7);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, m, async move {
            let _ = rx.await;
        }));
        let response = http_get(addr, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("text/plain; version=0.0.4"), "{response}");
        assert!(response.contains("silo_backup_failures_total{service=\"orders\"} 7\n"));
        assert!(http_get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        response
    }
}
