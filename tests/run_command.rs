//! `injixo-cloud-link run` as a real process: start in an empty folder, stop
//! on SIGTERM with exit 0, rotate the previous run's log at every start, and
//! refuse a second instance on the same folder.

mod support;

use std::time::Duration;

use support::*;

const START: Duration = Duration::from_secs(20);
/// The bound for a graceful stop.
const STOP: Duration = Duration::from_secs(10);

fn today() -> String {
    chrono::Local::now().format("%Y-%m-%d").to_string()
}

/// One whole run: start, wait for the start line, SIGTERM, exit 0.
fn run_once(install: &InstallDir) -> u32 {
    let client = install.spawn_run();
    let pid = client.pid();
    install.wait_until_ready(pid, START);
    let (status, stderr) = client.terminate(STOP);
    assert_eq!(status.code(), Some(0), "exit status; stderr: {stderr}");
    pid
}

#[test]
fn run_in_an_empty_folder_starts_logs_and_stops_cleanly_on_sigterm() {
    let install = InstallDir::new();
    let client = install.spawn_run();
    let pid = client.pid();
    let log = install.wait_until_ready(pid, START);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        log.contains(&format!("injixo Cloud Link {version} starting (pid {pid})")),
        "{log}"
    );
    assert!(
        log.contains(&format!("install folder {}", install.path().display())),
        "{log}"
    );
    assert!(
        log.contains("(not found: defaults)"),
        "config source: {log}"
    );
    let (status, stderr) = client.terminate(STOP);
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    let log = install.read_log();
    assert!(log.contains("stopping (SIGTERM received)"), "{log}");
    assert!(
        log.trim_end().ends_with("injixo Cloud Link stopped"),
        "the last line is written before exit: {log}"
    );
    // Line format: local time with offset and milliseconds, level, target.
    let first = log.lines().next().unwrap();
    let stamp = first.split_whitespace().next().unwrap();
    assert!(
        chrono::DateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.3f%:z").is_ok(),
        "timestamp {stamp:?} in {first:?}"
    );
    assert!(first.contains("  INFO daemon: "), "{first:?}");
}

#[test]
fn sigint_stops_cleanly_too() {
    let install = InstallDir::new();
    let mut client = install.spawn_run();
    install.wait_until_ready(client.pid(), START);
    client.signal(libc::SIGINT);
    let (status, _) = client.wait(STOP);
    assert_eq!(status.code(), Some(0));
    assert!(install.read_log().contains("stopping (SIGINT received)"));
}

#[test]
fn every_start_rotates_the_previous_log_into_a_dated_numbered_file() {
    let install = InstallDir::new();
    let first_pid = run_once(&install);
    let first_log = install.read_log();

    let second_pid = run_once(&install);
    let rotated_1 = install
        .path()
        .join(format!("injixo-cloud-link.{}.1.log", today()));
    assert_eq!(
        std::fs::read_to_string(&rotated_1).expect("first rotated log"),
        first_log,
        "the whole first run, last line included"
    );
    let current = install.read_log();
    assert!(current.contains(&format!("starting (pid {second_pid})")));
    assert!(!current.contains(&format!("starting (pid {first_pid})")));
    let second_log = current;

    run_once(&install);
    let rotated_2 = install
        .path()
        .join(format!("injixo-cloud-link.{}.2.log", today()));
    assert_eq!(std::fs::read_to_string(&rotated_2).unwrap(), second_log);
    assert_eq!(std::fs::read_to_string(&rotated_1).unwrap(), first_log);
}

#[test]
fn a_second_run_on_the_same_folder_is_refused_and_leaves_the_first_alone() {
    let install = InstallDir::new();
    let first = install.spawn_run();
    let pid = first.pid();
    install.wait_until_ready(pid, START);

    let second = install.output(&["run"]);
    assert_eq!(second.status.code(), Some(75), "EX_TEMPFAIL");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {pid}")),
        "names the holder: {stderr}"
    );

    // The refused start rotated nothing: the first run still owns its log.
    assert!(
        !install.file_names().iter().any(|n| n.ends_with(".1.log")),
        "{:?}",
        install.file_names()
    );
    let (status, _) = first.terminate(STOP);
    assert_eq!(status.code(), Some(0));
    assert!(install.read_log().contains("injixo Cloud Link stopped"));
}

#[test]
fn version_flag_prints_the_version() {
    let install = InstallDir::new();
    let out = install.output(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("injixo-cloud-link {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_subcommand_is_a_usage_error() {
    let install = InstallDir::new();
    let out = install.output(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(64), "EX_USAGE");
}

#[test]
fn the_config_path_can_come_from_the_environment() {
    let install = InstallDir::new();
    install.write_config("[app]\nname = \"from.env\"\n");
    let out = std::process::Command::new(CLIENT)
        .arg("check-config")
        .env("INJIXO_CLOUD_LINK_CONFIG", install.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("name = \"from.env\"  # from the file"));
}
