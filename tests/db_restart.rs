//! The database restarts under a running client (PostgreSQL via
//! pg_ctlcluster): the importer logs the failure, recovers by itself and
//! loses nothing. In a test binary of its own, so that the restart cannot
//! disturb other tests using the same server.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::db::{psql, rows_in_cloud};
use support::emulator::Emulator;
use support::*;

fn pg_ctl(action: &str) -> bool {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster under /etc/postgresql")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a cluster version");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .expect("pg_ctlcluster");
    status.success()
}

/// Starts PostgreSQL again even if the test fails half-way.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        // Already running is fine; anything else shows in the next test.
        let _ = pg_ctl("start");
    }
}

#[test]
fn a_database_restart_is_ridden_out_without_losing_rows() {
    let table = format!("icl_restart_{}", std::process::id());
    psql(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (queue text, ts timestamp, n int); \
         INSERT INTO {table} SELECT 'q' || q, ts, q FROM generate_series(1, 3) q, \
         generate_series(date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '6 hours', \
                         date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '1 hour', interval '15 minutes') ts"
    ));
    let cloud = Emulator::start(&[]);
    let (status, body) = cloud.post(
        "/_emulator/integrations",
        &json!({"name": "Restarting ACD", "kind": "database", "database": {
            "connection_string": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;",
            "time_zone": "UTC",
            "imports": [{"id": "interval", "type": "interval", "every_seconds": 3, "reconcile_hours": 12, "backfill_days": 1,
              "query": format!("SELECT queue AS queueidentifier, queue AS queuename, ts AS timestamp, n AS offered, n AS answered, n AS handlingtime, 'calls' AS channel FROM {table} WHERE ts >= ? AND ts < ?")}]}}),
    );
    assert_eq!(status, 201, "{body}");
    let integration = body["id"].as_str().unwrap().to_owned();
    let install = InstallDir::with_cloud(&cloud.url);
    let _client = install.run_paired(&cloud, &integration);
    let before = 3 * 21;
    wait_for("the first rows", Duration::from_secs(60), || {
        (rows_in_cloud(&cloud).len() >= before).then_some(())
    });

    {
        let _guard = RestartGuard;
        assert!(pg_ctl("stop"), "pg_ctlcluster stop");
        install.wait_for_log("import interval: ", Duration::from_secs(30));
        assert!(pg_ctl("start"), "pg_ctlcluster start");
    }
    psql(&format!(
        "INSERT INTO {table} VALUES ('q9', (now() AT TIME ZONE 'UTC') - interval '2 minutes', 9)"
    ));
    let rows = wait_for(
        "the row written after the restart",
        Duration::from_secs(120),
        || {
            let rows = rows_in_cloud(&cloud);
            rows.iter().any(|r| r.starts_with("q9,")).then_some(rows)
        },
    );
    assert_eq!(rows.len(), before + 1, "nothing lost, nothing extra");
    let log = install.read_log();
    assert!(log.contains("reads the database again"), "{log}");
    psql(&format!("DROP TABLE IF EXISTS {table}"));
}
