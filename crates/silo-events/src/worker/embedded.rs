//! The worker on the embedded bus: one task per route (publisher,
//! consumer), one per publisher, and on PostgreSQL one that listens for
//! the publisher's notifications.
//!
//! - A **route** task delivers a batch ([`deliver_batch`]); when the
//!   batch was full it goes again at once, else it waits: short while
//!   events flow, longer while none come, up to 250 ms ([`Idle`]). On a
//!   PostgreSQL publisher a statement-level trigger on `silo_outbox`
//!   notifies `silo_outbox` at commit, and the route wakes at once. A
//!   failure (a store unreachable, a statement refused) drops the route's
//!   connections and retries with backoff ([`Backoff`]); other routes go
//!   on. PostgreSQL connections are kept between batches; SQLite ones are
//!   opened again after a second, so a store file moved or put back from
//!   a backup is seen rather than written through a stale handle.
//! - A **publisher** task retires delivered outbox rows
//!   ([`crate::relay::retention`]) when the worker runs every route out of
//!   that publisher (so it knows every consumer's cursor), and counts the
//!   publisher's dead rows.
//!
//! Every batch is one transaction on the consumer's store, so stopping
//! (graceful or `kill -9`) at any point loses and repeats nothing.

use crate::contracts::Contracts;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use silo_manifest::{Engine, Manifest, Retention, Service};
use silo_store::{ServiceConnection, StoreError, Stores};
use tokio::sync::watch;

use super::metrics as m;
use super::{Backoff, Health, Idle, Route, Status, Summary, listen, pause, stopped};
use crate::EventsError;
use crate::relay::backlog::{backlog, dead, held_back};
use crate::relay::embedded::{Position, deliver_batch, prepare_source, routed_types};
use crate::relay::retention::{Watermark, retire};

/// The connections' name on the server.
const APPLICATION: &str = "silo events worker";

pub use super::CHANNEL;

/// How often a route measures its backlog, and a publisher its dead rows.
const MEASURE_EVERY: Duration = Duration::from_secs(1);

/// How soon a route that caught up measures its backlog again.
const REMEASURE: Duration = Duration::from_millis(100);

/// How long a SQLite connection is used before it is opened again.
const SQLITE_REOPEN: Duration = Duration::from_secs(1);

/// The least time between two retirements of one publisher's rows: each
/// is a write on the publisher's store, which on SQLite makes the
/// service's own writes wait their turn.
const RETIRE_GAP: Duration = Duration::from_secs(1);

/// What a worker runs for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The routes it delivers on.
    pub routes: Vec<Route>,
    /// The publishers it has a task for, and whether it retires their
    /// delivered outbox rows.
    pub publishers: Vec<(String, bool)>,
}

impl Plan {
    /// The plan for `selected` services (none: every service).
    ///
    /// With no service, every route between services that share a type,
    /// and every publisher's retention. With services, the routes that
    /// deliver **into** those services' inboxes: a consumer's worker
    /// (a sidecar) pulls from its publishers. It retires a publisher's
    /// rows only when it runs every route out of that publisher, and a
    /// selected publisher nobody consumes from has its rows retired too.
    pub fn new(manifest: &Manifest, selected: &[String]) -> Plan {
        let chosen = |name: &str| selected.is_empty() || selected.iter().any(|s| s == name);
        let mut all = Vec::new();
        for publisher in manifest.services.iter().filter(|s| !s.publishes.is_empty()) {
            for consumer in &manifest.services {
                let types = routed_types(publisher, consumer);
                if !types.is_empty() {
                    all.push(Route {
                        publisher: publisher.name.clone(),
                        consumer: consumer.name.clone(),
                        types,
                    });
                }
            }
        }
        let routes: Vec<Route> = all
            .iter()
            .filter(|r| chosen(&r.consumer))
            .cloned()
            .collect();
        let mut publishers = Vec::new();
        for publisher in manifest.services.iter().filter(|s| !s.publishes.is_empty()) {
            let out_of = |rs: &[Route]| rs.iter().filter(|r| r.publisher == publisher.name).count();
            let (runs, exist) = (out_of(&routes), out_of(&all));
            let retains = runs == exist && (runs > 0 || chosen(&publisher.name));
            if runs > 0 || retains {
                publishers.push((publisher.name.clone(), retains));
            }
        }
        Plan { routes, publishers }
    }

    /// The services the plan reaches, each once, in manifest order.
    pub fn services<'m>(&self, manifest: &'m Manifest) -> Vec<&'m Service> {
        manifest
            .services
            .iter()
            .filter(|s| {
                self.routes
                    .iter()
                    .any(|r| r.publisher == s.name || r.consumer == s.name)
                    || self.publishers.iter().any(|(p, _)| *p == s.name)
            })
            .collect()
    }

    /// Checks what no retry can fix before the worker starts: each
    /// service's credentials file is there and names the engine the
    /// manifest does. The worker connects with those alone; it needs no
    /// admin URL.
    pub fn check(&self, stores: &Stores, manifest: &Manifest) -> Result<(), StoreError> {
        for service in self.services(manifest) {
            stores.credentials(service)?;
        }
        Ok(())
    }
}

/// The worker on the embedded bus.
pub struct Worker {
    shared: Arc<Shared>,
}

struct Shared {
    stores: Arc<Stores>,
    manifest: Arc<Manifest>,
    plan: Plan,
    contracts: Arc<Contracts>,
    once: bool,
    status: Arc<Status>,
    /// Per route, its cursor after its last batch.
    cursors: Vec<Mutex<Option<Position>>>,
    /// Per publisher (as in `plan.publishers`), bumped when one of its
    /// routes moves its cursor.
    moved: Vec<watch::Sender<u64>>,
    /// Per publisher, the furthest event seen per type, so each event
    /// counts once as published however many routes read it.
    seen: Vec<Mutex<BTreeMap<String, (i64, String)>>>,
}

impl Shared {
    fn service(&self, name: &str) -> &Service {
        self.manifest
            .service(name)
            .expect("a plan names services of its manifest")
    }

    fn publisher_index(&self, name: &str) -> usize {
        self.plan
            .publishers
            .iter()
            .position(|(p, _)| p == name)
            .expect("every route's publisher has a task")
    }
}

impl Worker {
    /// A worker running `plan` on the project's stores, checking payloads
    /// against `contracts` (loaded once: [`Contracts::load`]).
    pub fn new(
        stores: Arc<Stores>,
        manifest: Arc<Manifest>,
        plan: Plan,
        contracts: Arc<Contracts>,
    ) -> Self {
        let status = Arc::new(Status::new(plan.routes.iter().cloned()));
        let shared = Shared {
            cursors: plan.routes.iter().map(|_| Mutex::new(None)).collect(),
            moved: plan
                .publishers
                .iter()
                .map(|_| watch::Sender::new(0))
                .collect(),
            seen: plan
                .publishers
                .iter()
                .map(|_| Mutex::new(BTreeMap::new()))
                .collect(),
            stores,
            manifest,
            plan,
            contracts,
            once: false,
            status,
        };
        Worker {
            shared: Arc::new(shared),
        }
    }

    /// Deliver what is ready on every route, retire what every consumer
    /// has, and return, instead of running until stopped. Nothing is
    /// retried: a failure ends its route and is in the summary.
    pub fn once(mut self, once: bool) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("not running yet")
            .once = once;
        self
    }

    /// What the worker shows while it runs.
    pub fn status(&self) -> Arc<Status> {
        self.shared.status.clone()
    }

    /// Runs until `stop` completes (or, with [`Worker::once`], until
    /// everything ready is delivered). When stopped, batches in flight
    /// commit, no new one starts, and the summary is returned.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) -> Summary {
        let shared = self.shared;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let trigger = {
            let stop_tx = stop_tx.clone();
            tokio::spawn(async move {
                stop.await;
                stop_tx.send_replace(true);
            })
        };
        // One wake-up channel per publisher, fed by its notifications.
        let wakes: Vec<watch::Sender<u64>> = shared
            .plan
            .publishers
            .iter()
            .map(|_| watch::Sender::new(0))
            .collect();
        let mut listeners = Vec::new();
        if !shared.once {
            for (i, (name, _)) in shared.plan.publishers.iter().enumerate() {
                if shared.service(name).engine == Engine::Postgres {
                    let (shared, wake, stop) = (shared.clone(), wakes[i].clone(), stop_rx.clone());
                    listeners.push(tokio::spawn(async move {
                        let publisher = shared.service(&shared.plan.publishers[i].0);
                        listen(&shared.stores, publisher, APPLICATION, wake, stop).await
                    }));
                }
            }
        }
        let routes: Vec<_> = (0..shared.plan.routes.len())
            .map(|i| {
                let wake =
                    wakes[shared.publisher_index(&shared.plan.routes[i].publisher)].subscribe();
                tokio::spawn(route_task(shared.clone(), i, wake, stop_rx.clone()))
            })
            .collect();
        let mut failures = Vec::new();
        let mut publishers = Vec::new();
        if shared.once {
            // Retire after every route has delivered what was ready.
            for task in routes {
                failures.extend(task.await.expect("a route task does not panic"));
            }
            stop_tx.send_replace(true);
            for i in 0..shared.plan.publishers.len() {
                failures.extend(publisher_once(&shared, i).await);
            }
        } else {
            for (i, wake) in wakes.iter().enumerate() {
                publishers.push(tokio::spawn(publisher_task(
                    shared.clone(),
                    i,
                    wake.subscribe(),
                    stop_rx.clone(),
                )));
            }
            for task in routes {
                failures.extend(task.await.expect("a route task does not panic"));
            }
            for task in publishers {
                failures.extend(task.await.expect("a publisher task does not panic"));
            }
        }
        stop_tx.send_replace(true);
        for task in listeners {
            let _ = task.await;
        }
        trigger.abort();
        Summary {
            routes: shared
                .status
                .routes
                .iter()
                .map(|r| (r.route.clone(), r.delivered()))
                .collect(),
            retired: shared.status.retired(),
            failures,
        }
    }
}

/// A route's connections: the publisher's store and the consumer's.
struct Link {
    source: ServiceConnection,
    sink: ServiceConnection,
    opened: Instant,
}

impl Link {
    async fn open(
        shared: &Shared,
        publisher: &Service,
        consumer: &Service,
    ) -> Result<Link, EventsError> {
        let mut source = shared.stores.connect_as(publisher, APPLICATION).await?;
        if let Err(e) = prepare_source(&mut source, publisher).await {
            source.close().await;
            return Err(e);
        }
        let sink = match shared.stores.connect_as(consumer, APPLICATION).await {
            Ok(sink) => sink,
            Err(e) => {
                source.close().await;
                return Err(e.into());
            }
        };
        Ok(Link {
            source,
            sink,
            opened: Instant::now(),
        })
    }

    /// Whether to open the connections again before the next pass.
    fn stale(&self) -> bool {
        let sqlite = |c: &ServiceConnection| c.engine() == Engine::Sqlite;
        (sqlite(&self.source) || sqlite(&self.sink)) && self.opened.elapsed() >= SQLITE_REOPEN
    }

    async fn close(self) {
        self.source.close().await;
        self.sink.close().await;
    }
}

/// One route until stopped (or, with `once`, until a batch comes back
/// short). Returns the route's error if it was failing at the end.
async fn route_task(
    shared: Arc<Shared>,
    index: usize,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) -> Option<(String, EventsError)> {
    let route = &shared.plan.routes[index];
    let status = &shared.status.routes[index];
    let (publisher, consumer) = (
        shared.service(&route.publisher),
        shared.service(&route.consumer),
    );
    let labels = [
        ("publisher", route.publisher.clone()),
        ("consumer", route.consumer.clone()),
    ];
    let mut health = Health::new(route.label());
    let mut backoff = Backoff::new();
    let mut idle = Idle::new();
    let mut link: Option<Link> = None;
    let mut ensured = false;
    let mut measured: Option<Instant> = None;
    let mut held = HeldWatch::default();
    let mut last_error = None;
    while !*stop.borrow() {
        let connecting = link.is_none();
        let in_pass = stop.clone();
        let result = async {
            if !ensured {
                crate::ensure(&shared.stores, publisher).await?;
                crate::ensure(&shared.stores, consumer).await?;
                ensured = true;
            }
            if link.as_ref().is_none_or(Link::stale) {
                // The new one first: closing the last connection to a
                // SQLite file checkpoints it, which would stall delivery.
                let fresh = Link::open(&shared, publisher, consumer).await?;
                if let Some(old) = link.replace(fresh) {
                    old.close().await;
                }
            }
            let l = link.as_mut().expect("opened");
            pass(&shared, index, l, &mut measured, &mut held, &in_pass).await
        };
        // A connect may wait long on a server that is gone: stopping does
        // not wait for it. A pass is not cut: its batch commits.
        let result = if connecting {
            tokio::select! {
                r = result => r,
                _ = stopped(&mut stop) => break,
            }
        } else {
            result.await
        };
        match result {
            Ok(delivered) => {
                health.ok();
                backoff.reset();
                last_error = None;
                status.failing.store(false, Ordering::Relaxed);
                gauge!(m::ROUTE_UP, &labels).set(1.0);
                if shared.once {
                    break;
                }
                if delivered > 0 {
                    idle.busy();
                }
            }
            Err(e) => {
                if let Some(l) = link.take() {
                    l.close().await;
                }
                status.failing.store(true, Ordering::Relaxed);
                counter!(m::ERRORS, &labels).increment(1);
                gauge!(m::ROUTE_UP, &labels).set(0.0);
                if shared.once {
                    health.fail(&e, None);
                    last_error = Some(e);
                    break;
                }
                let wait = backoff.next_wait();
                health.fail(&e, Some(wait));
                last_error = Some(e);
                if pause(&mut stop, wait).await {
                    break;
                }
                continue;
            }
        }
        let wait = idle.next_wait();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.changed() => idle.busy(),
            _ = stopped(&mut stop) => break,
        }
    }
    if let Some(l) = link {
        l.close().await;
    }
    last_error.map(|e| (route.label(), e))
}

/// Batches on one route until one comes back short or the worker stops.
/// Returns the events delivered.
async fn pass(
    shared: &Shared,
    index: usize,
    link: &mut Link,
    measured: &mut Option<Instant>,
    held: &mut HeldWatch,
    stop: &watch::Receiver<bool>,
) -> Result<u64, EventsError> {
    let route = &shared.plan.routes[index];
    let status = &shared.status.routes[index];
    let (publisher, consumer) = (
        shared.service(&route.publisher),
        shared.service(&route.consumer),
    );
    let labels = [
        ("publisher", route.publisher.clone()),
        ("consumer", route.consumer.clone()),
    ];
    let mut delivered = 0;
    loop {
        let started = Instant::now();
        let batch = deliver_batch(
            &mut link.source,
            publisher,
            &mut link.sink,
            consumer,
            &route.types,
            &shared.contracts,
        )
        .await?;
        let took = started.elapsed();
        histogram!(m::BATCH_SECONDS, &labels).record(took.as_secs_f64());
        let written = batch.written();
        delivered += written;
        status.delivered.fetch_add(written, Ordering::Relaxed);
        for (event_type, n) in &batch.written {
            counter!(
                m::DELIVERED,
                "publisher" => route.publisher.clone(),
                "consumer" => route.consumer.clone(),
                "type" => event_type.clone()
            )
            .increment(*n);
        }
        if batch.read.is_empty() {
            tracing::debug!("{}: nothing new", route.label());
        } else {
            tracing::info!(
                "{}: delivered {written} of {} events in {} ms",
                route.label(),
                batch.read.len(),
                took.as_millis()
            );
        }
        count_published(shared, route, &batch.read);
        let full = batch.full();
        let moved = !batch.read.is_empty();
        let cursor = batch.cursor;
        let since = measured.map(|t| t.elapsed());
        let due = since.is_none_or(|t| t >= MEASURE_EVERY);
        // Caught up after a backlog: measure again soon, so the backlog
        // shown drops to what it is.
        let caught_up = !full && status.backlog() > 0 && since.is_none_or(|t| t >= REMEASURE);
        if due || caught_up {
            let b = backlog(&mut link.source, publisher, &route.types, &cursor).await?;
            status.backlog.store(b.events, Ordering::Relaxed);
            status
                .lag_ms
                .store((b.lag_secs * 1000.0) as u64, Ordering::Relaxed);
            gauge!(m::BACKLOG, &labels).set(b.events as f64);
            gauge!(m::LAG, &labels).set(b.lag_secs);
            *measured = Some(Instant::now());
            held.look(&mut link.source, publisher, &route.label(), b.lag_secs)
                .await?;
        }
        *shared.cursors[index].lock().expect("not poisoned") = Some(cursor);
        if moved {
            shared.moved[shared.publisher_index(&route.publisher)].send_modify(|n| *n += 1);
        }
        if !full || *stop.borrow() {
            return Ok(delivered);
        }
    }
}

/// How long committed events may wait behind an older open transaction
/// before the worker warns, and the least time between two looks.
const HELD_WARN: Duration = Duration::from_secs(10);

/// Watches a route for committed events an open transaction elsewhere on
/// a PostgreSQL server holds back (lag, not loss, but silent otherwise):
/// looks only while the route lags by [`HELD_WARN`], at most once per
/// [`HELD_WARN`], and warns once per episode.
#[derive(Default)]
struct HeldWatch {
    warned: bool,
    looked: Option<Instant>,
}

impl HeldWatch {
    async fn look(
        &mut self,
        source: &mut ServiceConnection,
        publisher: &Service,
        route: &str,
        lag_secs: f64,
    ) -> Result<(), EventsError> {
        if lag_secs < HELD_WARN.as_secs_f64() {
            if self.warned {
                tracing::info!("{route}: no longer held back by an open transaction");
            }
            self.warned = false;
            return Ok(());
        }
        if self.warned || self.looked.is_some_and(|t| t.elapsed() < HELD_WARN) {
            return Ok(());
        }
        self.looked = Some(Instant::now());
        let Some(h) = held_back(source, publisher).await? else {
            return Ok(());
        };
        if h.secs < HELD_WARN.as_secs_f64() {
            return Ok(());
        }
        let holder = match &h.holder {
            Some((pid, Some(db))) => format!(" (backend pid {pid}, database {db})"),
            Some((pid, None)) => format!(" (backend pid {pid})"),
            None => String::new(),
        };
        tracing::warn!(
            "{route}: {} committed event(s) wait {:.0} s behind a transaction still open on the server{holder}, {} transaction ids old; the relay takes only events older than every open transaction. End it, or set idle_in_transaction_session_timeout",
            h.rows,
            h.secs,
            h.xids_behind
        );
        self.warned = true;
        Ok(())
    }
}

/// Counts as published the events of `read` that no route of the same
/// publisher has read before.
fn count_published(shared: &Shared, route: &Route, read: &[(String, i64, String)]) {
    if read.is_empty() {
        return;
    }
    let i = shared.publisher_index(&route.publisher);
    let mut seen = shared.seen[i].lock().expect("not poisoned");
    let mut new: BTreeMap<&str, u64> = BTreeMap::new();
    for (event_type, position, id) in read {
        let at = (*position, id.clone());
        match seen.get(event_type) {
            Some(furthest) if *furthest >= at => {}
            _ => {
                seen.insert(event_type.clone(), at);
                *new.entry(event_type).or_default() += 1;
            }
        }
    }
    for (event_type, n) in new {
        counter!(
            m::PUBLISHED,
            "publisher" => route.publisher.clone(),
            "type" => event_type.to_string()
        )
        .increment(n);
    }
}

/// What a publisher task does each time: retire what every consumer has
/// (when it may), and count the dead rows now and then.
struct PublisherWork<'a> {
    shared: &'a Shared,
    publisher: &'a Service,
    retains: bool,
    /// The dead rows per type when last counted.
    dead: Option<BTreeMap<String, u64>>,
    counted: Option<Instant>,
}

impl<'a> PublisherWork<'a> {
    fn new(shared: &'a Shared, index: usize) -> Self {
        let (name, retains) = &shared.plan.publishers[index];
        PublisherWork {
            shared,
            publisher: shared.service(name),
            retains: *retains,
            dead: None,
            counted: None,
        }
    }

    /// The watermark of each type the publisher declares: the lowest
    /// cursor of its consumers' routes, or everything when nobody consumes
    /// it. `None` until every one of those routes has reported a cursor.
    fn watermarks(&self) -> Option<Vec<(String, Watermark)>> {
        let mut marks = Vec::new();
        for event_type in &self.publisher.publishes {
            let mut lowest: Option<Position> = None;
            let mut consumed = false;
            for (i, route) in self.shared.plan.routes.iter().enumerate() {
                if route.publisher != self.publisher.name || !route.types.contains(event_type) {
                    continue;
                }
                consumed = true;
                let cursor = self.shared.cursors[i]
                    .lock()
                    .expect("not poisoned")
                    .clone()?;
                lowest = Some(match lowest {
                    Some(l) if l.origin != cursor.origin => return None,
                    Some(l) if (l.position, l.seq) <= (cursor.position, cursor.seq) => l,
                    _ => cursor,
                });
            }
            let mark = match lowest {
                Some(p) => Watermark::UpTo(p),
                None if !consumed => Watermark::All,
                None => return None,
            };
            marks.push((event_type.clone(), mark));
        }
        Some(marks)
    }

    async fn run(&mut self, conn: &mut ServiceConnection) -> Result<(), EventsError> {
        let name = &self.publisher.name;
        if self.retains
            && let Some(marks) = self.watermarks()
        {
            let retention = self.shared.manifest.events.retention;
            let retired = retire(conn, self.publisher, &marks, retention).await?;
            let total: u64 = retired.values().sum();
            if total > 0 {
                tracing::info!(
                    "{name}: {} {total} delivered outbox rows",
                    match retention {
                        Retention::Delete => "deleted",
                        Retention::Keep => "marked sent",
                    }
                );
            }
            self.shared
                .status
                .retired
                .fetch_add(total, Ordering::Relaxed);
            for (event_type, n) in retired {
                let unconsumed = marks
                    .iter()
                    .any(|(t, m)| *t == event_type && *m == Watermark::All);
                let labels = [("publisher", name.clone()), ("type", event_type)];
                counter!(m::RETIRED, &labels).increment(n);
                if unconsumed {
                    // No route reads these: this is where they are seen.
                    counter!(m::PUBLISHED, &labels).increment(n);
                }
            }
        }
        if self.counted.is_none_or(|t| t.elapsed() >= MEASURE_EVERY) {
            let now = dead(conn, self.publisher).await?;
            for (event_type, n) in &now {
                let labels = [("publisher", name.clone()), ("type", event_type.clone())];
                gauge!(m::OUTBOX_DEAD, &labels).set(*n as f64);
                let before = self
                    .dead
                    .as_ref()
                    .map(|d| d.get(event_type).copied().unwrap_or(0));
                if let Some(before) = before
                    && *n > before
                {
                    counter!(m::DEAD, &labels).increment(*n - before);
                }
            }
            if let Some(before) = &self.dead {
                for event_type in before.keys().filter(|t| !now.contains_key(*t)) {
                    gauge!(m::OUTBOX_DEAD, "publisher" => name.clone(), "type" => event_type.clone())
                        .set(0.0);
                }
            }
            self.dead = Some(now);
            self.counted = Some(Instant::now());
        }
        Ok(())
    }
}

/// Retires once, after every route delivered what was ready.
async fn publisher_once(shared: &Shared, index: usize) -> Option<(String, EventsError)> {
    let mut work = PublisherWork::new(shared, index);
    if !work.retains {
        return None;
    }
    let what = format!("retiring {}'s delivered events", work.publisher.name);
    let result = async {
        let mut conn = shared
            .stores
            .connect_as(work.publisher, APPLICATION)
            .await?;
        let r = work.run(&mut conn).await;
        conn.close().await;
        r
    }
    .await;
    match result {
        Ok(()) => None,
        Err(e) => {
            Health::new(what.clone()).fail(&e, None);
            Some((what, e))
        }
    }
}

/// A publisher until stopped: retires delivered rows as routes move,
/// counts dead rows.
async fn publisher_task(
    shared: Arc<Shared>,
    index: usize,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) -> Option<(String, EventsError)> {
    let mut moved = shared.moved[index].subscribe();
    let mut work = PublisherWork::new(&shared, index);
    let name = work.publisher.name.clone();
    let what = format!("{name}'s outbox");
    let labels = [("publisher", name.clone()), ("consumer", String::new())];
    let mut health = Health::new(what.clone());
    let mut backoff = Backoff::new();
    let mut conn: Option<(ServiceConnection, Instant)> = None;
    let mut last_error = None;
    loop {
        let result = async {
            let stale = |(c, at): &(ServiceConnection, Instant)| {
                c.engine() == Engine::Sqlite && at.elapsed() >= SQLITE_REOPEN
            };
            if conn.as_ref().is_none_or(stale) {
                // The new one first, as routes do.
                let c = shared
                    .stores
                    .connect_as(work.publisher, APPLICATION)
                    .await?;
                if let Some((old, _)) = conn.replace((c, Instant::now())) {
                    old.close().await;
                }
            }
            work.run(&mut conn.as_mut().expect("opened").0).await
        };
        let result = tokio::select! {
            r = result => r,
            _ = stopped(&mut stop) => break,
        };
        match result {
            Ok(()) => {
                health.ok();
                backoff.reset();
                last_error = None;
            }
            Err(e) => {
                if let Some((c, _)) = conn.take() {
                    c.close().await;
                }
                counter!(m::ERRORS, &labels).increment(1);
                let wait = backoff.next_wait();
                health.fail(&e, Some(wait));
                last_error = Some(e);
                if pause(&mut stop, wait).await {
                    break;
                }
                continue;
            }
        }
        // Next when a route moves, something is published, or a second
        // passed; no sooner than RETIRE_GAP.
        if pause(&mut stop, RETIRE_GAP).await {
            break;
        }
        tokio::select! {
            _ = moved.changed() => {}
            _ = wake.changed() => {}
            _ = tokio::time::sleep(MEASURE_EVERY) => {}
            _ = stopped(&mut stop) => break,
        }
    }
    if let Some((c, _)) = conn {
        c.close().await;
    }
    last_error.map(|e| (what, e))
}
