//! Rotated log file names and the calendar of rotation. Any name that parses
//! is the name its date and number format to; the next rotated name never
//! reuses a number; a record's date is only ever its first ten bytes; the
//! next local midnight lies in the future; retention keeps today; a line
//! starts a new file exactly when its day is not the file's; clock samples,
//! however wild, never panic the step detector, which reports only steps
//! beyond its threshold.
#![no_main]

use chrono::{Days, NaiveDate, TimeDelta};
use injixo_cloud_link::logging::clock_step::{ClockStepDetector, CLOCK_STEP_THRESHOLD};
use injixo_cloud_link::logging::rotation::{
    expired_file_names, format_rotated_file_name, is_expired, next_local_midnight,
    parse_rotated_file_name, record_date, rotated_file_name, short_target, starts_new_file,
};
use injixo_cloud_link_fuzz::{instant, step, time_zone};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let now = instant(u)?;
    let tz = time_zone(u)?;
    let keep_days: u32 = if u.ratio(1, 4)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=60)?
    };
    let today = now.date_naive();
    let names = folder_listing(u, today)?;
    let record: &[u8] = u.arbitrary()?;

    for name in &names {
        if let Some((date, n)) = parse_rotated_file_name(name) {
            assert!(n >= 1);
            assert_eq!(&format_rotated_file_name(date, n), name);
        }
        let _ = short_target(name);
    }
    let next = rotated_file_name(today, &names);
    let (date, n) = parse_rotated_file_name(&next).expect("our own name parses");
    assert_eq!(date, today);
    // Rotation renames the current log to this name: an existing file of
    // that name would be overwritten.
    assert!(!names.contains(&next), "{next} exists");
    let numbers_left = !names
        .iter()
        .any(|name| parse_rotated_file_name(name) == Some((today, u32::MAX)));
    for name in &names {
        if let Some((used, m)) = parse_rotated_file_name(name) {
            assert!(
                used != today || m < n || !numbers_left,
                "{next} after {name}"
            );
        }
    }

    if let Some(date) = record_date(record) {
        let text = std::str::from_utf8(&record[..10]).unwrap();
        assert_eq!(date.format("%Y-%m-%d").to_string(), text);
    }
    let file_day = instant(u)?.date_naive();
    assert!(!starts_new_file(file_day, None));
    assert!(!starts_new_file(file_day, Some(file_day)));
    let record_day = record_date(record);
    assert_eq!(
        starts_new_file(file_day, record_day),
        record_day.is_some_and(|day| day != file_day)
    );

    clock_steps(u, &tz)?;

    let local = now.with_timezone(&tz);
    let midnight = next_local_midnight(&local);
    if local.date_naive().checked_add_days(Days::new(1)).is_some() {
        assert!(midnight > local, "{midnight} is not after {local}");
        assert!(midnight.date_naive() > local.date_naive());
    }

    assert!(!is_expired(today, today, keep_days));
    if let Some(old) = today.checked_sub_days(Days::new(u64::from(keep_days) + 1)) {
        assert!(is_expired(old, today, keep_days));
    }
    let expired = expired_file_names(names.iter().map(String::as_str), today, keep_days);
    for name in expired {
        let (date, _) = parse_rotated_file_name(name).expect("only our files are deleted");
        assert!(date < today);
    }
    Ok(())
}

/// Names found in the log folder: ours of today and other days (any
/// number), near misses of ours, and anything else.
fn folder_listing(u: &mut Unstructured<'_>, today: NaiveDate) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let date = match u.int_in_range(0u8..=2)? {
            0 => today,
            1 => today
                .checked_sub_days(Days::new(u.int_in_range(0..=400)?))
                .unwrap_or(today),
            _ => today
                .checked_add_days(Days::new(u.int_in_range(0..=3)?))
                .unwrap_or(today),
        };
        let number = if u.ratio(1, 4)? {
            u.arbitrary()?
        } else {
            u.int_in_range(1..=5)?
        };
        let ours = format_rotated_file_name(date, number);
        names.push(match u.int_in_range(0u8..=3)? {
            0 | 1 => ours,
            2 => {
                // One byte of ours replaced, inserted or removed.
                let mut bytes = ours.into_bytes();
                let at = u.int_in_range(0..=bytes.len() - 1)?;
                match u.int_in_range(0u8..=2)? {
                    0 => bytes[at] = u.arbitrary()?,
                    1 => bytes.insert(at, u.arbitrary()?),
                    _ => drop(bytes.remove(at)),
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => u.arbitrary()?,
        });
    }
    Ok(names)
}

/// Wall-clock samples anywhere in the calendar, the monotonic clock moving
/// by small steps or years.
fn clock_steps(u: &mut Unstructured<'_>, tz: &chrono_tz::Tz) -> Result<()> {
    let threshold = TimeDelta::from_std(CLOCK_STEP_THRESHOLD).unwrap();
    let mut detector = ClockStepDetector::default();
    let mut monotonic = std::time::Instant::now();
    for _ in 0..u.int_in_range(1..=8)? {
        let wall = if u.arbitrary()? {
            instant(u)?
        } else {
            let Some(wall) = instant(u)?.checked_add_signed(step(u)?) else {
                continue;
            };
            wall
        };
        let wall = wall.with_timezone(tz).fixed_offset();
        let elapsed = step(u)?.abs().to_std().unwrap_or_default();
        monotonic = monotonic.checked_add(elapsed).unwrap_or(monotonic);
        if let Some(found) = detector.observe(wall, monotonic) {
            assert!(found.by.abs() > threshold, "{found:?}");
            assert_eq!(found.after, wall);
            let _ = found.to_string();
        }
    }
    Ok(())
}
