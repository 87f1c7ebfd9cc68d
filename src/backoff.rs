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
/// A failure escalates the backoff only when its request started after the
/// previous failure was recorded. Requests that were already under way then
/// fail for the same reason, and counting each of them (as a plain
/// [`Backoff`] would) doubles the delay once per request instead of once per
/// round: the 30-minute soak showed a 15-second outage park every upload for
/// up to five minutes that way. Pure: the caller passes the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBackoff<T> {
    backoff: Backoff,
    /// When the last escalating failure was recorded, and when its pause ends.
    round: Option<(T, T)>,
}

impl<T> SharedBackoff<T>
where
    T: Copy + Ord + std::ops::Add<Duration, Output = T> + SinceEarlier,
{
    pub fn new(backoff: Backoff) -> Self {
        SharedBackoff {
            backoff,
            round: None,
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
        let delay = self.backoff.fail_with_jitter(unit);
        self.round = Some((now, now + delay));
        delay
    }

    /// Escalations since the last reset.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Counts `failures` earlier rounds (restored after a restart).
    pub fn restore(&mut self, failures: u32) {
        for _ in 0..failures {
            self.backoff.fail();
        }
    }

    /// The policy (base and cap) this backoff escalates with.
    pub fn policy(&self) -> &Backoff {
        &self.backoff
    }

    pub fn reset(&mut self) {
        self.backoff.reset();
        self.round = None;
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
    fn requests_under_way_when_the_cloud_fails_escalate_once() {
        let mut shared = SharedBackoff::new(Backoff::requests());
        // Two uploads start at 0 and 0.1 s; the cloud goes down.
        let first = shared.fail(S(0), Duration::from_millis(500), 1.0);
        assert_eq!(first, S(1));
        // The second was under way before the first failure: same round,
        // it waits for what is left of the same pause.
        let second = shared.fail(Duration::from_millis(100), Duration::from_millis(900), 1.0);
        assert_eq!(second, Duration::from_millis(600));
        assert_eq!(shared.failures(), 1);
        // After the pause both start again (1.5 s) and fail: one escalation.
        assert_eq!(shared.fail(Duration::from_millis(1500), S(2), 1.0), S(2));
        assert_eq!(shared.fail(Duration::from_millis(1500), S(3), 1.0), S(1));
        assert_eq!(shared.failures(), 2);
    }

    #[test]
    fn a_fifteen_second_outage_with_many_items_ends_in_seconds_not_minutes() {
        // Two uploads at a time, each failing 200 ms after it starts, while
        // the cloud is down for 15 s. The ceiling after the outage must stay
        // near the outage's length (16 s), where counting every request
        // reached the five-minute cap.
        let mut shared = SharedBackoff::new(Backoff::requests());
        let mut now = S(0);
        let mut ceiling = Duration::ZERO;
        while now < S(15) {
            let started = now;
            let mut pause = Duration::ZERO;
            for _ in 0..2 {
                now += Duration::from_millis(200);
                pause = shared.fail(started, now, 1.0);
            }
            ceiling = shared.policy().ceiling();
            now += pause;
        }
        assert!(ceiling <= S(16), "{ceiling:?}");
        assert!(shared.failures() <= 5, "{}", shared.failures());
        shared.reset();
        assert_eq!(shared.failures(), 0);
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
