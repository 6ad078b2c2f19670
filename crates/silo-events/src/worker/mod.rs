//! The events worker, `silo events run` as a library: it moves events from
//! publishers' outboxes to consumers' inboxes until it is stopped, or once
//! ([`embedded::Worker`] on the embedded bus).
//!
//! The pieces any bus's worker shares live here: the waits ([`Backoff`],
//! [`Idle`]), what a running worker shows ([`Status`]) and what it did
//! ([`Summary`]), how a failure is reported ([`Health`]), and the
//! [`metrics`] names.

mod backoff;
pub mod embedded;
pub mod metrics;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub use backoff::{Backoff, Idle};

use silo_manifest::Service;
use silo_store::Stores;
use tokio::sync::watch;

use crate::EventsError;

/// The channel a PostgreSQL outbox notifies at commit.
pub const CHANNEL: &str = "silo_outbox";

/// One way events go: from a publisher's outbox to a consumer's inbox,
/// for the types both declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub publisher: String,
    pub consumer: String,
    /// The types the publisher publishes and the consumer consumes.
    pub types: Vec<String>,
}

impl Route {
    /// `publisher → consumer`, as logs and errors name it.
    pub fn label(&self) -> String {
        format!("{} → {}", self.publisher, self.consumer)
    }
}

/// What a running worker shows: per route, what it delivered, what is
/// still on its way, and whether it fails. Shared with the worker's tasks;
/// read it while they run (a status line, say).
#[derive(Debug, Default)]
pub struct Status {
    pub routes: Vec<RouteStatus>,
    retired: AtomicU64,
}

/// One route's share of [`Status`].
#[derive(Debug)]
pub struct RouteStatus {
    pub route: Route,
    delivered: AtomicU64,
    backlog: AtomicU64,
    lag_ms: AtomicU64,
    failing: AtomicBool,
}

impl RouteStatus {
    fn new(route: Route) -> Self {
        RouteStatus {
            route,
            delivered: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            failing: AtomicBool::new(false),
        }
    }

    /// Events this worker wrote into the consumer's inbox.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Events not yet in the consumer's inbox, when last measured.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Age of the oldest of them, when last measured.
    pub fn lag(&self) -> Duration {
        Duration::from_millis(self.lag_ms.load(Ordering::Relaxed))
    }

    /// Whether the route's last attempt failed.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }
}

impl Status {
    /// A status for `routes`, nothing delivered yet.
    pub fn new(routes: impl IntoIterator<Item = Route>) -> Self {
        Status {
            routes: routes.into_iter().map(RouteStatus::new).collect(),
            retired: AtomicU64::new(0),
        }
    }

    /// Events delivered over every route.
    pub fn delivered(&self) -> u64 {
        self.routes.iter().map(RouteStatus::delivered).sum()
    }

    /// Events on their way over every route.
    pub fn backlog(&self) -> u64 {
        self.routes.iter().map(RouteStatus::backlog).sum()
    }

    /// The largest lag of any route.
    pub fn lag(&self) -> Duration {
        self.routes
            .iter()
            .map(RouteStatus::lag)
            .max()
            .unwrap_or_default()
    }

    /// Routes whose last attempt failed.
    pub fn failing(&self) -> usize {
        self.routes.iter().filter(|r| r.failing()).count()
    }

    /// Outbox rows retired (deleted or marked sent).
    pub fn retired(&self) -> u64 {
        self.retired.load(Ordering::Relaxed)
    }
}

/// What a worker did, once it stopped.
#[derive(Debug, Default)]
pub struct Summary {
    /// Per route, the events delivered.
    pub routes: Vec<(Route, u64)>,
    /// Outbox rows retired.
    pub retired: u64,
    /// The errors of what still failed when the worker stopped (with
    /// `once`: what failed), each with what it was doing.
    pub failures: Vec<(String, EventsError)>,
}

impl Summary {
    /// Events delivered over every route.
    pub fn delivered(&self) -> u64 {
        self.routes.iter().map(|(_, n)| n).sum()
    }

    /// `delivered 12 events on 2 routes, retired 12 outbox rows`, and how
    /// many failed.
    pub fn line(&self) -> String {
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut line = format!(
            "delivered {} on {}, retired {}",
            plural(self.delivered(), "event", "events"),
            plural(self.routes.len() as u64, "route", "routes"),
            plural(self.retired, "outbox row", "outbox rows"),
        );
        if !self.failures.is_empty() {
            line.push_str(&format!("; {} failing", self.failures.len()));
        }
        line
    }
}

/// A task's health: it reports a failure when it starts or changes, not
/// at every retry, and says when the task works again.
#[derive(Debug)]
pub struct Health {
    what: String,
    failing: Option<String>,
    attempts: u32,
}

impl Health {
    /// The health of the task doing `what` (`orders → billing`, say).
    pub fn new(what: impl Into<String>) -> Self {
        Health {
            what: what.into(),
            failing: None,
            attempts: 0,
        }
    }

    /// Whether the last attempt failed.
    pub fn failing(&self) -> bool {
        self.failing.is_some()
    }

    /// Records a failed attempt, retried after `retry` (none: not
    /// retried). Logs a warning with the error and its hint when the task
    /// was working or failed otherwise before, else at debug level.
    pub fn fail(&mut self, error: &EventsError, retry: Option<Duration>) {
        let text = crate::describe(error);
        let hint = miette::Diagnostic::help(error)
            .map(|h| h.to_string())
            .unwrap_or_else(|| {
                "check that the store is up and the service's credentials work (`silo status`)"
                    .into()
            });
        let then = match retry {
            Some(wait) => format!("retrying in {} ms", wait.as_millis()),
            None => "not retried".into(),
        };
        self.attempts += 1;
        if self.failing.as_deref() == Some(text.as_str()) {
            tracing::debug!("{}: {text}; {then} (attempt {})", self.what, self.attempts);
        } else {
            tracing::warn!("{}: {text}; help: {hint}; {then}", self.what);
        }
        self.failing = Some(text);
    }

    /// Records a success; logs that the task works again if it failed.
    pub fn ok(&mut self) {
        if self.failing.take().is_some() {
            tracing::info!(
                "{}: working again after {} failed attempt{}",
                self.what,
                self.attempts,
                if self.attempts == 1 { "" } else { "s" }
            );
        }
        self.attempts = 0;
    }
}

/// Ends when `stop` says so (at once if it already has).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The sender outlives every task: a closed channel means stop too.
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits `wait`, or less when stopped; true when stopped.
pub(crate) async fn pause(stop: &mut tokio::sync::watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => *stop.borrow(),
        _ = stopped(stop) => true,
    }
}

/// Listens for a PostgreSQL publisher's notifications (on [`CHANNEL`]) and
/// bumps `wake` for each, until stopped; returns at once for a SQLite
/// publisher. Only a shortcut: whoever waits on `wake` must still look on
/// its own now and then, since a notification sent while the listener
/// reconnects is lost. A failure here is logged at debug level and
/// retried; each new connection bumps `wake` once, for what was published
/// while no one listened.
pub(crate) async fn listen(
    stores: &Stores,
    publisher: &Service,
    application: &str,
    wake: watch::Sender<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new();
    loop {
        let connect = stores.listen_as(publisher, application, CHANNEL);
        let listener = tokio::select! {
            l = connect => l,
            _ = stopped(&mut stop) => return,
        };
        match listener {
            Ok(Some(mut listener)) => {
                backoff.reset();
                wake.send_modify(|n| *n += 1);
                loop {
                    tokio::select! {
                        n = listener.recv() => match n {
                            Ok(_) => wake.send_modify(|n| *n += 1),
                            Err(e) => {
                                tracing::debug!("{}: no notifications: {e}", publisher.name);
                                break;
                            }
                        },
                        _ = stopped(&mut stop) => return,
                    }
                }
            }
            Ok(None) => return,
            Err(e) => tracing::debug!(
                "{}: no notifications: {}",
                publisher.name,
                crate::describe(&e)
            ),
        }
        if pause(&mut stop, backoff.next_wait()).await {
            return;
        }
    }
}
