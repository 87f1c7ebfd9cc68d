//! A full disk under the state folder: the client logs it once, pauses the
//! CSV import, corrupts nothing (state files parse, the ledger has whole
//! lines, the spool holds only whole items), and resumes by itself when
//! space returns; every file then arrives exactly once, also across a
//! restart.
//!
//! The state folder is a tiny tmpfs mounted for the test (the tests run as
//! root, as CI does); the log stays on the ordinary disk so that it can be
//! read (see the report: a log on the full disk loses its lines, with one
//! message on stderr).

mod corpus;
mod support;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use corpus::*;
use injixo_cloud_link::csv::Ledger;
use serde_json::{json, Value};
use support::emulator::Emulator;
use support::*;

/// Stops `client` (it must exit cleanly) and starts it again; returns the
/// new process and the log text that marks its start.
fn restart(install: &InstallDir, client: ClientProcess) -> (ClientProcess, String) {
    let (status, stderr) = client.terminate(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    let client = ClientProcess::spawn(run_command(install));
    let started = format!("starting (pid {})", client.pid());
    install.wait_for_log(&started, Duration::from_secs(20));
    (client, started)
}

/// Appends to `path` until the file system is full; returns the error.
fn fill(path: &Path) -> std::io::Error {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let chunk = vec![0x5a; 4096];
    loop {
        if let Err(e) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
            return e;
        }
    }
}

/// Text that gzip cannot shrink much: hex of a simple PRNG.
fn incompressible_csv(seed: u64, bytes: usize) -> Vec<u8> {
    let mut out = format!("Queue;Payload\n{seed};").into_bytes();
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("{x:016x}").as_bytes());
        if out.len() % 1024 < 16 {
            out.extend_from_slice(format!("\n{seed};").as_bytes());
        }
    }
    out.push(b'\n');
    out
}

#[test]
fn a_ledger_append_on_a_full_disk_leaves_no_partial_line() {
    let dir = tempfile::tempdir().unwrap();
    let _tmpfs = Tmpfs::mount(dir.path(), "256k");
    let (mut ledger, _) = Ledger::open_in(dir.path()).unwrap();
    let sha = |n: u32| format!("{n:064x}");
    let at = chrono::Utc::now();
    // The ledger gets its first page; then the disk fills.
    ledger
        .record_imported(&sha(0), "f0.csv", "imp", at)
        .unwrap();
    fill(&dir.path().join("filler"));
    // Fill the ledger's last page until an append fails: on tmpfs the line
    // that crosses into a new page is written in part, then ENOSPC.
    let mut recorded = 1;
    let error = loop {
        match ledger.record_imported(&sha(recorded), &format!("f{recorded}.csv"), "imp", at) {
            Ok(_) => recorded += 1,
            Err(e) => break e,
        }
        assert!(recorded < 100_000, "the disk never filled");
    };
    assert!(
        error.to_string().contains("No space left on device"),
        "{error}"
    );
    let text = std::fs::read_to_string(ledger.path()).unwrap();
    let tail = &text[text.len().saturating_sub(80)..];
    assert!(text.ends_with('\n'), "a partial line is left: {tail:?}");
    assert_eq!(text.lines().count() as u32, recorded);

    // Space returns: the next appends are whole, and all read back.
    std::fs::remove_file(dir.path().join("filler")).unwrap();
    ledger
        .record_imported(&sha(recorded), "again.csv", "imp", at)
        .unwrap();
    drop(ledger);
    let (ledger, warnings) = Ledger::open_in(dir.path()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(ledger.imported_count() as u32, recorded + 1);
}

/// Every JSON file of the state folder parses, every ledger line parses,
/// and the spool holds whole items only: each sidecar parses and has its
/// data file of the size it names, and nothing else is there.
fn assert_state_intact(state: &Path) {
    for entry in std::fs::read_dir(state).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let text = std::fs::read(&path).unwrap();
            serde_json::from_slice::<Value>(&text)
                .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        }
        if name == Ledger::FILE_NAME {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "ledger ends in a cut line"
            );
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|e| panic!("ledger line {line:?}: {e}"));
            }
        }
    }
    let spool = state.join("spool");
    for entry in std::fs::read_dir(&spool).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".json") {
            let item: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
                .unwrap_or_else(|e| panic!("sidecar {name}: {e}"));
            let data = spool.join(format!("{id}.gz"));
            let size = std::fs::metadata(&data)
                .unwrap_or_else(|e| panic!("{id}.gz of a committed item: {e}"))
                .len();
            assert_eq!(Some(size), item["size"].as_u64(), "{id}.gz is whole");
        } else if let Some(id) = name.strip_suffix(".gz") {
            assert!(
                spool.join(format!("{id}.json")).exists(),
                "{name}: data of an uncommitted item left in the spool"
            );
        } else {
            panic!("{name}: a temporary file left in the spool");
        }
    }
}

#[test]
fn a_full_state_disk_pauses_the_import_corrupts_nothing_and_everything_arrives_once() {
    let cloud = Emulator::start(&[]);
    let install = csv_install(&cloud.url, "");
    let state = install.path().join("state");
    let _tmpfs = Tmpfs::mount(&state, "2m");
    let filler = state.join("filler");
    let import = import_dir(&install);
    let client = link(&install, &cloud, run_command(&install));

    let first = good_csv("before the disk filled");
    drop_file(&import, "first.csv", &first);
    wait_for_imports(&cloud, 1);

    // An item that is spooled, then the disk fills while it is uploaded: the
    // cloud confirms it, but the ledger cannot record it yet. tmpfs gives
    // space by the page, so two things make that certain: the ledger's last
    // page is padded full (with a blank line, which the ledger skips), and
    // hard links keep the pages of the delivered item from being freed.
    let slow =
        json!({"path_prefix": "/api/cloud-link/v1/uploads", "mode": "delay", "delay_ms": 3000});
    cloud.add_fault(slow);
    let during = good_csv("in upload when the disk filled");
    drop_file(&import, "during.csv", &during);
    wait_for("during.csv in the spool", Duration::from_secs(20), || {
        (install.spooled_files() == 1).then_some(())
    });
    let hold = state.join("hold");
    std::fs::create_dir(&hold).unwrap();
    for entry in std::fs::read_dir(state.join("spool")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::hard_link(&path, hold.join(path.file_name().unwrap())).unwrap();
    }
    let ledger = state.join(Ledger::FILE_NAME);
    let length = std::fs::metadata(&ledger).unwrap().len();
    let mut blank = vec![b' '; ((4096 - (length + 1) % 4096) % 4096) as usize];
    blank.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&ledger)
        .unwrap();
    file.write_all(&blank).unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(&ledger).unwrap().len() % 4096, 0);
    fill(&filler);
    cloud.clear_faults();
    wait_for_imports(&cloud, 2);
    install.wait_for_log(
        "cannot record during.csv as imported yet",
        Duration::from_secs(20),
    );
    std::fs::remove_dir_all(&hold).unwrap();
    fill(&filler);

    // New files while the disk is full: nothing is spooled, the import pauses.
    let later: Vec<Vec<u8>> = (0..4).map(|n| incompressible_csv(n, 300_000)).collect();
    for (n, content) in later.iter().enumerate() {
        drop_file(&import, &format!("later-{n}.csv"), content);
    }
    let log = install.wait_for_log("the disk of the spool is full", Duration::from_secs(30));
    assert!(log.contains("No space left on device"), "{log}");
    std::thread::sleep(Duration::from_secs(12)); // two retries
    let log = install.read_log();
    assert_eq!(
        lines_with(&log, "the disk of the spool is full").len(),
        1,
        "{log}"
    );
    assert_eq!(cloud.imports().len(), 2);
    let status = install.output(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status --json");
    assert_eq!(
        status["importers"]["csv"]["state"], "paused: disk full",
        "{status}"
    );
    assert_state_intact(&state);

    // Space returns: the import resumes by itself and everything arrives once.
    std::fs::remove_file(&filler).unwrap();
    let imports = wait_for_imports(&cloud, 2 + later.len());
    for content in later.iter().chain([&first, &during]) {
        assert!(imports.contains_key(&sha256_hex(content)));
    }
    let log = install.wait_for_log("recorded during.csv as imported in the CSV ledger", ARRIVE);
    assert_eq!(lines_with(&log, "CSV import resumes").len(), 1, "{log}");
    assert_no_crash(&log);
    assert_state_intact(&state);

    // After a restart nothing is read or sent again: the ledger is whole.
    let (_client, started) = restart(&install, client);
    std::thread::sleep(Duration::from_secs(6));
    let log = install.read_log();
    let after_restart = &log[log.find(&started).unwrap()..];
    assert!(after_restart.contains("watching"), "{after_restart}");
    assert!(
        lines_with(after_restart, "uploaded").is_empty(),
        "{after_restart}"
    );
    assert!(
        lines_with(after_restart, "already in the cloud").is_empty(),
        "{after_restart}"
    );
    assert!(!after_restart.contains("CSV ledger"), "{after_restart}");
    assert_eq!(cloud.imports().len(), 2 + later.len());
    assert_no_duplicates(&cloud);
}

#[test]
fn a_full_state_disk_holds_back_the_database_import_until_space_returns() {
    use support::db::{drop_table_quietly, psql, rows_in_cloud};
    struct Table(String);
    impl Drop for Table {
        fn drop(&mut self) {
            drop_table_quietly(&self.0);
        }
    }
    let table = Table(format!("icl_diskfull_{}", std::process::id()));
    psql(&format!(
        "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (queue_id text, queue_name text, \
         ts timestamp, offered int, answered int, aht int, channel text)",
        t = table.0
    ));
    let cloud = Emulator::start(&[]);
    let (status, body) = cloud.post(
        "/_emulator/integrations",
        &json!({
            "name": "ACD database", "kind": "database",
            "database": {
                "connection_string": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;",
                "time_zone": "UTC",
                "imports": [{
                    "id": "interval", "type": "interval", "every_seconds": 5,
                    "reconcile_hours": 1, "backfill_days": 1,
                    "query": format!(
                        "SELECT queue_id AS queueidentifier, queue_name AS queuename, ts AS timestamp, \
                         offered, answered, aht AS handlingtime, channel FROM {} \
                         WHERE ts >= ? AND ts < ? ORDER BY ts, queue_id", table.0)
                }]
            }
        }),
    );
    assert_eq!(status, 201, "{body}");
    let integration = body["id"].as_str().unwrap().to_owned();
    let install = InstallDir::new();
    install.write_config(&format!(
        "[app]\nverbose = true\n[cloud]\nurl = \"{}\"\n",
        cloud.url
    ));
    let state = install.path().join("state");
    let _tmpfs = Tmpfs::mount(&state, "2m");
    let _client = install.run_paired(&cloud, &integration);
    install.wait_for_log("import interval: 0 row(s)", ARRIVE);

    fill(&state.join("filler"));
    // Rows of the last hour, wide enough not to fit in what a page leaves.
    psql(&format!(
        "INSERT INTO {t} SELECT 'q' || q, repeat('Queue ' || q || ' é ', 200), ts, q, q, 100 + q, 'calls' \
         FROM generate_series(1, 20) q, generate_series(date_trunc('hour', now() AT TIME ZONE 'UTC') \
         - interval '1 hour', date_trunc('hour', now() AT TIME ZONE 'UTC') - interval '15 minutes', \
         interval '15 minutes') ts",
        t = table.0
    ));
    let log = install.wait_for_log("No space left on device", ARRIVE);
    let line = lines_with(&log, "No space left on device");
    assert!(
        line[0].contains("import interval: could not write the query result")
            && line[0].contains("check free disk space in the state folder")
            && line[0].contains("; retrying in "),
        "{}",
        line[0]
    );
    std::thread::sleep(Duration::from_secs(8));
    let log = install.read_log();
    assert_eq!(
        lines_with(&log, "No space left on device").len(),
        1,
        "{log}"
    );
    assert!(rows_in_cloud(&cloud).is_empty(), "nothing arrived");
    assert_state_intact(&state);

    std::fs::remove_file(state.join("filler")).unwrap();
    let rows = wait_for("the rows in the cloud", ARRIVE, || {
        let rows = rows_in_cloud(&cloud);
        (rows.len() >= 80).then_some(rows)
    });
    assert_eq!(rows.len(), 80);
    // Exactly once: no data line is in two imports.
    let mut lines = 0;
    for import in cloud.imports() {
        let content = cloud.import_content(import["import_id"].as_str().unwrap());
        lines += String::from_utf8(content).unwrap().lines().skip(1).count();
    }
    assert_eq!(lines, 80, "a row was imported twice");
    let log = install.wait_for_log(
        "import interval reads the database again",
        Duration::from_secs(10),
    );
    assert_no_crash(&log);
    assert_state_intact(&state);
}

/// The whole install folder on the full disk, the log included (the import
/// folder is elsewhere, as a share would be): the same pause and resume,
/// and the log lines written while the disk was full reach the log once
/// there is room (they wait in the log writer's buffer).
#[test]
fn a_full_install_disk_with_the_log_on_it_loses_nothing() {
    let cloud = Emulator::start(&[]);
    let install = InstallDir::new();
    let _tmpfs = Tmpfs::mount(install.path(), "3m");
    let import = tempfile::tempdir().unwrap();
    install.write_config(&format!(
        "[app]\nimportDirectory = '{}'\n[cloud]\nurl = \"{}\"\n[csv]\nsettleSeconds = 1\n",
        import.path().display(),
        cloud.url
    ));
    let mut command = install.command(&["run"]);
    command.stdout(std::process::Stdio::null());
    command.stderr(std::process::Stdio::piped());
    let client = link(&install, &cloud, command);
    let filler = install.path().join("filler");

    // tmpfs gives space by the page: pad the log's last page full (a blank
    // line), so that the next log line needs space the disk does not have.
    let log_path = install.log_path();
    let length = std::fs::metadata(&log_path).unwrap().len();
    let mut blank = vec![b' '; ((4096 - (length + 1) % 4096) % 4096) as usize];
    blank.push(b'\n');
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_path)
        .unwrap();
    file.write_all(&blank).unwrap();
    drop(file);
    fill(&filler);
    let files: Vec<Vec<u8>> = (10..13).map(|n| incompressible_csv(n, 300_000)).collect();
    for (n, content) in files.iter().enumerate() {
        drop_file(import.path(), &format!("late-{n}.csv"), content);
    }
    std::thread::sleep(Duration::from_secs(15));
    assert!(cloud.imports().is_empty(), "nothing could be spooled");
    assert_state_intact(&install.path().join("state"));

    std::fs::remove_file(&filler).unwrap();
    let imports = wait_for_imports(&cloud, files.len());
    for content in &files {
        assert!(imports.contains_key(&sha256_hex(content)));
    }
    let log = install.wait_for_log("CSV import resumes", Duration::from_secs(20));
    assert_eq!(
        lines_with(&log, "the disk of the spool is full").len(),
        1,
        "{log}"
    );
    assert_no_crash(&log);
    let (status, stderr) = client.terminate(Duration::from_secs(20));
    assert!(status.success(), "{stderr}");
    assert_eq!(
        lines_with(&stderr, "cannot write the log file").len(),
        1,
        "one notice on stderr (the journal of a service): {stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_no_duplicates(&cloud);
}

/// The cloud rotates the refresh token at each refresh; credentials that a
/// full disk kept from being saved are saved once there is room, so a
/// restart after that finds the link instead of needing a new PIN.
#[test]
fn credentials_refreshed_on_a_full_disk_are_saved_when_space_returns() {
    // Tokens live 20 s: refreshed every 16 s.
    let cloud = Emulator::start(&["--token-ttl", "20"]);
    let install = csv_install(&cloud.url, "");
    let state = install.path().join("state");
    let _tmpfs = Tmpfs::mount(&state, "2m");
    let client = link(&install, &cloud, run_command(&install));
    let filler = state.join("filler");
    fill(&filler);
    install.wait_for_log("cannot save the credentials", Duration::from_secs(40));
    std::fs::remove_file(&filler).unwrap();
    let log = install.wait_for_log(
        "saved the credentials: the state folder can be written again",
        Duration::from_secs(15),
    );
    assert_eq!(
        lines_with(&log, "cannot save the credentials").len(),
        1,
        "{log}"
    );
    assert_state_intact(&state);

    // A restart at once, before the next refresh: still linked.
    let (_client, started) = restart(&install, client);
    let content = good_csv("after the restart");
    drop_file(&import_dir(&install), "after.csv", &content);
    let imports = wait_for_imports(&cloud, 1);
    assert!(imports.contains_key(&sha256_hex(&content)));
    let log = install.read_log();
    let after_restart = &log[log.find(&started).unwrap()..];
    assert!(!after_restart.contains("Enter your pin"), "{after_restart}");
    assert_no_crash(&log);
}
