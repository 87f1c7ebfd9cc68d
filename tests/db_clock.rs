//! Database imports plan their windows on the database's clock, not the
//! client's: the client's wall clock is stepped under a running import
//! (libfaketime, the Debian `faketime`/`libfaketime` packages, preloaded into
//! the real client; the monotonic clock is left alone, as NTP does) while
//! rows stamped by the real database server arrive, on PostgreSQL and on
//! MariaDB through their real ODBC drivers into the real emulator. With
//! `reconcile_hours: 0` nothing is read twice by design, so a row lost to a
//! watermark in the future cannot hide behind an overlap.
//!
//! In a binary of its own: the stepped clock belongs to the client process
//! only, but the trials take about a minute each and should not slow the
//! other database tests.

mod support;

#[path = "support/odbc.rs"]
mod odbc_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use injixo_cloud_link::db::odbc::DbConnection;
use odbc_support::{admin, exec, Dropper};
use serde_json::json;
use support::emulator::Emulator;
use support::*;

const POSTGRES: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;";
const MARIA: &str =
    "Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=test;Uid=root;Pwd=;";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// An `agent_status` table on `connection_string` (dropped when the test
/// ends) and a cloud with an integration importing it every 5 s with
/// reconcile 0, as `scripts/soak` configures it.
fn agent_status_integration<'a>(
    admin: &'a DbConnection,
    connection_string: &str,
    name: &str,
    column_type: &str,
) -> (Dropper<'a>, Emulator, String) {
    let table = format!("icl_{name}_{}", std::process::id());
    let _ = admin
        .raw()
        .execute(&format!("DROP TABLE {table}"), (), None);
    exec(
        admin,
        &format!(
            "CREATE TABLE {table} (agent VARCHAR(20), started {column_type}, ended {column_type}, \
             activity VARCHAR(20))"
        ),
    );
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_database_integration(json!({
        "connection_string": connection_string,
        "time_zone": "UTC",
        "imports": [{
            "id": "agent_status", "type": "agent_status",
            "query": format!(
                "SELECT agent AS agentidentifier, started AS starttime, ended AS endtime, activity \
                 FROM {table} WHERE started >= ? AND started < ?"
            ),
            "every_seconds": 5, "reconcile_hours": 0, "backfill_days": 0
        }]
    }));
    (Dropper(admin, table), cloud, integration)
}

/// The client's wall clock: libfaketime reads the offset from this file at
/// every clock call (`FAKETIME_NO_CACHE`), so writing it steps the clock of
/// the running client.
struct FakeClock(PathBuf);

impl FakeClock {
    fn new(dir: &Path) -> FakeClock {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} is missing: install the Debian packages faketime and libfaketime (scripts/setup)"
        );
        let clock = FakeClock(dir.join("faketime.rc"));
        clock.set("+0");
        clock
    }

    /// `+0`, `-1h`, `+1d`: libfaketime's relative offsets.
    fn set(&self, offset: &str) {
        std::fs::write(&self.0, format!("{offset}\n")).expect("write the faketime file");
    }

    fn apply(&self, command: &mut std::process::Command) {
        command
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_TIMESTAMP_FILE", &self.0)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
}

/// How often each agent (one row each) arrived in the cloud, over every
/// import: windows do not overlap with reconcile 0, so more than one is a
/// duplicate and none is a loss.
fn arrivals(cloud: &Emulator) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for import in cloud.imports() {
        let id = import["import_id"].as_str().unwrap();
        let content = String::from_utf8(cloud.import_content(id)).unwrap();
        for line in content.lines().skip(1) {
            let agent = line.split(',').next().unwrap_or_default().to_owned();
            *seen.entry(agent).or_insert(0) += 1;
        }
    }
    seen
}

/// The trial: an `agent_status` import every 5 s with reconcile 0;
/// the client's clock goes 0 → −1 h → +1 day → 0 while the database (which
/// keeps the true time) stamps new rows itself. Every row arrives exactly
/// once, and the log names the skew.
fn clock_steps_lose_nothing(connection_string: &str, column_type: &str, server_now: &str) {
    let admin = admin(connection_string);
    let (table, cloud, integration) =
        agent_status_integration(&admin, connection_string, "clock", column_type);
    let install = InstallDir::with_cloud(&cloud.url);
    let clock = FakeClock::new(install.path());
    let mut command = install.command(&["run"]);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    clock.apply(&mut command);
    let _client = ClientProcess::spawn(command);
    let pin = install.wait_for_pin(1, Duration::from_secs(20));
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("assignment received", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));

    let mut agents = Vec::new();
    let mut skew_shown = None;
    for (phase, offset) in ["+0", "-1h", "+1d", "+0"].into_iter().enumerate() {
        clock.set(offset);
        // About three ticks per phase, a row every 2.5 s.
        for n in 0..6 {
            if offset == "+1d" && n == 4 {
                // `status` shows the skew the last tick measured.
                let out = install.output(&["status", "--json"]);
                let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                skew_shown = status["importers"]["db:agent_status"]["clock_skew_ms"].as_i64();
            }
            let agent = format!("a{phase}{n}");
            exec(
                &admin,
                &format!(
                    "INSERT INTO {} VALUES ('{agent}', {server_now}, NULL, 'Break')",
                    table.1
                ),
            );
            agents.push(agent);
            std::thread::sleep(Duration::from_millis(2500));
        }
    }
    let all_in = |seen: &BTreeMap<String, usize>| agents.iter().all(|a| seen.contains_key(a));
    // Rows lost behind a future watermark never come: give up after a
    // minute (a dozen ticks) and report which are missing.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = arrivals(&cloud);
    while !all_in(&seen) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        seen = arrivals(&cloud);
    }
    // A few more ticks: a duplicate would show now.
    std::thread::sleep(Duration::from_secs(6));
    let seen = arrivals(&cloud);
    let missing: Vec<&String> = agents.iter().filter(|a| !seen.contains_key(*a)).collect();
    let repeated: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let log = install.all_logs();
    assert!(
        missing.is_empty() && repeated.is_empty(),
        "{} of {} rows missing {missing:?}, repeated {repeated:?}\n{log}",
        missing.len(),
        agents.len()
    );
    assert_eq!(seen.len(), agents.len(), "no row that was not written");
    for line in log.lines().filter(|l| l.contains("clock")) {
        eprintln!("{line}");
    }
    let day_ms = 86_400_000;
    assert!(
        skew_shown.is_some_and(|ms| (ms - day_ms).abs() < 60_000),
        "status shows a skew of a day: {skew_shown:?}"
    );
    // The heartbeat (every minute; the trial lasts longer) carries it too.
    let heartbeat_skew = cloud
        .clients()
        .first()
        .and_then(|c| c["heartbeat"]["importers"][0]["clock_skew_ms"].as_i64());
    assert!(heartbeat_skew.is_some(), "{:?}", cloud.clients());
    assert!(
        log.contains("clock") && log.contains("ahead of the database's"),
        "the log names the skew:\n{log}"
    );
}

#[test]
fn postgresql_rows_survive_client_clock_steps_with_reconcile_zero() {
    clock_steps_lose_nothing(POSTGRES, "TIMESTAMP(6)", "LOCALTIMESTAMP");
}

#[test]
fn mariadb_rows_survive_client_clock_steps_with_reconcile_zero() {
    clock_steps_lose_nothing(MARIA, "DATETIME(6)", "NOW(6)");
}

/// A watermark saved in the future (by an older version on a stepped clock,
/// or before the database was restored from a backup) is pulled back to the
/// database's now minus the delay, with a warning naming both times, and new
/// rows arrive.
#[test]
fn a_watermark_in_the_future_is_pulled_back_with_a_warning() {
    let admin = admin(POSTGRES);
    let (table, cloud, integration) =
        agent_status_integration(&admin, POSTGRES, "future", "TIMESTAMP(6)");
    let install = InstallDir::with_cloud(&cloud.url);
    let now = chrono::Utc::now();
    let future = (now + chrono::Duration::days(1)).to_rfc3339();
    let origin = (now - chrono::Duration::hours(1)).to_rfc3339();
    let watermarks = install.path().join("state").join("watermarks");
    std::fs::create_dir_all(&watermarks).unwrap();
    std::fs::write(
        watermarks.join(format!("{integration}.json")),
        json!({"imports": {"agent_status": {"origin": origin, "watermark": future}}}).to_string(),
    )
    .unwrap();
    let _client = install.run_paired(&cloud, &integration);
    exec(
        &admin,
        &format!(
            "INSERT INTO {} VALUES ('late', LOCALTIMESTAMP, NULL, 'Break')",
            table.1
        ),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !arrivals(&cloud).contains_key("late") {
        assert!(
            std::time::Instant::now() < deadline,
            "the row written after the start never arrived:\n{}",
            install.all_logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = install.all_logs();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("watermark") && l.contains("future"))
        .unwrap_or_else(|| panic!("a warning about the future watermark:\n{log}"));
    assert!(
        warning.contains(&future[..16]),
        "names the saved time: {warning}"
    );
}
