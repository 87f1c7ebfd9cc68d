//! `injixo-soak`: the soak test of injixo Cloud Link (`scripts/soak` builds
//! and runs it).
//!
//! For `--minutes` of *production* it runs, against one emulator in memory
//! on a loopback port:
//! - a client linked to a **CSV integration**: a new file of 1 to 200 rows
//!   dropped into its import folder every 2 s (`afterImport = "move"`);
//! - a client linked to a **database integration** (one client links to one
//!   integration, so two install folders with distinct `[app] name`): an
//!   `agent_status` import every 5 s (reconciliation 0 h: each tick reads only
//!   what is new, so the work per tick stays the same all run long) of a
//!   PostgreSQL table (127.0.0.1:5432, user postgres, database test) into
//!   which 2 rows a second are inserted;
//! - faults: calm and faulty slots of 15 s alternate, each faulty slot
//!   switching on the next of six fault sets (503s, resets, delays on the
//!   upload API, the storage PUTs and the heartbeat, answers cut off after
//!   the change, a full API outage; see `faults.rs`).
//!
//! Every 10 s it samples each client's RSS, open file descriptors and threads
//! (`/proc/PID/status`, `/proc/PID/fd`) and its spool depth (items in
//! `state/spool`). Then it stops producing, clears the faults and waits (at
//! most `--drain-seconds`, 7 min: the uploader's backoff after an outage may
//! reach its 5-minute cap) until both spools are empty and everything is in
//! the cloud.
//!
//! It fails (exit 1) when:
//! - a record is lost or duplicated: every CSV file's content must be in
//!   exactly one import (compared by sha256 of the content); the database
//!   rows in the cloud, deduplicated by line across imports (windows may
//!   overlap while a commit is in flight; the cloud keeps one import per
//!   window key), must be the table's rows, each key (`row-N`) exactly once;
//! - a client log shows a panic or an actor restart by the supervisor, a
//!   client died, or a client does not exit cleanly on SIGTERM at the end;
//! - the drain does not finish in time;
//! - a measure **grew**: of the production samples after a warm-up (the
//!   first 30 s or tenth of production, whichever is longer), the median of
//!   the last third exceeds the median of the first third by more than
//!   max(16 MiB, 20 %) for RSS (the database client's 8 MiB fetch buffer
//!   is sometimes kept by glibc for minutes: a step, not a leak), 6 for
//!   descriptors, 4 for threads (HTTP connections and blocking-pool threads
//!   come and go); the drain is left out. A run too short for 3 samples per third says "not judged" and
//!   fails. Within 3 minutes this catches only gross leaks; the 30-minute
//!   run is the real measure.
//!
//! It prints a table (also written to `--report`, with the samples beside it
//! as CSV) and draws RSS and spool depth over time into `--plot` (PNG). Every child process is stopped when
//! the soak ends, fails or is interrupted (Ctrl-C), and is signalled by the
//! kernel if the soak itself is killed; the table is dropped.

mod check;
mod cloud;
mod faults;
mod growth;
mod plot;
mod procs;
mod producers;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use injixo_cloud_link_protocol::{
    CsvSettings, DatabaseImport, DatabaseSettings, ImportType, Integration, IntegrationKind,
};

use crate::cloud::{Cloud, CloudView};
use crate::procs::{Guarded, ProcSample};
use crate::producers::{CsvProducer, DbProducer, Table};
use crate::report::{ClientFigures, Summary};

#[derive(Debug, Parser)]
#[command(name = "injixo-soak")]
struct Args {
    /// Minutes of production (files and rows arriving, faults switched on
    /// and off); the drain comes on top.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Folder with the injixo-cloud-link and injixo-cloud-emulator binaries.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Where to write the table (Markdown).
    #[arg(long)]
    report: PathBuf,
    /// Where to write the plot (PNG).
    #[arg(long)]
    plot: PathBuf,
    /// Longest wait, after production, for the spools to drain. Above the
    /// uploader's backoff cap (5 min): after an outage its next try may be
    /// that far away.
    #[arg(long, default_value_t = 420)]
    drain_seconds: u64,
    /// Keep the work folder (install folders, logs) even when the soak passes.
    #[arg(long)]
    keep: bool,
}

const SAMPLE_EVERY: f64 = 10.0;
const FILE_EVERY: f64 = 2.0;
const ROWS_EVERY: f64 = 1.0;
const ROWS_PER_INSERT: u64 = 2;
const PAIRING: Duration = Duration::from_secs(60);
const DB_CONNECTION: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;";

/// One sample of both clients, `t` seconds after production started.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t: f64,
    pub proc: [ProcSample; 2],
    pub spool: [u64; 2],
}

fn main() -> ExitCode {
    let args = Args::parse();
    procs::install_signal_handlers();
    let work = match tempfile::Builder::new().prefix("injixo-soak.").tempdir() {
        Ok(work) => work,
        Err(e) => {
            eprintln!("soak: cannot create a work folder: {e}");
            return ExitCode::from(73);
        }
    };
    let result = run(&args, work.path());
    let keep = args.keep || !matches!(result, Ok(ref s) if s.passed());
    if keep {
        let kept = work.keep();
        eprintln!("soak: install folders and logs kept in {}", kept.display());
    }
    match result {
        Ok(summary) if summary.passed() => ExitCode::SUCCESS,
        Ok(summary) => {
            eprintln!("soak: FAILED: {}", summary.failures().join("; "));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: stopped: {e}");
            ExitCode::from(if procs::stop_requested() { 130 } else { 2 })
        }
    }
}

fn say(message: &str) {
    eprintln!("soak: {message}");
}

/// One client process in its install folder.
struct Client {
    label: &'static str,
    install: PathBuf,
    process: Guarded,
}

impl Client {
    fn start(
        bin_dir: &Path,
        install: PathBuf,
        label: &'static str,
        config: &str,
    ) -> Result<Client, String> {
        std::fs::create_dir_all(install.join("import"))
            .map_err(|e| format!("cannot create {}: {e}", install.display()))?;
        let config_path = install.join("injixo-cloud-link.toml");
        std::fs::write(&config_path, config).map_err(|e| format!("write config: {e}"))?;
        let output = |name: &str| {
            std::fs::File::create(install.join(name)).map_err(|e| format!("create {name}: {e}"))
        };
        let mut command = Command::new(bin_dir.join("injixo-cloud-link"));
        command
            .arg("--config")
            .arg(&config_path)
            .arg("run")
            .env_remove("INJIXO_CLOUD_LINK_CONFIG")
            .env_remove("INJIXO_CLOUD_LINK_LOG")
            .stdin(Stdio::null())
            .stdout(output("stdout.txt")?)
            .stderr(output("stderr.txt")?);
        let process = Guarded::spawn(&format!("the {label} client"), command, true)?;
        Ok(Client {
            label,
            install,
            process,
        })
    }

    /// Every log file of the install folder and the captured stderr.
    fn log(&self) -> String {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.install)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "log")
                            || p.file_name().is_some_and(|n| n == "stderr.txt")
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(at) = log.find(needle) {
                return Ok(log[at..].lines().next().unwrap_or_default().to_owned());
            }
            if let Some(status) = self.process.exited() {
                return Err(format!(
                    "the {} client exited ({status}); see {}",
                    self.label,
                    self.install.display()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no {needle:?} in the {} client's log within {timeout:?}; see {}",
                    self.label,
                    self.install.display()
                ));
            }
            procs::sleep(Duration::from_millis(200))?;
        }
    }

    /// Enters the client's PIN for `integration` and waits until it is linked.
    fn pair(&mut self, cloud: &Cloud, integration: &str) -> Result<(), String> {
        let banner = self.wait_for_log("Enter your pin: ", PAIRING)?;
        let pin = banner
            .trim_start_matches("Enter your pin: ")
            .split_whitespace()
            .next()
            .ok_or("no PIN in the banner")?
            .to_owned();
        cloud.connect(&pin, integration)?;
        self.wait_for_log("assignment received", PAIRING).map(drop)
    }

    fn sample(&mut self) -> Result<ProcSample, String> {
        if let Some(status) = self.process.exited() {
            return Err(format!(
                "the {} client died ({status}); see {}",
                self.label,
                self.install.display()
            ));
        }
        procs::sample(self.process.pid())
            .ok_or_else(|| format!("cannot read /proc of the {} client", self.label))
    }
}

fn client_config(name: &str, cloud: &str) -> String {
    format!(
        "[app]\nname = \"{name}\"\nimportDirectory = \"import\"\n\n[cloud]\nurl = \"{cloud}\"\n\n\
         [csv]\nsettleSeconds = 1\nafterImport = \"move\"\n"
    )
}

fn take_sample(t: f64, clients: &mut [Client; 2]) -> Result<Sample, String> {
    Ok(Sample {
        t,
        proc: [clients[0].sample()?, clients[1].sample()?],
        spool: [
            procs::spool_depth(&clients[0].install),
            procs::spool_depth(&clients[1].install),
        ],
    })
}

fn progress(sample: &Sample, csv: &CsvProducer, db: &DbProducer) {
    say(&format!(
        "{:>5.0} s  RSS {:.1}/{:.1} MiB  fds {}/{}  threads {}/{}  spool {}/{}  sent {} files, {} rows",
        sample.t,
        sample.proc[0].rss_kib as f64 / 1024.0,
        sample.proc[1].rss_kib as f64 / 1024.0,
        sample.proc[0].fds,
        sample.proc[1].fds,
        sample.proc[0].threads,
        sample.proc[1].threads,
        sample.spool[0],
        sample.spool[1],
        csv.files(),
        db.attempted()
    ));
}

/// Lines of a client log that show a panic, and actor restarts.
fn panics_and_restarts(log: &str) -> (usize, usize) {
    let panics = log
        .lines()
        .filter(|l| l.contains("panic in thread") || l.contains("panicked"))
        .count();
    let restarts = log
        .lines()
        .filter(|l| l.contains(" failed after running "))
        .count();
    (panics, restarts)
}

fn run(args: &Args, work: &Path) -> Result<Summary, String> {
    let started = chrono::Utc::now();
    let emulator_log = work.join("emulator.log");
    let cloud = Cloud::start(&args.bin_dir.join("injixo-cloud-emulator"), &emulator_log)?;
    say(&format!(
        "emulator on {}; work folder {}",
        cloud.url,
        work.display()
    ));
    let table = Table::create()?;
    let csv_integration = cloud.create_integration(&Integration {
        id: String::new(),
        name: "Soak CSV files".into(),
        kind: IntegrationKind::Csv,
        realtime: None,
        csv: Some(CsvSettings::default()),
        database: None,
    })?;
    let db_integration = cloud.create_integration(&Integration {
        id: String::new(),
        name: "Soak agent status".into(),
        kind: IntegrationKind::Database,
        realtime: None,
        csv: None,
        database: Some(DatabaseSettings {
            connection_string: DB_CONNECTION.into(),
            time_zone: "UTC".into(),
            imports: vec![DatabaseImport {
                id: "agent_status".into(),
                import_type: ImportType::AgentStatus,
                query: table.query(),
                every_seconds: 5,
                reconcile_hours: 0,
                backfill_days: 1,
            }],
        }),
    })?;
    let mut clients = [
        Client::start(
            &args.bin_dir,
            work.join("csv-client"),
            "CSV",
            &client_config("com.injixo.cloud-link.soak.csv", &cloud.url),
        )?,
        Client::start(
            &args.bin_dir,
            work.join("db-client"),
            "database",
            &client_config("com.injixo.cloud-link.soak.db", &cloud.url),
        )?,
    ];
    clients[0].pair(&cloud, &csv_integration)?;
    clients[1].pair(&cloud, &db_integration)?;
    clients[1].wait_for_log("database import for integration", PAIRING)?;
    say(&format!(
        "both clients linked; producing for {} min",
        args.minutes
    ));

    let mut csv = CsvProducer::new(clients[0].install.join("import"));
    let mut db = DbProducer::start(&table)?;
    let production = args.minutes * 60.0;
    let mut samples = Vec::new();
    let (mut next_sample, mut next_file, mut next_rows) = (0.0, 0.0, 0.0);
    let mut active: Option<usize> = None;
    let mut toggles = 0u64;
    let t0 = Instant::now();
    loop {
        let t = t0.elapsed().as_secs_f64();
        if t >= production {
            break;
        }
        let wanted = faults::active_at(t);
        if wanted != active {
            cloud.clear_faults()?;
            if let Some(set) = wanted {
                for rule in (faults::FAULT_SETS[set].rules)() {
                    cloud.add_fault(&rule)?;
                }
                say(&format!(
                    "{t:>5.0} s  faults on: {}",
                    faults::FAULT_SETS[set].name
                ));
            } else {
                say(&format!("{t:>5.0} s  faults off"));
            }
            toggles += 1;
            active = wanted;
        }
        if t >= next_file {
            csv.drop_file()?;
            next_file += FILE_EVERY;
        }
        if t >= next_rows {
            db.insert(ROWS_PER_INSERT)?;
            next_rows += ROWS_EVERY;
        }
        if t >= next_sample {
            let sample = take_sample(t, &mut clients)?;
            progress(&sample, &csv, &db);
            samples.push(sample);
            next_sample += SAMPLE_EVERY;
        }
        procs::sleep(Duration::from_millis(100))?;
    }
    cloud.clear_faults()?;
    if active.is_some() {
        toggles += 1;
    }
    db.finish()?;
    let drain_from = t0.elapsed().as_secs_f64();
    say(&format!(
        "production over: {} files ({} rows), {} database rows; draining",
        csv.files(),
        csv.rows,
        db.attempted()
    ));

    let table_keys = table.keys()?;
    let mut csv_view = CloudView::default();
    let mut db_view = CloudView::default();
    let drain_deadline = drain_from + args.drain_seconds as f64;
    let mut drained_after = None;
    loop {
        let t = t0.elapsed().as_secs_f64();
        if t >= next_sample {
            let sample = take_sample(t, &mut clients)?;
            progress(&sample, &csv, &db);
            samples.push(sample);
            next_sample += SAMPLE_EVERY;
        }
        let spools_empty = clients.iter().all(|c| procs::spool_depth(&c.install) == 0);
        if spools_empty && csv.pending() == 0 {
            db_view.refresh(&cloud, &db_integration)?;
            let lost = check::db(&table_keys, &db_view.lines, check::last_field).lost;
            if lost.is_empty() {
                drained_after = Some(t - drain_from);
                samples.push(take_sample(t, &mut clients)?);
                break;
            }
        }
        if t >= drain_deadline {
            break;
        }
        procs::sleep(Duration::from_secs(2))?;
    }
    csv_view.refresh(&cloud, &csv_integration)?;
    db_view.refresh(&cloud, &db_integration)?;
    let csv_outcome = check::csv(&csv.written, &csv_view.content_sha);
    let db_outcome = check::db(&table_keys, &db_view.lines, check::last_field);

    let mut figures = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let clean_exit = client
            .process
            .stop(Duration::from_secs(20))
            .is_some_and(|s| s.success());
        let (panics, restarts) = panics_and_restarts(&client.log());
        figures.push(ClientFigures::new(
            client.label,
            &samples,
            i,
            drain_from,
            panics,
            restarts,
            clean_exit,
        ));
    }
    let emulator_log = std::fs::read_to_string(&emulator_log).unwrap_or_default();
    let summary = Summary {
        started,
        minutes: args.minutes,
        bin_dir: args.bin_dir.clone(),
        clients: figures,
        csv_files: csv.files(),
        csv_rows: csv.rows,
        csv_outcome,
        csv_imports: csv_view.imports(),
        csv_duplicate_commits: csv_view.total_duplicate_commits(),
        db_rows: table_keys.len() as u64,
        db_producer_reconnects: db.reconnects,
        db_outcome,
        db_imports: db_view.imports(),
        db_lines_with_repeats: db_view.lines_with_repeats,
        db_duplicate_commits: db_view.total_duplicate_commits(),
        fault_toggles: toggles,
        faults_fired: report::faults_fired(&emulator_log),
        drained_after,
        drain_limit: args.drain_seconds,
    };
    let text = summary.markdown(args.plot.file_name().and_then(|n| n.to_str()));
    println!("{text}");
    write_file(&args.report, text.as_bytes())?;
    write_file(
        &args.report.with_extension("csv"),
        report::samples_csv([clients[0].label, clients[1].label], &samples).as_bytes(),
    )?;
    let fault_phases = faults::phases(drain_from);
    plot::draw(
        &args.plot,
        &summary.plot(&samples, &fault_phases, drain_from),
    )?;
    say(&format!(
        "table in {}, plot in {}",
        args.report.display(),
        args.plot.display()
    ));
    Ok(summary)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_and_restart_lines_are_recognised() {
        let log = "2026-11-26 INFO  uploader: committed a.csv\n\
                   2026-11-26 ERROR supervisor: panic in thread 'x' at src/a.rs:1: boom\n\
                   2026-11-26 ERROR supervisor: uploader failed after running 3 s: panicked: boom; restarting it in 1 s (restart #1)\n";
        assert_eq!(panics_and_restarts(log), (2, 1));
        assert_eq!(panics_and_restarts("all fine\n"), (0, 0));
    }
}
