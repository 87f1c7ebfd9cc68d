//! The load: CSV files dropped into one client's import folder, rows
//! inserted into the PostgreSQL table the other client reads.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::procs::Guarded;

/// Drops a new CSV file into the import folder at each [`CsvProducer::drop_file`].
pub struct CsvProducer {
    folder: PathBuf,
    seq: u64,
    /// sha256 of each written file's content → its name.
    pub written: BTreeMap<String, String>,
    pub rows: u64,
}

impl CsvProducer {
    pub fn new(folder: PathBuf) -> CsvProducer {
        CsvProducer {
            folder,
            seq: 0,
            written: BTreeMap::new(),
            rows: 0,
        }
    }

    /// A file of 1 to 200 interval rows, unique by its sequence number,
    /// written under a temporary name (which the client ignores) and renamed
    /// into place, the way a careful exporter drops files.
    pub fn drop_file(&mut self) -> Result<(), String> {
        self.seq += 1;
        let seq = self.seq;
        let rows = rand::rng().random_range(1..=200u64);
        let mut text = String::from("Queue;Date;Time;IncomingCalls;AnsweredCalls\n");
        for i in 0..rows {
            text.push_str(&format!(
                "Soak queue {seq};26/11/2026;{:02}:{:02};{};{}\n",
                (i / 4) % 24,
                (i % 4) * 15,
                seq * 7 + i,
                i
            ));
        }
        let name = format!("soak-{seq:06}.csv");
        let part = self.folder.join(format!("{name}.part"));
        std::fs::write(&part, &text).map_err(|e| format!("write {}: {e}", part.display()))?;
        std::fs::rename(&part, self.folder.join(&name))
            .map_err(|e| format!("rename {}: {e}", part.display()))?;
        self.written
            .insert(hex::encode(Sha256::digest(text.as_bytes())), name);
        self.rows += rows;
        Ok(())
    }

    pub fn files(&self) -> usize {
        self.written.len()
    }

    /// CSV files still in the import folder (the client moves each one away
    /// once the cloud committed it).
    pub fn pending(&self) -> usize {
        std::fs::read_dir(&self.folder)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".csv"))
                    .count()
            })
            .unwrap_or(0)
    }
}

fn psql() -> Command {
    let mut command = Command::new("psql");
    command.args([
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-d",
        "test",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
    ]);
    command
}

/// Runs one statement; returns what it printed (unaligned, tuples only).
pub fn psql_run(sql: &str) -> Result<String, String> {
    let out = psql()
        .args(["-t", "-A", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql (PostgreSQL client): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "psql failed (is PostgreSQL running on 127.0.0.1:5432?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The agent status table, dropped when the soak ends whatever happens.
pub struct Table {
    pub name: String,
}

impl Table {
    pub fn create() -> Result<Table, String> {
        Self::drop_orphans()?;
        let name = format!("icl_soak_{}", std::process::id());
        psql_run(&format!(
            "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} \
             (agent text, starttime timestamp, endtime timestamp, activity text)"
        ))?;
        Ok(Table { name })
    }

    /// Drops the tables of soaks that were killed before they could drop
    /// theirs (their process no longer exists).
    fn drop_orphans() -> Result<(), String> {
        let names =
            psql_run("SELECT tablename FROM pg_tables WHERE tablename LIKE 'icl\\_soak\\_%'")?;
        for name in names.lines() {
            let pid = name
                .strip_prefix("icl_soak_")
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                psql_run(&format!("DROP TABLE IF EXISTS {name}"))?;
            }
        }
        Ok(())
    }

    /// The query of the import: the window's rows, by their start time.
    pub fn query(&self) -> String {
        format!(
            "SELECT agent AS agentidentifier, starttime, endtime, activity FROM {} \
             WHERE starttime >= ? AND starttime < ? ORDER BY starttime, activity",
            self.name
        )
    }

    /// The key (`activity`) of every row.
    pub fn keys(&self) -> Result<BTreeSet<String>, String> {
        Ok(psql_run(&format!("SELECT activity FROM {}", self.name))?
            .lines()
            .map(str::to_owned)
            .collect())
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        let _ = psql_run(&format!("DROP TABLE IF EXISTS {}", self.name));
    }
}

/// Inserts rows through one long-lived `psql` reading statements on its
/// standard input (one process, not one per row). Each row is stamped with
/// the database's clock in UTC and keyed `row-N` in `activity`.
///
/// PostgreSQL on a shared machine may be restarted under the soak; psql then
/// exits and a new one is started for the next insert. Statements lost that
/// way are not counted as sent: what counts as sent is what the table holds
/// at the end ([`Table::keys`]).
pub struct DbProducer {
    table: String,
    psql: Guarded,
    stdin: Option<ChildStdin>,
    /// Keys handed out so far (`row-1` … `row-N`).
    next_key: u64,
    /// New psql processes started after one was lost.
    pub reconnects: u64,
}

impl DbProducer {
    pub fn start(table: &Table) -> Result<DbProducer, String> {
        let (psql, stdin) = Self::spawn()?;
        Ok(DbProducer {
            table: table.name.clone(),
            psql,
            stdin,
            next_key: 0,
            reconnects: 0,
        })
    }

    fn spawn() -> Result<(Guarded, Option<ChildStdin>), String> {
        let mut command = psql();
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut psql = Guarded::spawn("psql", command, false)?;
        let stdin = psql.child_mut().and_then(|c| c.stdin.take());
        Ok((psql, stdin))
    }

    /// Rows handed to psql so far (the table may hold fewer, see above).
    pub fn attempted(&self) -> u64 {
        self.next_key
    }

    /// Inserts `n` rows in one statement.
    pub fn insert(&mut self, n: u64) -> Result<(), String> {
        let values: Vec<String> = (0..n)
            .map(|i| {
                let key = self.next_key + i + 1;
                format!(
                    "('agent-{}', clock_timestamp() AT TIME ZONE 'UTC', \
                     clock_timestamp() AT TIME ZONE 'UTC' + interval '{} seconds', 'row-{key}')",
                    key % 25,
                    1 + key % 90
                )
            })
            .collect();
        self.next_key += n;
        let statement = format!("INSERT INTO {} VALUES {};\n", self.table, values.join(", "));
        if self.psql.exited().is_some() || self.stdin.is_none() {
            eprintln!("soak: psql lost its connection (PostgreSQL restarted?); starting a new one");
            let (psql, stdin) = Self::spawn()?;
            self.psql = psql;
            self.stdin = stdin;
            self.reconnects += 1;
        }
        let stdin = self.stdin.as_mut().ok_or("psql has no input")?;
        if let Err(e) = stdin
            .write_all(statement.as_bytes())
            .and_then(|()| stdin.flush())
        {
            // psql died between the check and the write; the next insert
            // starts a new one.
            eprintln!("soak: psql stopped taking rows ({e})");
            self.stdin = None;
        }
        Ok(())
    }

    /// Closes psql's input and waits until it has run every statement.
    pub fn finish(&mut self) -> Result<(), String> {
        drop(self.stdin.take());
        match self.psql.wait_or_kill(Duration::from_secs(30)) {
            Some(status) if status.success() => Ok(()),
            // Its statements may be lost; the table says which rows exist.
            Some(status) => {
                eprintln!("soak: the last psql ended with {status}");
                Ok(())
            }
            None => Err("psql did not finish its inserts within 30 s".into()),
        }
    }
}
