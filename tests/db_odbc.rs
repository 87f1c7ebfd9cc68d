//! The ODBC reading layer against real databases through real drivers:
//! PostgreSQL 15 (psqlODBC), MariaDB 10.11 (MariaDB Connector/ODBC) and
//! SQLite (sqliteodbc). The servers must run (they do on the dev machine and
//! in CI); an unreachable server FAILS a test with a hint.

use std::io::Write;
use std::net::TcpListener;
use std::process::Command;
use std::time::Instant;

use chrono::NaiveDateTime;
use injixo_cloud_link::db::odbc::{
    read_to_csv, ConnectOptions, DbConnection, DbError, ReadLimits, ReadOnly,
};
use injixo_cloud_link::protocol::ImportType;

#[path = "support/odbc.rs"]
mod odbc_support;
use odbc_support::{admin, exec, Dropper};

const PG: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;";
const MARIA: &str =
    "Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=test;Uid=root;Pwd=;";

fn sqlite_conn(dir: &tempfile::TempDir) -> String {
    format!(
        "Driver={{SQLite3}};Database={};",
        dir.path().join("acd.db").display()
    )
}

fn table(name: &str) -> String {
    format!("cl_{name}_{}", std::process::id())
}

fn reader(conn: &str) -> DbConnection {
    let c = DbConnection::connect(conn, &ConnectOptions::default())
        .unwrap_or_else(|e| panic!("connect failed: {e}\nhint: {}", e.hint()));
    assert!(!c.is_dead());
    c
}

fn ts(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

fn read(
    conn: &DbConnection,
    sql: &str,
    params: Option<(NaiveDateTime, NaiveDateTime)>,
    import: ImportType,
    limits: &ReadLimits,
) -> Result<(String, injixo_cloud_link::db::odbc::ReadSummary), DbError> {
    let mut out = Vec::new();
    let summary = read_to_csv(conn, sql, params, import, &mut out, limits)?;
    Ok((String::from_utf8(out).expect("CSV is UTF-8"), summary))
}

/// Seeds the interval table (timestamps, NULL, non-ASCII text, quotes and
/// commas, decimals) with `ddl_types` = (timestamp, decimal) type names.
fn seed_interval(admin: &DbConnection, t: &str, timestamp: &str) {
    exec(
        admin,
        &format!(
            "CREATE TABLE {t} (q VARCHAR(20), qn VARCHAR(60), ts {timestamp}, offered INTEGER, \
             answered INTEGER, ht DECIMAL(10,2), ch VARCHAR(20))"
        ),
    );
    exec(
        admin,
        &format!(
            "INSERT INTO {t} VALUES \
             ('Q1', 'Süd-Team „A“ 😀', '2024-03-01 08:00:00', 10, 9, 123.50, 'calls'), \
             ('Q2', 'x, \"quoted\"', '2024-03-01 08:15:00', 5, NULL, 0.25, 'chats'), \
             ('Q3', NULL, '2024-03-01 09:00:00', 1, 1, 1.00, 'emails')"
        ),
    );
}

fn interval_query(t: &str, filter: &str) -> String {
    format!(
        "SELECT q AS QueueIdentifier, qn AS queuename, ts AS timestamp, offered, answered, \
         ht AS handlingtime, ch AS channel FROM {t} {filter} ORDER BY ts"
    )
}

const HEADER: &str =
    "queueidentifier,queuename,timestamp,offered,answered,handlingtime,channel\r\n";

fn check_interval(conn_str: &str, t: &str, timestamp: &str, expected_rows: &str) {
    let admin = admin(conn_str);
    let _drop = Dropper(&admin, t.to_string());
    seed_interval(&admin, t, timestamp);
    let conn = reader(conn_str);

    let (csv, summary) = read(
        &conn,
        &interval_query(t, ""),
        None,
        ImportType::Interval,
        &ReadLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\nhint: {}", e.hint()));
    assert_eq!(csv, format!("{HEADER}{expected_rows}"));
    assert_eq!(summary.rows, 3);
    assert!(summary.truncated.is_empty());
    assert_eq!(summary.first_rows.len(), 3);
    assert_eq!(summary.first_rows[1][4], "", "NULL is an empty field");

    // Two `?` bound as timestamps: only the window's rows, end exclusive.
    let (csv, summary) = read(
        &conn,
        &interval_query(t, "WHERE ts >= ? AND ts < ?"),
        Some((ts("2024-03-01 08:00:00"), ts("2024-03-01 09:00:00"))),
        ImportType::Interval,
        &ReadLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\nhint: {}", e.hint()));
    assert_eq!(summary.rows, 2, "{csv}");
    let first_two: String = expected_rows.split_inclusive("\r\n").take(2).collect();
    assert_eq!(csv, format!("{HEADER}{first_two}"));
}

#[test]
fn postgres_interval_query_gives_exact_csv() {
    check_interval(
        PG,
        &table("pg_interval"),
        "TIMESTAMP",
        "Q1,Süd-Team „A“ 😀,2024-03-01 08:00:00,10,9,123.50,calls\r\n\
         Q2,\"x, \"\"quoted\"\"\",2024-03-01 08:15:00,5,,0.25,chats\r\n\
         Q3,,2024-03-01 09:00:00,1,1,1.00,emails\r\n",
    );
}

#[test]
fn mariadb_interval_query_gives_exact_csv() {
    check_interval(
        MARIA,
        &table("maria_interval"),
        "DATETIME",
        "Q1,Süd-Team „A“ 😀,2024-03-01 08:00:00,10,9,123.50,calls\r\n\
         Q2,\"x, \"\"quoted\"\"\",2024-03-01 08:15:00,5,,0.25,chats\r\n\
         Q3,,2024-03-01 09:00:00,1,1,1.00,emails\r\n",
    );
}

#[test]
fn sqlite_interval_query_gives_exact_csv() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite stores DECIMAL with NUMERIC affinity: 1.00 becomes the integer 1.
    check_interval(
        &sqlite_conn(&dir),
        &table("lite_interval"),
        "TIMESTAMP",
        "Q1,Süd-Team „A“ 😀,2024-03-01 08:00:00,10,9,123.5,calls\r\n\
         Q2,\"x, \"\"quoted\"\"\",2024-03-01 08:15:00,5,,0.25,chats\r\n\
         Q3,,2024-03-01 09:00:00,1,1,1,emails\r\n",
    );
}

#[test]
fn missing_column_names_it_and_writes_nothing() {
    let conn = reader(PG);
    let mut out = Vec::new();
    let err = read_to_csv(
        &conn,
        "SELECT 'q' AS QueueIdentifier, 'n' AS queuename, now() AS timestamp, 1 AS answered, \
         2 AS handlingtime, 'calls' AS channel",
        None,
        ImportType::Interval,
        &mut out,
        &ReadLimits::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "query for import 'interval' lacks column 'offered'; it returns: queueidentifier, \
         queuename, timestamp, answered, handlingtime, channel"
    );
    assert!(matches!(err, DbError::MissingColumn { .. }));
    assert!(err.hint().contains("AS offered"), "{}", err.hint());
    assert!(out.is_empty(), "nothing written before the check");
}

#[test]
fn unknown_driver_lists_the_installed_ones() {
    let err = DbConnection::connect(
        "Driver={PostgreSQL Unicod};Server=127.0.0.1;Uid=x;Pwd=TopSecret1;",
        &ConnectOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DbError::DriverNotInstalled { .. }), "{msg}");
    assert!(
        msg.starts_with("ODBC driver PostgreSQL Unicod is not installed; installed drivers: "),
        "{msg}"
    );
    for d in ["PostgreSQL Unicode", "MariaDB Unicode", "SQLite3"] {
        assert!(msg.contains(d), "{msg}");
    }
    assert!(err.hint().contains("odbc-postgresql"), "{}", err.hint());
    assert!(err.hint().contains("64-bit ODBC Data Source Administrator"));
    assert!(!format!("{msg}{err:?}").contains("TopSecret1"));
}

#[test]
fn wrong_password_on_mariadb_is_a_login_error_without_the_password() {
    let _ = admin(MARIA); // fails with a hint when the server is down
    let user = format!("cl_nouser_{}", std::process::id());
    let password = format!("Wr0ng-{}-pw", std::process::id());
    let conn = format!(
        "Driver={{MariaDB Unicode}};Server=127.0.0.1;Port=3306;Database=test;Uid={user};Pwd={password};"
    );
    let err = DbConnection::connect(&conn, &ConnectOptions::default()).unwrap_err();
    let shown = format!("{err} | {} | {err:?}", err.hint());
    assert!(matches!(err, DbError::Login { .. }), "{shown}");
    assert!(shown.contains("Pwd=***"), "{shown}");
    assert!(!shown.contains(&password), "{shown}");
}

fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn closed_port_is_database_down() {
    for conn in [
        format!("Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port={};Database=test;Uid=postgres;Pwd=pw-{};", closed_port(), std::process::id()),
        format!("Driver={{MariaDB Unicode}};Server=127.0.0.1;Port={};Database=test;Uid=root;Pwd=pw-{};", closed_port(), std::process::id()),
    ] {
        let err = DbConnection::connect(&conn, &ConnectOptions::default()).unwrap_err();
        let shown = format!("{err} | {}", err.hint());
        assert!(matches!(err, DbError::Unreachable { .. }), "{shown}");
        assert!(shown.starts_with("the database is down or unreachable"), "{shown}");
        assert!(!shown.contains(&format!("pw-{}", std::process::id())), "{shown}");
        assert!(err.is_transient());
    }
}

#[test]
fn long_text_is_truncated_and_reported_or_read_whole_under_the_cap() {
    let t = table("pg_long");
    let admin = admin(PG);
    let _drop = Dropper(&admin, t.clone());
    exec(&admin, &format!("CREATE TABLE {t} (id INTEGER, body TEXT)"));
    exec(
        &admin,
        &format!(
            "INSERT INTO {t} VALUES (1, repeat('ä', 10000)), (2, 'short'), (3, repeat('b', 5000))"
        ),
    );
    let sql = format!(
        "SELECT id AS agentidentifier, now() AS starttime, NULL AS endtime, body AS activity \
         FROM {t} ORDER BY id"
    );

    // Cap 4096: two values cut, counted, warned about.
    let conn = reader(PG);
    let (csv, summary) = read(
        &conn,
        &sql,
        None,
        ImportType::AgentStatus,
        &ReadLimits::default(),
    )
    .unwrap();
    assert_eq!(
        summary.truncated.get("activity"),
        Some(&2),
        "{:?}",
        summary.truncated
    );
    assert!(summary.warning().unwrap().contains("activity: 2"));
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert!(
        lines[1].ends_with(&format!(",{}", "ä".repeat(4096))),
        "cut at the cap"
    );
    assert!(lines[2].ends_with(",short"));

    // Cap 20000 (connection and read): psqlODBC's 8190 limit no longer cuts.
    let options = ConnectOptions {
        max_text_chars: 20_000,
        ..ConnectOptions::default()
    };
    let conn = DbConnection::connect(PG, &options).unwrap();
    let limits = ReadLimits {
        max_text_chars: 20_000,
        ..ReadLimits::default()
    };
    let (csv, summary) = read(&conn, &sql, None, ImportType::AgentStatus, &limits).unwrap();
    assert!(summary.truncated.is_empty(), "{:?}", summary.truncated);
    assert!(csv.contains(&format!(",{}\r\n", "ä".repeat(10000))));
    assert!(csv.contains(&format!(",{}\r\n", "b".repeat(5000))));
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Counts bytes; the CSV of a big result must not be kept in memory either.
struct Counter(u64);
impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const BIG_ROWS: u64 = 200_000;

/// Run by `big_result_streams_with_flat_memory` in a child process, so its
/// peak memory is its own.
#[test]
#[ignore = "child of big_result_streams_with_flat_memory"]
fn big_result_child() {
    let Ok(t) = std::env::var("CL_BIG_TABLE") else {
        return;
    };
    let conn = reader(PG);
    let sql = format!(
        "SELECT 'Q' || (i % 50) AS queueidentifier, repeat('n', 120) AS queuename, \
         timestamp '2024-01-01' + i * interval '1 minute' AS timestamp, i AS offered, \
         i / 2 AS answered, i * 1.5 AS handlingtime, 'calls' AS channel FROM {t} ORDER BY i"
    );
    // Warm up (driver loading, first allocations) before the baseline.
    read_to_csv(
        &conn,
        &format!("{sql} LIMIT 1000"),
        None,
        ImportType::Interval,
        &mut Counter(0),
        &ReadLimits::default(),
    )
    .unwrap();
    let before = vm_hwm_kib();
    let started = Instant::now();
    let mut sink = Counter(0);
    let summary = read_to_csv(
        &conn,
        &sql,
        None,
        ImportType::Interval,
        &mut sink,
        &ReadLimits::default(),
    )
    .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let after = vm_hwm_kib();
    println!(
        "BIG rows={} bytes={} batch_rows={} rows_per_s={:.0} vmhwm_before_kib={before} vmhwm_after_kib={after}",
        summary.rows,
        sink.0,
        summary.batch_rows,
        summary.rows as f64 / secs
    );
}

#[test]
fn big_result_streams_with_flat_memory() {
    let t = table("pg_big");
    let admin = admin(PG);
    let _drop = Dropper(&admin, t.clone());
    exec(
        &admin,
        &format!("CREATE TABLE {t} AS SELECT i FROM generate_series(1, {BIG_ROWS}) AS i"),
    );
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "big_result_child", "--nocapture"])
        .env("CL_BIG_TABLE", &t)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("BIG "))
        .expect("child reported");
    println!("{line}");
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(field("rows"), BIG_ROWS);
    // The CSV is ~40 MB; holding the result (psqlODBC without
    // UseDeclareFetch) would raise the peak by far more than this.
    let growth_kib = field("vmhwm_after_kib") - field("vmhwm_before_kib");
    assert!(
        growth_kib < 16 * 1024,
        "peak memory grew by {growth_kib} KiB: {line}"
    );
}

/// The INSERT is refused by the server (the session is read-only by SQL;
/// psqlODBC alone, with SQL_MODE_READ_ONLY, let it through).
#[test]
fn read_only_session_refuses_insert_on_postgres() {
    let t = table("pg_ro");
    let admin = admin(PG);
    let _drop = Dropper(&admin, t.clone());
    exec(&admin, &format!("CREATE TABLE {t} (i INTEGER)"));
    let conn = reader(PG);
    assert_eq!(conn.read_only(), ReadOnly::Session);
    let err = read(
        &conn,
        &format!("INSERT INTO {t} VALUES (1)"),
        None,
        ImportType::Interval,
        &ReadLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, DbError::ReadOnlyViolation { .. }), "{err}");
}

/// MariaDB and sqliteodbc also accept SQL_MODE_READ_ONLY and still write;
/// with the session made read-only by SQL the INSERT is refused.
#[test]
fn read_only_session_refuses_insert_on_mariadb_and_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    for (name, conn_str) in [
        ("mariadb", MARIA.to_string()),
        ("sqlite", sqlite_conn(&dir)),
    ] {
        let t = table(&format!("{name}_ro"));
        let admin = admin(&conn_str);
        let _drop = Dropper(&admin, t.clone());
        exec(&admin, &format!("CREATE TABLE {t} (i INTEGER)"));
        let conn = reader(&conn_str);
        let result = read(
            &conn,
            &format!("INSERT INTO {t} VALUES (1)"),
            None,
            ImportType::Interval,
            &ReadLimits::default(),
        );
        assert_eq!(conn.read_only(), ReadOnly::Session, "{name}");
        let err = result.map(|_| ()).unwrap_err();
        assert!(
            matches!(err, DbError::ReadOnlyViolation { .. }),
            "{name}: {err}"
        );
    }
}

/// Reads `sql` as an agent-status import (four free columns) with the
/// default limits.
fn read_agent_status(
    conn: &DbConnection,
    sql: &str,
) -> Result<(String, injixo_cloud_link::db::odbc::ReadSummary), DbError> {
    read(
        conn,
        sql,
        None,
        ImportType::AgentStatus,
        &ReadLimits::default(),
    )
}

/// Integers are fetched as numbers where the engine types its columns:
/// the extremes of every integer width, signed and unsigned, and NULL
/// come out as the database's own text would.
#[test]
fn integer_columns_keep_their_extremes_and_nulls() {
    let pg = table("pg_ints");
    let admin_pg = admin(PG);
    let _drop_pg = Dropper(&admin_pg, pg.clone());
    exec(
        &admin_pg,
        &format!("CREATE TABLE {pg} (s SMALLINT, i INTEGER, b BIGINT)"),
    );
    exec(
        &admin_pg,
        &format!(
            "INSERT INTO {pg} VALUES (-32768, -2147483648, -9223372036854775808), \
             (32767, 2147483647, 9223372036854775807), (NULL, NULL, NULL)"
        ),
    );
    let sql = format!(
        "SELECT s AS agentidentifier, i AS starttime, b AS endtime, 'x' AS activity \
         FROM {pg} ORDER BY i NULLS LAST"
    );
    let (csv, _) = read_agent_status(&reader(PG), &sql).unwrap();
    assert_eq!(
        csv,
        "agentidentifier,starttime,endtime,activity\r\n\
         -32768,-2147483648,-9223372036854775808,x\r\n\
         32767,2147483647,9223372036854775807,x\r\n,,,x\r\n"
    );

    let maria = table("maria_ints");
    let admin_maria = admin(MARIA);
    let _drop_maria = Dropper(&admin_maria, maria.clone());
    exec(
        &admin_maria,
        &format!(
            "CREATE TABLE {maria} (t TINYINT UNSIGNED, i INT UNSIGNED, b BIGINT UNSIGNED, \
             n INT)"
        ),
    );
    exec(
        &admin_maria,
        &format!(
            "INSERT INTO {maria} VALUES (255, 4294967295, 18446744073709551615, -2147483648), \
             (0, 0, 0, NULL)"
        ),
    );
    let sql = format!(
        "SELECT t AS agentidentifier, i AS starttime, b AS endtime, n AS activity \
         FROM {maria} ORDER BY t DESC"
    );
    let (csv, _) = read_agent_status(&reader(MARIA), &sql).unwrap();
    assert_eq!(
        csv,
        "agentidentifier,starttime,endtime,activity\r\n\
         255,4294967295,18446744073709551615,-2147483648\r\n0,0,0,\r\n"
    );

    // SQLite stores whatever it is given in an INTEGER column.
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_conn(&dir);
    let admin_lite = admin(&lite);
    exec(&admin_lite, "CREATE TABLE t (i INTEGER, j INTEGER)");
    exec(
        &admin_lite,
        "INSERT INTO t VALUES (9223372036854775807, 'n/a'), (NULL, -1)",
    );
    let (csv, summary) = read_agent_status(
        &reader(&lite),
        "SELECT i AS agentidentifier, j AS starttime, 1 AS endtime, 'x' AS activity FROM t \
         ORDER BY j",
    )
    .unwrap();
    assert_eq!(
        csv,
        "agentidentifier,starttime,endtime,activity\r\n,-1,1,x\r\n9223372036854775807,n/a,1,x\r\n"
    );
    assert!(summary.truncated.is_empty(), "{:?}", summary.truncated);
}

/// A query running past the query timeout is cancelled and reported as
/// such (a retryable failure), on both server engines; the connection
/// stays usable for the next read.
#[test]
fn a_query_over_the_timeout_is_cancelled_with_its_own_error() {
    for (name, conn_str, sleep) in [
        ("PostgreSQL", PG, "pg_sleep(10)"),
        ("MariaDB", MARIA, "SLEEP(10)"),
    ] {
        let options = ConnectOptions {
            query_timeout: std::time::Duration::from_secs(1),
            ..ConnectOptions::default()
        };
        let conn = DbConnection::connect(conn_str, &options).unwrap();
        let started = Instant::now();
        let sql = format!(
            "SELECT {sleep} AS agentidentifier, 1 AS starttime, 2 AS endtime, 'x' AS activity"
        );
        let err = read_agent_status(&conn, &sql).expect_err(&format!(
            "{name}: a 10 s query with a 1 s timeout must fail"
        ));
        assert!(
            matches!(err, DbError::QueryTimeout { seconds: 1 }),
            "{name}: {err:?}"
        );
        assert!(err.is_transient(), "{name}: retried later");
        assert!(
            err.to_string().contains("did not finish within 1 s"),
            "{name}: {err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(8),
            "{name}: cancelled, not waited out"
        );
        let (csv, _) = read_agent_status(
            &conn,
            "SELECT 1 AS agentidentifier, 2 AS starttime, 3 AS endtime, 'x' AS activity",
        )
        .unwrap_or_else(|e| panic!("{name}: the connection is usable after a timeout: {e}"));
        assert!(csv.ends_with("1,2,3,x\r\n"), "{name}: {csv}");
    }
}

/// Each engine tells its time through the statement `db::clock` picks for
/// it, in a form `db::clock::sample` reads; the servers here run on this
/// machine's clock, so the skew is small. A driver of unknown family is
/// asked `{fn NOW()}` first: psqlODBC and MariaDB Connector/ODBC translate
/// it; sqliteodbc does not (hence SQLite's own form).
#[test]
fn every_engine_tells_its_time_and_it_is_read_as_an_instant() {
    use injixo_cloud_link::db::clock::{sample, ClockAnswer, ClockZone};
    use injixo_cloud_link::db::odbc::ClockRead;
    use odbc_api::Cursor;
    let dir = tempfile::tempdir().unwrap();
    for conn in [PG.to_owned(), MARIA.to_owned(), sqlite_conn(&dir)] {
        let c = reader(&conn);
        let ClockRead::Answer(answer) = c.clock().unwrap() else {
            panic!("{conn}: no clock");
        };
        // The servers' zone is UTC, as the integration's here.
        let s = sample(&answer, chrono_tz::UTC)
            .unwrap_or_else(|| panic!("{conn}: {:?} is no time", answer.text));
        assert!(
            s.skew().num_milliseconds().abs() < 2_000,
            "{conn}: {answer:?} gives a skew of {}",
            s.skew()
        );
        // Asked again: the same statement, remembered.
        assert!(matches!(c.clock().unwrap(), ClockRead::Answer(_)));
        let escape = c.raw().execute("SELECT {fn NOW()}", (), None);
        if conn.contains("SQLite") {
            assert!(escape.is_err(), "{conn}: sqliteodbc learnt {{fn NOW()}}");
            continue;
        }
        let mut cursor = escape.unwrap().unwrap();
        let mut text = Vec::new();
        let mut row = cursor.next_row().unwrap().unwrap();
        row.get_text(1, &mut text).unwrap();
        let escape = ClockAnswer {
            text: String::from_utf8_lossy(&text).into_owned(),
            zone: ClockZone::Local,
            ..answer
        };
        let s = sample(&escape, chrono_tz::UTC).unwrap_or_else(|| panic!("{conn}: {escape:?}"));
        assert!(
            s.skew().num_milliseconds().abs() < 2_000,
            "{conn}: {escape:?}"
        );
    }
}
