//! Naming of rotated log files and the calendar decisions behind rotation.
//!
//! Pure: no I/O and no clock. Callers pass "now", "today" and directory
//! listings in, so every rule here is unit-tested against fixed dates,
//! including daylight-saving transitions.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone};

/// The file the daemon is writing to right now.
pub const CURRENT_LOG_FILE_NAME: &str = "injixo-cloud-link.log";

const ROTATED_PREFIX: &str = "injixo-cloud-link.";
const ROTATED_SUFFIX: &str = ".log";
/// `YYYY-MM-DD`: the prefix of every record our formatter writes.
const DATE_LEN: usize = 10;

/// The name for the next rotated file of `date`: `injixo-cloud-link.<date>.<n>.log`.
///
/// `n` is one more than the highest number already used for that date (1 if
/// none). Without gaps this is the first free number; with gaps (someone
/// deleted `.1` by hand) it still never reuses a lower number, so sorting a
/// day's files by `n` keeps them in chronological order. Only when a file
/// numbered `u32::MAX` exists (no one rotates that often: someone made it) is
/// the lowest free number taken instead, since the rename would overwrite an
/// existing log.
pub fn rotated_file_name<I, S>(date: NaiveDate, existing_names: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let used: Vec<u32> = existing_names
        .into_iter()
        .filter_map(|name| parse_rotated_file_name(name.as_ref()))
        .filter(|(used_date, _)| *used_date == date)
        .map(|(_, n)| n)
        .collect();
    let highest_used = used.iter().copied().max().unwrap_or(0);
    let n = highest_used.checked_add(1).unwrap_or_else(|| {
        (1..=u32::MAX)
            .find(|n| !used.contains(n))
            .expect("fewer than u32::MAX files of one day")
    });
    format_rotated_file_name(date, n)
}

pub fn format_rotated_file_name(date: NaiveDate, n: u32) -> String {
    format!(
        "{ROTATED_PREFIX}{}.{n}{ROTATED_SUFFIX}",
        date.format("%Y-%m-%d")
    )
}

/// The date and number of a rotated log file name; `None` for anything else
/// (the current log, foreign files, near misses such as `.log.bak` or `.01.log`),
/// which is what keeps clean-up away from files that are not ours.
pub fn parse_rotated_file_name(name: &str) -> Option<(NaiveDate, u32)> {
    let rest = name
        .strip_prefix(ROTATED_PREFIX)?
        .strip_suffix(ROTATED_SUFFIX)?;
    let (date_part, number_part) = rest.split_once('.')?;
    let date = parse_strict_date(date_part.as_bytes())?;
    let canonical_number = !number_part.is_empty()
        && number_part.bytes().all(|b| b.is_ascii_digit())
        && !number_part.starts_with('0');
    if !canonical_number {
        return None;
    }
    let n = number_part.parse().ok()?;
    Some((date, n))
}

/// The day a log record belongs to: the `YYYY-MM-DD` our formatter puts at
/// the start of every record. `None` for records (or foreign lines) without it.
pub fn record_date(record: &[u8]) -> Option<NaiveDate> {
    let date = parse_strict_date(record.get(..DATE_LEN)?)?;
    // "2026-11-250" is not a date followed by something.
    match record.get(DATE_LEN) {
        Some(next) if next.is_ascii_digit() => None,
        _ => Some(date),
    }
}

/// Whether a record of `record_day` needs a new file, the current one
/// holding records of `file_day`: whenever the days differ, in either
/// direction. A clock set back (a day ahead for a moment, then corrected)
/// must not put the earlier day's lines into the later day's file, nor
/// keep the real midnight from rotating. A record without a date (a
/// continuation, a foreign line) stays in the current file. (Two threads
/// logging within microseconds of midnight may queue their records out of
/// order; the old day's record then gets a short file of its own, still one
/// of its day.)
pub fn starts_new_file(file_day: NaiveDate, record_day: Option<NaiveDate>) -> bool {
    record_day.is_some_and(|day| day != file_day)
}

/// Exactly `YYYY-MM-DD`; chrono's parser alone would also accept `2026-1-5`.
fn parse_strict_date(bytes: &[u8]) -> Option<NaiveDate> {
    let shape_ok = bytes.len() == DATE_LEN
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    NaiveDate::parse_from_str(std::str::from_utf8(bytes).ok()?, "%Y-%m-%d").ok()
}

/// The first instant of the next local day after `now`.
///
/// A day may last 23 or 25 hours, so this goes through the local calendar,
/// never `now + 24h`. Where a DST transition makes midnight ambiguous the
/// earlier instant wins; where it skips midnight (clocks jump from 23:59 to
/// 01:00, as in some American zones) the day starts at the first local time
/// that exists.
pub fn next_local_midnight<Tz: TimeZone>(now: &DateTime<Tz>) -> DateTime<Tz> {
    let timezone = now.timezone();
    let Some(tomorrow) = now.date_naive().checked_add_days(Days::new(1)) else {
        // The end of chrono's calendar: there is no next day to wait for.
        return now.clone();
    };
    let midnight = tomorrow.and_time(NaiveTime::MIN);
    // Gaps are at most a few hours; a minute's resolution finds their end.
    (0..=24 * 60)
        .filter_map(|minutes| midnight.checked_add_signed(chrono::TimeDelta::try_minutes(minutes)?))
        .find_map(|local| timezone.from_local_datetime(&local).earliest())
        .unwrap_or_else(|| now.clone())
}

/// Whether a rotated log of `date` is past the `[log] keepDays` retention on
/// `today`: kept are today's logs and those of the previous `keep_days` days.
pub fn is_expired(date: NaiveDate, today: NaiveDate, keep_days: u32) -> bool {
    match today.checked_sub_days(Days::new(u64::from(keep_days))) {
        Some(oldest_kept) => date < oldest_kept,
        None => false,
    }
}

/// The rotated log files among `names` that `keep_days` allows to delete:
/// older than `keep_days` before `today`, and not of the latest
/// `keep_days - 1` days that have a rotated log (the current log is the
/// last of the `keep_days`; at least one day is kept). The second rule is
/// for the clock: set a year ahead, `today` would make every log "old", yet
/// the logs of the last days the client ran are kept until as many days
/// have passed on the new clock.
pub fn expired_file_names<'a, I>(names: I, today: NaiveDate, keep_days: u32) -> Vec<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let rotated: Vec<(&str, NaiveDate)> = names
        .into_iter()
        .filter_map(|name| parse_rotated_file_name(name).map(|(date, _)| (name, date)))
        .collect();
    let mut days: Vec<NaiveDate> = rotated.iter().map(|(_, date)| *date).collect();
    days.sort_unstable_by(|a, b| b.cmp(a));
    days.dedup();
    let protected = keep_days.saturating_sub(1).max(1) as usize;
    let kept_days = &days[..days.len().min(protected)];
    rotated
        .into_iter()
        .filter(|(_, date)| is_expired(*date, today, keep_days) && !kept_days.contains(date))
        .map(|(name, _)| name)
        .collect()
}

/// How a log target is shown: our own modules by their last path segment
/// (`injixo_cloud_link::actors::pairing` -> `pairing`), anything else in full.
pub fn short_target(target: &str) -> &str {
    match target.strip_prefix("injixo_cloud_link::") {
        Some(inner) => inner.rsplit("::").next().unwrap_or(inner),
        None => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Timelike};
    use chrono_tz::{America::Havana, America::Sao_Paulo, Europe::Berlin};

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn first_rotation_of_a_day_is_number_one() {
        let none: [&str; 0] = [];
        assert_eq!(
            rotated_file_name(date(2026, 11, 25), none),
            "injixo-cloud-link.2026-11-25.1.log"
        );
    }

    #[test]
    fn numbers_continue_after_the_highest_of_the_same_day_only() {
        let existing = [
            "injixo-cloud-link.log",
            "injixo-cloud-link.2026-11-25.1.log",
            "injixo-cloud-link.2026-11-25.2.log",
            "injixo-cloud-link.2026-11-24.7.log",
            "injixo-cloud-link.2026-11-25.9.log.bak",
        ];
        assert_eq!(
            rotated_file_name(date(2026, 11, 25), existing),
            "injixo-cloud-link.2026-11-25.3.log"
        );
        assert_eq!(
            rotated_file_name(date(2026, 11, 24), existing),
            "injixo-cloud-link.2026-11-24.8.log"
        );
    }

    #[test]
    fn a_gap_is_not_refilled_so_numbers_stay_chronological() {
        let existing = [
            "injixo-cloud-link.2026-11-25.2.log",
            "injixo-cloud-link.2026-11-25.3.log",
        ];
        assert_eq!(
            rotated_file_name(date(2026, 11, 25), existing),
            "injixo-cloud-link.2026-11-25.4.log"
        );
    }

    #[test]
    fn the_highest_possible_number_is_never_reused() {
        // Found by fuzzing (fuzz/fuzz_targets/rotation.rs): the next number
        // saturated at u32::MAX, and rotating renamed the current log onto
        // the existing file of that name.
        let day = date(1071, 9, 21);
        let existing = [
            "injixo-cloud-link.1071-09-21.4294967295.log",
            "injixo-cloud-link.1071-09-21.1.log",
        ];
        assert_eq!(
            rotated_file_name(day, existing),
            "injixo-cloud-link.1071-09-21.2.log"
        );
    }

    #[test]
    fn rotated_names_round_trip() {
        for (d, n) in [
            (date(2026, 1, 1), 1),
            (date(1999, 12, 31), 42),
            (date(2026, 2, 28), u32::MAX),
        ] {
            let name = format_rotated_file_name(d, n);
            assert_eq!(parse_rotated_file_name(&name), Some((d, n)), "{name}");
        }
    }

    #[test]
    fn foreign_and_near_miss_names_are_not_rotated_logs() {
        for name in [
            "injixo-cloud-link.log",
            "injixo-cloud-link.2026-11-25.log",
            "injixo-cloud-link.2026-11-25.0.log",
            "injixo-cloud-link.2026-11-25.01.log",
            "injixo-cloud-link.2026-11-25.+1.log",
            "injixo-cloud-link.2026-11-25.1.log.bak",
            "injixo-cloud-link.2026-11-25.1.txt",
            "injixo-cloud-link.2026-1-25.1.log",
            "injixo-cloud-link.2026-02-30.1.log",
            "injixo-cloud-link.2026-11-25.1.2.log",
            "injixo-cloud-link.2026-11-25.99999999999.log",
            "other.2026-11-25.1.log",
            "config.toml",
        ] {
            assert_eq!(parse_rotated_file_name(name), None, "{name}");
        }
    }

    #[test]
    fn record_date_reads_the_formatter_prefix() {
        assert_eq!(
            record_date(b"2026-11-25T14:03:07.123+01:00  INFO pairing: linked\n"),
            Some(date(2026, 11, 25))
        );
        assert_eq!(record_date(b"2026-11-25"), Some(date(2026, 11, 25)));
        assert_eq!(record_date(b"2026-11-250"), None);
        assert_eq!(record_date(b"2026-11-2"), None);
        assert_eq!(record_date(b"  at src/main.rs:3\n"), None);
        assert_eq!(record_date(b"2026-13-01T00:00:00"), None);
        assert_eq!(record_date(b""), None);
    }

    #[test]
    fn a_record_of_another_day_starts_a_new_file_in_either_direction() {
        let day = date(2026, 12, 2);
        assert!(!starts_new_file(day, Some(day)));
        assert!(!starts_new_file(day, None), "undated lines stay");
        assert!(starts_new_file(day, Some(date(2026, 12, 3))), "midnight");
        assert!(
            starts_new_file(date(2026, 12, 3), Some(day)),
            "a clock set back by a day"
        );
        assert!(starts_new_file(day, Some(date(2025, 12, 2))), "a year back");
    }

    #[test]
    fn midnight_on_an_ordinary_day() {
        let now = Berlin.with_ymd_and_hms(2026, 11, 25, 14, 3, 7).unwrap();
        let midnight = next_local_midnight(&now);
        assert_eq!(
            midnight,
            Berlin.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
        );
        assert_eq!(
            midnight - now,
            chrono::TimeDelta::seconds(9 * 3600 + 56 * 60 + 53)
        );
    }

    #[test]
    fn a_spring_forward_day_in_berlin_lasts_23_hours() {
        // 2026-03-29: clocks jump from 02:00 to 03:00.
        let start = Berlin.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let end = next_local_midnight(&start);
        assert_eq!(end, Berlin.with_ymd_and_hms(2026, 3, 30, 0, 0, 0).unwrap());
        assert_eq!(end - start, chrono::TimeDelta::hours(23));
        assert_eq!(
            end.fixed_offset().offset(),
            &FixedOffset::east_opt(2 * 3600).unwrap()
        );
    }

    #[test]
    fn an_autumn_day_in_berlin_lasts_25_hours() {
        // 2026-10-25: clocks fall back from 03:00 to 02:00.
        let start = Berlin.with_ymd_and_hms(2026, 10, 25, 0, 0, 0).unwrap();
        let end = next_local_midnight(&start);
        assert_eq!(end, Berlin.with_ymd_and_hms(2026, 10, 26, 0, 0, 0).unwrap());
        assert_eq!(end - start, chrono::TimeDelta::hours(25));
    }

    #[test]
    fn the_second_pass_through_an_autumn_hour_still_waits_for_the_same_midnight() {
        let second_two_thirty = Berlin
            .from_local_datetime(&date(2026, 10, 25).and_hms_opt(2, 30, 0).unwrap())
            .latest()
            .unwrap();
        assert_eq!(
            next_local_midnight(&second_two_thirty),
            Berlin.with_ymd_and_hms(2026, 10, 26, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn a_skipped_midnight_becomes_the_first_existing_local_time() {
        // Sao Paulo started DST at midnight until 2019: 2018-11-04 began at 01:00.
        let evening = Sao_Paulo.with_ymd_and_hms(2018, 11, 3, 22, 0, 0).unwrap();
        let start_of_day = next_local_midnight(&evening);
        assert_eq!(start_of_day.date_naive(), date(2018, 11, 4));
        assert_eq!((start_of_day.hour(), start_of_day.minute()), (1, 0));
        assert_eq!(start_of_day - evening, chrono::TimeDelta::hours(2));
    }

    #[test]
    fn an_ambiguous_midnight_takes_the_earlier_instant() {
        // Havana ended DST at 01:00 -> 00:00 on 2024-11-03, so 00:xx happened twice.
        let evening = Havana.with_ymd_and_hms(2024, 11, 2, 23, 0, 0).unwrap();
        let midnight = next_local_midnight(&evening);
        assert_eq!(midnight - evening, chrono::TimeDelta::hours(1));
    }

    #[test]
    fn midnight_with_a_fixed_offset() {
        let offset = FixedOffset::east_opt(3600).unwrap();
        let now = offset.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(
            next_local_midnight(&now),
            offset.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn keep_days_keeps_today_and_the_previous_days() {
        let today = date(2026, 11, 25);
        assert!(!is_expired(date(2026, 11, 25), today, 7));
        assert!(!is_expired(date(2026, 11, 18), today, 7));
        assert!(is_expired(date(2026, 11, 17), today, 7));
        assert!(is_expired(date(2026, 11, 24), today, 0));
        assert!(!is_expired(date(2026, 11, 25), today, 0));
        assert!(
            !is_expired(date(2026, 11, 26), today, 0),
            "a future date (clock set back) is kept"
        );
        assert!(!is_expired(date(1, 1, 1), today, u32::MAX));
    }

    #[test]
    fn only_our_rotated_files_expire() {
        let names = [
            "injixo-cloud-link.log",
            "injixo-cloud-link.2026-11-01.1.log",
            "injixo-cloud-link.2026-11-01.2.log",
            "injixo-cloud-link.2026-11-20.1.log",
            "injixo-cloud-link.2026-11-21.1.log",
            "injixo-cloud-link.2026-11-22.1.log",
            "injixo-cloud-link.2026-11-23.1.log",
            "injixo-cloud-link.2026-11-24.1.log",
            "injixo-cloud-link.2026-11-25.1.log",
            "injixo-cloud-link.2026-11-19.1.log",
            "injixo-cloud-link.2026-11-01.1.log.bak",
            "other.2026-11-01.1.log",
            "injixo-cloud-link.toml",
        ];
        assert_eq!(
            expired_file_names(names, date(2026, 11, 25), 7),
            [
                "injixo-cloud-link.2026-11-01.1.log",
                "injixo-cloud-link.2026-11-01.2.log"
            ]
        );
    }

    #[test]
    fn a_clock_set_far_ahead_keeps_the_logs_of_the_last_days_that_ran() {
        let names = [
            "injixo-cloud-link.2026-11-20.1.log",
            "injixo-cloud-link.2026-11-21.1.log",
            "injixo-cloud-link.2026-11-22.1.log",
            "injixo-cloud-link.2026-11-22.2.log",
        ];
        // The clock says a year later: with keepDays = 3 the current log
        // and the two latest days with rotated logs stay.
        assert_eq!(
            expired_file_names(names, date(2027, 11, 22), 3),
            ["injixo-cloud-link.2026-11-20.1.log"]
        );
        // Once two days of the new clock have rotated logs, the old go.
        let later = [
            "injixo-cloud-link.2026-11-22.1.log",
            "injixo-cloud-link.2027-11-22.1.log",
            "injixo-cloud-link.2027-11-23.1.log",
        ];
        assert_eq!(
            expired_file_names(later, date(2027, 11, 24), 3),
            ["injixo-cloud-link.2026-11-22.1.log"]
        );
    }

    #[test]
    fn targets_of_our_crate_show_their_last_segment() {
        assert_eq!(
            short_target("injixo_cloud_link::actors::pairing"),
            "pairing"
        );
        assert_eq!(short_target("injixo_cloud_link::csv"), "csv");
        assert_eq!(short_target("injixo_cloud_link"), "injixo_cloud_link");
        assert_eq!(short_target("actix_server::worker"), "actix_server::worker");
        assert_eq!(
            short_target("injixo_cloud_linker::x"),
            "injixo_cloud_linker::x"
        );
    }
}
