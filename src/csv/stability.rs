//! When a file is complete. There is no portable "closed by the writer"
//! signal (an FTP upload or an Excel save writes in several steps), so a file
//! is taken once its size and modification time have stayed the same for a
//! settle time across observations (scans or change events).
//!
//! Pure: the caller observes the file and passes the time in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant, SystemTime};

/// Long enough to bridge the pauses of a copy over the network, short enough
/// that a user dropping a file sees it picked up at once.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// What a `stat` of the file said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub size: u64,
    pub mtime: SystemTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Unchanged for the settle time: take it.
    Stable,
    /// Observe again at (or after) this instant.
    Wait(Instant),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    observation: Observation,
    unchanged_since: Instant,
}

/// Per-file settle state, keyed by whatever names a file for the caller (its
/// path, or its name within the import folder).
#[derive(Debug, Clone)]
pub struct Settling<K> {
    settle: Duration,
    files: HashMap<K, Entry>,
}

impl<K: Hash + Eq> Default for Settling<K> {
    fn default() -> Self {
        Settling::new(DEFAULT_SETTLE)
    }
}

impl<K: Hash + Eq> Settling<K> {
    pub fn new(settle: Duration) -> Self {
        Settling {
            settle,
            files: HashMap::new(),
        }
    }

    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// Records an observation of `key` at `now`. The first observation, and
    /// any that differs from the previous one (grown, shrunk, touched,
    /// replaced by an older copy), starts the wait afresh; an observation
    /// equal to the previous one at least `settle` after that start is
    /// [`Verdict::Stable`]. A stable file stays stable for as long as it is
    /// unchanged: the caller decides (with the ledger) whether it was taken.
    pub fn observe(&mut self, key: K, observation: Observation, now: Instant) -> Verdict {
        let entry = self.files.entry(key).or_insert(Entry {
            observation,
            unchanged_since: now,
        });
        if entry.observation != observation {
            *entry = Entry {
                observation,
                unchanged_since: now,
            };
        }
        let until = entry.unchanged_since + self.settle;
        if now >= until && now > entry.unchanged_since {
            Verdict::Stable
        } else {
            Verdict::Wait(until.max(now))
        }
    }

    /// The file is gone (deleted or renamed away): if it comes back, it waits
    /// the full settle time again. Returns whether it was being watched.
    pub fn vanished(&mut self, key: &K) -> bool {
        self.files.remove(key).is_some()
    }

    /// Drops the state of a file the caller no longer tracks (taken, refused,
    /// or no longer matching the pattern).
    pub fn forget(&mut self, key: &K) {
        self.files.remove(key);
    }

    /// Keeps only the files for which `keep` is true, e.g. those a full scan
    /// still found.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.files.retain(|key, _| keep(key));
    }

    /// The earliest instant at which some file may become stable, to schedule
    /// the next observation.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.files
            .values()
            .map(|entry| entry.unchanged_since + self.settle)
            .min()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(size: u64, mtime_secs: u64) -> Observation {
        Observation {
            size,
            mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_secs),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn stable_after_settle_time_unchanged() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        assert_eq!(settling.settle(), secs(2));
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), t0),
            Verdict::Wait(t0 + secs(2))
        );
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), t0 + secs(1)),
            Verdict::Wait(t0 + secs(2))
        );
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), t0 + secs(2)),
            Verdict::Stable
        );
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), t0 + secs(60)),
            Verdict::Stable
        );
    }

    #[test]
    fn a_single_late_observation_is_not_enough() {
        // Seen once: nothing says it has stopped changing yet.
        let t0 = Instant::now();
        let mut settling = Settling::new(Duration::ZERO);
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), t0),
            Verdict::Wait(t0)
        );
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), t0 + secs(1)),
            Verdict::Stable
        );
    }

    #[test]
    fn growth_or_touch_restarts_the_wait() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        settling.observe("a.csv", seen(10, 100), t0);
        assert_eq!(
            settling.observe("a.csv", seen(20, 101), t0 + secs(1)),
            Verdict::Wait(t0 + secs(3))
        );
        assert_eq!(
            settling.observe("a.csv", seen(20, 102), t0 + secs(2)),
            Verdict::Wait(t0 + secs(4))
        );
        assert_eq!(
            settling.observe("a.csv", seen(20, 102), t0 + secs(4)),
            Verdict::Stable
        );
    }

    #[test]
    fn shrink_resets_even_a_stable_file() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        settling.observe("a.csv", seen(500, 100), t0);
        assert_eq!(
            settling.observe("a.csv", seen(500, 100), t0 + secs(5)),
            Verdict::Stable
        );
        assert_eq!(
            settling.observe("a.csv", seen(0, 100), t0 + secs(6)),
            Verdict::Wait(t0 + secs(8))
        );
        // An older copy put in its place is a change too.
        assert_eq!(
            settling.observe("a.csv", seen(0, 50), t0 + secs(7)),
            Verdict::Wait(t0 + secs(9))
        );
    }

    #[test]
    fn vanished_file_starts_over_when_it_returns() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        settling.observe("a.csv", seen(10, 100), t0);
        settling.observe("b.csv", seen(10, 100), t0 + secs(1));
        assert_eq!(settling.next_deadline(), Some(t0 + secs(2)));
        assert!(settling.vanished(&"a.csv"));
        assert!(!settling.vanished(&"a.csv"), "only once");
        assert_eq!(settling.len(), 1);
        assert_eq!(settling.next_deadline(), Some(t0 + secs(3)));
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), t0 + secs(5)),
            Verdict::Wait(t0 + secs(7))
        );
        settling.retain(|key| *key == "a.csv");
        settling.forget(&"a.csv");
        assert!(settling.is_empty());
        assert_eq!(settling.next_deadline(), None);
    }

    #[test]
    fn files_are_independent() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        settling.observe("a.csv", seen(10, 100), t0);
        settling.observe("b.csv", seen(10, 100), t0);
        settling.observe("b.csv", seen(11, 100), t0 + secs(1));
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), t0 + secs(2)),
            Verdict::Stable
        );
        assert_eq!(
            settling.observe("b.csv", seen(11, 100), t0 + secs(2)),
            Verdict::Wait(t0 + secs(3))
        );
    }
}
