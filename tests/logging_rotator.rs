//! LogRotatorActor at local midnight, on a hand-driven clock in Europe/Berlin.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use chrono::{DateTime, FixedOffset, TimeZone};
use chrono_tz::{Europe::Berlin, Tz};
use injixo_cloud_link::actors::log_rotator::LogRotatorActor;
use injixo_cloud_link::actors::supervisor::Shutdown;
use injixo_cloud_link::logging::{self, rotation, Clock, LogSettings, CURRENT_LOG_FILE_NAME};

#[path = "support/logs.rs"]
mod logs;

/// Stands still until the test moves it.
struct ManualClock {
    now: Mutex<DateTime<Tz>>,
    schedules_computed: AtomicUsize,
}

impl ManualClock {
    fn at(now: DateTime<Tz>) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(now),
            schedules_computed: AtomicUsize::new(0),
        })
    }

    fn set(&self, now: DateTime<Tz>) {
        *self.now.lock().unwrap() = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<FixedOffset> {
        self.now.lock().unwrap().fixed_offset()
    }

    fn next_midnight(&self, now: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        self.schedules_computed.fetch_add(1, Ordering::SeqCst);
        rotation::next_local_midnight(&now.with_timezone(&Berlin)).fixed_offset()
    }
}

fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: i64) -> DateTime<Tz> {
    Berlin.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + chrono::TimeDelta::milliseconds(ms)
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

const OLD: &str = "injixo-cloud-link.2026-03-01.1.log";
const EXPIRES_AT_MIDNIGHT: &str = "injixo-cloud-link.2026-03-21.1.log";
const RECENT: &str = "injixo-cloud-link.2026-03-27.1.log";
/// A log for every day before `RECENT` back to `EXPIRES_AT_MIDNIGHT`: with
/// them the latest seven days with logs are recent ones, and keepDays may
/// delete the older files (it always keeps the latest keepDays days that
/// have logs, whatever the clock says).
const DAILY: [&str; 5] = [
    "injixo-cloud-link.2026-03-22.1.log",
    "injixo-cloud-link.2026-03-23.1.log",
    "injixo-cloud-link.2026-03-24.1.log",
    "injixo-cloud-link.2026-03-25.1.log",
    "injixo-cloud-link.2026-03-26.1.log",
];
const FOREIGN: [&str; 3] = [
    "notes.txt",
    "injixo-cloud-link.2026-03-01.3.log.bak",
    "other.2026-03-01.1.log",
];
const ROTATED_AT_MIDNIGHT: &str = "injixo-cloud-link.2026-03-28.1.log";

fn prepare_folder(dir: &Path) {
    for name in [OLD, EXPIRES_AT_MIDNIGHT, RECENT]
        .into_iter()
        .chain(DAILY)
        .chain(FOREIGN)
    {
        fs::write(dir.join(name), name).unwrap();
    }
    // Named like a rotated log, but a folder: not ours to delete.
    fs::create_dir(dir.join("injixo-cloud-link.2026-03-01.2.log")).unwrap();
}

/// Runs the day change 2026-03-28 -> 2026-03-29 (the night DST starts) and
/// returns the names left in the folder.
async fn run_through_midnight(dir: &Path, keep_days: Option<u32>) -> Vec<String> {
    let clock = ManualClock::at(berlin(2026, 3, 28, 23, 59, 59, 500));
    let settings = LogSettings {
        install_dir: dir.to_path_buf(),
        verbose: false,
        console: false,
        keep_days,
        event_log: None,
    };
    let (subscriber, logging) = logging::build_with_clock(&settings, clock.clone()).unwrap();
    let subscriber_guard = tracing::subscriber::set_default(subscriber);
    tracing::info!(target: "injixo_cloud_link::daemon", "before midnight");

    let rotator =
        LogRotatorActor::with_clock(logging.rotation(), keep_days, logging.clock()).start();
    wait_until("the rotator has scheduled midnight", || {
        clock.schedules_computed.load(Ordering::SeqCst) > 0
    })
    .await;
    if keep_days.is_some() {
        assert!(!dir.join(OLD).exists(), "expired logs are deleted at start");
        assert!(dir.join(EXPIRES_AT_MIDNIGHT).exists());
    }

    clock.set(berlin(2026, 3, 29, 0, 0, 0, 200));
    wait_until("the log has rotated", || {
        dir.join(ROTATED_AT_MIDNIGHT).exists()
    })
    .await;
    if keep_days.is_some() {
        wait_until("keepDays has run at midnight", || {
            !dir.join(EXPIRES_AT_MIDNIGHT).exists()
        })
        .await;
    }
    tracing::info!(target: "injixo_cloud_link::daemon", "after midnight");

    rotator.send(Shutdown).await.unwrap();
    wait_until("the rotator has stopped", || !rotator.connected()).await;
    drop(subscriber_guard);
    drop(logging);

    let rotated = fs::read_to_string(dir.join(ROTATED_AT_MIDNIGHT)).unwrap();
    let mut expected_rotated =
        String::from("2026-03-28T23:59:59.500+01:00  INFO daemon: before midnight\n");
    if keep_days.is_some() {
        expected_rotated.push_str(&format!(
            "2026-03-28T23:59:59.500+01:00  INFO log_rotator: deleted old log {} (keepDays = 7)\n",
            dir.join(OLD).display()
        ));
    }
    assert_eq!(rotated, expected_rotated);
    let current = fs::read_to_string(dir.join(CURRENT_LOG_FILE_NAME)).unwrap();
    let lines: Vec<_> = current.lines().collect();
    assert_eq!(
        lines[0],
        "2026-03-29T00:00:00.200+01:00  INFO log_rotator: \
         day ended: rotating the log; the new file starts with this line"
    );
    assert_eq!(
        lines.last().unwrap(),
        &"2026-03-29T00:00:00.200+01:00  INFO daemon: after midnight"
    );

    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<_> = names.iter().map(|n| n.to_string()).collect();
    names.sort();
    names
}

#[actix_rt::test]
async fn at_midnight_the_log_rotates_and_keep_days_deletes_only_expired_rotated_logs() {
    let dir = tempfile::tempdir().unwrap();
    prepare_folder(dir.path());
    let names = run_through_midnight(dir.path(), Some(7)).await;
    let mut expected = vec![
        RECENT,
        ROTATED_AT_MIDNIGHT,
        CURRENT_LOG_FILE_NAME,
        "injixo-cloud-link.2026-03-01.2.log",
    ];
    expected.extend(DAILY);
    expected.extend(FOREIGN);
    assert_eq!(names, sorted(&expected));
    for name in FOREIGN.into_iter().chain([RECENT]) {
        assert_eq!(fs::read_to_string(dir.path().join(name)).unwrap(), name);
    }
}

#[actix_rt::test]
async fn without_keep_days_no_log_is_ever_deleted() {
    let dir = tempfile::tempdir().unwrap();
    prepare_folder(dir.path());
    let names = run_through_midnight(dir.path(), None).await;
    let mut expected = vec![
        OLD,
        EXPIRES_AT_MIDNIGHT,
        RECENT,
        ROTATED_AT_MIDNIGHT,
        CURRENT_LOG_FILE_NAME,
        "injixo-cloud-link.2026-03-01.2.log",
    ];
    expected.extend(DAILY);
    expected.extend(FOREIGN);
    assert_eq!(names, sorted(&expected));
}

/// Issue 14, item 5: the clock runs a day ahead for a moment before midnight
/// and is then corrected. Every line lands in a file of its own day, the
/// real midnight still rotates, and each step is one warning.
#[actix_rt::test]
async fn a_clock_step_and_its_correction_keep_every_day_in_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let clock = ManualClock::at(berlin(2026, 12, 2, 23, 59, 58, 0));
    let settings = LogSettings {
        install_dir: dir.to_path_buf(),
        verbose: false,
        console: false,
        keep_days: None,
        event_log: None,
    };
    let (subscriber, logging) = logging::build_with_clock(&settings, clock.clone()).unwrap();
    let subscriber_guard = tracing::subscriber::set_default(subscriber);
    let current = dir.join(CURRENT_LOG_FILE_NAME);
    let current_log = || fs::read_to_string(&current).unwrap_or_default();
    tracing::info!(target: "injixo_cloud_link::daemon", "A: before the step");
    let rotator = LogRotatorActor::with_clock(logging.rotation(), None, logging.clock()).start();
    wait_until("the rotator has scheduled midnight", || {
        clock.schedules_computed.load(Ordering::SeqCst) > 0
    })
    .await;

    clock.set(berlin(2026, 12, 3, 23, 59, 58, 100));
    tracing::info!(target: "injixo_cloud_link::daemon", "B: a day ahead");
    wait_until("the forward step is logged", || {
        current_log().contains("clock jumped forward")
    })
    .await;

    clock.set(berlin(2026, 12, 2, 23, 59, 58, 300));
    tracing::info!(target: "injixo_cloud_link::daemon", "C: corrected");
    wait_until("the backward step is logged", || {
        current_log().contains("clock jumped back")
    })
    .await;

    clock.set(berlin(2026, 12, 3, 0, 0, 0, 100));
    wait_until("the real midnight rotates", || {
        current_log().contains("day ended")
    })
    .await;
    tracing::info!(target: "injixo_cloud_link::daemon", "D: the next day");

    rotator.send(Shutdown).await.unwrap();
    wait_until("the rotator has stopped", || !rotator.connected()).await;
    drop(subscriber_guard);
    drop(logging);

    let files = logs::log_files(dir);
    logs::assert_each_day_in_its_own_file(
        &files,
        &[
            "injixo-cloud-link.2026-12-02.1.log",
            "injixo-cloud-link.2026-12-02.2.log",
            "injixo-cloud-link.2026-12-03.1.log",
            CURRENT_LOG_FILE_NAME,
        ],
        "2026-12-03",
    );
    let text = |i: usize| files[i].1.join("\n");
    assert!(text(0).contains("A: before the step"), "{files:#?}");
    assert!(text(2).contains("B: a day ahead"), "{files:#?}");
    let forward = logs::the_one_line(&files[2].1, "WARN");
    assert!(
        forward.contains("the clock jumped forward by 1 day"),
        "{forward}"
    );
    assert!(text(1).contains("C: corrected"), "{files:#?}");
    let back = logs::the_one_line(&files[1].1, "WARN");
    assert!(back.contains("the clock jumped back by 1 day"), "{back}");
    assert!(text(3).contains("day ended"), "{files:#?}");
    assert!(text(3).contains("D: the next day"), "{files:#?}");
}
