//! CSV folder import, end to end: files dropped into the import folder of a
//! real client arrive in the real emulator exactly once, through faults,
//! outages and crashes.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::emulator::{free_port, Emulator};
use support::*;

const ARRIVE: Duration = Duration::from_secs(120);

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A client linked to a fresh CSV integration, importing from `import/`.
fn linked_client(cloud: &Emulator, extra_config: &str) -> (InstallDir, ClientProcess, String) {
    let integration = cloud.create_csv_integration("CSV import test");
    let install = InstallDir::new();
    std::fs::create_dir_all(install.path().join("import")).unwrap();
    install.write_config(&format!(
        "[app]\nimportDirectory = \"import\"\n[cloud]\nurl = \"{}\"\n[csv]\nsettleSeconds = 1\n{extra_config}",
        cloud.url
    ));
    let client = install.run_paired(cloud, &integration);
    install.wait_for_log("watching", Duration::from_secs(20));
    (install, client, integration)
}

/// Writes a file the way most exporters do: to a temporary name, then a
/// rename into place.
fn drop_file(dir: &Path, name: &str, content: &[u8]) {
    let tmp = dir.join(format!("{name}.part"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Imports by original sha256 (the idempotency key), waiting until `n`
/// have been committed.
fn wait_for_imports(cloud: &Emulator, n: usize, timeout: Duration) -> BTreeMap<String, Value> {
    wait_for(&format!("{n} imports in the cloud"), timeout, || {
        let imports = cloud.imports();
        (imports.len() >= n).then(|| {
            imports
                .into_iter()
                .map(|i| (i["idempotency_key"].as_str().unwrap().to_owned(), i))
                .collect()
        })
    })
}

fn interval_csv(n: usize) -> Vec<u8> {
    let mut out = String::from("Queue;Date;Time;IncomingCalls;AnsweredCalls;AHT\n");
    for row in 0..(n % 7 + 2) {
        out.push_str(&format!(
            "Queue {n};25/05/2020;{:02}:{:02};{};{};{}\n",
            8 + row / 4,
            (row % 4) * 15,
            n + row,
            n,
            200 + row
        ));
    }
    out.into_bytes()
}

#[test]
fn files_dropped_in_bursts_arrive_exactly_once_with_their_content() {
    let cloud = Emulator::start(&[]);
    let (install, _client, _) = linked_client(&cloud, "");
    let import = install.path().join("import");

    let mut expected = BTreeMap::new();
    for burst in 0..4 {
        for i in 0..50 {
            let n = burst * 50 + i;
            let content = interval_csv(n);
            expected.insert(sha256_hex(&content), content.clone());
            if n % 3 == 0 {
                // Some writers write in place.
                std::fs::write(import.join(format!("stats-{n:03}.csv")), &content).unwrap();
            } else {
                drop_file(&import, &format!("stats-{n:03}.csv"), &content);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let imports = wait_for_imports(&cloud, 200, ARRIVE);
    // Nothing more arrives: exactly once.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cloud.imports().len(), 200);
    for (key, content) in &expected {
        let import = imports
            .get(key)
            .unwrap_or_else(|| panic!("missing import {key}"));
        assert_eq!(import["source"], "csv");
        let id = import["import_id"].as_str().unwrap();
        assert_eq!(
            &cloud.import_content(id),
            content,
            "content of {}",
            import["file_name"]
        );
        assert_eq!(import["metadata"]["delimiter"], ";");
        assert_eq!(import["metadata"]["encoding"], "utf-8");
    }
    assert_eq!(install.spooled_files(), 0, "the spool is drained");
}

#[test]
fn metadata_describes_each_encoding_and_utf16_is_converted() {
    let cloud = Emulator::start(&[]);
    let (install, _client, _) = linked_client(&cloud, "");
    let import = install.path().join("import");

    let utf8 = "Queue;Date;Time;IncomingCalls\nCafé Support;25/05/2020;08:00;15\n";
    let samples: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        ("utf8.csv", utf8.as_bytes().to_vec(), "utf-8", ";"),
        (
            "bom.csv",
            [
                &b"\xef\xbb\xbf"[..],
                b"StartDate,StartTime,AgentID,AgentActivityID\n2022-04-22,08:34:29,816,1013\n",
            ]
            .concat(),
            "utf-8-bom",
            ",",
        ),
        (
            "cp1252.csv",
            b"Queue;Date;Time;IncomingCalls\nFran\xe7ais \x80 Hotline;25/05/2020;08:00;15\n"
                .to_vec(),
            "windows-1252",
            ";",
        ),
        (
            "tabs.csv",
            b"StartDate\tStartTime\tAgentID\tAgentActivityID\n2022-04-22\t08:34:29\t816\t1013\n"
                .to_vec(),
            "utf-8",
            "\t",
        ),
    ];
    let mut utf16 = vec![0xff, 0xfe];
    for unit in utf8.encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    for (name, bytes, _, _) in &samples {
        drop_file(&import, name, bytes);
    }
    drop_file(&import, "utf16.csv", &utf16);

    let imports = wait_for_imports(&cloud, 5, ARRIVE);
    for (name, bytes, encoding, delimiter) in &samples {
        let import = &imports[&sha256_hex(bytes)];
        assert_eq!(import["file_name"], *name);
        assert_eq!(import["metadata"]["original_encoding"], *encoding, "{name}");
        assert_eq!(
            import["metadata"]["encoding"], *encoding,
            "sent unchanged: {name}"
        );
        assert_eq!(import["metadata"]["delimiter"], *delimiter, "{name}");
        assert_eq!(import["metadata"]["rows"], 2, "{name}");
        assert_eq!(import["metadata"]["columns"], 4, "{name}");
    }
    let converted = &imports[&sha256_hex(&utf16)];
    assert_eq!(converted["metadata"]["original_encoding"], "utf-16le");
    assert_eq!(converted["metadata"]["encoding"], "utf-8");
    let id = converted["import_id"].as_str().unwrap();
    assert_eq!(
        cloud.import_content(id),
        utf8.as_bytes(),
        "UTF-16 arrives as UTF-8"
    );
}

#[test]
fn duplicates_are_skipped_new_content_under_an_old_name_is_imported_and_a_growing_file_once() {
    let cloud = Emulator::start(&[]);
    let (install, _client, _) = linked_client(&cloud, "");
    let import = install.path().join("import");

    let first = interval_csv(1);
    drop_file(&import, "a.csv", &first);
    wait_for_imports(&cloud, 1, ARRIVE);

    // The same content under another name: skipped, and said so.
    drop_file(&import, "copy-of-a.csv", &first);
    install.wait_for_log("copy-of-a.csv", ARRIVE);
    let log = install.read_log();
    assert!(log.contains("same content as a.csv"), "{log}");

    // The same name with new content: imported.
    let second = interval_csv(2);
    drop_file(&import, "a.csv", &second);
    wait_for_imports(&cloud, 2, ARRIVE);

    // A file appended to every 500 ms for 5 s is imported once, whole.
    let growing = import.join("growing.csv");
    let mut whole = b"Queue;Date;Time;IncomingCalls\n".to_vec();
    std::fs::write(&growing, &whole).unwrap();
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let line = format!("Queue {i};25/05/2020;08:{i:02};{i}\n");
        whole.extend_from_slice(line.as_bytes());
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&growing)
            .unwrap();
        f.write_all(line.as_bytes()).unwrap();
    }
    let imports = wait_for_imports(&cloud, 3, ARRIVE);
    std::thread::sleep(Duration::from_secs(4));
    let imports_now = cloud.imports();
    assert_eq!(
        imports_now.len(),
        3,
        "growing.csv imported once: {imports_now:#?}"
    );
    assert!(
        imports.contains_key(&sha256_hex(&whole)),
        "the whole file arrived"
    );
}

#[test]
fn a_client_killed_at_random_moments_loses_and_duplicates_nothing() {
    let cloud = Emulator::start(&[]);
    let (install, client, _) = linked_client(&cloud, "");
    let import = install.path().join("import");
    let mut expected = BTreeMap::new();
    for n in 0..100 {
        let content = interval_csv(1000 + n);
        expected.insert(sha256_hex(&content), content.clone());
        drop_file(&import, &format!("crash-{n:03}.csv"), &content);
    }
    // Twenty SIGKILLs at pseudo-random moments (a fixed seed keeps runs
    // comparable), each followed by a restart.
    let mut client = Some(client);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(50 + seed % 700));
        let running = client.take().unwrap();
        running.signal(libc::SIGKILL);
        let mut running = running;
        running.wait(Duration::from_secs(10));
        client = Some(install.spawn_run());
    }
    let imports = wait_for_imports(&cloud, 100, ARRIVE);
    wait_for("the spool to drain", ARRIVE, || {
        (install.spooled_files() == 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let all = cloud.imports();
    assert_eq!(all.len(), 100, "stored once each");
    for (key, content) in &expected {
        let id = imports[key]["import_id"].as_str().unwrap();
        assert_eq!(&cloud.import_content(id), content);
    }
    drop(client);
}

#[test]
fn faults_on_every_endpoint_delay_but_lose_nothing() {
    // Short tokens, so that refreshes meet the token endpoint's faults too.
    let cloud = Emulator::start(&["--token-ttl", "5"]);
    let (install, _client, _) = linked_client(&cloud, "");
    let import = install.path().join("import");
    for rule in [
        json!({"path_prefix": "/api/cloud-link/v1/uploads", "mode": "status", "status": 503, "retry_after": 1, "count": 6, "probability": 0.5}),
        json!({"path_prefix": "/_s3/", "mode": "reset", "count": 4, "probability": 0.5}),
        json!({"path_prefix": "/_s3/", "mode": "truncate", "count": 3, "probability": 0.5}),
        json!({"path_prefix": "/api/cloud-link/v1/uploads", "mode": "truncate", "count": 3, "probability": 0.3}),
        json!({"path_prefix": "/api/cloud-link/v1/uploads", "mode": "delay", "delay_ms": 1500, "count": 3, "probability": 0.3}),
        json!({"path_prefix": "/api/cloud-link/v1/heartbeat", "mode": "status", "status": 500, "count": 3, "probability": 1.0}),
        json!({"path_prefix": "/api/cloud-link/v1/assignment", "mode": "status", "status": 503, "retry_after": 1, "count": 2, "probability": 1.0}),
        json!({"path_prefix": "/api/cloud-link/v1/assignment", "mode": "reset", "count": 1, "probability": 1.0}),
        json!({"path_prefix": "/api/cloud-link/v1/oauth/token", "mode": "status", "status": 503, "count": 2, "probability": 1.0}),
    ] {
        cloud.add_fault(rule);
    }
    let mut keys = Vec::new();
    for n in 0..30 {
        let content = interval_csv(2000 + n);
        keys.push(sha256_hex(&content));
        drop_file(&import, &format!("faulty-{n:02}.csv"), &content);
    }
    std::thread::sleep(Duration::from_secs(10));
    cloud.clear_faults();
    let imports = wait_for_imports(&cloud, 30, ARRIVE);
    for key in &keys {
        assert!(imports.contains_key(key));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cloud.imports().len(), 30);
}

#[test]
fn an_outage_of_the_cloud_is_ridden_out_and_the_spool_drains() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let data_dir = data.path().to_str().unwrap().to_owned();
    let mut cloud = Emulator::start_on(&listen, &["--data-dir", &data_dir]);
    let (install, _client, _) = linked_client(&cloud, "");
    let import = install.path().join("import");

    cloud.stop();
    for n in 0..20 {
        drop_file(
            &import,
            &format!("outage-{n:02}.csv"),
            &interval_csv(3000 + n),
        );
    }
    wait_for("files to be spooled during the outage", ARRIVE, || {
        (install.spooled_files() == 20).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let cloud = Emulator::start_on(&listen, &["--data-dir", &data_dir]);
    wait_for_imports(&cloud, 20, Duration::from_secs(300));
    wait_for("the spool to drain", ARRIVE, || {
        (install.spooled_files() == 0).then_some(())
    });
}

#[test]
fn a_file_that_is_not_text_or_too_large_is_refused_once_until_it_changes() {
    let cloud = Emulator::start(&[]);
    let (install, _client, _) = linked_client(&cloud, "maxBytes = \"1 MiB\"\n");
    let import = install.path().join("import");

    drop_file(&import, "binary.csv", b"Queue;Calls\n\x00\x01\x02\x03;4\n");
    install.wait_for_log("not importing binary.csv: not a text file", ARRIVE);
    let mut big = b"Queue;Calls\n".to_vec();
    while big.len() <= 1 << 20 {
        big.extend_from_slice(b"A queue with a long name;12345\n");
    }
    drop_file(&import, "big.csv", &big);
    install.wait_for_log("not importing big.csv: the file is too large", ARRIVE);

    // An event on an unchanged file (a permission change) is no reason to
    // try again.
    let binary = import.join("binary.csv");
    let mut permissions = std::fs::metadata(&binary).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&binary, permissions).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        install
            .read_log()
            .matches("not importing binary.csv")
            .count(),
        1
    );
    assert!(cloud.imports().is_empty());

    // Once it changes into text, it is imported.
    std::fs::remove_file(&binary).unwrap();
    let text = interval_csv(7);
    drop_file(&import, "binary.csv", &text);
    let imports = wait_for_imports(&cloud, 1, ARRIVE);
    assert!(imports.contains_key(&sha256_hex(&text)));
}

#[test]
fn a_full_spool_pauses_the_import_and_it_resumes_when_uploads_make_room() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let data_dir = data.path().to_str().unwrap().to_owned();
    let mut cloud = Emulator::start_on(&listen, &["--data-dir", &data_dir]);
    let integration = cloud.create_csv_integration("Small spool");
    let install = InstallDir::new();
    let import = install.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    install.write_config(&format!(
        "[app]\nimportDirectory = \"import\"\n[cloud]\nurl = \"{}\"\n[csv]\nsettleSeconds = 1\n[spool]\nmaxBytes = \"1 MiB\"\n",
        cloud.url
    ));
    let _client = install.run_paired(&cloud, &integration);
    install.wait_for_log("watching", Duration::from_secs(20));

    // The cloud goes away; data that barely compresses fills the spool.
    cloud.stop();
    let mut keys = Vec::new();
    let mut noise: u64 = 0x2545_f491_4f6c_dd1d;
    for n in 0..3 {
        let mut content = b"Queue;Payload\n".to_vec();
        while content.len() < 700_000 {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            content.extend_from_slice(
                format!("q{n};{noise:016x}{:016x}\n", noise.rotate_left(17)).as_bytes(),
            );
        }
        keys.push(sha256_hex(&content));
        drop_file(&import, &format!("noise-{n}.csv"), &content);
    }
    install.wait_for_log("the spool is full", ARRIVE);
    assert_eq!(
        install.read_log().matches("the spool is full").count(),
        1,
        "one warning"
    );

    let cloud = Emulator::start_on(&listen, &["--data-dir", &data_dir]);
    let imports = wait_for_imports(&cloud, 3, Duration::from_secs(300));
    for key in &keys {
        assert!(imports.contains_key(key));
    }
    assert!(install.read_log().contains("CSV import resumes"));
}

#[test]
fn after_import_move_puts_committed_files_into_a_dated_folder() {
    let cloud = Emulator::start(&[]);
    let (install, _client, _) = linked_client(&cloud, "afterImport = \"move\"\n");
    let import = install.path().join("import");
    let content = interval_csv(11);
    drop_file(&import, "to-move.csv", &content);
    wait_for_imports(&cloud, 1, ARRIVE);
    let moved = import
        .join("imported")
        .join(chrono::Local::now().format("%Y-%m-%d").to_string())
        .join("to-move.csv");
    wait_for("the file to be moved", ARRIVE, || {
        moved.exists().then_some(())
    });
    assert_eq!(std::fs::read(&moved).unwrap(), content);
    assert!(!import.join("to-move.csv").exists());
}

/// The client's peak resident memory (VmHWM), from /proc.
#[cfg(target_os = "linux")]
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kib * 1024
}

/// 20,000 files waiting in the folder when the client starts: each arrives
/// once, in bounded memory (the settle state, timers and the ledger hold one
/// small entry per file). Minutes long, and the limit is the release
/// build's (a debug build takes some MiB more: 62 to 70 measured): run it
/// with `cargo test --release --test csv_import -- --ignored twenty_thousand`.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "imports 20,000 files; run on demand (see the doc comment)"]
fn twenty_thousand_files_present_at_start_arrive_once_with_peak_rss_under_64_mb() {
    const FILES: usize = 20_000;
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("20,000 files");
    let install = InstallDir::new();
    let import = install.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    for n in 0..FILES {
        std::fs::write(
            import.join(format!("f-{n:05}.csv")),
            interval_csv(100_000 + n),
        )
        .unwrap();
    }
    install.write_config(&format!(
        "[app]\nimportDirectory = \"import\"\n[cloud]\nurl = \"{}\"\n[csv]\nsettleSeconds = 1\n",
        cloud.url
    ));
    let started = std::time::Instant::now();
    let client = install.run_paired(&cloud, &integration);
    wait_for_imports(&cloud, FILES, Duration::from_secs(3600));
    let seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cloud.imports().len(), FILES, "each once");
    let peak = peak_rss_bytes(client.pid());
    eprintln!(
        "{FILES} files in {seconds:.0} s; peak RSS of the client: {:.1} MiB",
        peak as f64 / (1 << 20) as f64
    );
    assert!(peak < 64 << 20, "peak RSS {peak} bytes");
}

/// 5 GB through the whole client with flat memory. Too big and slow for
/// every CI run (it writes 5 GB and uploads about 1 GB): run it with
/// `cargo test --release --test csv_import -- --ignored five_gigabyte`.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "writes a 5 GB file; run on demand (see the doc comment)"]
fn a_five_gigabyte_file_is_imported_with_peak_rss_under_64_mb() {
    use std::io::Write;
    let cloud = Emulator::start(&["--max-upload-size", "20000000000"]);
    let (install, client, _) = linked_client(
        &cloud,
        "maxBytes = \"20 GiB\"\n[spool]\nmaxBytes = \"20 GiB\"\n",
    );
    let staging = tempfile::tempdir().unwrap();
    let big = staging.path().join("five-gb.csv");
    {
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&big).unwrap());
        out.write_all(b"Queue;Date;Time;IncomingCalls;AnsweredCalls;AHT\n")
            .unwrap();
        let mut written = 0u64;
        let mut row = 0u64;
        while written < 5_000_000_000 {
            let line = format!(
                "Inbound queue {};{:02}/05/2020;{:02}:{:02};{};{};{}\n",
                row % 97,
                1 + row % 28,
                row % 24,
                (row % 4) * 15,
                row % 500,
                row % 450,
                100 + row % 300
            );
            out.write_all(line.as_bytes()).unwrap();
            written += line.len() as u64;
            row += 1;
        }
    }
    std::fs::rename(&big, install.path().join("import").join("five-gb.csv"))
        .or_else(|_| {
            std::fs::copy(&big, install.path().join("import").join("five-gb.csv")).map(drop)
        })
        .unwrap();
    wait_for_imports(&cloud, 1, Duration::from_secs(3600));
    let peak = peak_rss_bytes(client.pid());
    eprintln!(
        "peak RSS of the client: {:.1} MiB",
        peak as f64 / (1 << 20) as f64
    );
    assert!(peak < 64 << 20, "peak RSS {peak} bytes");
}
