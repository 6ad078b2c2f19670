//! `silo backup daemon`: every scheduled service backed up on its own
//! schedule, pruned after each backup, and restore-drilled every N backups,
//! until stopped.
//!
//! The rules:
//! - One loop per service, all running at once (at most
//!   [`Daemon::concurrency`] backups at a time across services); a loop
//!   runs its service's backups one after the other, so a service never
//!   has two backups running.
//! - The schedule is [`crate::schedule::next_due`]'s: the first run after
//!   start counts from the newest backup at the destination, so a daemon
//!   that was down catches up once, at start, for all the slots it missed.
//! - A failed backup is logged and counted and the service waits for its
//!   next slot (no retry storm against a server that is down); a failure
//!   never ends the daemon.
//! - After each backup: a prune of the service's destination, and, every
//!   `verify_every` backups, a restore drill of the backup just taken.
//! - Stopping: no new backup starts; a backup running (or the prune or
//!   drill after it) is waited for up to [`Daemon::stop_timeout`], then
//!   abandoned. An abandoned backup never
//!   shows up as one (its `meta.json` is never written); its uploaded
//!   files are a leftover the next prune removes after a day.
//!
//! What runs is behind [`Work`] and when behind [`Clock`]: the daemon's
//! logic is tested with real backups and a [`crate::schedule::FakeClock`],
//! without waiting for any schedule.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use silo_manifest::{BackupSchedule, Manifest, Service};
use silo_store::Stores;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::BackupError;
use crate::backup::{self, Request};
use crate::destination::Destination;
use crate::meta::{BackupId, BackupMeta};
use crate::metrics::Metrics;
use crate::prune::{self, Pruned};
use crate::restore::{self, Restored};
use crate::retention::Rules;
use crate::schedule::{Clock, next_due};

/// What the daemon does for a service; [`ProjectWork`] does it for real.
#[async_trait::async_trait]
pub trait Work: Send + Sync {
    /// The newest complete backup of `service`, if any.
    async fn newest(&self, service: &Service) -> Result<Option<BackupMeta>, BackupError>;
    /// Takes a backup of `service`.
    async fn backup(&self, service: &Service) -> Result<BackupMeta, BackupError>;
    /// Prunes `service`'s destination as of `now`.
    async fn prune(&self, service: &Service, now: OffsetDateTime) -> Result<Pruned, BackupError>;
    /// Restore-drills backup `id` of `service`.
    async fn verify(&self, service: &Service, id: &BackupId) -> Result<Restored, BackupError>;
}

/// The real work on a project's stores and destinations.
pub struct ProjectWork {
    pub manifest: Arc<Manifest>,
    pub stores: Arc<Stores>,
}

impl ProjectWork {
    fn staging_root(&self) -> PathBuf {
        self.manifest.data_dir.join("backups").join(".staging")
    }
}

#[async_trait::async_trait]
impl Work for ProjectWork {
    async fn newest(&self, service: &Service) -> Result<Option<BackupMeta>, BackupError> {
        let destination = Destination::of(&self.manifest, &service.name)?;
        let listing = destination.list().await?;
        Ok(listing.backups.into_iter().max_by(|a, b| {
            a.started_at
                .cmp(&b.started_at)
                .then_with(|| a.id.cmp(&b.id))
        }))
    }

    async fn backup(&self, service: &Service) -> Result<BackupMeta, BackupError> {
        let destination = Destination::of(&self.manifest, &service.name)?;
        let staging = self.staging_root();
        let request = Request {
            project: &self.manifest.project,
            reason: "scheduled",
            staging_root: &staging,
        };
        backup::take(&self.stores, service, &destination, &request).await
    }

    async fn prune(&self, service: &Service, now: OffsetDateTime) -> Result<Pruned, BackupError> {
        let destination = Destination::of(&self.manifest, &service.name)?;
        let staging = self.staging_root();
        let options = prune::Options {
            rules: Rules::of(service.backup.as_ref()),
            now,
            dry_run: false,
            staging_root: &staging,
        };
        prune::prune(&destination, &options).await
    }

    async fn verify(&self, service: &Service, id: &BackupId) -> Result<Restored, BackupError> {
        let destination = Destination::of(&self.manifest, &service.name)?;
        restore::verify(
            &self.stores,
            service,
            &destination,
            Some(id.clone()),
            &self.manifest.data_dir,
        )
        .await
    }
}

/// Something the daemon did, as it happens (also logged): for a caller
/// that watches, such as a test.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A backup started, for `slot`; `skipped` earlier slots passed
    /// without one (a catch-up when more than 0).
    Started {
        service: String,
        at: OffsetDateTime,
        slot: OffsetDateTime,
        skipped: u32,
    },
    Succeeded {
        service: String,
        id: BackupId,
        size_bytes: u64,
    },
    Failed {
        service: String,
        error: String,
    },
    Pruned {
        service: String,
        deleted: Vec<BackupId>,
        leftovers: usize,
        freed_bytes: u64,
    },
    PruneFailed {
        service: String,
        error: String,
    },
    Verified {
        service: String,
        id: BackupId,
    },
    VerifyFailed {
        service: String,
        id: BackupId,
        error: String,
    },
    /// The daemon was told to stop; backups of `running` are waited for.
    Stopping {
        running: Vec<String>,
    },
    /// The service's loop ended: the daemon is stopping, or its schedule
    /// has no next run.
    Ended {
        service: String,
    },
}

/// How a daemon run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Services whose running backup (or the prune or restore drill after
    /// it) was abandoned at the stop timeout.
    pub abandoned: Vec<String>,
}

/// One scheduled service.
#[derive(Debug, Clone)]
struct Scheduled {
    service: Service,
    schedule: BackupSchedule,
    verify_every: Option<u32>,
}

/// The daemon of a set of services.
pub struct Daemon {
    services: Vec<Scheduled>,
    /// The most backups running at once across services.
    pub concurrency: usize,
    /// How long a stop waits for running backups.
    pub stop_timeout: Duration,
    metrics: Metrics,
    events: Option<mpsc::UnboundedSender<Event>>,
    /// What each service is doing now (`backup`, `prune`, `restore
    /// drill`), to say what a stop waits for or abandons.
    busy: std::sync::Mutex<std::collections::BTreeMap<String, &'static str>>,
}

impl Daemon {
    /// A daemon of `services`; those without a `schedule` are not
    /// scheduled (and returned second, by name).
    pub fn new<'a>(services: impl IntoIterator<Item = &'a Service>) -> (Self, Vec<String>) {
        let mut scheduled = Vec::new();
        let mut unscheduled = Vec::new();
        for service in services {
            let policy = service.backup.as_ref();
            match policy.and_then(|p| p.schedule.clone()) {
                Some(schedule) => scheduled.push(Scheduled {
                    service: service.clone(),
                    schedule,
                    verify_every: policy.and_then(|p| p.verify_every),
                }),
                None => unscheduled.push(service.name.clone()),
            }
        }
        let daemon = Daemon {
            services: scheduled,
            concurrency: 4,
            stop_timeout: Duration::from_secs(60),
            metrics: Metrics::new(),
            events: None,
            busy: Default::default(),
        };
        (daemon, unscheduled)
    }

    /// The scheduled services, by name.
    pub fn services(&self) -> Vec<&str> {
        self.services
            .iter()
            .map(|s| s.service.name.as_str())
            .collect()
    }

    /// The figures the daemon keeps (serve them with
    /// [`crate::metrics::serve`]).
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Sends every [`Event`] to `events` too.
    pub fn with_events(mut self, events: mpsc::UnboundedSender<Event>) -> Self {
        self.events = Some(events);
        self
    }

    /// Runs every service's schedule until `stop` completes, then waits
    /// for running backups up to the stop timeout.
    pub async fn run(
        &self,
        work: &dyn Work,
        clock: &dyn Clock,
        stop: impl Future<Output = ()>,
    ) -> Summary {
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Semaphore::new(self.concurrency.max(1));
        let loops = futures::future::join_all(
            self.services
                .iter()
                .map(|s| self.service_loop(s, work, clock, &permits, stop_rx.clone())),
        );
        tokio::pin!(loops);
        tokio::pin!(stop);
        tokio::select! {
            _ = &mut loops => return Summary { abandoned: Vec::new() },
            _ = &mut stop => {}
        }
        let running: Vec<String> = self.busy().keys().cloned().collect();
        self.emit(Event::Stopping {
            running: running.clone(),
        });
        if !running.is_empty() {
            tracing::info!(
                running = self.busy_list(),
                timeout_seconds = self.stop_timeout.as_secs_f64(),
                "stopping: waiting for the running backups"
            );
        }
        let _ = stop_tx.send(true);
        if tokio::time::timeout(self.stop_timeout, &mut loops)
            .await
            .is_ok()
        {
            return Summary {
                abandoned: Vec::new(),
            };
        }
        let abandoned: Vec<String> = self.busy().keys().cloned().collect();
        for (service, doing) in self.busy().iter() {
            if *doing == "backup" {
                tracing::warn!(
                    service,
                    "stopping: abandoned the running backup; it will not be listed, and the next prune removes its files after a day"
                );
            } else {
                tracing::warn!(service, "stopping: abandoned the running {doing}");
            }
            self.metrics.update(service, |f| f.running = false);
        }
        // Dropping the loops cancels the backups: their staging folders go
        // with them.
        Summary { abandoned }
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, &'static str>> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `orders (backup), billing (prune)`.
    fn busy_list(&self) -> String {
        self.busy()
            .iter()
            .map(|(service, doing)| format!("{service} ({doing})"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Marks `service` as doing `what` (`None`: idle).
    fn doing(&self, service: &str, what: Option<&'static str>) {
        let mut busy = self.busy();
        match what {
            Some(what) => busy.insert(service.to_string(), what),
            None => busy.remove(service),
        };
    }

    fn emit(&self, event: Event) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    /// One service's schedule, until stopped.
    async fn service_loop(
        &self,
        s: &Scheduled,
        work: &dyn Work,
        clock: &dyn Clock,
        permits: &Semaphore,
        mut stop: watch::Receiver<bool>,
    ) {
        let name = s.service.name.as_str();
        let mut last = match work.newest(&s.service).await {
            Ok(newest) => {
                if let Some(meta) = &newest {
                    self.metrics
                        .update(name, |f| f.last_success = Some(meta.finished_at));
                }
                newest.map(|m| m.started_at)
            }
            Err(e) => {
                // The schedule starts as for a service never backed up:
                // a backup at once, which says more than this error.
                tracing::warn!(service = name, error = %e, "cannot list the service's backups");
                None
            }
        };
        self.metrics.update(name, |_| {});
        let mut taken: u64 = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            let due = match next_due(&s.schedule, last, clock.now()) {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(service = name, error = %e, "the schedule has no next run; this service is no longer backed up");
                    break;
                }
            };
            self.metrics.update(name, |f| f.next_run = Some(due.at));
            tokio::select! {
                _ = clock.sleep_until(due.at) => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
            let _permit = tokio::select! {
                permit = permits.acquire() => permit,
                _ = stop.wait_for(|stopped| *stopped) => break,
            };
            if *stop.borrow() {
                break;
            }
            let at = clock.now();
            // Recorded whether the backup works or not: a failure waits
            // for the next slot.
            last = Some(at);
            if due.skipped > 0 {
                tracing::info!(
                    service = name,
                    slot = %due.slot,
                    missed = due.skipped,
                    "catching up: one backup for the slots missed while the daemon was down or busy"
                );
            }
            self.metrics.update(name, |f| f.running = true);
            self.doing(name, Some("backup"));
            self.emit(Event::Started {
                service: name.to_string(),
                at,
                slot: due.slot,
                skipped: due.skipped,
            });
            let result = self.one_backup(s, work).await;
            self.doing(name, None);
            let Some(meta) = result else {
                continue;
            };
            taken += 1;
            if *stop.borrow() {
                // Stopping: the backup is done; prune and drill wait for
                // the next run.
                break;
            }
            self.after_backup(s, work, clock, &meta, taken).await;
            self.doing(name, None);
        }
        self.metrics.update(name, |f| f.next_run = None);
        self.emit(Event::Ended {
            service: name.to_string(),
        });
    }

    /// Takes one backup (marked running by the caller), logging and
    /// counting how it went.
    async fn one_backup(&self, s: &Scheduled, work: &dyn Work) -> Option<BackupMeta> {
        let name = s.service.name.as_str();
        tracing::info!(service = name, "backup started");
        let started = Instant::now();
        let result = work.backup(&s.service).await;
        let took = started.elapsed().as_secs_f64();
        match result {
            Ok(meta) => {
                self.metrics.update(name, |f| {
                    f.running = false;
                    f.successes += 1;
                    f.last_success = Some(meta.finished_at);
                    f.last_duration_seconds = Some(took);
                    f.last_size_bytes = Some(meta.size_bytes);
                });
                tracing::info!(
                    service = name,
                    backup = %meta.id,
                    size_bytes = meta.size_bytes,
                    seconds = took,
                    "backup taken"
                );
                self.emit(Event::Succeeded {
                    service: name.to_string(),
                    id: meta.id.clone(),
                    size_bytes: meta.size_bytes,
                });
                Some(meta)
            }
            Err(e) => {
                self.metrics.update(name, |f| {
                    f.running = false;
                    f.failures += 1;
                });
                tracing::error!(
                    service = name,
                    error = %e,
                    seconds = took,
                    "backup failed; retried at the next slot"
                );
                self.emit(Event::Failed {
                    service: name.to_string(),
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// The prune after a backup and, every `verify_every` backups, the
    /// restore drill of the one just taken.
    async fn after_backup(
        &self,
        s: &Scheduled,
        work: &dyn Work,
        clock: &dyn Clock,
        meta: &BackupMeta,
        taken: u64,
    ) {
        let name = s.service.name.as_str();
        self.doing(name, Some("prune"));
        match work.prune(&s.service, clock.now()).await {
            Ok(pruned) => {
                let deleted: Vec<BackupId> = pruned.plan.deleted().map(|b| b.id.clone()).collect();
                if !deleted.is_empty() || !pruned.plan.leftovers.is_empty() {
                    tracing::info!(
                        service = name,
                        backups = deleted.len(),
                        leftovers = pruned.plan.leftovers.len(),
                        freed_bytes = pruned.freed_bytes(),
                        "pruned"
                    );
                }
                for (id, why) in &pruned.damaged {
                    tracing::warn!(service = name, backup = id, problem = why, "damaged backup");
                }
                self.emit(Event::Pruned {
                    service: name.to_string(),
                    deleted,
                    leftovers: pruned.plan.leftovers.len(),
                    freed_bytes: pruned.freed_bytes(),
                });
            }
            Err(e) => {
                self.metrics.update(name, |f| f.prune_failures += 1);
                tracing::error!(service = name, error = %e, "prune failed; tried again after the next backup");
                self.emit(Event::PruneFailed {
                    service: name.to_string(),
                    error: e.to_string(),
                });
            }
        }
        let Some(every) = s.verify_every else {
            return;
        };
        if !taken.is_multiple_of(u64::from(every.max(1))) {
            return;
        }
        self.doing(name, Some("restore drill"));
        match work.verify(&s.service, &meta.id).await {
            Ok(_) => {
                self.metrics.update(name, |f| f.verifications += 1);
                tracing::info!(service = name, backup = %meta.id, "restore drill passed");
                self.emit(Event::Verified {
                    service: name.to_string(),
                    id: meta.id.clone(),
                });
            }
            Err(e) => {
                self.metrics.update(name, |f| f.verify_failures += 1);
                tracing::error!(service = name, backup = %meta.id, error = %e, "restore drill failed");
                self.emit(Event::VerifyFailed {
                    service: name.to_string(),
                    id: meta.id.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
}
