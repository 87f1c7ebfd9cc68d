//! ODBC set-up helpers for the tests that read real databases through
//! `injixo_cloud_link::db::odbc` (included with `#[path]`, so that those
//! tests need none of the process helpers of `support`).

#![allow(dead_code)] // each test binary uses a different subset

use injixo_cloud_link::db::odbc::{ConnectOptions, DbConnection};

/// A connection that may write (for set-up), or a failure with a hint.
pub fn admin(conn: &str) -> DbConnection {
    let options = ConnectOptions {
        read_only: false,
        ..ConnectOptions::default()
    };
    DbConnection::connect(conn, &options).unwrap_or_else(|e| {
        panic!(
            "database for this test is not reachable: {e}\nhint: {}\n(tests need PostgreSQL 15 at \
             127.0.0.1:5432 with database `test` and MariaDB at 127.0.0.1:3306 with database \
             `test`; start them, e.g. `service postgresql start; service mariadb start`)",
            e.hint()
        )
    })
}

/// Runs a set-up statement, or fails the test naming it.
pub fn exec(conn: &DbConnection, sql: &str) {
    conn.raw()
        .execute(sql, (), None)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Drops the table when the test ends, pass or fail.
pub struct Dropper<'a>(pub &'a DbConnection, pub String);

impl Drop for Dropper<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .raw()
            .execute(&format!("DROP TABLE {}", self.1), (), None);
    }
}
