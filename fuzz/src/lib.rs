//! What several fuzz targets draw from their input: instants and time zones.

use arbitrary::{Result, Unstructured};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::{Tz, TZ_VARIANTS};

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the instants an RFC 3339
/// state file (a watermark, a cursor) can hold, and far more than any clock.
const FIRST_SECOND: i64 = -62_135_596_800;
const LAST_SECOND: i64 = 253_402_300_799;

/// Any instant from year 1 to year 9999, to the nanosecond.
pub fn instant(u: &mut Unstructured<'_>) -> Result<DateTime<Utc>> {
    let seconds = u.int_in_range(FIRST_SECOND..=LAST_SECOND)?;
    let nanos = u.int_in_range(0..=999_999_999)?;
    Ok(DateTime::from_timestamp(seconds, nanos).expect("in chrono's range"))
}

/// An instant a real clock shows: 1970 to 2200.
pub fn clock(u: &mut Unstructured<'_>) -> Result<DateTime<Utc>> {
    let seconds = u.int_in_range(0..=7_258_118_400)?;
    let nanos = u.int_in_range(0..=999_999_999)?;
    Ok(DateTime::from_timestamp(seconds, nanos).expect("in chrono's range"))
}

/// An offset from an instant: mostly small steps, sometimes years.
pub fn step(u: &mut Unstructured<'_>) -> Result<Duration> {
    Ok(match u.int_in_range(0u8..=3)? {
        0 => Duration::seconds(u.int_in_range(-3_600..=3_600)?),
        1 => Duration::seconds(u.int_in_range(0..=86_400 * 3)?),
        2 => Duration::minutes(u.int_in_range(-60 * 24 * 3..=60 * 24 * 400)?),
        _ => Duration::milliseconds(u.int_in_range(-1_000..=1_000)?),
    })
}

/// Any IANA time zone chrono-tz knows.
pub fn time_zone(u: &mut Unstructured<'_>) -> Result<Tz> {
    u.choose(&TZ_VARIANTS).copied()
}
