//! Every start rotates the log the previous run left behind.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use chrono::{Local, NaiveDate, TimeZone};
use injixo_cloud_link::logging::{self, LogError, LogSettings, CURRENT_LOG_FILE_NAME};

fn settings(dir: &Path) -> LogSettings {
    LogSettings {
        install_dir: dir.to_path_buf(),
        verbose: false,
        console: false,
        keep_days: None,
        event_log: None,
    }
}

fn start_and_log(dir: &Path, message: &str) {
    let (subscriber, logging) = logging::build(&settings(dir)).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!(target: "injixo_cloud_link::daemon", "{message}");
        // Dependencies log at WARN and above only.
        tracing::info!(target: "actix_server::worker", "filtered out");
    });
    drop(logging);
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

const PREVIOUS_RUN: &str = "2026-01-02T10:00:00.000+01:00  INFO daemon: started\n\
2026-01-02T23:59:59.999+01:00  WARN db_poll: query took 30 s\n\
2026-01-03T00:00:00.001+01:00  INFO daemon: the last line, without a newline";

#[test]
fn a_previous_log_is_renamed_to_the_date_of_its_lines_with_the_next_number() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join(CURRENT_LOG_FILE_NAME);

    fs::write(&current, PREVIOUS_RUN).unwrap();
    start_and_log(dir.path(), "first start");
    let first = dir.path().join("injixo-cloud-link.2026-01-02.1.log");
    assert_eq!(fs::read_to_string(&first).unwrap(), PREVIOUS_RUN);

    let second_previous = PREVIOUS_RUN.replace("started", "started again");
    fs::write(&current, &second_previous).unwrap();
    start_and_log(dir.path(), "second start");
    let second = dir.path().join("injixo-cloud-link.2026-01-02.2.log");
    assert_eq!(fs::read_to_string(&second).unwrap(), second_previous);
    assert_eq!(
        fs::read_to_string(&first).unwrap(),
        PREVIOUS_RUN,
        "untouched"
    );

    let now_current = fs::read_to_string(&current).unwrap();
    assert!(now_current.contains("second start"), "{now_current}");
    assert_eq!(
        now_current.lines().count(),
        1,
        "a fresh file: {now_current}"
    );
}

#[test]
fn our_own_log_is_rotated_by_the_next_start_with_the_day_of_its_first_line() {
    let dir = tempfile::tempdir().unwrap();
    start_and_log(dir.path(), "run one");
    let run_one = fs::read_to_string(dir.path().join(CURRENT_LOG_FILE_NAME)).unwrap();
    // `2026-11-25T14:03:07.123+01:00  INFO daemon: run one`
    let (timestamp, rest) = run_one.split_once(' ').unwrap();
    assert_eq!(
        timestamp.len(),
        "2026-11-25T14:03:07.123+01:00".len(),
        "{run_one}"
    );
    chrono::DateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.3f%:z").unwrap();
    assert_eq!(rest, " INFO daemon: run one\n");
    let day = &timestamp[..10];

    start_and_log(dir.path(), "run two");
    assert_eq!(
        names_in(dir.path()),
        [
            format!("injixo-cloud-link.{day}.1.log"),
            CURRENT_LOG_FILE_NAME.to_owned()
        ]
    );
    let rotated = fs::read_to_string(dir.path().join(format!("injixo-cloud-link.{day}.1.log")));
    assert_eq!(rotated.unwrap(), run_one);
}

#[test]
fn a_log_without_our_date_prefix_is_dated_by_its_modification_time() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join(CURRENT_LOG_FILE_NAME);
    fs::write(&current, "written by some older version\n").unwrap();
    let noon = Local.with_ymd_and_hms(2025, 7, 14, 12, 0, 0).unwrap();
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(noon.timestamp() as u64);
    fs::File::options()
        .append(true)
        .open(&current)
        .unwrap()
        .set_modified(modified)
        .unwrap();

    start_and_log(dir.path(), "started");
    let expected_day = NaiveDate::from_ymd_opt(2025, 7, 14).unwrap();
    let rotated = dir
        .path()
        .join(format!("injixo-cloud-link.{expected_day}.1.log"));
    assert_eq!(
        fs::read_to_string(rotated).unwrap(),
        "written by some older version\n"
    );
}

#[test]
fn an_empty_previous_log_is_reused_not_rotated() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(CURRENT_LOG_FILE_NAME), "").unwrap();
    start_and_log(dir.path(), "started");
    assert_eq!(names_in(dir.path()), [CURRENT_LOG_FILE_NAME]);
}

#[cfg(unix)]
#[test]
fn an_unwritable_log_folder_is_reported_with_path_and_os_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).unwrap();
    let probe = dir.path().join("probe");
    if fs::write(&probe, "").is_ok() {
        // Running as root: permissions are not enforced, nothing to test.
        return;
    }
    let error = match logging::build(&settings(dir.path())) {
        Ok(_) => panic!("opening the log in a read-only folder succeeded"),
        Err(error) => error,
    };
    assert!(matches!(error, LogError::Open { .. }), "{error:?}");
    let expected = format!(
        "cannot open log file {}: ",
        dir.path().join(CURRENT_LOG_FILE_NAME).display()
    );
    assert!(error.to_string().starts_with(&expected), "{error}");
    assert!(error.to_string().contains("os error 13"), "{error}");
}

#[test]
fn init_installs_the_logger_for_every_thread_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let logging = logging::init(&settings(dir.path())).unwrap();
    std::thread::spawn(
        || tracing::warn!(target: "injixo_cloud_link::actors::pairing", "from another thread"),
    )
    .join()
    .unwrap();

    let second_dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        logging::init(&settings(second_dir.path())),
        Err(LogError::AlreadyInstalled)
    ));

    drop(logging);
    let text = fs::read_to_string(dir.path().join(CURRENT_LOG_FILE_NAME)).unwrap();
    assert!(
        text.ends_with("  WARN pairing: from another thread\n"),
        "{text}"
    );
}
