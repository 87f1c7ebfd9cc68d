//! The "no growth" rule of the soak. Pure: samples in, verdict out.
//!
//! A leak shows as a level that keeps rising while the load stays the same.
//! Single samples are noisy (the allocator keeps freed pages, the HTTP pool
//! opens and closes sockets, the blocking pool starts and retires threads),
//! so the rule compares *medians*: of the production samples after the
//! warm-up, the median of the last third against the median of the first
//! third. The measure grew when the difference exceeds the tolerance,
//! `max(absolute, relative × first median)`. The drain after production is
//! left out: its load differs.

/// How much a measure may rise between the first and last third.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub absolute: f64,
    pub relative: f64,
}

impl Tolerance {
    pub fn allowed(&self, first: f64) -> f64 {
        self.absolute.max(self.relative * first)
    }
}

/// What the rule found for one measure of one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub first_median: f64,
    pub last_median: f64,
    pub allowed: f64,
    /// Samples in each third.
    pub per_third: usize,
}

impl Growth {
    pub fn rise(&self) -> f64 {
        self.last_median - self.first_median
    }

    pub fn grew(&self) -> bool {
        self.rise() > self.allowed
    }
}

/// Fewer samples per third than this and the rule says nothing (a run too
/// short to judge is reported as such, not passed).
pub const MIN_PER_THIRD: usize = 3;

/// Applies the rule to `(seconds, value)` samples, keeping those with
/// `warmup_end <= t <= production_end`. `None` when there are too few.
pub fn assess(
    samples: &[(f64, f64)],
    warmup_end: f64,
    production_end: f64,
    tolerance: Tolerance,
) -> Option<Growth> {
    let kept: Vec<f64> = samples
        .iter()
        .filter(|(t, _)| *t >= warmup_end && *t <= production_end)
        .map(|(_, v)| *v)
        .collect();
    let per_third = kept.len() / 3;
    if per_third < MIN_PER_THIRD {
        return None;
    }
    let first_median = median(&kept[..per_third]);
    let last_median = median(&kept[kept.len() - per_third..]);
    Some(Growth {
        first_median,
        last_median,
        allowed: tolerance.allowed(first_median),
        per_third,
    })
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The warm-up left out of the rule: the first 30 s or tenth of production,
/// whichever is longer (pairing, first assignment, pools filling up).
pub fn warmup_end(production_seconds: f64) -> f64 {
    (production_seconds / 10.0).max(30.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Tolerance = Tolerance {
        absolute: 2.0,
        relative: 0.1,
    };

    fn series(values: &[f64]) -> Vec<(f64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 * 10.0, *v))
            .collect()
    }

    #[test]
    fn a_flat_noisy_series_does_not_grow() {
        let s = series(&[
            50.0, 10.0, 11.0, 30.0, 10.0, 11.0, 10.5, 12.0, 10.0, 11.0, 10.0,
        ]);
        // 10 s warm-up drops the first sample (a start-up spike).
        let g = assess(&s, 10.0, 100.0, TOL).unwrap();
        assert_eq!(g.per_third, 3);
        assert_eq!(g.first_median, 11.0);
        assert_eq!(g.last_median, 10.0);
        assert!(!g.grew(), "{g:?}");
    }

    #[test]
    fn a_steady_rise_beyond_the_tolerance_grows() {
        let s = series(&(0..30).map(|i| 100.0 + i as f64).collect::<Vec<_>>());
        let g = assess(&s, 0.0, 1000.0, TOL).unwrap();
        assert!(g.grew(), "{g:?}");
        assert!(
            (g.allowed - 10.45).abs() < 1e-9,
            "10 % of the first median (104.5), above 2: {g:?}"
        );
    }

    #[test]
    fn the_absolute_tolerance_covers_small_levels_and_the_drain_is_ignored() {
        let s = series(&[3.0, 3.0, 4.0, 4.0, 5.0, 4.0, 5.0, 5.0, 5.0, 40.0, 40.0]);
        let g = assess(&s, 0.0, 80.0, TOL).unwrap();
        assert_eq!((g.first_median, g.last_median), (3.0, 5.0));
        assert!(!g.grew(), "a rise of 2 is within the absolute 2: {g:?}");
    }

    #[test]
    fn too_few_samples_give_no_verdict() {
        let s = series(&[1.0; 8]);
        assert!(assess(&s, 0.0, 1000.0, TOL).is_none());
    }

    #[test]
    fn medians_and_warmup() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(warmup_end(180.0), 30.0);
        assert_eq!(warmup_end(1800.0), 180.0);
    }
}
