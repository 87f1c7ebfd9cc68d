//! Noticing that the wall clock was stepped (set by hand, by NTP after a
//! long offline time, by a VM resumed from a snapshot).
//!
//! Pure: the caller samples the wall clock and the monotonic clock and
//! passes both in. Between two samples both clocks should advance alike; a
//! difference of more than [`CLOCK_STEP_THRESHOLD`] is a step. NTP's slewing
//! (at most 0.5 ms per second) stays far below it.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeDelta};

/// The smallest difference between wall-clock and monotonic progress that
/// counts as a step.
pub const CLOCK_STEP_THRESHOLD: Duration = Duration::from_secs(60);

/// A step of the wall clock between two samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockStep {
    /// The wall clock at the sample before the step.
    pub before: DateTime<FixedOffset>,
    /// The wall clock at the sample after it.
    pub after: DateTime<FixedOffset>,
    /// Wall-clock progress minus monotonic progress: positive when the
    /// clock jumped forward.
    pub by: TimeDelta,
}

impl ClockStep {
    pub fn forward(&self) -> bool {
        self.by > TimeDelta::zero()
    }

    /// The size of the step as a person reads it: to the second below an
    /// hour, to the minute above (the samples are seconds apart, so the
    /// seconds of a day-long step are noise).
    pub fn size(&self) -> String {
        let size = self.by.abs().to_std().unwrap_or_default();
        let secs = if size >= Duration::from_secs(3600) {
            (size.as_secs() + 30) / 60 * 60
        } else {
            size.as_secs()
        };
        crate::report::human_duration(Duration::from_secs(secs))
    }
}

impl fmt::Display for ClockStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the clock jumped {} by {}, from {} to {}",
            if self.forward() { "forward" } else { "back" },
            self.size(),
            self.before.format("%Y-%m-%d %H:%M:%S%:z"),
            self.after.format("%Y-%m-%d %H:%M:%S%:z"),
        )
    }
}

/// Compares each sample with the one before.
#[derive(Debug, Clone, Default)]
pub struct ClockStepDetector {
    last: Option<(DateTime<FixedOffset>, Instant)>,
}

impl ClockStepDetector {
    /// Records a sample; returns the step since the previous sample, if
    /// there was one. Every sample becomes the next reference, so a step is
    /// reported once, and slow drift never adds up to one.
    pub fn observe(
        &mut self,
        wall: DateTime<FixedOffset>,
        monotonic: Instant,
    ) -> Option<ClockStep> {
        let previous = self.last.replace((wall, monotonic));
        let (before, then) = previous?;
        let wall_progress = wall - before;
        let monotonic_progress =
            TimeDelta::from_std(monotonic.saturating_duration_since(then)).ok()?;
        // Checked: a monotonic clock that claims centuries passed must not
        // panic the logger.
        let by = wall_progress.checked_sub(&monotonic_progress)?;
        let threshold = TimeDelta::from_std(CLOCK_STEP_THRESHOLD).ok()?;
        (by.abs() > threshold).then_some(ClockStep {
            before,
            after: wall,
            by,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(3600)
            .unwrap()
            .with_ymd_and_hms(2026, 12, 2, h, m, s)
            .unwrap()
    }

    #[test]
    fn clocks_that_advance_alike_are_no_step() {
        let start = Instant::now();
        let mut detector = ClockStepDetector::default();
        assert_eq!(detector.observe(at(23, 0, 0), start), None);
        // Two seconds of wall time in two seconds; then a late sample.
        assert_eq!(
            detector.observe(at(23, 0, 2), start + Duration::from_secs(2)),
            None
        );
        assert_eq!(
            detector.observe(at(23, 30, 2), start + Duration::from_secs(1802)),
            None
        );
    }

    #[test]
    fn a_minute_is_tolerated_and_more_is_a_step() {
        let start = Instant::now();
        let mut detector = ClockStepDetector::default();
        detector.observe(at(12, 0, 0), start);
        assert_eq!(
            detector.observe(at(12, 1, 2), start + Duration::from_secs(2)),
            None,
            "exactly 60 s ahead"
        );
        let step = detector
            .observe(at(12, 2, 5), start + Duration::from_secs(4))
            .expect("61 s ahead");
        assert!(step.forward());
        assert_eq!(step.by, TimeDelta::seconds(61));
        assert_eq!(
            step.to_string(),
            "the clock jumped forward by 1 min 1 s, \
             from 2026-12-02 12:01:02+01:00 to 2026-12-02 12:02:05+01:00"
        );
    }

    #[test]
    fn a_day_ahead_and_back_are_two_steps_each_reported_once() {
        let start = Instant::now();
        let tick = |n: u64| start + Duration::from_secs(2 * n);
        let mut detector = ClockStepDetector::default();
        detector.observe(at(23, 59, 50), tick(0));
        let ahead = at(23, 59, 52) + TimeDelta::days(1);
        let step = detector.observe(ahead, tick(1)).unwrap();
        assert_eq!(
            step.to_string(),
            "the clock jumped forward by 1 day, \
             from 2026-12-02 23:59:50+01:00 to 2026-12-03 23:59:52+01:00"
        );
        assert_eq!(
            detector.observe(ahead + TimeDelta::seconds(2), tick(2)),
            None,
            "the new time is the reference now"
        );
        let step = detector.observe(at(23, 59, 56), tick(3)).unwrap();
        assert!(!step.forward());
        assert_eq!(step.size(), "1 day");
        assert!(
            step.to_string()
                .starts_with("the clock jumped back by 1 day, from 2026-12-03 23:59:54+01:00"),
            "{step}"
        );
        assert_eq!(detector.observe(at(23, 59, 58), tick(4)), None);
    }

    #[test]
    fn a_day_long_step_seen_seconds_late_reads_as_a_day() {
        let start = Instant::now();
        let mut detector = ClockStepDetector::default();
        detector.observe(at(10, 0, 0), start);
        // The clock stood still for 3 s of the sampling interval, then
        // jumped: the measured step is 3 s short of a day.
        let step = detector
            .observe(
                at(10, 0, 0) + TimeDelta::days(1),
                start + Duration::from_secs(3),
            )
            .unwrap();
        assert_eq!(step.size(), "1 day");
        let step = ClockStep {
            by: TimeDelta::seconds(-(2 * 3600 + 5 * 60 + 40)),
            ..step
        };
        assert_eq!(step.size(), "2 h 6 min");
    }
}
