//! When a file is complete. There is no portable "closed by the writer"
//! signal (an FTP upload or an Excel save writes in several steps), so a file
//! is taken once its size and modification time have stayed the same for a
//! settle time across observations (scans or change events).
//!
//! A text file whose last byte is not a line end is still being written (an
//! exporter that pauses between writes longer than the settle time stops
//! mid-line): it is taken only once it ends with a line end and settled, or
//! once it stayed unchanged for the much longer partial-line quiet time (a
//! file that really ends without a line end).
//!
//! Pure: the caller observes the file and passes the time in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant, SystemTime};

/// Long enough to bridge the pauses of a copy over the network, short enough
/// that a user dropping a file sees it picked up at once.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// How long a file whose last line has no line end must stay unchanged to be
/// taken anyway: longer than any pause of a working exporter, short enough
/// that a file written without a final line end still arrives the same hour.
pub const DEFAULT_PARTIAL_LINE_QUIET: Duration = Duration::from_secs(300);

/// How many of a file's last bytes [`ends_mid_line`] looks at.
pub const TAIL_LEN: u64 = 3;

/// Whether a file of `size` bytes whose last bytes (up to [`TAIL_LEN`]) are
/// `tail` ends mid-line: not in `\n` or `\r`, nor in a UTF-16LE line end
/// (`\n` or `\r` then NUL). An empty file, or one that is nothing but a
/// byte order mark, has no line to cut.
pub fn ends_mid_line(tail: &[u8], size: u64) -> bool {
    let whole = size == tail.len() as u64;
    match tail {
        [] => false,
        [0xEF, 0xBB, 0xBF] | [0xFF, 0xFE] | [0xFE, 0xFF] if whole => false,
        [.., b'\n' | b'\r'] | [.., b'\n' | b'\r', 0] => false,
        _ => true,
    }
}

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
    /// It ends mid-line, but stayed unchanged for the partial-line quiet
    /// time: take it as it is (and say so).
    StableMidLine,
    /// Observe again at (or after) this instant.
    Wait(Instant),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    observation: Observation,
    mid_line: bool,
    unchanged_since: Instant,
}

/// Per-file settle state, keyed by whatever names a file for the caller (its
/// path, or its name within the import folder).
#[derive(Debug, Clone)]
pub struct Settling<K> {
    settle: Duration,
    partial_line_quiet: Duration,
    files: HashMap<K, Entry>,
}

impl<K: Hash + Eq> Default for Settling<K> {
    fn default() -> Self {
        Settling::new(DEFAULT_SETTLE)
    }
}

impl<K: Hash + Eq> Settling<K> {
    /// With the default partial-line quiet time.
    pub fn new(settle: Duration) -> Self {
        Settling {
            settle,
            partial_line_quiet: DEFAULT_PARTIAL_LINE_QUIET,
            files: HashMap::new(),
        }
    }

    /// Sets the partial-line quiet time (never shorter than the settle time).
    pub fn with_partial_line_quiet(mut self, quiet: Duration) -> Self {
        self.partial_line_quiet = quiet;
        self
    }

    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// How long a file ending mid-line must stay unchanged to be taken.
    pub fn partial_line_quiet(&self) -> Duration {
        self.partial_line_quiet.max(self.settle)
    }

    fn wait_for(&self, entry: &Entry) -> Duration {
        if entry.mid_line {
            self.partial_line_quiet()
        } else {
            self.settle
        }
    }

    /// Records an observation of `key` at `now`; `mid_line` is what
    /// [`ends_mid_line`] said of the file's last bytes. The first
    /// observation, and any that differs from the previous one (grown,
    /// shrunk, touched, replaced by an older copy), starts the wait afresh;
    /// an observation equal to the previous one at least `settle` after that
    /// start is [`Verdict::Stable`], and for a file ending mid-line only
    /// after the partial-line quiet time, as [`Verdict::StableMidLine`]. A
    /// stable file stays stable for as long as it is unchanged: the caller
    /// decides (with the ledger) whether it was taken.
    pub fn observe(
        &mut self,
        key: K,
        observation: Observation,
        mid_line: bool,
        now: Instant,
    ) -> Verdict {
        let fresh = Entry {
            observation,
            mid_line,
            unchanged_since: now,
        };
        let stored = self.files.entry(key).or_insert(fresh);
        if stored.observation != observation || stored.mid_line != mid_line {
            *stored = fresh;
        }
        let entry = *stored;
        let until = entry.unchanged_since + self.wait_for(&entry);
        if now < until || now == entry.unchanged_since {
            Verdict::Wait(until.max(now))
        } else if mid_line {
            Verdict::StableMidLine
        } else {
            Verdict::Stable
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
            .map(|entry| entry.unchanged_since + self.wait_for(entry))
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
            settling.observe("a.csv", seen(10, 100), false, t0),
            Verdict::Wait(t0 + secs(2))
        );
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), false, t0 + secs(1)),
            Verdict::Wait(t0 + secs(2))
        );
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), false, t0 + secs(2)),
            Verdict::Stable
        );
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), false, t0 + secs(60)),
            Verdict::Stable
        );
    }

    #[test]
    fn a_single_late_observation_is_not_enough() {
        // Seen once: nothing says it has stopped changing yet.
        let t0 = Instant::now();
        let mut settling = Settling::new(Duration::ZERO);
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), false, t0),
            Verdict::Wait(t0)
        );
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), false, t0 + secs(1)),
            Verdict::Stable
        );
    }

    #[test]
    fn growth_or_touch_restarts_the_wait() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        settling.observe("a.csv", seen(10, 100), false, t0);
        assert_eq!(
            settling.observe("a.csv", seen(20, 101), false, t0 + secs(1)),
            Verdict::Wait(t0 + secs(3))
        );
        assert_eq!(
            settling.observe("a.csv", seen(20, 102), false, t0 + secs(2)),
            Verdict::Wait(t0 + secs(4))
        );
        assert_eq!(
            settling.observe("a.csv", seen(20, 102), false, t0 + secs(4)),
            Verdict::Stable
        );
    }

    #[test]
    fn shrink_resets_even_a_stable_file() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        settling.observe("a.csv", seen(500, 100), false, t0);
        assert_eq!(
            settling.observe("a.csv", seen(500, 100), false, t0 + secs(5)),
            Verdict::Stable
        );
        assert_eq!(
            settling.observe("a.csv", seen(0, 100), false, t0 + secs(6)),
            Verdict::Wait(t0 + secs(8))
        );
        // An older copy put in its place is a change too.
        assert_eq!(
            settling.observe("a.csv", seen(0, 50), false, t0 + secs(7)),
            Verdict::Wait(t0 + secs(9))
        );
    }

    #[test]
    fn vanished_file_starts_over_when_it_returns() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        settling.observe("a.csv", seen(10, 100), false, t0);
        settling.observe("b.csv", seen(10, 100), false, t0 + secs(1));
        assert_eq!(settling.next_deadline(), Some(t0 + secs(2)));
        assert!(settling.vanished(&"a.csv"));
        assert!(!settling.vanished(&"a.csv"), "only once");
        assert_eq!(settling.len(), 1);
        assert_eq!(settling.next_deadline(), Some(t0 + secs(3)));
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), false, t0 + secs(5)),
            Verdict::Wait(t0 + secs(7))
        );
        settling.retain(|key| *key == "a.csv");
        settling.forget(&"a.csv");
        assert!(settling.is_empty());
        assert_eq!(settling.next_deadline(), None);
    }

    #[test]
    fn a_file_ending_mid_line_waits_for_its_line_end_or_the_quiet_time() {
        let t0 = Instant::now();
        let mut settling = Settling::new(secs(1)).with_partial_line_quiet(secs(300));
        assert_eq!(settling.partial_line_quiet(), secs(300));
        // A writer pausing 3 × settle mid-line: never stable.
        assert_eq!(
            settling.observe("a.csv", seen(1000, 100), true, t0),
            Verdict::Wait(t0 + secs(300))
        );
        assert_eq!(
            settling.observe("a.csv", seen(1000, 100), true, t0 + secs(3)),
            Verdict::Wait(t0 + secs(300))
        );
        assert_eq!(settling.next_deadline(), Some(t0 + secs(300)));
        assert_eq!(
            settling.observe("a.csv", seen(2000, 103), true, t0 + secs(3)),
            Verdict::Wait(t0 + secs(303))
        );
        // The line end arrives: the settle time applies from that write.
        assert_eq!(
            settling.observe("a.csv", seen(2100, 106), false, t0 + secs(6)),
            Verdict::Wait(t0 + secs(7))
        );
        assert_eq!(
            settling.observe("a.csv", seen(2100, 106), false, t0 + secs(7)),
            Verdict::Stable
        );
        // A file that really ends without a line end: taken after the quiet
        // time, and the verdict says how.
        settling.observe("b.csv", seen(50, 100), true, t0);
        assert_eq!(
            settling.observe("b.csv", seen(50, 100), true, t0 + secs(299)),
            Verdict::Wait(t0 + secs(300))
        );
        assert_eq!(
            settling.observe("b.csv", seen(50, 100), true, t0 + secs(300)),
            Verdict::StableMidLine
        );
        // The quiet time is never shorter than the settle time.
        let settling = Settling::<&str>::new(secs(10)).with_partial_line_quiet(secs(0));
        assert_eq!(settling.partial_line_quiet(), secs(10));
    }

    #[test]
    fn line_ends_in_the_last_bytes() {
        let mid = |tail: &[u8]| ends_mid_line(tail, 1000);
        assert!(!ends_mid_line(b"", 0));
        assert!(!mid(b"\n"));
        assert!(!mid(b"23\n"));
        assert!(!mid(b"3\r\n"));
        assert!(!mid(b"23\r"), "old Mac line ends");
        assert!(!mid(b"3\n\0"), "UTF-16LE");
        assert!(!mid(b"\r\0\n"), "UTF-16BE");
        assert!(mid(b"231"));
        assert!(mid(b";\"1"));
        assert!(mid(b"\"\"\""));
        assert!(mid(b"\x003\x00"), "UTF-16LE mid-line");
        // Nothing but a byte order mark: nothing to cut.
        assert!(!ends_mid_line(b"\xEF\xBB\xBF", 3));
        assert!(!ends_mid_line(b"\xFF\xFE", 2));
        assert!(
            ends_mid_line(b"\xEF\xBB\xBF", 10),
            "a BOM at the end of a longer file"
        );
        assert!(ends_mid_line(b"a", 1));
    }

    #[test]
    fn files_are_independent() {
        let t0 = Instant::now();
        let mut settling = Settling::default();
        settling.observe("a.csv", seen(10, 100), false, t0);
        settling.observe("b.csv", seen(10, 100), false, t0);
        settling.observe("b.csv", seen(11, 100), false, t0 + secs(1));
        assert_eq!(
            settling.observe("a.csv", seen(10, 100), false, t0 + secs(2)),
            Verdict::Stable
        );
        assert_eq!(
            settling.observe("b.csv", seen(11, 100), false, t0 + secs(2)),
            Verdict::Wait(t0 + secs(3))
        );
    }
}
