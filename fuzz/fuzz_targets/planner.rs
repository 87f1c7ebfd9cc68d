//! The window planner of database imports, driven through a run of ticks:
//! wild schedules (as the cloud could send them), any time zone, a clock
//! that jumps forward and back, commits that arrive in any order or not at
//! all, and persisted cursors from anywhere in years 1 to 9999. After each
//! tick the plan's invariants are checked: windows are non-empty, contiguous,
//! oldest first, each within one local day, never past `now - delay`; at
//! most `max_windows` of them move the watermark; nothing between the
//! origin and the watermark was left out; the watermark only moves forward.
#![no_main]

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use injixo_cloud_link::db::planner::{
    backfill_progress, bind_parameters, covered_until, first_start, local_midnight_at_or_before,
    next_local_midnight, next_run, plan, CommitTracker, Cursor, ImportSchedule, Window,
};
use injixo_cloud_link::protocol::{DatabaseImport, ImportType};
use injixo_cloud_link_fuzz::{clock, instant, step, time_zone};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

/// A setting as the cloud sends it: usually sensible, sometimes anything.
fn setting(u: &mut Unstructured<'_>, usual: u64) -> Result<u64> {
    if u.ratio(1, 8)? {
        u.arbitrary()
    } else {
        u.int_in_range(0..=usual)
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let import = DatabaseImport {
        id: "interval".to_owned(),
        import_type: ImportType::Interval,
        query: "SELECT * FROM t WHERE ts >= ? AND ts < ?".to_owned(),
        every_seconds: setting(u, 7_200)?,
        reconcile_hours: setting(u, 72)?,
        backfill_days: setting(u, 40)?,
    };
    let schedule = ImportSchedule::from_import(&import);
    // The planner bounds the period as it bounds every look-back: 100 years.
    let every = Duration::from_std(schedule.every)
        .unwrap_or(Duration::MAX)
        .min(Duration::days(100 * 366));
    assert!(schedule.delay >= Duration::seconds(1) && schedule.delay <= Duration::seconds(60));
    let tz = time_zone(u)?;
    let max_windows = u.int_in_range(0..=40)?;
    let mut now = if u.ratio(1, 8)? {
        instant(u)?
    } else {
        clock(u)?
    };

    check_midnights(now, tz);
    let mut cursor = if u.ratio(1, 4)? {
        // A cursor persisted by an earlier run, on another clock.
        let origin = now + step(u)?;
        let watermark = if u.arbitrary()? {
            Some(origin + step(u)?)
        } else {
            None
        };
        Some(Cursor { origin, watermark })
    } else {
        None
    };
    // What the earlier run committed, as far as the cursor tells.
    let mut committed: Vec<Window> = cursor
        .and_then(|c| Window::new(c.origin, c.watermark?))
        .into_iter()
        .collect();
    let mut last_run = None;

    for _ in 0..u.int_in_range(1..=6)? {
        let due = next_run(&schedule, last_run, now);
        assert!(now <= due && due <= now + every, "next run {due} at {now}");
        last_run = Some(now);

        let p = plan(&schedule, cursor, now, tz, max_windows);
        match cursor {
            Some(c) => assert_eq!(p.origin, c.origin),
            None => assert_eq!(p.origin, first_start(&schedule, now, tz)),
        }
        let c = *cursor.get_or_insert(Cursor {
            origin: p.origin,
            watermark: None,
        });
        check_plan(
            &p.windows,
            p.truncated,
            c,
            now - schedule.delay,
            tz,
            max_windows,
        );

        if let Some(progress) = backfill_progress(&schedule, c, now, tz) {
            assert!(progress.done_days < progress.total_days);
            assert!(progress.percent() < 100);
        }

        // The cloud commits some of the windows, in any order.
        let mut order: Vec<usize> = (0..p.windows.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, u.int_in_range(0..=i)?);
        }
        if u.ratio(1, 4)? {
            order.truncate(u.int_in_range(0..=order.len())?);
        }
        let mut tracker = CommitTracker::new(c.watermark);
        tracker.start_batch(&p.windows);
        for i in order {
            let window = p.windows[i];
            committed.push(window);
            if let Some(watermark) = tracker.committed(&window) {
                assert!(c.watermark.is_none_or(|old| watermark > old));
                assert!(p.windows.iter().any(|w| w.end == watermark));
                cursor = Some(Cursor {
                    watermark: Some(watermark),
                    ..c
                });
            }
            assert_eq!(
                tracker.committed(&window),
                None,
                "a repeated commit moved it"
            );
        }
        assert_covered(cursor, &committed);

        now += step(u)?;
    }
    Ok(())
}

fn check_plan(
    windows: &[Window],
    truncated: bool,
    c: Cursor,
    target: DateTime<Utc>,
    tz: Tz,
    max_windows: usize,
) {
    let read_until = c.watermark.unwrap_or(c.origin);
    for w in windows {
        assert!(w.start < w.end && w.end <= target, "{w} past {target}");
        assert!(
            w.end <= next_local_midnight(w.start, tz),
            "{w} crosses midnight in {tz}"
        );
        let last = w.end - Duration::nanoseconds(1);
        assert_eq!(
            w.start.with_timezone(&tz).date_naive(),
            last.with_timezone(&tz).date_naive(),
            "{w} spans two days in {tz}"
        );
        let (first, second) = bind_parameters(w, tz);
        assert!(first < second, "{w} in {tz}: {first} .. {second}");
        for t in [w.start, last, w.start + (w.end - w.start) / 2] {
            let local = t.with_timezone(&tz).naive_local();
            assert!(first <= local && local < second, "{t} of {w} in {tz}");
        }
    }
    for pair in windows.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "gap or overlap");
    }
    match (windows.first(), windows.last()) {
        (Some(first), Some(last)) => {
            assert!(first.start <= read_until.min(target).max(c.origin.min(read_until)));
            assert!(
                truncated || last.end == target,
                "stops at {} before {target}",
                last.end
            );
        }
        _ => assert!(!truncated),
    }
    let advancing = windows.iter().filter(|w| w.end > read_until).count();
    let budget = max_windows.max(1);
    assert!(advancing <= budget);
    assert!(!truncated || advancing == budget);
}

/// Everything from the origin to the watermark was committed.
fn assert_covered(cursor: Option<Cursor>, committed: &[Window]) {
    if let Some(Cursor {
        origin,
        watermark: Some(watermark),
    }) = cursor
    {
        let reach = covered_until(origin, committed);
        assert!(reach >= watermark, "gap at {reach}, watermark {watermark}");
    }
}

fn check_midnights(now: DateTime<Utc>, tz: Tz) {
    let before = local_midnight_at_or_before(now, tz);
    let after = next_local_midnight(now, tz);
    assert!(
        before <= now && now < after,
        "{before} {now} {after} in {tz}"
    );
    // No midnight lies between the two.
    assert_eq!(next_local_midnight(before, tz), after, "{now} in {tz}");
}
