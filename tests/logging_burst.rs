//! No record is lost or duplicated when a rotation happens in the middle of
//! a burst, and every record queued before shutdown reaches the file.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use injixo_cloud_link::logging::{self, rotation, LogSettings, CURRENT_LOG_FILE_NAME};

const LINES: usize = 100_000;

fn settings(dir: &Path) -> LogSettings {
    LogSettings {
        install_dir: dir.to_path_buf(),
        verbose: false,
        console: false,
        keep_days: None,
        event_log: None,
    }
}

/// The rotated logs in rotation order, then the current log.
fn log_files_in_order(dir: &Path) -> Vec<String> {
    let mut rotated: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| rotation::parse_rotated_file_name(&name).map(|key| (key, name)))
        .collect();
    rotated.sort();
    let mut names: Vec<_> = rotated.into_iter().map(|(_, name)| name).collect();
    names.push(CURRENT_LOG_FILE_NAME.to_owned());
    names
}

fn line_numbers(text: &str) -> Vec<usize> {
    text.lines()
        .filter_map(|line| {
            line.split_once("burst line ")
                .map(|(_, n)| n.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_rotation_during_a_burst_loses_and_duplicates_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let (subscriber, logging) = logging::build(&settings(dir.path())).unwrap();
    let rotation_handle = logging.rotation();
    let current = logging.path().to_path_buf();

    tracing::subscriber::with_default(subscriber, || {
        for n in 0..LINES / 2 {
            tracing::info!(target: "injixo_cloud_link::tests::burst", "burst line {n}");
        }
        // Rotating an empty file is skipped, so let the writer start first;
        // most of the first half is normally still queued at this point.
        let deadline = Instant::now() + Duration::from_secs(60);
        while fs::metadata(&current).map(|m| m.len()).unwrap_or(0) == 0 {
            assert!(Instant::now() < deadline, "the writer never wrote anything");
            std::thread::sleep(Duration::from_millis(1));
        }
        rotation_handle.request();
        for n in LINES / 2..LINES {
            tracing::info!(target: "injixo_cloud_link::tests::burst", "burst line {n}");
        }
    });
    drop(logging);

    let files = log_files_in_order(dir.path());
    assert_eq!(files.len(), 2, "exactly one rotation: {files:?}");
    let rotated_text = fs::read_to_string(dir.path().join(&files[0])).unwrap();
    let current_text = fs::read_to_string(dir.path().join(&files[1])).unwrap();

    let first_line_date = rotation::record_date(rotated_text.as_bytes()).unwrap();
    assert_eq!(
        files[0],
        rotation::format_rotated_file_name(first_line_date, 1)
    );
    let rotated_numbers = line_numbers(&rotated_text);
    let current_numbers = line_numbers(&current_text);
    assert!(!rotated_numbers.is_empty());
    assert!(
        current_numbers.contains(&(LINES / 2)),
        "records logged after the request go to the new file"
    );
    let all: Vec<usize> = rotated_numbers.into_iter().chain(current_numbers).collect();
    assert_eq!(all.len(), LINES, "every line exactly once");
    assert!(all.iter().copied().eq(0..LINES), "in order");
}

#[test]
fn dropping_logging_writes_everything_logged_before() {
    let dir = tempfile::tempdir().unwrap();
    let (subscriber, logging) = logging::build(&settings(dir.path())).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        for n in 0..LINES {
            tracing::info!(target: "injixo_cloud_link::tests::burst", "burst line {n}");
        }
    });
    drop(logging);
    let text = fs::read_to_string(dir.path().join(CURRENT_LOG_FILE_NAME)).unwrap();
    assert!(line_numbers(&text).into_iter().eq(0..LINES));
}
