//! The real client under libfaketime: its wall clock runs a day ahead for a
//! few seconds before midnight, is corrected, then passes the real midnight
//! (issue 14, item 5). The monotonic clock is left alone
//! (`FAKETIME_DONT_FAKE_MONOTONIC`), as a clock step leaves it alone.

#[path = "support/logs.rs"]
mod logs;
mod support;

use std::path::Path;
use std::time::Duration;

use support::emulator::Emulator;
use support::*;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Sets the faked wall clock: it continues from `local` (in the client's
/// TZ) the moment libfaketime reads the file again.
fn set_clock(file: &Path, local: &str) {
    let fresh = file.with_extension("new");
    std::fs::write(&fresh, format!("@{local}\n")).unwrap();
    std::fs::rename(&fresh, file).unwrap();
}

/// Waits until one of the log files holds `needle`; shows them all if none
/// does in time.
fn wait_in_logs(install: &InstallDir, needle: &str, seconds: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while !install.all_logs().contains(needle) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} in the logs within {seconds} s: {:#?}",
            logs::log_files(install.path())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_day_ahead_then_corrected_keeps_each_day_in_its_own_file_and_warns_once_per_step() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: scripts/setup installs the faketime package"
    );
    let cloud = Emulator::start(&[]);
    let install = InstallDir::with_cloud(&cloud.url);
    let clock = install.path().join("faketime.rc");
    // Kolkata is UTC+05:30: the local day is not the UTC day.
    set_clock(&clock, "2026-12-02 23:59:00");
    let mut command = install.command(&["run"]);
    command
        .env("TZ", "Asia/Kolkata")
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME_TIMESTAMP_FILE", &clock)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let client = ClientProcess::spawn(command);
    let log = install.wait_until_ready(client.pid(), Duration::from_secs(30));
    assert!(log.starts_with("2026-12-02T23:59:"), "{log}");
    assert!(log.contains("+05:30"), "{log}");

    set_clock(&clock, "2026-12-03 23:59:00");
    wait_in_logs(&install, "the clock jumped forward by 1 day", 30);
    set_clock(&clock, "2026-12-02 23:59:40");
    wait_in_logs(&install, "the clock jumped back by", 30);
    wait_in_logs(&install, "day ended: rotating the log", 60);
    let (status, _) = client.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");

    let files = logs::log_files(install.path());
    logs::assert_each_day_in_its_own_file(
        &files,
        &[
            "injixo-cloud-link.2026-12-02.1.log",
            "injixo-cloud-link.2026-12-02.2.log",
            "injixo-cloud-link.2026-12-03.1.log",
            LOG_FILE,
        ],
        "2026-12-03",
    );
    let all = |i: usize| files[i].1.join("\n");
    assert!(!all(0).contains("clock jumped"), "{files:#?}");
    let forward = logs::the_one_line(&files[2].1, "clock jumped");
    assert!(forward.contains(" WARN "), "{forward}");
    let back = logs::the_one_line(&files[1].1, "clock jumped");
    assert!(
        back.contains(", from 2026-12-03 23:5") && back.contains("to 2026-12-02 23:59:"),
        "{back}"
    );
    assert!(!all(3).contains("clock jumped"), "{files:#?}");
    assert!(
        files[3].1[0].contains("day ended: rotating the log"),
        "the real midnight rotated: {files:#?}"
    );
    for (name, lines) in &files {
        eprintln!("{name}:");
        for line in lines {
            eprintln!("  {line}");
        }
    }
}
