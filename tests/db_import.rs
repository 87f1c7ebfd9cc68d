//! Database imports end to end: the real client reads a real PostgreSQL
//! table through psqlODBC and the real emulator receives the rows.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use support::db::{drop_table_quietly, psql, psql_value, rows_in_cloud};
use support::emulator::Emulator;
use support::*;

const ARRIVE: Duration = Duration::from_secs(120);
/// In the connection string; PostgreSQL's trust auth ignores it, so it can
/// only show up in a log by leaking.
const PASSWORD: &str = "Db-pa55word-never-logged";

/// A table of interval rows, dropped when the test ends.
struct Table(String);

impl Table {
    fn new(suffix: &str) -> Table {
        let name = format!("icl_interval_{}_{suffix}", std::process::id());
        psql(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (queue_id text, queue_name text, ts timestamp, \
             offered int, answered int, aht int, channel text)"
        ));
        Table(name)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        drop_table_quietly(&self.0);
    }
}

fn database_integration(cloud: &Emulator, table: &str, query_columns: &str) -> String {
    cloud.create_database_integration(json!({
        "connection_string": format!(
            "Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;Pwd={PASSWORD};"
        ),
        "time_zone": "UTC",
        "imports": [{
            "id": "interval",
            "type": "interval",
            "query": format!("SELECT {query_columns} FROM {table} WHERE ts >= ? AND ts < ? ORDER BY ts, queue_id"),
            "every_seconds": 5,
            "reconcile_hours": 1,
            "backfill_days": 2
        }]
    }))
}

const COLUMNS: &str = "queue_id AS queueidentifier, queue_name AS queuename, ts AS timestamp, \
                       offered, answered, aht AS handlingtime, channel";

fn linked_client(cloud: &Emulator, integration: &str) -> (InstallDir, ClientProcess) {
    let install = InstallDir::with_cloud(&cloud.url);
    install.write_config(&format!(
        "[app]\nverbose = true\n[cloud]\nurl = \"{}\"\n",
        cloud.url
    ));
    let client = install.run_paired(cloud, integration);
    (install, client)
}

#[test]
fn interval_rows_are_backfilled_then_new_rows_follow_exactly_once() {
    let table = Table::new("backfill");
    // Two days of 15-minute rows for 4 queues, ending two hours ago.
    psql(&format!(
        "INSERT INTO {t} SELECT 'q' || q, 'Queue ' || q || ' é', ts, q * 10, q * 9, 200 + q, 'calls' \
         FROM generate_series(1, 4) q, \
              generate_series(date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '2 days', \
                              date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '2 hours', interval '15 minutes') ts",
        t = table.0
    ));
    let cloud = Emulator::start(&[]);
    let integration = database_integration(&cloud, &table.0, COLUMNS);
    let (install, _client) = linked_client(&cloud, &integration);

    let expected = 4 * (2 * 24 * 4 - 8 + 1);
    let rows = wait_for("every seeded row in the cloud", ARRIVE, || {
        let rows = rows_in_cloud(&cloud);
        (rows.len() >= expected).then_some(rows)
    });
    assert_eq!(rows.len(), expected, "no row missing, none extra");
    assert!(
        rows.iter().any(|r| r.contains("Queue 1 é")),
        "non-ASCII text kept"
    );

    // A row written while the client runs arrives at a later tick.
    psql(&format!(
        "INSERT INTO {t} VALUES ('q9', 'Late queue', (now() AT TIME ZONE 'UTC') - interval '3 minutes', 1, 1, 100, 'chats')",
        t = table.0
    ));
    wait_for("the new row in the cloud", ARRIVE, || {
        rows_in_cloud(&cloud)
            .iter()
            .any(|r| r.contains("Late queue"))
            .then_some(())
    });

    // A row updated inside the reconciliation window is imported again.
    psql(&format!(
        "UPDATE {t} SET offered = 777 WHERE queue_name = 'Late queue'",
        t = table.0
    ));
    wait_for("the updated row in the cloud", ARRIVE, || {
        rows_in_cloud(&cloud)
            .iter()
            .any(|r| r.contains("Late queue") && r.contains(",777,"))
            .then_some(())
    });

    let log = install.read_log();
    assert!(
        log.contains("back-fill interval"),
        "progress is logged: {log}"
    );
    assert!(
        log.contains("Pwd=***") || log.contains("PWD=***"),
        "the connection is shown masked: {log}"
    );
    let everything = format!("{}{}", install.all_logs(), cloud.log_text());
    assert!(
        !everything.contains(PASSWORD),
        "the database password leaked into a log"
    );
    // verbose = true: row counts and rows of each query.
    assert!(log.contains(" s, columns queueidentifier"), "{log}");
    assert!(
        log.contains("import interval row: q1 | Queue 1 é |"),
        "{log}"
    );
}

#[test]
fn a_query_lacking_a_required_column_says_which() {
    let table = Table::new("missing");
    let cloud = Emulator::start(&[]);
    let columns = "queue_id AS queueidentifier, queue_name AS queuename, ts AS timestamp, \
                   answered, aht AS handlingtime, channel";
    let integration = database_integration(&cloud, &table.0, columns);
    let (install, _client) = linked_client(&cloud, &integration);
    let log = install.wait_for_log("lacks column", ARRIVE);
    assert!(
        log.contains("query for import 'interval' lacks column 'offered'; it returns: queueidentifier, queuename, timestamp, answered, handlingtime, channel"),
        "{log}"
    );
    let status = install.output(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["importers"]["db:interval"]["state"], "failing",
        "{status}"
    );
}

fn create_integration(cloud: &Emulator, database: serde_json::Value) -> String {
    cloud.create_database_integration(database)
}

const POSTGRES: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;";

#[test]
fn an_agent_status_change_reaches_the_cloud_in_real_time() {
    let name = format!("icl_agent_{}", std::process::id());
    psql(&format!(
        "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (agent text, started timestamp, ended timestamp, activity text)"
    ));
    let _table = Table(name.clone());
    let cloud = Emulator::start(&[]);
    let integration = create_integration(
        &cloud,
        json!({
            "connection_string": POSTGRES,
            "time_zone": "UTC",
            "imports": [{
                "id": "agent_status", "type": "agent_status",
                "query": format!("SELECT agent AS agentidentifier, started AS starttime, ended AS endtime, activity FROM {name} WHERE started >= ? AND started < ?"),
                "every_seconds": 10, "reconcile_hours": 1, "backfill_days": 0
            }]
        }),
    );
    let (_install, _client) = linked_client(&cloud, &integration);
    std::thread::sleep(Duration::from_secs(3));
    psql(&format!(
        "INSERT INTO {name} VALUES ('816', now() AT TIME ZONE 'UTC', NULL, 'Break')"
    ));
    let inserted = std::time::Instant::now();
    wait_for(
        "the status change in the cloud",
        Duration::from_secs(60),
        || {
            rows_in_cloud(&cloud)
                .iter()
                .any(|r| r.starts_with("816,") && r.ends_with(",,Break"))
                .then_some(())
        },
    );
    // The target is 15 s; reported here, not asserted (timing).
    eprintln!(
        "agent status latency: {:.1} s",
        inserted.elapsed().as_secs_f64()
    );
}

#[test]
fn the_local_database_override_wins_over_the_clouds_connection_string() {
    let table = Table::new("override");
    psql(&format!(
        "INSERT INTO {t} VALUES ('q1', 'Override queue', (now() AT TIME ZONE 'UTC') - interval '30 minutes', 5, 4, 100, 'calls')",
        t = table.0
    ));
    let cloud = Emulator::start(&[]);
    // The cloud's string points at a port where no database listens.
    let integration = create_integration(
        &cloud,
        json!({
            "connection_string": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=nowhere;Uid=wrong;",
            "time_zone": "UTC",
            "imports": [{
                "id": "interval", "type": "interval",
                "query": format!("SELECT {COLUMNS} FROM {t} WHERE ts >= ? AND ts < ?", t = table.0),
                "every_seconds": 5, "reconcile_hours": 2, "backfill_days": 0
            }]
        }),
    );
    let install = InstallDir::with_cloud(&cloud.url);
    install.write_config(&format!(
        "[cloud]\nurl = \"{}\"\n[database]\nconnectionString = \"Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port=5432;Database=test;Uid=nobody;\"\nuid = \"postgres\"\npassword = \"{PASSWORD}\"\n",
        cloud.url
    ));
    let _client = install.run_paired(&cloud, &integration);
    wait_for("the row read through the local connection", ARRIVE, || {
        rows_in_cloud(&cloud)
            .iter()
            .any(|r| r.contains("Override queue"))
            .then_some(())
    });
    assert!(
        !install.all_logs().contains(PASSWORD),
        "the local password is never shown"
    );
}

#[test]
fn a_wrong_driver_name_lists_the_installed_drivers() {
    let cloud = Emulator::start(&[]);
    let integration = create_integration(
        &cloud,
        json!({
            "connection_string": format!("Driver={{PostgreSQL Unicode Typo}};Server=127.0.0.1;Pwd={PASSWORD};"),
            "time_zone": "UTC",
            "imports": [{
                "id": "interval", "type": "interval",
                "query": "SELECT 1 WHERE 1 = ? OR 1 = ?",
                "every_seconds": 5, "reconcile_hours": 1, "backfill_days": 0
            }]
        }),
    );
    let (install, _client) = linked_client(&cloud, &integration);
    let log = install.wait_for_log("is not installed", ARRIVE);
    assert!(log.contains("PostgreSQL Unicode Typo"), "{log}");
    assert!(
        log.contains("MariaDB Unicode"),
        "installed drivers listed: {log}"
    );
    assert!(!install.all_logs().contains(PASSWORD));
}

#[test]
fn killing_the_client_during_backfill_leaves_no_gap() {
    let table = Table::new("crash");
    // 30 days of 15-minute rows for 20 queues.
    psql(&format!(
        "INSERT INTO {t} SELECT 'q' || q, 'Queue ' || q, ts, q, q, 100 + q, 'calls' \
         FROM generate_series(1, 20) q, \
              generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') - interval '30 days', \
                              date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '2 hours', interval '15 minutes') ts",
        t = table.0
    ));
    let expected: usize = psql_value(&format!("SELECT count(*) FROM {}", table.0))
        .parse()
        .unwrap();
    let cloud = Emulator::start(&[]);
    let integration = create_integration(
        &cloud,
        json!({
            "connection_string": POSTGRES,
            "time_zone": "Europe/Berlin",
            "imports": [{
                "id": "interval", "type": "interval",
                // Stored in UTC, bound in local time: convert in the query.
                "query": format!("SELECT {COLUMNS} FROM {t} WHERE (ts AT TIME ZONE 'UTC') AT TIME ZONE 'Europe/Berlin' >= ? AND (ts AT TIME ZONE 'UTC') AT TIME ZONE 'Europe/Berlin' < ?", t = table.0),
                "every_seconds": 5, "reconcile_hours": 1, "backfill_days": 31
            }]
        }),
    );
    let install = InstallDir::with_cloud(&cloud.url);
    let mut client = install.run_paired(&cloud, &integration);
    let mut seed: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..10 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 900));
        client.signal(libc::SIGKILL);
        client.wait(Duration::from_secs(10));
        client = install.spawn_run();
    }
    let rows = wait_for(
        "every row of 30 days in the cloud",
        Duration::from_secs(300),
        || {
            let rows = rows_in_cloud(&cloud);
            (rows.len() >= expected).then_some(rows)
        },
    );
    assert_eq!(rows.len(), expected, "no gap and nothing extra");
    // Stored once per idempotency key, whatever the retries.
    let imports = cloud.imports();
    let keys: BTreeSet<&str> = imports
        .iter()
        .map(|i| i["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), imports.len());
}
