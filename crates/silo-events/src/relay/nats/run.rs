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
//! with backoff ([`Backoff`], as on the embedded bus) for the service it
//! touches and reported once per change ([`Health`]), while the others go
//! on. A connection to the bus, once made, is kept: its client connects
//! again by itself when the server comes back, and the delivery keeps
//! what it holds meanwhile. A delivery holding messages it may not write
//! yet (see [`super::deliver`] on the order) looks again at the server
//! with backoff too, from 5 ms up to 1 s, until something moves.
//!
//! Stopping lets each step in flight finish (a batch published is
//! marked, a batch written is acked) and hands back what the delivery
//! pulled and did not write (a nak, so the next worker gets it at once
//! instead of after the ack wait), so a stop loses and repeats nothing;
//! a kill at any point does neither either, only later.
//!
//! An idle relay looks at its outbox again after the waits of [`Idle`]:
//! 5 ms while events flow, up to 250 ms while none come. On PostgreSQL it
//! also listens for the outbox's notification at commit and looks at
//! once; the waits stay as the fallback, so a notification lost while the
//! listener reconnects (or a row that was not ready yet, behind an older
//! running transaction) waits 250 ms at most.
//!
//! Metrics ([`crate::worker::metrics`]): a relay records for
//! `publisher` = its service and `consumer` = "", a delivery for
//! `publisher` = "" and `consumer` = its service (a delivery's batch mixes
//! publishers), except the delivered counts and the backlog, which name
//! both.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use silo_manifest::{Engine, Manifest, Service};
use silo_store::{ServiceConnection, Stores};
use tokio::sync::watch;

use super::connect::{Connection, NatsConfig};
use super::deliver::Delivery;
use super::error::NatsError;
use super::names;
use super::publish::{self, BATCHES_IN_A_ROW, Relayed};
use super::stream;
use crate::EventsError;
use crate::contracts::Contracts;
use crate::relay::backlog::dead;
use crate::relay::embedded::routed_types;
use crate::worker::metrics as m;
use crate::worker::{Backoff, Health, Idle, listen, pause};

/// The connections' name on the store's server.
const APPLICATION: &str = "silo events relay";

/// How long an idle delivery waits for a message per step.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// How long a delivery holding messages it may not write yet waits before
/// it looks again at the durables' state on the server: from the first
/// wait (the moment a delivery in flight takes), doubling while nothing
/// moves, up to the longest. A message handed to a worker that died holds
/// back the ones after it until the ack wait ends; a look every few
/// milliseconds until then would be hundreds of requests a second.
const HOLDING_FIRST: Duration = Duration::from_millis(5);
const HOLDING_MAX: Duration = Duration::from_secs(1);

/// How often a relay counts its dead rows, and a delivery measures its
/// backlog.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

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
    /// Requests the delivery made for the stream's or its durables' state
    /// (to judge the order, and to measure the backlog).
    pub state_reads: AtomicU64,
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
/// relays and the deliveries side by side, each delivery ending once every
/// relay has and its durables are caught up). Each relay checks payloads against
/// `contracts` (loaded once: [`Contracts::load`]).
/// `counters` has one entry per service, in the same order.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    stores: &Stores,
    manifest: &Manifest,
    config: &NatsConfig,
    contracts: &Contracts,
    services: &[&Service],
    counters: &[Counters],
    options: RunOptions,
    stop: watch::Receiver<bool>,
) {
    // With `once`, a delivery ends only after every relay has: what they
    // publish is for the deliveries to find. The two run side by side all
    // the same, as they do without `once`.
    let (relays_done, relayed) = watch::channel(false);
    let relays = services
        .iter()
        .zip(counters)
        .filter(|(s, _)| !s.publishes.is_empty())
        .map(|(s, c)| {
            let relay = Relay {
                stores,
                manifest,
                config,
                contracts,
                service: s,
                counters: c,
                options,
            };
            relay.run(stop.clone())
        });
    let relays = async {
        futures::future::join_all(relays).await;
        let _ = relays_done.send(true);
    };
    let deliveries = services
        .iter()
        .zip(counters)
        .filter(|(s, _)| !s.consumes.is_empty())
        .map(|(s, c)| {
            let relayed = relayed.clone();
            delivery_loop(
                stores,
                manifest,
                config,
                s,
                c,
                options,
                relayed,
                stop.clone(),
            )
        });
    futures::future::join(relays, futures::future::join_all(deliveries)).await;
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// `fut`, unless `stop` comes first (`None`): for connecting, which may
/// wait long on a server that is gone.
async fn unless_stopped<T>(
    stop: &mut watch::Receiver<bool>,
    fut: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        r = fut => Some(r),
        _ = stop.wait_for(|s| *s) => None,
    }
}

/// One service's relay: its outbox → the stream.
struct Relay<'a> {
    stores: &'a Stores,
    manifest: &'a Manifest,
    config: &'a NatsConfig,
    contracts: &'a Contracts,
    service: &'a Service,
    counters: &'a Counters,
    options: RunOptions,
}

impl Relay<'_> {
    /// Until stopped (or, with `once`, until a batch comes back short or
    /// fails), with a listener for the outbox's notifications beside it on
    /// PostgreSQL.
    async fn run(self, stop: watch::Receiver<bool>) {
        let (wake_tx, wake) = watch::channel(0u64);
        let listening = async {
            if !self.options.once && self.service.engine == Engine::Postgres {
                let tx = wake_tx.clone();
                listen(self.stores, self.service, APPLICATION, tx, stop.clone()).await;
            }
        };
        // `wake_tx` lives as long as the relay: `changed` never fails.
        futures::future::join(listening, self.relay(wake, stop.clone())).await;
    }

    async fn relay(&self, mut wake: watch::Receiver<u64>, mut stop: watch::Receiver<bool>) {
        let service = self.service;
        let name = &service.name;
        let labels = [("publisher", name.clone()), ("consumer", String::new())];
        let mut health = Health::new(format!("{name} → the stream"));
        let mut backoff = Backoff::new();
        let mut idle = Idle::new();
        let mut bus: Option<Connection> = None;
        let mut store: Option<ServiceConnection> = None;
        let mut dead_counted: Option<Instant> = None;
        while !stopped(&stop) {
            if bus.is_none() || store.is_none() {
                let connect = async {
                    if bus.is_none() {
                        bus = Some(self.config.connect(name).await?);
                    }
                    if store.is_none() {
                        // The event tables made or completed first, as the
                        // embedded worker does (a store of an earlier build).
                        crate::ensure(self.stores, service).await?;
                        let mut conn = self.stores.connect_as(service, APPLICATION).await?;
                        publish::prepare(&mut conn, service).await?;
                        store = Some(conn);
                    }
                    Ok::<_, EventsError>(())
                };
                let Some(connected) = unless_stopped(&mut stop, connect).await else {
                    break;
                };
                if let Err(e) = connected {
                    if self
                        .failed(&mut health, &mut backoff, &labels, &e, &mut stop)
                        .await
                    {
                        break;
                    }
                    continue;
                }
            }
            let (b, s) = (bus.as_ref().expect("set"), store.as_mut().expect("set"));
            let result = self.batch(s, b, &mut dead_counted).await;
            match result {
                Ok(done) => {
                    health.ok();
                    backoff.reset();
                    gauge!(m::ROUTE_UP, &labels).set(1.0);
                    if done.read > 0 {
                        idle.busy();
                    }
                    if !done.more {
                        if self.options.once {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(idle.next_wait()) => {}
                            _ = wake.changed() => idle.busy(),
                            _ = stop.wait_for(|s| *s) => break,
                        }
                    }
                }
                Err(e) => {
                    // A publish that failed keeps the store; anything
                    // else may have broken its connection.
                    if !matches!(e, EventsError::Nats(_))
                        && let Some(s) = store.take()
                    {
                        s.close().await;
                    }
                    if self
                        .failed(&mut health, &mut backoff, &labels, &e, &mut stop)
                        .await
                    {
                        break;
                    }
                }
            }
        }
        if let Some(s) = store.take() {
            s.close().await;
        }
    }

    /// One batch, its metrics, and now and then the dead rows' count. A
    /// publish that failed is an error, after what went before it was
    /// marked.
    async fn batch(
        &self,
        store: &mut ServiceConnection,
        bus: &Connection,
        dead_counted: &mut Option<Instant>,
    ) -> Result<Relayed, EventsError> {
        let service = self.service;
        let name = &service.name;
        let started = Instant::now();
        let done = publish::relay_batches(
            store,
            bus,
            self.manifest,
            service,
            self.contracts,
            BATCHES_IN_A_ROW,
        )
        .await?;
        let c = self.counters;
        c.published.fetch_add(done.published, Ordering::Relaxed);
        c.dead.fetch_add(done.dead, Ordering::Relaxed);
        if done.read > 0 {
            let took = started.elapsed();
            histogram!(m::BATCH_SECONDS, "publisher" => name.clone(), "consumer" => "")
                .record(took.as_secs_f64());
            tracing::info!(
                "{name} → the stream: published {} and dead-lettered {} of {} events in {} ms",
                done.published,
                done.dead,
                done.read,
                took.as_millis()
            );
        }
        for (event_type, (published, dead)) in &done.by_type {
            let labels = [("publisher", name.clone()), ("type", event_type.clone())];
            if *published > 0 {
                // Published and retired are one step here: the rows the
                // stream acked are deleted or marked sent at once.
                counter!(m::PUBLISHED, &labels).increment(*published);
                counter!(m::RETIRED, &labels).increment(*published);
            }
            if *dead > 0 {
                counter!(m::DEAD, &labels).increment(*dead);
            }
        }
        if let Some(why) = done.failed {
            return Err(NatsError::Request {
                action: format!("publishing {name}'s events"),
                reason: why,
            }
            .into());
        }
        if done.dead > 0 || dead_counted.is_none_or(|t| t.elapsed() >= MEASURE_EVERY) {
            for (event_type, n) in dead(store, service).await? {
                gauge!(m::OUTBOX_DEAD, "publisher" => name.clone(), "type" => event_type)
                    .set(n as f64);
            }
            *dead_counted = Some(Instant::now());
        }
        Ok(done)
    }

    /// Counts and reports a failed attempt; waits before the next one
    /// (with `once`, there is none). True when the relay is to end.
    async fn failed(
        &self,
        health: &mut Health,
        backoff: &mut Backoff,
        labels: &[(&'static str, String); 2],
        e: &EventsError,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        counter!(m::ERRORS, labels).increment(1);
        gauge!(m::ROUTE_UP, labels).set(0.0);
        if self.options.once {
            health.fail(e, None);
            return true;
        }
        let wait = backoff.next_wait();
        health.fail(e, Some(wait));
        pause(stop, wait).await
    }
}

/// The publishers `service` consumes from, each with the types that go
/// from it to the service.
fn routes_into(manifest: &Manifest, service: &Service) -> Vec<(String, Vec<String>)> {
    manifest
        .services
        .iter()
        .map(|p| (p.name.clone(), routed_types(p, service)))
        .filter(|(_, types)| !types.is_empty())
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn delivery_loop(
    stores: &Stores,
    manifest: &Manifest,
    config: &NatsConfig,
    service: &Service,
    counters: &Counters,
    options: RunOptions,
    // Turns true once every relay of the run has ended: with `once`, the
    // delivery ends only after that.
    relayed: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let name = &service.name;
    let labels = [("publisher", String::new()), ("consumer", name.clone())];
    let routes = routes_into(manifest, service);
    let mut health = Health::new(format!("the stream → {name}"));
    let mut backoff = Backoff::new();
    let mut holding = Backoff::between(HOLDING_FIRST, HOLDING_MAX);
    let mut delivery: Option<Delivery> = None;
    let mut measured: Option<Instant> = None;
    // With `once`: whether it ended with nothing left to deliver.
    let mut caught_up = false;
    while !stopped(&stop) {
        let result = async {
            if delivery.is_none() {
                let start = async {
                    let bus = config.connect(name).await?;
                    Delivery::start(&bus, manifest, service).await
                };
                match unless_stopped(&mut stop.clone(), start).await {
                    Some(d) => delivery = Some(d?),
                    None => return Ok(None),
                }
            }
            let d = delivery.as_mut().expect("set");
            // A step is never cut short by a stop: what it wrote is acked.
            let idle = d.held() == 0;
            let wait = if !idle {
                holding.next_wait()
            } else if options.once {
                Duration::from_millis(500)
            } else {
                IDLE_WAIT
            };
            let acked = d.acked();
            let mut in_step = stop.clone();
            let written = tokio::select! {
                r = d.step(stores, wait) => r?,
                _ = in_step.wait_for(|s| *s), if idle => return Ok(None),
            };
            if d.held() == 0 || d.acked() != acked {
                holding.reset();
            }
            counters
                .delivered
                .fetch_add(written.total(), Ordering::Relaxed);
            counters
                .skipped
                .fetch_add(d.take_skipped(), Ordering::Relaxed);
            if written.total() > 0 {
                histogram!(m::BATCH_SECONDS, &labels).record(written.took.as_secs_f64());
                tracing::info!(
                    "the stream → {name}: delivered {} events in {} ms",
                    written.total(),
                    written.took.as_millis()
                );
            }
            for ((publisher, event_type), n) in &written.rows {
                counter!(
                    m::DELIVERED,
                    "publisher" => publisher.clone(),
                    "consumer" => name.clone(),
                    "type" => event_type.clone()
                )
                .increment(*n);
            }
            if measured.is_none_or(|t| t.elapsed() >= MEASURE_EVERY) {
                let pending: BTreeMap<String, u64> = d.backlog().await?.into_iter().collect();
                for (publisher, types) in &routes {
                    let n: u64 = types.iter().filter_map(|t| pending.get(t)).sum();
                    gauge!(m::BACKLOG, "publisher" => publisher.clone(), "consumer" => name.clone())
                        .set(n as f64);
                }
                measured = Some(Instant::now());
            }
            Ok::<_, EventsError>(Some(written.total()))
        }
        .await;
        if let Some(d) = &delivery {
            counters
                .state_reads
                .fetch_add(d.take_reads(), Ordering::Relaxed);
        }
        match result {
            Ok(None) => break,
            Ok(Some(n)) => {
                health.ok();
                backoff.reset();
                gauge!(m::ROUTE_UP, &labels).set(1.0);
                let d = delivery.as_ref().expect("set");
                // The relays' end is read before the durables' state: then
                // everything they published is counted in it.
                if options.once
                    && n == 0
                    && d.held() == 0
                    && *relayed.borrow()
                    && d.caught_up().await
                {
                    caught_up = true;
                    break;
                }
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                counter!(m::ERRORS, &labels).increment(1);
                gauge!(m::ROUTE_UP, &labels).set(0.0);
                if options.once {
                    health.fail(&e, None);
                    break;
                }
                // The delivery is kept across bus errors, with what it
                // holds: its client connects again by itself and its
                // feeders pull again once it has (see `deliver`). Dropped,
                // the messages it held would stay handed out on the server
                // until the ack wait, and the order would hold back
                // everything after them until then.
                let wait = backoff.next_wait();
                health.fail(&e, Some(wait));
                if pause(&mut stop, wait).await {
                    break;
                }
            }
        }
    }
    // What it pulled and did not write goes back to the stream at once.
    match delivery {
        Some(d) if caught_up => d.finish().await,
        Some(d) => d.release().await,
        None => {}
    }
}
