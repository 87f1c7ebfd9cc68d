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
