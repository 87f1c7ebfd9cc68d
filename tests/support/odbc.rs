//! ODBC set-up helpers for the tests that read real databases through
//! `injixo_cloud_link::db::odbc` (included with `#[path]`, so that those
//! tests need none of the process helpers of `support`).

use injixo_cloud_link::db::odbc::DbConnection;

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
