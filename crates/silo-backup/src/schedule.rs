//! When a service's next backup is due: a pure function of its schedule,
//! its last backup and the time, plus the [`Clock`] a daemon reads the
//! time from and sleeps on.
//!
//! A daemon's loop per service is:
//!
//! ```text
//! loop {
//!     let due = next_due(&schedule, last, clock.now())?;
//!     clock.sleep_until(due.at).await;
//!     last = Some(clock.now());   // recorded whether the backup works or not
//!     run the backup, prune, maybe verify;
//! }
//! ```
//!
//! with [`SystemClock`] in production and [`FakeClock`] in tests, whose
//! sleeps move its time forward at once: no test waits for a schedule.
//!
//! The rules:
//! - The next run is the first slot of the cron expression after the last
//!   backup started, read in the schedule's time zone.
//! - When that slot has passed (the daemon was down, or a backup ran past
//!   its next slot), the backup is due now, once, however many slots were
//!   missed: the run covers the most recent of them, and the next one
//!   after it is back on the schedule. Ten missed 4-hourly slots are one
//!   catch-up backup, not ten.
//! - A service never backed up is due now.
//! - A last backup after `now` (the clock was set back) counts as taken
//!   now, so the schedule goes on from the next slot.
//! - Daylight saving time follows croner's rules (the Open Cron Pattern
//!   Specification): a fixed time that a clock change skips (02:30 on the
//!   night clocks go forward) runs at the first instant after the gap, and
//!   one that a clock change repeats (02:30 on the night they go back)
//!   runs once, the first time.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use miette::Diagnostic;
use silo_manifest::BackupSchedule;
use time::{Duration, OffsetDateTime};

/// The most missed slots [`next_due`] counts: past it, the count says "at
/// least this many" (a minutely schedule down for a year would otherwise
/// be walked slot by slot).
pub const MAX_COUNTED: u32 = 1000;

/// The next backup of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// When to start it: a future slot, or now for a backup already due.
    pub at: OffsetDateTime,
    /// The slot it stands for: `at` itself when on time, the most recent
    /// passed slot when caught up.
    pub slot: OffsetDateTime,
    /// Earlier slots that passed without a backup and that this one makes
    /// up for (0 when on time; at most [`MAX_COUNTED`]).
    pub skipped: u32,
}

impl Due {
    /// Whether the backup is due now rather than at a future slot.
    pub fn is_now(&self, now: OffsetDateTime) -> bool {
        self.at <= now
    }
}

/// A schedule that has no next slot (past the year 5000, or a pattern only
/// croner's own search gives up on).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("the backup schedule `{schedule}` has no run after {after}: {reason}")]
#[diagnostic(
    code(silo::backup::schedule),
    help(
        "check the service's `schedule` in silo.toml (`silo backup list` shows each service's next run)"
    )
)]
pub struct ScheduleError {
    pub schedule: String,
    pub after: OffsetDateTime,
    pub reason: String,
}

/// When the backup of a service on `schedule`, whose last backup started
/// at `last` (`None`: never), is due, as seen at `now`.
pub fn next_due(
    schedule: &BackupSchedule,
    last: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Due, ScheduleError> {
    let Some(last) = last else {
        return Ok(Due {
            at: now,
            slot: now,
            skipped: 0,
        });
    };
    // A last backup "in the future" means the clock was set back: counting
    // from it would skip every slot until the clock catches up.
    let first = slot_after(schedule, last.min(now))?;
    if first > now {
        return Ok(Due {
            at: first,
            slot: first,
            skipped: 0,
        });
    }
    // Walk the passed slots to the most recent one, counting them.
    let mut latest = first;
    let mut skipped = 0;
    while skipped < MAX_COUNTED {
        let next = slot_after(schedule, latest)?;
        if next > now {
            break;
        }
        latest = next;
        skipped += 1;
    }
    if skipped == MAX_COUNTED {
        // Too many to walk: the most recent slot is found backwards.
        latest = slot_at_or_before(schedule, now).unwrap_or(latest);
    }
    Ok(Due {
        at: now,
        slot: latest,
        skipped,
    })
}

/// The first slot of `schedule` strictly after `after`.
pub fn slot_after(
    schedule: &BackupSchedule,
    after: OffsetDateTime,
) -> Result<OffsetDateTime, ScheduleError> {
    let zoned = to_chrono(after).with_timezone(&schedule.timezone());
    schedule
        .cron()
        .find_next_occurrence(&zoned, false)
        .map(|next| from_chrono(next.with_timezone(&Utc)))
        .map_err(|e| ScheduleError {
            schedule: schedule.to_string(),
            after,
            reason: e.to_string(),
        })
}

fn slot_at_or_before(schedule: &BackupSchedule, at: OffsetDateTime) -> Option<OffsetDateTime> {
    let zoned = to_chrono(at).with_timezone(&schedule.timezone());
    schedule
        .cron()
        .find_previous_occurrence(&zoned, true)
        .ok()
        .map(|previous| from_chrono(previous.with_timezone(&Utc)))
}

fn to_chrono(t: OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
        .expect("a time silo handles is within chrono's range")
}

fn from_chrono(t: DateTime<Utc>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).expect("a cron slot is within time's range")
        + Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

/// Where a daemon reads the time and waits: the system's, or a fake one
/// that tests move by hand.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> OffsetDateTime;

    /// Returns once [`Clock::now`] has reached `deadline` (at once when it
    /// has).
    async fn sleep_until(&self, deadline: OffsetDateTime);
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The longest single sleep of [`SystemClock::sleep_until`]: the wall
/// clock is read again after it, so that a machine that was suspended, or
/// whose clock was set, wakes at the slot's wall-clock time and not hours
/// after it (a sleep counts monotonic time, which a suspended machine does
/// not accumulate).
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    async fn sleep_until(&self, deadline: OffsetDateTime) {
        loop {
            let left = deadline - self.now();
            if left <= Duration::ZERO {
                return;
            }
            let left = std::time::Duration::try_from(left).unwrap_or(MAX_SLEEP);
            tokio::time::sleep(left.min(MAX_SLEEP)).await;
        }
    }
}

/// A clock for tests: it starts at a given time, moves only when told
/// ([`FakeClock::advance`], [`FakeClock::set`]), and a sleep jumps it to
/// the deadline at once. Clones share one time.
#[derive(Debug, Clone)]
pub struct FakeClock {
    state: Arc<Mutex<FakeState>>,
}

#[derive(Debug)]
struct FakeState {
    now: OffsetDateTime,
    sleeps: Vec<OffsetDateTime>,
}

impl FakeClock {
    pub fn new(start: OffsetDateTime) -> Self {
        FakeClock {
            state: Arc::new(Mutex::new(FakeState {
                now: start,
                sleeps: Vec::new(),
            })),
        }
    }

    /// Moves the time forward by `by` (a daemon that was down, or a
    /// backup that took that long).
    pub fn advance(&self, by: Duration) {
        self.state().now += by;
    }

    /// Sets the time, forward or back (a clock set by hand or by NTP).
    pub fn set(&self, to: OffsetDateTime) {
        self.state().now = to;
    }

    /// The deadlines slept until so far, in order.
    pub fn sleeps(&self) -> Vec<OffsetDateTime> {
        self.state().sleeps.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        // A test that panicked while holding the lock has failed anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Clock for FakeClock {
    fn now(&self) -> OffsetDateTime {
        self.state().now
    }

    async fn sleep_until(&self, deadline: OffsetDateTime) {
        {
            let mut state = self.state();
            state.sleeps.push(deadline);
            if deadline > state.now {
                state.now = deadline;
            }
        }
        // Lets other tasks run, as a real sleep would.
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn schedule(cron: &str, zone: Option<&str>) -> BackupSchedule {
        BackupSchedule::parse(cron, zone).unwrap()
    }

    #[test]
    fn the_next_slot_after_the_last_backup() {
        let every_4h = schedule("0 */4 * * *", None);
        let last = datetime!(2026-11-28 04:00:02 UTC);
        let due = next_due(&every_4h, Some(last), datetime!(2026-11-28 05:30 UTC)).unwrap();
        assert_eq!(
            due,
            Due {
                at: datetime!(2026-11-28 08:00 UTC),
                slot: datetime!(2026-11-28 08:00 UTC),
                skipped: 0
            }
        );
        assert!(!due.is_now(datetime!(2026-11-28 05:30 UTC)));
    }

    #[test]
    fn a_slot_reached_exactly_is_due_and_on_time() {
        let every_4h = schedule("0 */4 * * *", None);
        let now = datetime!(2026-11-28 08:00 UTC);
        let due = next_due(&every_4h, Some(datetime!(2026-11-28 04:00 UTC)), now).unwrap();
        assert_eq!((due.at, due.slot, due.skipped), (now, now, 0));
        assert!(due.is_now(now));
    }

    #[test]
    fn a_clock_set_back_does_not_skip_slots() {
        let every_4h = schedule("0 */4 * * *", None);
        // The last backup says tomorrow: the clock was a day ahead then.
        let last = datetime!(2026-11-29 04:00 UTC);
        let now = datetime!(2026-11-28 05:00 UTC);
        let due = next_due(&every_4h, Some(last), now).unwrap();
        assert_eq!(due.at, datetime!(2026-11-28 08:00 UTC));
    }

    #[test]
    fn never_backed_up_is_due_now() {
        let daily = schedule("@daily", None);
        let now = datetime!(2026-11-28 13:14 UTC);
        let due = next_due(&daily, None, now).unwrap();
        assert_eq!(due.at, now);
        assert_eq!(due.skipped, 0);
    }

    #[test]
    fn after_downtime_one_catch_up_for_all_the_missed_slots() {
        let every_4h = schedule("0 */4 * * *", None);
        // Last backup Monday 04:00; the daemon comes back Wednesday 10:17.
        let last = datetime!(2026-11-23 04:00 UTC);
        let now = datetime!(2026-11-25 10:17 UTC);
        let due = next_due(&every_4h, Some(last), now).unwrap();
        assert_eq!(due.at, now, "due at once");
        assert_eq!(
            due.slot,
            datetime!(2026-11-25 08:00 UTC),
            "for the latest slot"
        );
        // 08:00 Monday to 08:00 Wednesday is 13 slots: one run, 12 skipped.
        assert_eq!(due.skipped, 12);
        // Once it ran, the schedule resumes at the next slot.
        let after = next_due(&every_4h, Some(now), now + Duration::minutes(3)).unwrap();
        assert_eq!(after.at, datetime!(2026-11-25 12:00 UTC));
        assert_eq!(after.skipped, 0);
    }

    #[test]
    fn a_long_outage_is_counted_up_to_a_bound() {
        let minutely = schedule("* * * * *", None);
        let last = datetime!(2026-01-01 00:00 UTC);
        let now = datetime!(2026-11-28 10:17:30 UTC);
        let due = next_due(&minutely, Some(last), now).unwrap();
        assert_eq!(due.at, now);
        assert_eq!(due.skipped, MAX_COUNTED);
        assert_eq!(due.slot, datetime!(2026-11-28 10:17 UTC));
    }

    #[test]
    fn the_zone_sets_the_hour() {
        // 03:00 in Paris is 02:00 UTC in winter.
        let nightly = schedule("0 3 * * *", Some("Europe/Paris"));
        let due = next_due(
            &nightly,
            Some(datetime!(2026-11-27 02:00 UTC)),
            datetime!(2026-11-27 12:00 UTC),
        )
        .unwrap();
        assert_eq!(due.at, datetime!(2026-11-28 02:00 UTC));
    }

    #[test]
    fn a_time_skipped_by_the_clocks_going_forward_runs_after_the_gap() {
        // Paris went from 02:00 to 03:00 (CET to CEST) on 2026-03-29: 02:30
        // did not exist that night.
        let nightly = schedule("30 2 * * *", Some("Europe/Paris"));
        let slots = slots_from(&nightly, datetime!(2026-03-27 12:00 UTC), 4);
        assert_eq!(
            slots,
            [
                datetime!(2026-03-28 01:30 UTC), // 02:30 CET
                datetime!(2026-03-29 01:00 UTC), // 03:00 CEST, right after the gap
                datetime!(2026-03-30 00:30 UTC), // 02:30 CEST
                datetime!(2026-03-31 00:30 UTC),
            ]
        );
    }

    #[test]
    fn a_time_repeated_by_the_clocks_going_back_runs_once() {
        // Paris went from 03:00 back to 02:00 on 2026-10-25: 02:30 happened
        // twice, at 00:30 and 01:30 UTC.
        let nightly = schedule("30 2 * * *", Some("Europe/Paris"));
        let slots = slots_from(&nightly, datetime!(2026-10-23 12:00 UTC), 3);
        assert_eq!(
            slots,
            [
                datetime!(2026-10-24 00:30 UTC), // 02:30 CEST
                datetime!(2026-10-25 00:30 UTC), // the first 02:30 only
                datetime!(2026-10-26 01:30 UTC), // 02:30 CET
            ]
        );
    }

    #[test]
    fn an_hourly_schedule_keeps_its_pace_through_both_changes() {
        // New York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT
        // -> 01:00 EST. An hourly backup stays an hour apart in real time.
        let hourly = schedule("0 * * * *", Some("America/New_York"));
        for start in [
            datetime!(2026-03-08 04:30 UTC),
            datetime!(2026-11-01 03:30 UTC),
        ] {
            let slots = slots_from(&hourly, start, 5);
            for pair in slots.windows(2) {
                assert_eq!(pair[1] - pair[0], Duration::hours(1), "{slots:?}");
            }
        }
    }

    #[test]
    fn catching_up_across_a_clock_change_counts_real_slots() {
        // Daily at 02:30 Paris; down from the 27th to the 30th of March:
        // the slots of the 28th, 29th (03:00 after the gap) and 30th passed.
        let nightly = schedule("30 2 * * *", Some("Europe/Paris"));
        let due = next_due(
            &nightly,
            Some(datetime!(2026-03-27 01:30 UTC)),
            datetime!(2026-03-30 09:00 UTC),
        )
        .unwrap();
        assert_eq!(due.slot, datetime!(2026-03-30 00:30 UTC));
        assert_eq!(due.skipped, 2);
    }

    fn slots_from(s: &BackupSchedule, from: OffsetDateTime, n: usize) -> Vec<OffsetDateTime> {
        let mut out = Vec::new();
        let mut at = from;
        for _ in 0..n {
            at = slot_after(s, at).unwrap();
            out.push(at);
        }
        out
    }

    /// A daemon's loop for one service, as `silo backup daemon` runs it:
    /// returns the start time of every backup taken while `clock` reaches
    /// `until`. `downtime` stops the daemon at a time for a while.
    async fn run_daemon(
        clock: &FakeClock,
        schedule: &BackupSchedule,
        until: OffsetDateTime,
        backup_takes: Duration,
        downtime: Option<(OffsetDateTime, Duration)>,
    ) -> Vec<(OffsetDateTime, u32)> {
        let mut last = None;
        let mut runs = Vec::new();
        let mut down = downtime;
        loop {
            let due = next_due(schedule, last, clock.now()).unwrap();
            if due.at > until {
                return runs;
            }
            clock.sleep_until(due.at).await;
            if let Some((at, length)) = down
                && clock.now() >= at
            {
                // The process is gone: no run; it comes back later and
                // starts over from the last recorded backup.
                down = None;
                clock.advance(length);
                continue;
            }
            let started = clock.now();
            last = Some(started);
            runs.push((started, due.skipped));
            clock.advance(backup_takes);
        }
    }

    #[tokio::test]
    async fn a_daemon_day_on_a_fake_clock() {
        let start = datetime!(2026-11-28 00:10 UTC);
        let clock = FakeClock::new(start);
        let every_4h = schedule("0 */4 * * *", None);
        let runs = run_daemon(
            &clock,
            &every_4h,
            datetime!(2026-11-29 00:00 UTC),
            Duration::minutes(2),
            None,
        )
        .await;
        let times: Vec<_> = runs.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            times,
            [
                start, // never backed up: at once
                datetime!(2026-11-28 04:00 UTC),
                datetime!(2026-11-28 08:00 UTC),
                datetime!(2026-11-28 12:00 UTC),
                datetime!(2026-11-28 16:00 UTC),
                datetime!(2026-11-28 20:00 UTC),
                datetime!(2026-11-29 00:00 UTC),
            ]
        );
        assert!(runs.iter().all(|(_, skipped)| *skipped == 0));
        assert_eq!(clock.sleeps().len(), 7);
    }

    #[tokio::test]
    async fn a_daemon_down_for_a_day_catches_up_once() {
        let clock = FakeClock::new(datetime!(2026-11-28 00:10 UTC));
        let every_4h = schedule("0 */4 * * *", None);
        let runs = run_daemon(
            &clock,
            &every_4h,
            datetime!(2026-11-29 16:00 UTC),
            Duration::minutes(2),
            // Down at the 08:00 slot, back 25.5 hours later.
            Some((
                datetime!(2026-11-28 08:00 UTC),
                Duration::minutes(25 * 60 + 30),
            )),
        )
        .await;
        assert_eq!(
            runs,
            [
                (datetime!(2026-11-28 00:10 UTC), 0),
                (datetime!(2026-11-28 04:00 UTC), 0),
                // Back at 09:30 the next day: one run for the seven slots
                // from 08:00 to 08:00.
                (datetime!(2026-11-29 09:30 UTC), 6),
                (datetime!(2026-11-29 12:00 UTC), 0),
                (datetime!(2026-11-29 16:00 UTC), 0),
            ]
        );
    }

    #[tokio::test]
    async fn a_backup_longer_than_the_interval_does_not_pile_up() {
        let clock = FakeClock::new(datetime!(2026-11-28 00:00 UTC));
        let every_10m = schedule("*/10 * * * *", None);
        let runs = run_daemon(
            &clock,
            &every_10m,
            datetime!(2026-11-28 01:00 UTC),
            Duration::minutes(25),
            None,
        )
        .await;
        // Each run starts when the previous one ends, covering the slots
        // that passed meanwhile once.
        assert_eq!(
            runs,
            [
                (datetime!(2026-11-28 00:00 UTC), 0),
                // 00:10 and 00:20 passed during the first.
                (datetime!(2026-11-28 00:25 UTC), 1),
                // 00:30, 00:40 and 00:50 (reached as it ends).
                (datetime!(2026-11-28 00:50 UTC), 2),
            ]
        );
    }

    #[tokio::test]
    async fn a_fake_clock_never_goes_back_by_sleeping() {
        let clock = FakeClock::new(datetime!(2026-11-28 12:00 UTC));
        clock.sleep_until(datetime!(2026-11-28 11:00 UTC)).await;
        assert_eq!(clock.now(), datetime!(2026-11-28 12:00 UTC));
        clock.sleep_until(datetime!(2026-11-28 13:00 UTC)).await;
        assert_eq!(clock.now(), datetime!(2026-11-28 13:00 UTC));
        clock.set(datetime!(2026-11-28 10:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-11-28 10:00 UTC));
    }

    #[tokio::test]
    async fn the_system_clock_returns_at_once_for_a_past_deadline() {
        let clock = SystemClock;
        let before = clock.now();
        clock.sleep_until(before - Duration::hours(1)).await;
        assert!(clock.now() >= before);
    }
}
