//! The bad-input corpus for database imports: a column of every SQL type
//! the drivers return, read through `odbc::read_to_csv` from PostgreSQL
//! (psqlODBC) and MariaDB (Connector/ODBC). Each type has a defined CSV
//! rendering; NULL is an empty field; nothing panics; a value is never cut
//! without being counted in `truncated`.

use injixo_cloud_link::db::odbc::{
    read_to_csv, ConnectOptions, DbConnection, ReadLimits, ReadSummary,
};
use injixo_cloud_link::protocol::ImportType;

#[path = "support/odbc.rs"]
mod odbc_support;
use odbc_support::{exec, Dropper};

const PG: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;";
const MARIA: &str =
    "Driver={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=test;Uid=root;Pwd=;";

fn connect(conn: &str, read_only: bool) -> DbConnection {
    let options = ConnectOptions {
        read_only,
        ..ConnectOptions::default()
    };
    DbConnection::connect(conn, &options).unwrap_or_else(|e| {
        panic!(
            "database for this test is not reachable: {e}\nhint: {}\n(start PostgreSQL and \
             MariaDB: `service postgresql start; service mariadb start`)",
            e.hint()
        )
    })
}

/// The interval import's required columns as constants, then `columns`.
fn query(table: &str, columns: &str) -> String {
    format!(
        "SELECT 'q' AS queueidentifier, 'n' AS queuename, ts AS timestamp, 1 AS offered, \
         1 AS answered, 1 AS handlingtime, 'calls' AS channel, {columns} FROM {table} ORDER BY id"
    )
}

/// Reads `sql`: the CSV and the summary.
fn read(conn: &DbConnection, sql: &str) -> (String, ReadSummary) {
    let mut out = Vec::new();
    let summary = read_to_csv(
        conn,
        sql,
        None,
        ImportType::Interval,
        &mut out,
        &ReadLimits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}\nhint: {}", e.hint()));
    (String::from_utf8(out).expect("CSV is UTF-8"), summary)
}

/// A PostgreSQL table with a column of each type and a row of NULLs; the
/// reader's session runs in Europe/Berlin.
fn postgres_types(tag: &str) -> (DbConnection, DbConnection, String) {
    let admin = connect(PG, false);
    let t = format!("cl_types_{tag}_{}", std::process::id());
    let _ = admin.raw().execute(&format!("DROP TABLE {t}"), (), None);
    exec(
        &admin,
        &format!(
            "CREATE TABLE {t} (id INTEGER, ts TIMESTAMP, d_num NUMERIC(38,10), \
             d_float DOUBLE PRECISION, d_real REAL, d_bigint BIGINT, d_bytea BYTEA, d_date DATE, \
             d_ts6 TIMESTAMP(6), d_tstz TIMESTAMPTZ, d_time TIME, d_timetz TIMETZ, \
             d_interval INTERVAL, d_bool BOOLEAN, d_uuid UUID, d_json JSON, d_jsonb JSONB, \
             d_text TEXT, d_char CHAR(3))"
        ),
    );
    exec(
        &admin,
        &format!(
            "INSERT INTO {t} VALUES (1, '1900-01-01 00:00:00', 12345678901234567890.0123456789, \
             1.0000000000000002, 0.1, -9223372036854775808, '\\x00ff10', '1900-01-01', \
             '1969-12-31 23:59:59.123456', '1969-07-20 20:17:40+00', '23:59:59.5', \
             '12:00:00+02', '1 day 02:03:04', true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', \
             '{{\"a\": \"ü😀\"}}', '{{\"b\": [1, 2]}}', 'Grüße 😀 日本', 'ab'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             NULL, NULL, NULL, NULL, NULL)"
        ),
    );
    let reader = connect(PG, true);
    // A session setting, allowed in a read-only session.
    exec(&reader, "SET TIME ZONE 'Europe/Berlin'");
    (admin, reader, t)
}

#[test]
fn postgres_every_type_has_a_defined_csv_form() {
    let (admin, reader, t) = postgres_types("all");
    let _drop = Dropper(&admin, t.clone());
    let (csv, summary) = read(
        &reader,
        &query(
            &t,
            "d_num, d_float, d_real, d_bigint, d_bytea, d_date, d_tstz, d_time, d_timetz, \
             d_interval, d_bool, d_uuid, d_json, d_jsonb, d_text, d_char",
        ),
    );
    let rows: Vec<&str> = csv.split_inclusive("\r\n").skip(1).collect();
    assert_eq!(
        rows,
        [
            // Exact decimals and doubles (17 digits), bytea as hex, a date
            // before 1970, timestamptz in the session's time zone (Berlin
            // was UTC+1 in 1969) without offset, time with fractions, timetz
            // with its offset, interval as PostgreSQL writes it, boolean as
            // 1/0, uuid upper-case, JSON quoted by CSV rules, emoji intact,
            // CHAR padded as stored.
            "q,n,1900-01-01 00:00:00,1,1,1,calls,12345678901234567890.0123456789,\
             1.0000000000000002,0.1,-9223372036854775808,00ff10,1900-01-01,\
             1969-07-20 21:17:40,23:59:59.5,12:00:00+02,1 day 02:03:04,1,\
             A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11,\"{\"\"a\"\": \"\"ü😀\"\"}\",\
             \"{\"\"b\"\": [1, 2]}\",Grüße 😀 日本,ab \r\n",
            // NULL is an empty field, whatever the type.
            "q,n,,1,1,1,calls,,,,,,,,,,,,,,,,\r\n",
        ]
    );
    assert_eq!(summary.rows, 2);
    assert!(summary.truncated.is_empty(), "{:?}", summary.truncated);
}

/// A MariaDB table with a column of each type and a row of NULLs.
fn mariadb_types(tag: &str) -> (DbConnection, DbConnection, String) {
    let admin = connect(MARIA, false);
    let t = format!("cl_types_{tag}_{}", std::process::id());
    let _ = admin.raw().execute(&format!("DROP TABLE {t}"), (), None);
    exec(
        &admin,
        &format!(
            "CREATE TABLE {t} (id INTEGER, ts DATETIME, d_num DECIMAL(38,10), d_float DOUBLE, \
             d_real FLOAT, d_bigint BIGINT, d_blob BLOB, d_varbin VARBINARY(8), d_date DATE, \
             d_dt6 DATETIME(6), d_tstamp TIMESTAMP NULL, d_time TIME, d_bigtime TIME, \
             d_bool BOOLEAN, d_bit BIT(1), d_uuid UUID, d_json JSON, d_text TEXT, d_year YEAR, \
             d_enum ENUM('a','b'), d_zero DATETIME) CHARACTER SET utf8mb4"
        ),
    );
    // Zero dates exist in old MariaDB/MySQL data; allow storing one.
    exec(&admin, "SET SESSION sql_mode = ''");
    exec(
        &admin,
        &format!(
            "INSERT INTO {t} VALUES (1, '1900-01-01 00:00:00', 12345678901234567890.0123456789, \
             1.0000000000000002, 0.1, -9223372036854775808, X'00FF10', X'41FF42', '1900-01-01', \
             '1969-12-31 23:59:59.123456', '1970-01-02 00:00:00', '23:59:59', '-838:59:59', \
             true, b'1', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{\"a\": \"ü😀\"}}', \
             'Grüße 😀 日本', 1901, 'b', '0000-00-00 00:00:00'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        ),
    );
    (admin, connect(MARIA, true), t)
}

#[test]
fn mariadb_every_type_has_a_defined_csv_form() {
    let (admin, reader, t) = mariadb_types("all");
    let _drop = Dropper(&admin, t.clone());
    let (csv, summary) = read(
        &reader,
        &query(
            &t,
            "d_num, d_float, d_real, d_bigint, d_date, d_tstamp, d_time, d_bool, d_uuid, \
             d_json, d_text, d_year, d_enum, d_zero",
        ),
    );
    let rows: Vec<&str> = csv.split_inclusive("\r\n").skip(1).collect();
    assert_eq!(
        rows,
        [
            // BOOLEAN is TINYINT(1): 1; UUID lower-case; the zero date
            // 0000-00-00 comes back from the driver as NULL: empty.
            "q,n,1900-01-01 00:00:00,1,1,1,calls,12345678901234567890.0123456789,\
             1.0000000000000002,0.1,-9223372036854775808,1900-01-01,1970-01-02 00:00:00,\
             23:59:59,1,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,\"{\"\"a\"\": \"\"ü😀\"\"}\",\
             Grüße 😀 日本,1901,b,\r\n",
            "q,n,,1,1,1,calls,,,,,,,,,,,,,,\r\n",
        ]
    );
    assert_eq!(summary.rows, 2);
    assert!(summary.truncated.is_empty(), "{:?}", summary.truncated);
}

/// The last field of the first data row of `column` alone.
fn one_value(reader: &DbConnection, t: &str, column: &str) -> (String, ReadSummary) {
    let (csv, summary) = read(reader, &query(t, column));
    let row = csv.split("\r\n").nth(1).unwrap().to_owned();
    (row.rsplit(',').next().unwrap().to_owned(), summary)
}

/// Timestamps are written `YYYY-MM-DD HH:MM:SS` (the import format):
/// fractions are cut, never rounded up, so that a row stays inside the
/// window its timestamp was selected by.
#[test]
fn fractional_seconds_are_cut_not_rounded() {
    let (admin, reader, t) = postgres_types("frac");
    let _drop = Dropper(&admin, t.clone());
    let (value, summary) = one_value(&reader, &t, "d_ts6");
    assert_eq!(value, "1969-12-31 23:59:59");
    assert!(summary.truncated.is_empty(), "{:?}", summary.truncated);
    let (admin, reader, t) = mariadb_types("frac");
    let _drop = Dropper(&admin, t.clone());
    assert_eq!(one_value(&reader, &t, "d_dt6").0, "1969-12-31 23:59:59");
}

#[test]
fn mariadb_binary_is_hex_like_postgres() {
    let (admin, reader, t) = mariadb_types("bin");
    let _drop = Dropper(&admin, t.clone());
    assert_eq!(one_value(&reader, &t, "d_blob").0, "00ff10");
    assert_eq!(one_value(&reader, &t, "d_varbin").0, "41ff42");
}

#[test]
fn mariadb_bit_is_a_digit() {
    let (admin, reader, t) = mariadb_types("bit");
    let _drop = Dropper(&admin, t.clone());
    assert_eq!(one_value(&reader, &t, "d_bit").0, "1");
}

#[test]
fn mariadb_time_beyond_a_day_is_whole() {
    let (admin, reader, t) = mariadb_types("time");
    let _drop = Dropper(&admin, t.clone());
    let (value, summary) = one_value(&reader, &t, "d_bigtime");
    assert_eq!(value, "-838:59:59");
    assert!(summary.truncated.is_empty(), "{:?}", summary.truncated);
}
