//! The worker on the nats bus: for each service it runs for, the relay
//! (its outbox → the stream) and the delivery (the stream → its inbox),
//! each as the service, until told to stop.
//!
//! Sidecar model: run for one service, the worker needs only that
//! service's store credentials and the bus (under `nats_auth`, its own
//! NATS user). Run for every service, it first sets up the stream and
//! every service's durable consumers (as the silo admin under
//! `nats_auth`); a worker for some services sets up only their consumers
//! when auth is off, and only checks them when it is on.
//!
//! Services are independent: a store or the bus going away is retried
//! with backoff for the service it touches and reported, while the others
//! go on. Stopping lets each step in flight finish (a batch published is
//! marked, a batch written is acked) and hands back what the delivery
//! pulled and did not write (a nak, so the next worker gets it at once
//! instead of after the ack wait), so a stop loses and repeats nothing;
//! a kill at any point does neither either, only later.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use silo_manifest::{Manifest, Service};
use silo_store::{ServiceConnection, Stores};
use tokio::sync::watch;

use super::connect::{Connection, NatsConfig};
use super::deliver::Delivery;
use super::error::NatsError;
use super::names;
use super::publish::{self, BATCH};
use super::stream;
use crate::EventsError;

/// The connections' name on the store's server.
const APPLICATION: &str = "silo events relay";

/// How often an idle relay looks at its outbox again.
const POLL: Duration = Duration::from_millis(20);

/// How long an idle delivery waits for a message per step.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// What the worker has done so far, per service; safe to read while it
/// runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events the stream acknowledged.
    pub published: AtomicU64,
    /// Outbox rows marked dead.
    pub dead: AtomicU64,
    /// Inbox rows written.
    pub delivered: AtomicU64,
    /// Errors met (each retried).
    pub errors: AtomicU64,
    /// Messages the delivery acked and skipped: not silo events, or
    /// refused (see [`super::admit`]).
    pub skipped: AtomicU64,
}

/// How the worker runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Relay and deliver what is ready, then return; a failure ends the
    /// service's part at once (counted in [`Counters::errors`]) instead
    /// of being retried.
    pub once: bool,
}

/// Sets up the bus for a worker over `services`: as the admin (under
/// auth) or anonymously, the stream and the services' durables; a
/// service's own user under auth only checks the stream. `whole` is true
/// when the worker runs for every service.
pub async fn set_up(
    config: &NatsConfig,
    manifest: &Manifest,
    services: &[&Service],
    whole: bool,
) -> Result<Vec<String>, NatsError> {
    if config.auth && !whole {
        // The service's user may not create anything: check the stream;
        // each delivery checks its own durables when it starts.
        for s in services {
            let conn = config.connect(&s.name).await?;
            stream::check_stream(&conn, manifest).await?;
        }
        return Ok(Vec::new());
    }
    let conn = config.connect(names::ADMIN_USER).await?;
    if conn.server_at_least(2, 10) {
        tracing::debug!(
            version = %conn.server_version(),
            "the server could filter a consumer on several subjects; silo keeps one durable per type"
        );
    }
    let consuming: Vec<&Service> = services
        .iter()
        .copied()
        .filter(|s| !s.consumes.is_empty())
        .collect();
    stream::set_up(&conn, manifest, &consuming, config.ack_wait).await
}

/// Runs the relay and the delivery of every service in `services` until
/// `stop` turns true (or, with `once`, until nothing is left to move: the
/// relays first, then the deliveries).
/// `counters` has one entry per service, in the same order.
pub async fn run(
    stores: &Stores,
    manifest: &Manifest,
    config: &NatsConfig,
    services: &[&Service],
    counters: &[Counters],
    options: RunOptions,
    stop: watch::Receiver<bool>,
) {
    let relays = services
        .iter()
        .zip(counters)
        .filter(|(s, _)| !s.publishes.is_empty())
        .map(|(s, c)| relay_loop(stores, manifest, config, s, c, options, stop.clone()));
    let deliveries = services
        .iter()
        .zip(counters)
        .filter(|(s, _)| !s.consumes.is_empty())
        .map(|(s, c)| delivery_loop(stores, manifest, config, s, c, options, stop.clone()));
    if options.once {
        // Everything published first, so that the deliveries find it.
        futures::future::join_all(relays).await;
        futures::future::join_all(deliveries).await;
    } else {
        futures::future::join(
            futures::future::join_all(relays),
            futures::future::join_all(deliveries),
        )
        .await;
    }
}

/// Backoff between attempts after an error: 100 ms doubling to 5 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(Duration::from_millis(100))
    }
    fn reset(&mut self) {
        self.0 = Duration::from_millis(100);
    }
    async fn wait(&mut self, stop: &mut watch::Receiver<bool>) {
        sleep_or_stop(self.0, stop).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// Reports an error once per kind of trouble, then quietly retries.
fn report(service: &Service, what: &str, e: &dyn std::fmt::Display, last: &mut Option<String>) {
    let text = e.to_string();
    if last.as_deref() != Some(text.as_str()) {
        tracing::warn!(service = %service.name, "{what}: {text}; retrying");
        *last = Some(text);
    }
}

async fn relay_loop(
    stores: &Stores,
    manifest: &Manifest,
    config: &NatsConfig,
    service: &Service,
    counters: &Counters,
    options: RunOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut bus: Option<Connection> = None;
    let mut store: Option<ServiceConnection> = None;
    let mut backoff = Backoff::new();
    let mut last_error = None;
    while !stopped(&stop) {
        if bus.is_none() {
            match config.connect(&service.name).await {
                Ok(c) => bus = Some(c),
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    report(
                        service,
                        "the relay cannot reach the bus",
                        &e,
                        &mut last_error,
                    );
                    if options.once {
                        return;
                    }
                    backoff.wait(&mut stop).await;
                    continue;
                }
            }
        }
        if store.is_none() {
            match stores.connect_as(service, APPLICATION).await {
                Ok(c) => store = Some(c),
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    report(
                        service,
                        "the relay cannot reach the store",
                        &e,
                        &mut last_error,
                    );
                    if options.once {
                        return;
                    }
                    backoff.wait(&mut stop).await;
                    continue;
                }
            }
        }
        let (b, s) = (bus.as_ref().expect("set"), store.as_mut().expect("set"));
        match publish::relay_batch(s, b, manifest, service).await {
            Ok(done) => {
                counters
                    .published
                    .fetch_add(done.published, Ordering::Relaxed);
                counters.dead.fetch_add(done.dead, Ordering::Relaxed);
                if let Some(why) = &done.failed {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    report(service, "publishing failed", why, &mut last_error);
                    if options.once {
                        return;
                    }
                    backoff.wait(&mut stop).await;
                    continue;
                }
                backoff.reset();
                last_error = None;
                if done.read < BATCH as usize {
                    if options.once {
                        return;
                    }
                    sleep_or_stop(POLL, &mut stop).await;
                }
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                report(service, "relaying failed", &e, &mut last_error);
                if options.once {
                    return;
                }
                if let Some(s) = store.take() {
                    s.close().await;
                }
                backoff.wait(&mut stop).await;
            }
        }
    }
    if let Some(s) = store.take() {
        s.close().await;
    }
}

async fn delivery_loop(
    stores: &Stores,
    manifest: &Manifest,
    config: &NatsConfig,
    service: &Service,
    counters: &Counters,
    options: RunOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut delivery: Option<Delivery> = None;
    let mut backoff = Backoff::new();
    let mut last_error = None;
    while !stopped(&stop) {
        if delivery.is_none() {
            let started = async {
                let bus = config.connect(&service.name).await?;
                Delivery::start(&bus, manifest, service).await
            }
            .await;
            match started {
                Ok(d) => delivery = Some(d),
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    report(service, "the delivery cannot start", &e, &mut last_error);
                    if options.once {
                        return;
                    }
                    backoff.wait(&mut stop).await;
                    continue;
                }
            }
        }
        let d = delivery.as_mut().expect("set");
        // A step is never cut short by a stop: what it wrote is acked.
        let wait = if options.once {
            Duration::from_millis(500)
        } else {
            IDLE_WAIT
        };
        let idle = d.held() == 0;
        let step = tokio::select! {
            r = d.step(stores, wait) => r,
            _ = stop.wait_for(|s| *s), if idle => Ok(0),
        };
        match step {
            Ok(n) => {
                counters.delivered.fetch_add(n, Ordering::Relaxed);
                counters
                    .skipped
                    .fetch_add(d.take_skipped(), Ordering::Relaxed);
                backoff.reset();
                last_error = None;
                if options.once && n == 0 && d.held() == 0 && d.caught_up().await {
                    return;
                }
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                report(service, "delivering failed", &e, &mut last_error);
                if options.once {
                    return;
                }
                if is_bus_error(&e) {
                    delivery = None;
                }
                backoff.wait(&mut stop).await;
            }
        }
    }
    // What it pulled and did not write goes back to the stream at once.
    if let Some(d) = delivery {
        d.release().await;
    }
}

fn is_bus_error(e: &EventsError) -> bool {
    matches!(e, EventsError::Nats(_))
}
