//! Retry and restart delays. Pure: callers pass in the clock and the random
//! number, so every schedule is unit-tested without sleeping.

use std::time::Duration;

/// Exponential backoff: `base`, doubling after each failure up to `cap`.
/// A success (or enough healthy time, for restarts) resets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// The supervisor's restart policy: 1 s doubling to 5 min.
    pub fn restarts() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
    }

    /// The HTTP retry policy of protocol §5: start ≈ 1 s, cap ≈ 5 min.
    pub fn requests() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
    }

    /// The longest delay this policy gives.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and returns the delay before the next attempt:
    /// `base * 2^(failures-1)`, at most `cap`.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.ceiling()
    }

    /// Like [`Backoff::fail`] with full jitter (a uniform pick in
    /// `[0, ceiling]`), so that many clients recovering from the same outage
    /// do not retry in lockstep. `unit` is a random number in `[0, 1)`.
    pub fn fail_with_jitter(&mut self, unit: f64) -> Duration {
        self.fail().mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The delay the last failure earned, without recording a new one.
    pub fn ceiling(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        let exponent = (self.failures - 1).min(31);
        self.base
            .checked_mul(1u32 << exponent)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The jittered delay after `failures` failures of this policy, without
    /// touching `self` (an item's own retries, counted in its sidecar).
    pub fn delay_after(&self, failures: u32, unit: f64) -> Duration {
        let mut b = Backoff {
            failures: failures.saturating_sub(1),
            ..self.clone()
        };
        b.fail_with_jitter(unit)
    }
}

/// One backoff for a resource that several requests use at once (the cloud,
/// for the uploads in flight).
///
/// The pause after a failure grows with how long the resource has been
/// failing (from `base` to `cap`, with full jitter), not with how many
/// requests failed. Counting failures, as a plain [`Backoff`] does, lets the
/// delay outrun the outage: requests already under way fail for the same
/// reason, and with full jitter a pause can be a few milliseconds, so the
/// count doubles many times in seconds. The 30-minute soak showed a
/// 15-second outage park every upload for up to five minutes that way, and
/// a later run, with faults on half of the time, parked them for longer.
/// Tied to the time, uploads resume at most about one outage-length after
/// the resource is back. A failure of a request that started before the
/// last recorded failure joins that pause. Pure: the caller passes the
/// clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBackoff<T> {
    policy: Backoff,
    /// The first failure since the last success.
    failing_since: Option<T>,
    /// A ceiling carried over from before a restart.
    restored: Duration,
    /// When the last failure was recorded, and when its pause ends.
    round: Option<(T, T)>,
    rounds: u32,
}

impl<T> SharedBackoff<T>
where
    T: Copy + Ord + std::ops::Add<Duration, Output = T> + SinceEarlier,
{
    pub fn new(policy: Backoff) -> Self {
        SharedBackoff {
            policy,
            failing_since: None,
            restored: Duration::ZERO,
            round: None,
            rounds: 0,
        }
    }

    /// Records that a request started at `started` failed at `now`; the
    /// delay before trying again. `unit` is a random number in `[0, 1)` for
    /// the jitter.
    pub fn fail(&mut self, started: T, now: T, unit: f64) -> Duration {
        if let Some((recorded, resume_at)) = self.round {
            if started < recorded {
                // Same round: wait for the pause already decided.
                return resume_at.since_earlier(now);
            }
        }
        self.failing_since.get_or_insert(now);
        let delay = self.ceiling_at(now).mul_f64(unit.clamp(0.0, 1.0));
        self.round = Some((now, now + delay));
        self.rounds = self.rounds.saturating_add(1);
        delay
    }

    /// The longest pause a failure at `now` can get: the time the resource
    /// has been failing (or what a restart carried over), from `base` to
    /// `cap`.
    pub fn ceiling_at(&self, now: T) -> Duration {
        let failing_for = self
            .failing_since
            .map_or(Duration::ZERO, |since| now.since_earlier(since));
        failing_for
            .max(self.restored)
            .clamp(self.policy.base, self.policy.cap)
    }

    /// Rounds of failures since the last success.
    pub fn failures(&self) -> u32 {
        self.rounds
    }

    /// Carries the ceiling of `failures` failed attempts over a restart, so
    /// that a restart does not start hammering again.
    pub fn restore(&mut self, failures: u32) {
        self.restored = self.policy.delay_after(failures, 1.0);
        self.rounds = failures;
    }

    /// The policy (base and cap).
    pub fn policy(&self) -> &Backoff {
        &self.policy
    }

    pub fn reset(&mut self) {
        self.failing_since = None;
        self.restored = Duration::ZERO;
        self.round = None;
        self.rounds = 0;
    }
}

/// `later.since_earlier(earlier)`: the time from `earlier` to `self`, zero
/// when `earlier` is not earlier. Lets [`SharedBackoff`] take `Instant` in
/// the client and plain durations in tests.
pub trait SinceEarlier {
    fn since_earlier(self, earlier: Self) -> Duration;
}

impl SinceEarlier for std::time::Instant {
    fn since_earlier(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl SinceEarlier for Duration {
    fn since_earlier(self, earlier: Self) -> Duration {
        self.saturating_sub(earlier)
    }
}

/// How long an actor must run without failing before its restart backoff
/// starts again from the base delay.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(600);

/// The delay before restarting an actor that failed after running for
/// `ran_for`: the backoff resets when it had been healthy long enough.
pub fn restart_delay(backoff: &mut Backoff, ran_for: Duration) -> Duration {
    if ran_for >= HEALTHY_AFTER {
        backoff.reset();
    }
    backoff.fail()
}

/// The delay a `Retry-After` header asks for (delta-seconds form), capped so
/// that a hostile or broken server cannot park the client for days.
pub fn retry_after(header: &str, cap: Duration) -> Option<Duration> {
    header
        .trim()
        .parse::<u64>()
        .ok()
        .map(|secs| Duration::from_secs(secs).min(cap))
}

/// Keeps a retry loop's log readable: a failure is logged when it differs
/// from the previous one (a new state), not at every retry; the recovery is
/// logged once with the number of failed attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureLog {
    current: Option<String>,
    failures: u32,
}

impl FailureLog {
    /// Records a failure; `true` when it should be logged (the first, or one
    /// that differs from the previous).
    pub fn failed(&mut self, description: &str) -> bool {
        self.failures = self.failures.saturating_add(1);
        if self.current.as_deref() == Some(description) {
            return false;
        }
        self.current = Some(description.to_owned());
        true
    }

    /// Records a success; the number of failures it ends, if any.
    pub fn recovered(&mut self) -> Option<u32> {
        self.current = None;
        match std::mem::take(&mut self.failures) {
            0 => None,
            n => Some(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_from_one_second_up_to_five_minutes() {
        let mut b = Backoff::restarts();
        let delays: Vec<_> = (0..12).map(|_| b.fail()).collect();
        assert_eq!(
            delays,
            vec![
                S(1),
                S(2),
                S(4),
                S(8),
                S(16),
                S(32),
                S(64),
                S(128),
                S(256),
                S(300),
                S(300),
                S(300)
            ]
        );
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::restarts();
        for _ in 0..1000 {
            assert!(b.fail() <= S(300));
        }
    }

    #[test]
    fn restart_backoff_resets_after_ten_healthy_minutes() {
        let mut b = Backoff::restarts();
        assert_eq!(restart_delay(&mut b, S(5)), S(1));
        assert_eq!(restart_delay(&mut b, S(5)), S(2));
        assert_eq!(restart_delay(&mut b, S(599)), S(4));
        assert_eq!(restart_delay(&mut b, S(600)), S(1));
    }

    #[test]
    fn jitter_stays_within_the_ceiling() {
        let mut b = Backoff::requests();
        b.fail();
        b.fail();
        assert_eq!(b.fail_with_jitter(0.5), S(2));
        assert_eq!(b.fail_with_jitter(0.0), Duration::ZERO);
        assert_eq!(b.fail_with_jitter(7.0), S(16));
    }

    #[test]
    fn an_items_own_delay_follows_its_attempts() {
        let b = Backoff::requests();
        assert_eq!(b.delay_after(1, 0.999_999).as_secs(), 0);
        assert_eq!(b.delay_after(1, 1.0), S(1));
        assert_eq!(b.delay_after(4, 1.0), S(8));
        assert_eq!(b.delay_after(40, 1.0), S(300));
        assert_eq!(
            b.delay_after(0, 1.0),
            S(1),
            "a first failure waits the base"
        );
        assert_eq!(b.failures(), 0, "the policy itself is untouched");
    }

    #[test]
    fn requests_under_way_when_the_cloud_fails_join_the_pause() {
        let mut shared = SharedBackoff::new(Backoff::requests());
        // Two uploads start at 0 and 0.1 s; the cloud goes down.
        let first = shared.fail(S(0), Duration::from_millis(500), 1.0);
        assert_eq!(first, S(1), "a first failure waits at most the base");
        // The second was under way before the first failure: it waits for
        // what is left of the same pause.
        let second = shared.fail(Duration::from_millis(100), Duration::from_millis(900), 1.0);
        assert_eq!(second, Duration::from_millis(600));
        assert_eq!(shared.failures(), 1);
        // Both start again at 1.5 s and fail at 2 s and 3 s: one new round,
        // whose ceiling is the 1.5 s the cloud has been failing.
        let third = shared.fail(Duration::from_millis(1500), S(2), 1.0);
        assert_eq!(third, Duration::from_millis(1500));
        let fourth = shared.fail(Duration::from_millis(1500), S(3), 1.0);
        assert_eq!(fourth, Duration::from_millis(500));
        assert_eq!(shared.failures(), 2);
    }

    #[test]
    fn the_pause_grows_with_the_outage_not_with_the_number_of_failures() {
        let mut shared = SharedBackoff::new(Backoff::requests());
        // Fifty rounds in ten seconds (a jitter that drew tiny pauses): the
        // ceiling is the ten seconds, where counting failures gave the cap.
        for i in 0..50u64 {
            let now = Duration::from_millis(i * 200);
            shared.fail(now, now, 0.0);
        }
        assert_eq!(shared.ceiling_at(S(10)), S(10));
        assert_eq!(shared.failures(), 50);
        // An hour of trouble: the cap.
        assert_eq!(shared.ceiling_at(S(3600)), S(300));
        assert_eq!(shared.fail(S(3600), S(3600), 1.0), S(300));
        // Success: the next failure starts from the base again.
        shared.reset();
        assert_eq!(shared.fail(S(4000), S(4000), 1.0), S(1));
    }

    #[test]
    fn a_fifteen_second_outage_with_many_items_ends_in_seconds_not_minutes() {
        // Two uploads at a time, each failing 200 ms after it starts, while
        // the cloud is down for 15 s, with the worst jitter (always the
        // ceiling) and the best (always nothing). Afterwards the next try
        // must come within about the outage's length, not minutes later.
        for unit in [1.0, 0.0] {
            let mut shared = SharedBackoff::new(Backoff::requests());
            let mut now = S(0);
            let mut pause = Duration::ZERO;
            while now < S(15) {
                let started = now;
                for _ in 0..2 {
                    now += Duration::from_millis(200);
                    pause = shared.fail(started, now, unit);
                }
                now += pause.max(Duration::from_millis(1));
            }
            assert!(pause <= S(16), "unit {unit}: {pause:?}");
            assert!(shared.ceiling_at(now) <= S(31), "unit {unit}");
        }
    }

    #[test]
    fn a_restart_carries_the_ceiling_over() {
        let mut shared = SharedBackoff::new(Backoff::requests());
        shared.restore(6);
        assert_eq!(shared.ceiling_at(S(0)), S(32));
        assert_eq!(shared.fail(S(0), S(0), 1.0), S(32));
        shared.reset();
        assert_eq!(shared.ceiling_at(S(0)), S(1));
    }

    #[test]
    fn failures_are_logged_once_per_state_change() {
        let mut log = FailureLog::default();
        assert_eq!(log.recovered(), None);
        assert!(log.failed("refused"));
        assert!(!log.failed("refused"));
        assert!(log.failed("timed out"));
        assert!(!log.failed("timed out"));
        assert_eq!(log.recovered(), Some(4));
        assert!(log.failed("timed out"));
    }

    #[test]
    fn retry_after_is_parsed_and_capped() {
        assert_eq!(retry_after(" 2 ", S(300)), Some(S(2)));
        assert_eq!(retry_after("999999", S(300)), Some(S(300)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT", S(300)), None);
        assert_eq!(retry_after("-1", S(300)), None);
    }
}
