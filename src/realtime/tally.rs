//! Counting what a feed reads, for `status`, the heartbeat and the log.
//!
//! Pure, on an injected clock: events per minute, parse problems logged once
//! per kind, and the silence warning.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Events of the last minute, counted per second.
#[derive(Debug, Default)]
pub struct MinuteRate {
    /// (second, count), oldest first.
    seconds: VecDeque<(u64, u64)>,
}

impl MinuteRate {
    /// `second` counts from any fixed start (the feed's start).
    pub fn add(&mut self, second: u64, count: u64) {
        match self.seconds.back_mut() {
            Some((s, c)) if *s == second => *c += count,
            _ => self.seconds.push_back((second, count)),
        }
        self.forget(second);
    }

    pub fn last_minute(&mut self, second: u64) -> u64 {
        self.forget(second);
        self.seconds.iter().map(|(_, c)| c).sum()
    }

    fn forget(&mut self, second: u64) {
        while self.seconds.front().is_some_and(|(s, _)| *s + 60 <= second) {
            self.seconds.pop_front();
        }
    }
}

/// Problems with lines: counted all, logged once per kind.
#[derive(Debug, Default)]
pub struct Problems {
    by_kind: BTreeMap<&'static str, u64>,
}

impl Problems {
    /// Counts a problem; `true` when it is the first of its kind (log it,
    /// with an example, and say that more are only counted).
    pub fn record(&mut self, kind: &'static str) -> bool {
        let count = self.by_kind.entry(kind).or_default();
        *count += 1;
        *count == 1
    }

    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// Whether a connected feed has been quiet too long: warned once per
/// silence, cleared by the next event.
#[derive(Debug)]
pub struct Silence {
    limit: Duration,
    warned: bool,
}

impl Silence {
    pub fn new(limit: Duration) -> Self {
        Silence {
            limit,
            warned: false,
        }
    }

    /// `Some(quiet for)` the first time a connected feed's last sign of life
    /// is older than the limit.
    pub fn check(&mut self, connected: bool, last_sign: Instant, now: Instant) -> Option<Duration> {
        let quiet = now.saturating_duration_since(last_sign);
        if connected && quiet >= self.limit {
            if self.warned {
                return None;
            }
            self.warned = true;
            Some(quiet)
        } else {
            self.warned = false;
            None
        }
    }

    pub fn is_silent(&self) -> bool {
        self.warned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_covers_the_last_sixty_seconds() {
        let mut rate = MinuteRate::default();
        rate.add(0, 5);
        rate.add(0, 5);
        rate.add(30, 1);
        assert_eq!(rate.last_minute(59), 11);
        assert_eq!(rate.last_minute(60), 1);
        assert_eq!(rate.last_minute(200), 0);
    }

    #[test]
    fn each_kind_of_problem_is_logged_once() {
        let mut p = Problems::default();
        assert!(p.record("bad timestamp"));
        assert!(!p.record("bad timestamp"));
        assert!(p.record("not JSON"));
        assert_eq!(p.total(), 3);
    }

    #[test]
    fn silence_is_warned_once_and_cleared_by_the_next_event() {
        let start = Instant::now();
        let mut s = Silence::new(Duration::from_secs(600));
        assert_eq!(s.check(true, start, start + Duration::from_secs(599)), None);
        assert!(s
            .check(true, start, start + Duration::from_secs(600))
            .is_some());
        assert_eq!(s.check(true, start, start + Duration::from_secs(900)), None);
        assert!(s.is_silent());
        let later = start + Duration::from_secs(901);
        assert_eq!(s.check(true, later, later), None);
        assert!(!s.is_silent());
        // Nobody connected: nothing to warn about.
        assert_eq!(
            s.check(false, start, start + Duration::from_secs(9999)),
            None
        );
    }
}
