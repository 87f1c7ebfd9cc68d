//! Database imports end to end on MariaDB (MariaDB Connector/ODBC) and
//! SQLite (sqliteodbc): the real client back-fills a real table through the
//! real driver into the real emulator, then follows new rows. The
//! PostgreSQL journey is in tests/db_import.rs; this shows the other two
//! engines take the same path (window binding, type mapping, read-only
//! session) with exactly the table's rows arriving.

mod support;

#[path = "support/odbc.rs"]
mod odbc_support;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{Duration as Span, NaiveDateTime, Timelike, Utc};
use injixo_cloud_link::db::odbc::DbConnection;
use odbc_support::{admin, exec};
use serde_json::json;
use support::db::rows_in_cloud;
use support::emulator::Emulator;
use support::*;

const ARRIVE: Duration = Duration::from_secs(120);
const MARIA: &str =
    "Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=test;Uid=root;Pwd=;";

/// The rows of a day and a half of 15-minute intervals for 3 queues, up to
/// two hours ago, as (SQL values, the CSV line the cloud must hold).
fn seed_rows() -> Vec<(String, String)> {
    let now = Utc::now().naive_utc();
    let end = now
        .with_minute(0)
        .unwrap()
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap()
        - Span::hours(2);
    let mut ts: NaiveDateTime = end - Span::hours(36);
    let mut rows = Vec::new();
    while ts <= end {
        for q in 1..=3 {
            let stamp = ts.format("%Y-%m-%d %H:%M:%S");
            rows.push((
                format!(
                    "('q{q}', 'Queue {q} é', '{stamp}', {}, {}, {}, 'calls')",
                    q * 10,
                    q * 9,
                    200 + q
                ),
                format!(
                    "q{q},Queue {q} é,{stamp},{},{},{},calls",
                    q * 10,
                    q * 9,
                    200 + q
                ),
            ));
        }
        ts += Span::minutes(15);
    }
    rows
}

fn insert(conn: &DbConnection, table: &str, rows: &[(String, String)]) {
    for chunk in rows.chunks(200) {
        let values: Vec<&str> = chunk.iter().map(|(v, _)| v.as_str()).collect();
        exec(
            conn,
            &format!("INSERT INTO {table} VALUES {}", values.join(", ")),
        );
    }
}

/// Back-fill, then a row written while the client runs: the cloud ends up
/// with exactly the table's rows.
fn backfill_then_follow(connection_string: &str, table: &str, timestamp_type: &str) {
    let admin = admin(connection_string);
    exec(&admin, &format!("DROP TABLE IF EXISTS {table}"));
    exec(
        &admin,
        &format!(
            "CREATE TABLE {table} (queue_id VARCHAR(20), queue_name VARCHAR(60), ts {timestamp_type}, \
             offered INTEGER, answered INTEGER, aht INTEGER, channel VARCHAR(20))"
        ),
    );
    let rows = seed_rows();
    insert(&admin, table, &rows);

    let cloud = Emulator::start(&[]);
    let integration = cloud.create_database_integration(json!({
        "connection_string": connection_string,
        "time_zone": "UTC",
        "imports": [{
            "id": "interval",
            "type": "interval",
            "query": format!(
                "SELECT queue_id AS queueidentifier, queue_name AS queuename, ts AS timestamp, \
                 offered, answered, aht AS handlingtime, channel FROM {table} \
                 WHERE ts >= ? AND ts < ? ORDER BY ts, queue_id"
            ),
            "every_seconds": 5,
            "reconcile_hours": 1,
            "backfill_days": 2
        }]
    }));
    let install = InstallDir::with_cloud(&cloud.url);
    let _client = install.run_paired(&cloud, &integration);

    let mut expected: BTreeSet<String> = rows.iter().map(|(_, line)| line.clone()).collect();
    let arrived = wait_for("every seeded row in the cloud", ARRIVE, || {
        let arrived = rows_in_cloud(&cloud);
        (arrived.len() >= expected.len()).then_some(arrived)
    });
    assert_eq!(arrived, expected, "exactly the table's rows");

    let late_at = (Utc::now().naive_utc() - Span::minutes(3)).format("%Y-%m-%d %H:%M:%S");
    let late = (
        format!("('q9', 'Late queue', '{late_at}', 1, 1, 100, 'chats')"),
        format!("q9,Late queue,{late_at},1,1,100,chats"),
    );
    insert(&admin, table, std::slice::from_ref(&late));
    expected.insert(late.1);
    let arrived = wait_for("the late row in the cloud", ARRIVE, || {
        let arrived = rows_in_cloud(&cloud);
        (arrived.len() >= expected.len()).then_some(arrived)
    });
    assert_eq!(arrived, expected, "the late row, nothing else");
    exec(&admin, &format!("DROP TABLE {table}"));
}

#[test]
fn mariadb_rows_are_backfilled_and_followed_exactly() {
    backfill_then_follow(
        MARIA,
        &format!("icl_engines_{}", std::process::id()),
        "DATETIME",
    );
}

#[test]
fn sqlite_rows_are_backfilled_and_followed_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let conn = format!(
        "Driver={{SQLite3}};Database={};",
        dir.path().join("acd.db").display()
    );
    backfill_then_follow(&conn, "interval_rows", "TIMESTAMP");
}
