//! How long the worker waits: between retries of something that failed
//! ([`Backoff`]) and between looks at an outbox that had nothing new
//! ([`Idle`]).

use std::time::Duration;

/// Exponential backoff with jitter: the first retry after about
/// [`Backoff::FIRST`], each next one twice as late, up to
/// [`Backoff::MAX`] (or between other bounds: [`Backoff::between`]). Each
/// wait is drawn between half and all of the current step ("equal
/// jitter"), so workers that failed together do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    first: Duration,
    max: Duration,
    /// Uniform random numbers in `[0, 1)`; injected in tests.
    random: fn() -> f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// The first step.
    pub const FIRST: Duration = Duration::from_millis(100);
    /// The longest step.
    pub const MAX: Duration = Duration::from_secs(30);

    /// A backoff at its first step, drawing jitter from the system's
    /// random source.
    pub fn new() -> Self {
        Self::between(Self::FIRST, Self::MAX)
    }

    /// A backoff whose first step is `first` and longest `max`.
    pub fn between(first: Duration, max: Duration) -> Self {
        Backoff {
            step: first,
            first,
            max,
            random: system_random,
        }
    }

    /// A backoff drawing its jitter from `random` (uniform in `[0, 1)`).
    pub fn with_random(random: fn() -> f64) -> Self {
        Backoff {
            random,
            ..Self::new()
        }
    }

    /// The wait before the next retry; the step after it doubles.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        step.div_f64(2.0)
            .mul_f64(1.0 + (self.random)().clamp(0.0, 1.0))
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.step = self.first;
    }
}

fn system_random() -> f64 {
    // 53 random bits, the precision of an f64 in [0, 1).
    (getrandom::u64().unwrap_or(0) >> 11) as f64 / (1u64 << 53) as f64
}

/// The wait between looks at an outbox: short while events flow (for
/// [`Idle::STAY`] looks after the last one that found events, so a pause
/// between publishes costs no latency), then doubling with each look that
/// finds nothing, up to [`Idle::MAX`]. A wake-up (a notification that
/// something was published) starts it short again.
#[derive(Debug, Clone)]
pub struct Idle {
    next: Duration,
    /// Short looks left before the waits grow.
    short: u32,
}

impl Default for Idle {
    fn default() -> Self {
        Self::new()
    }
}

impl Idle {
    /// The wait right after events flowed.
    pub const MIN: Duration = Duration::from_millis(5);
    /// The wait of a worker with nothing to do.
    pub const MAX: Duration = Duration::from_millis(250);
    /// How many short waits follow events before the waits grow (about
    /// 200 ms of looking every 5 ms).
    pub const STAY: u32 = 40;

    /// An idle wait that starts long: nothing is known to flow yet.
    pub fn new() -> Self {
        Idle {
            next: Self::MAX,
            short: 0,
        }
    }

    /// Events flowed (or a wake-up came): the next waits are short.
    pub fn busy(&mut self) {
        self.next = Self::MIN;
        self.short = Self::STAY;
    }

    /// The wait before the next look; after the short ones, each doubles.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        if self.short > 1 {
            self.short -= 1;
        } else {
            self.short = 0;
            self.next = (self.next * 2).min(Self::MAX);
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_max_within_its_jitter() {
        let mut low = Backoff::with_random(|| 0.0);
        let mut high = Backoff::with_random(|| 0.999_999);
        let mut step = Backoff::FIRST;
        for _ in 0..20 {
            let (l, h) = (low.next_wait(), high.next_wait());
            assert_eq!(l, step / 2, "the lowest draw is half the step");
            assert!(h < step && h > step.mul_f64(0.99), "{h:?} vs {step:?}");
            step = (step * 2).min(Backoff::MAX);
        }
        assert_eq!(low.next_wait(), Backoff::MAX / 2, "capped");
        low.reset();
        assert_eq!(low.next_wait(), Backoff::FIRST / 2, "reset starts over");
    }

    #[test]
    fn other_bounds_double_from_the_first_up_to_the_max() {
        let mut b = Backoff {
            random: || 0.0,
            ..Backoff::between(Duration::from_millis(5), Duration::from_secs(1))
        };
        let waits: Vec<u128> = (0..10).map(|_| b.next_wait().as_micros()).collect();
        assert_eq!(
            waits,
            [
                2500, 5000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 500_000, 500_000
            ]
        );
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_micros(2500));
    }

    #[test]
    fn system_jitter_stays_in_range() {
        let mut b = Backoff::new();
        for _ in 0..100 {
            let w = b.next_wait();
            assert!(w >= Backoff::FIRST / 2 && w <= Backoff::MAX, "{w:?}");
        }
    }

    #[test]
    fn idle_waits_grow_while_nothing_flows_and_shrink_when_it_does() {
        let mut idle = Idle::new();
        assert_eq!(idle.next_wait(), Idle::MAX, "nothing known to flow");
        idle.busy();
        let waits: Vec<_> = (0..Idle::STAY + 7)
            .map(|_| idle.next_wait().as_millis())
            .collect();
        let (short, growing) = waits.split_at(Idle::STAY as usize);
        assert!(short.iter().all(|w| *w == 5), "{short:?}");
        assert_eq!(growing, [10, 20, 40, 80, 160, 250, 250]);
        idle.busy();
        assert_eq!(idle.next_wait(), Idle::MIN);
    }
}
