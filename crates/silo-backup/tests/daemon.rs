//! The backup daemon on real SQLite backups, its time from a
//! [`FakeClock`]: no test waits for a schedule. Every wait is for an event,
//! with a bound.

mod daemon_support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use daemon_support::Project;
use silo_backup::BackupError;
use silo_backup::daemon::{Daemon, Event, ProjectWork, Summary, Work};
use silo_backup::meta::{BackupId, BackupMeta};
use silo_backup::prune::Pruned;
use silo_backup::restore::Restored;
use silo_backup::schedule::{FakeClock, slot_after};
use silo_manifest::Service;
use time::{Duration, OffsetDateTime};
use tokio::sync::{mpsc, oneshot, watch};

const BOUND: StdDuration = StdDuration::from_secs(60);

/// The events a daemon sent, read as they come.
struct Events {
    rx: mpsc::UnboundedReceiver<Event>,
    seen: Vec<Event>,
}

impl Events {
    /// The next event for which `wanted` holds; panics after [`BOUND`].
    async fn next(&mut self, wanted: impl Fn(&Event) -> bool) -> Event {
        let found = tokio::time::timeout(BOUND, async {
            loop {
                let event = self.rx.recv().await.expect("the daemon ended");
                self.seen.push(event.clone());
                if wanted(&event) {
                    return event;
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no such event within {BOUND:?}; seen: {:#?}", self.seen))
    }

    /// Everything sent, once the daemon has returned.
    fn rest(mut self) -> Vec<Event> {
        while let Ok(event) = self.rx.try_recv() {
            self.seen.push(event);
        }
        self.seen
    }
}

fn daemon_of(p: &Project) -> (Daemon, Events) {
    let (daemon, unscheduled) = Daemon::new(&p.manifest.services);
    assert!(unscheduled.is_empty(), "{unscheduled:?}");
    let (tx, rx) = mpsc::unbounded_channel();
    (
        daemon.with_events(tx),
        Events {
            rx,
            seen: Vec::new(),
        },
    )
}

fn work(p: &Project) -> ProjectWork {
    ProjectWork {
        manifest: p.manifest.clone(),
        stores: p.stores.clone(),
    }
}

fn started(service: &'static str) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Started { service: s, .. } if s == service)
}

fn succeeded(service: &'static str) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Succeeded { service: s, .. } if s == service)
}

/// A stop signal and the future a daemon waits on for it.
fn stopper() -> (oneshot::Sender<()>, impl Future<Output = ()>) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

fn floor_hour(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_minute(0)
        .unwrap()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap()
}

#[tokio::test]
async fn after_downtime_one_catch_up_then_back_on_schedule() {
    let p =
        Project::new("[services.orders.backup]\nschedule = \"0 * * * *\"\n[services.billing]\n")
            .await;
    let (daemon, unscheduled) = Daemon::new(&p.manifest.services);
    assert_eq!(unscheduled, ["billing"], "no schedule, no daemon backups");
    assert_eq!(daemon.services(), ["orders"]);
    let (tx, rx) = mpsc::unbounded_channel();
    let daemon = daemon.with_events(tx);
    let mut events = Events {
        rx,
        seen: Vec::new(),
    };

    // The last backup was taken in hour H; the daemon comes back at
    // H+5:30, after the slots of H+1 to H+5 passed.
    let last = p.backup("orders").await.unwrap();
    let hour = floor_hour(last.started_at);
    let start = hour + Duration::minutes(5 * 60 + 30);
    let clock = FakeClock::new(start);
    let work = work(&p);
    let (stop, stopped) = stopper();
    let drive = async {
        let first = events.next(started("orders")).await;
        assert_eq!(
            first,
            Event::Started {
                service: "orders".into(),
                at: start,
                slot: hour + Duration::hours(5),
                skipped: 4,
            },
            "one backup at once for the five missed slots"
        );
        let second = events.next(started("orders")).await;
        assert_eq!(
            second,
            Event::Started {
                service: "orders".into(),
                at: hour + Duration::hours(6),
                slot: hour + Duration::hours(6),
                skipped: 0,
            },
            "then the next slot, on time"
        );
        stop.send(()).unwrap();
    };
    let (summary, ()) = tokio::join!(daemon.run(&work, &clock, stopped), drive);
    assert_eq!(summary, Summary { abandoned: vec![] });
    let seen = events.rest();
    let first_two: Vec<&Event> = seen
        .iter()
        .take_while(|e| !matches!(e, Event::Started { skipped: 0, .. }))
        .filter(|e| succeeded("orders")(e))
        .collect();
    assert_eq!(first_two.len(), 1, "{seen:#?}");
    assert!(daemon.metrics().get("orders").successes >= 1);
}

/// Real work, each backup held until the gate opens, counting the backups
/// in flight.
struct Gated {
    inner: ProjectWork,
    gate: watch::Receiver<bool>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    now: HashMap<String, u32>,
    most: HashMap<String, u32>,
    total: u32,
    most_total: u32,
}

impl Gated {
    fn new(inner: ProjectWork) -> (Self, watch::Sender<bool>) {
        let (open, gate) = watch::channel(false);
        let gated = Gated {
            inner,
            gate,
            counts: Mutex::new(Counts::default()),
        };
        (gated, open)
    }

    fn in_flight(&self) -> u32 {
        self.counts.lock().unwrap().total
    }
}

#[async_trait::async_trait]
impl Work for Gated {
    async fn newest(&self, service: &Service) -> Result<Option<BackupMeta>, BackupError> {
        self.inner.newest(service).await
    }

    async fn backup(&self, service: &Service) -> Result<BackupMeta, BackupError> {
        {
            let mut c = self.counts.lock().unwrap();
            let now = c.now.entry(service.name.clone()).or_default();
            *now += 1;
            let now = *now;
            let most = c.most.entry(service.name.clone()).or_default();
            *most = (*most).max(now);
            c.total += 1;
            c.most_total = c.most_total.max(c.total);
        }
        let mut gate = self.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
        let result = self.inner.backup(service).await;
        let mut c = self.counts.lock().unwrap();
        *c.now.get_mut(&service.name).unwrap() -= 1;
        c.total -= 1;
        result
    }

    async fn prune(&self, service: &Service, now: OffsetDateTime) -> Result<Pruned, BackupError> {
        self.inner.prune(service, now).await
    }

    async fn verify(&self, service: &Service, id: &BackupId) -> Result<Restored, BackupError> {
        self.inner.verify(service, id).await
    }
}

/// Polls `ok` until it holds; panics after [`BOUND`].
async fn until(what: &str, ok: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + BOUND;
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn one_backup_at_a_time_per_service_and_services_at_once() {
    let p = Project::new(
        "[services.orders.backup]\nschedule = \"0 * * * *\"\n\
         [services.billing.backup]\nschedule = \"0 * * * *\"\n",
    )
    .await;
    let (daemon, mut events) = daemon_of(&p);
    let start = OffsetDateTime::now_utc();
    let clock = FakeClock::new(start);
    let (work, open) = Gated::new(work(&p));
    let (stop, stopped) = stopper();
    let drive = async {
        // Never backed up: both are due at once, and both run together.
        events.next(started("orders")).await;
        events.next(started("billing")).await;
        until("both backups in flight", || work.in_flight() == 2).await;
        // Three hours pass while they run: the slots of those hours do
        // not start second backups beside them...
        clock.advance(Duration::hours(3));
        open.send(true).unwrap();
        // ...but one catch-up each once they are done.
        let mut second: HashMap<String, Event> = HashMap::new();
        while second.len() < 2 {
            let next = events.next(|e| matches!(e, Event::Started { .. })).await;
            let Event::Started { service, .. } = &next else {
                unreachable!()
            };
            second.entry(service.clone()).or_insert(next);
        }
        for next in second.values() {
            let Event::Started { at, skipped, .. } = next else {
                unreachable!()
            };
            assert!(*at >= start + Duration::hours(3), "{next:?}");
            assert!(*skipped >= 2, "{next:?}");
        }
        stop.send(()).unwrap();
    };
    let (summary, ()) = tokio::join!(daemon.run(&work, &clock, stopped), drive);
    assert!(summary.abandoned.is_empty());
    let c = work.counts.lock().unwrap();
    assert_eq!(c.most["orders"], 1, "never two backups of one service");
    assert_eq!(c.most["billing"], 1, "never two backups of one service");
    assert_eq!(c.most_total, 2, "services back up at once");
    drop(c);
    let seen = events.rest();
    for service in ["orders", "billing"] {
        // Between the first and the second start of a service: exactly one
        // backup, not one per missed slot.
        let runs: Vec<&Event> = seen.iter().filter(|e| started(service)(e)).collect();
        assert!(runs.len() >= 2);
        let before_second = seen
            .iter()
            .take_while(|e| !std::ptr::eq(*e, runs[1]))
            .filter(|e| succeeded(service)(e))
            .count();
        assert_eq!(before_second, 1, "{service}: {seen:#?}");
    }
}

#[tokio::test]
async fn each_backup_is_followed_by_a_prune() {
    let p = Project::new("[services.orders.backup]\nschedule = \"* * * * *\"\nkeep = 2\n").await;
    let (daemon, mut events) = daemon_of(&p);
    let clock = FakeClock::new(OffsetDateTime::now_utc());
    let work = work(&p);
    let (stop, stopped) = stopper();
    let drive = async {
        let mut ids = Vec::new();
        let mut pruned = Vec::new();
        for _ in 0..4 {
            let Event::Succeeded { id, .. } = events.next(succeeded("orders")).await else {
                unreachable!()
            };
            ids.push(id);
            let next = events
                .next(|e| {
                    matches!(
                        e,
                        Event::Pruned { .. } | Event::PruneFailed { .. } | Event::Started { .. }
                    )
                })
                .await;
            let Event::Pruned { deleted, .. } = next else {
                panic!("a backup not followed by a prune: {next:?}");
            };
            pruned.push(deleted);
        }
        stop.send(()).unwrap();
        (ids, pruned)
    };
    let (summary, (ids, pruned)) = tokio::join!(daemon.run(&work, &clock, stopped), drive);
    assert!(summary.abandoned.is_empty());
    assert_eq!(
        pruned,
        [vec![], vec![], vec![ids[0].clone()], vec![ids[1].clone()]],
        "keep = 2: each prune deletes the backup that fell out"
    );
    let listed = p.listed("orders").await;
    assert!(!listed.contains(&ids[0].to_string()));
    assert!(!listed.contains(&ids[1].to_string()));
    assert!(listed.contains(&ids[3].to_string()));
}

#[tokio::test]
async fn every_nth_backup_is_restore_drilled() {
    let p = Project::new("[services.orders.backup]\nschedule = \"* * * * *\"\nverify_every = 2\n")
        .await;
    let (daemon, mut events) = daemon_of(&p);
    let clock = FakeClock::new(OffsetDateTime::now_utc());
    let work = work(&p);
    let (stop, stopped) = stopper();
    let drive = async {
        let mut seen = Vec::new();
        while seen.len() < 6 {
            let e = events
                .next(|e| {
                    matches!(
                        e,
                        Event::Succeeded { .. }
                            | Event::Verified { .. }
                            | Event::VerifyFailed { .. }
                    )
                })
                .await;
            seen.push(e);
        }
        stop.send(()).unwrap();
        seen
    };
    let (_, seen) = tokio::join!(daemon.run(&work, &clock, stopped), drive);
    let id = |i: usize| match &seen[i] {
        Event::Succeeded { id, .. } => id.clone(),
        other => panic!("expected a backup at {i}: {seen:#?} ({other:?})"),
    };
    let verified = |i: usize| Event::Verified {
        service: "orders".into(),
        id: id(i),
    };
    assert_eq!(
        seen[2],
        verified(1),
        "the second backup is drilled: {seen:#?}"
    );
    assert_eq!(seen[5], verified(4), "and the fourth: {seen:#?}");
    id(0);
    id(3);
    assert_eq!(daemon.metrics().get("orders").verifications, 2);
}

#[tokio::test]
async fn a_failed_backup_is_counted_and_retried_at_the_next_slot() {
    let p = Project::new("[services.orders.backup]\nschedule = \"* * * * *\"\n").await;
    // A file where the destination's folder goes: backups fail.
    let blocked = p.destination_dir("orders");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, b"not a folder").unwrap();
    let schedule = p
        .service("orders")
        .backup
        .as_ref()
        .unwrap()
        .schedule
        .clone()
        .unwrap();
    let (daemon, mut events) = daemon_of(&p);
    let clock = FakeClock::new(OffsetDateTime::now_utc());
    let work = work(&p);
    let (stop, stopped) = stopper();
    let drive = async {
        events
            .next(|e| matches!(e, Event::Failed { service, .. } if service == "orders"))
            .await;
        std::fs::remove_file(&blocked).unwrap();
        events.next(succeeded("orders")).await;
        stop.send(()).unwrap();
    };
    let (summary, ()) = tokio::join!(daemon.run(&work, &clock, stopped), drive);
    assert!(summary.abandoned.is_empty());
    let seen = events.rest();
    let failures = seen
        .iter()
        .filter(|e| matches!(e, Event::Failed { .. }))
        .count();
    assert!(failures >= 1);
    let figures = daemon.metrics().get("orders");
    assert_eq!(figures.failures, failures as u64);
    assert!(figures.successes >= 1);
    assert!(figures.last_success.is_some());
    // Every run after a failure waited for the next slot.
    let starts: Vec<OffsetDateTime> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Started { at, .. } => Some(*at),
            _ => None,
        })
        .collect();
    assert!(starts.len() >= 2, "{seen:#?}");
    for pair in starts.windows(2) {
        assert_eq!(
            pair[1],
            slot_after(&schedule, pair[0]).unwrap(),
            "{seen:#?}"
        );
    }
}

#[tokio::test]
async fn a_stop_waits_for_the_running_backup() {
    let p = Project::new("[services.orders.backup]\nschedule = \"0 * * * *\"\nkeep = 1\n").await;
    let (daemon, mut events) = daemon_of(&p);
    let clock = FakeClock::new(OffsetDateTime::now_utc());
    let (work, open) = Gated::new(work(&p));
    let (stop, stopped) = stopper();
    let drive = async {
        events.next(started("orders")).await;
        until("the backup in flight", || work.in_flight() == 1).await;
        stop.send(()).unwrap();
        let stopping = events.next(|e| matches!(e, Event::Stopping { .. })).await;
        assert_eq!(
            stopping,
            Event::Stopping {
                running: vec!["orders".into()]
            }
        );
        open.send(true).unwrap();
    };
    let (summary, ()) = tokio::join!(daemon.run(&work, &clock, stopped), drive);
    assert_eq!(summary, Summary { abandoned: vec![] });
    let seen = events.rest();
    let after_stop: Vec<&Event> = seen
        .iter()
        .skip_while(|e| !matches!(e, Event::Stopping { .. }))
        .collect();
    assert!(
        matches!(after_stop[1], Event::Succeeded { .. }),
        "the running backup finished: {seen:#?}"
    );
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Pruned { .. })),
        "nothing after it: {seen:#?}"
    );
    assert_eq!(
        seen.iter().filter(|e| started("orders")(e)).count(),
        1,
        "no backup starts once stopping"
    );
    assert_eq!(p.listed("orders").await.len(), 1);
}

#[tokio::test]
async fn a_stop_abandons_a_backup_that_outlasts_the_timeout() {
    let p = Project::new("[services.orders.backup]\nschedule = \"0 * * * *\"\n").await;
    let (mut daemon, mut events) = daemon_of(&p);
    daemon.stop_timeout = StdDuration::from_millis(200);
    let clock = FakeClock::new(OffsetDateTime::now_utc());
    // The gate never opens: the backup never finishes.
    let (work, _open) = Gated::new(work(&p));
    let (stop, stopped) = stopper();
    let drive = async {
        events.next(started("orders")).await;
        until("the backup in flight", || work.in_flight() == 1).await;
        stop.send(()).unwrap();
    };
    let (summary, ()) = tokio::join!(daemon.run(&work, &clock, stopped), drive);
    assert_eq!(
        summary,
        Summary {
            abandoned: vec!["orders".into()]
        }
    );
    assert!(!daemon.metrics().get("orders").running);
    assert!(
        p.listed("orders").await.is_empty(),
        "an abandoned backup is no backup"
    );
    // The next run starts clean.
    p.backup("orders").await.unwrap();
    assert_eq!(p.listed("orders").await.len(), 1);
}
