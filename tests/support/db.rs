//! PostgreSQL helpers of the database tests: statements through `psql`, and
//! the rows the cloud received.

use std::collections::BTreeSet;
use std::process::Command;

use super::emulator::Emulator;

/// `psql` on the machine's PostgreSQL (database `test`) with `args`.
fn psql_command(args: &[&str]) -> Command {
    let mut command = Command::new("psql");
    command
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q"])
        .args(args);
    command
}

/// Runs `sql`; fails the test with a hint when the server is not there.
pub fn psql(sql: &str) {
    let out = psql_command(&["-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql (PostgreSQL client) is installed");
    assert!(
        out.status.success(),
        "psql failed (is PostgreSQL running on 127.0.0.1:5432?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The single value `sql` returns.
pub fn psql_value(sql: &str) -> String {
    let out = psql_command(&["-v", "ON_ERROR_STOP=1", "-t", "-A", "-c", sql])
        .output()
        .expect("psql (PostgreSQL client) is installed");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Drops `table` if it exists, ignoring failures (for clean-up in `Drop`).
pub fn drop_table_quietly(table: &str) {
    let _ = psql_command(&["-c", &format!("DROP TABLE IF EXISTS {table}")]).output();
}

/// Every data line of every import the cloud holds, deduplicated (windows
/// overlap by design: the cloud keeps one import per key, rows repeat).
pub fn rows_in_cloud(cloud: &Emulator) -> BTreeSet<String> {
    let mut rows = BTreeSet::new();
    for import in cloud.imports() {
        let id = import["import_id"].as_str().unwrap();
        let content = String::from_utf8(cloud.import_content(id)).unwrap();
        rows.extend(
            content
                .lines()
                .skip(1)
                .map(|line| line.trim_end_matches('\r').to_owned()),
        );
    }
    rows
}
