//! The security review's end-to-end checks (docs/security.md): every secret
//! the client handles stays out of every output, the files it writes are
//! private, and a local user who is not root can neither get a PIN nor read
//! the status. Real client, real emulator, real tinyproxy, real PostgreSQL.

#![cfg(unix)]

mod support;
#[path = "support/tinyproxy.rs"]
mod tinyproxy;

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::db::{drop_table_quietly, psql, rows_in_cloud};
use support::emulator::Emulator;
use support::*;
use tinyproxy::Tinyproxy;

const PROXY_USER: &str = "cloudlink";
const PROXY_PASSWORD: &str = "Pr0xy-pw-secrets-test";
/// `cloudlink:Pr0xy-pw-secrets-test` as a Basic credential, the form in which
/// the password crosses the wire.
const PROXY_BASIC: &str = "Y2xvdWRsaW5rOlByMHh5LXB3LXNlY3JldHMtdGVzdA==";
/// In the cloud's connection string; PostgreSQL's trust auth ignores it.
const CLOUD_DB_PASSWORD: &str = "Cloud-db-pw-secrets-test";
/// `[database] password` in the local file; replaces the cloud's.
const LOCAL_DB_PASSWORD: &str = "Local-db-pw-secrets-test";
const ARRIVE: Duration = Duration::from_secs(120);
/// `nobody` on Debian.
const OTHER_USER: u32 = 65534;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every file and folder under `dir`, recursively.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A database integration with one interval import, read every 5 s with a
/// day of back-fill.
fn interval_integration(cloud: &Emulator, connection_string: &str, query: &str) -> String {
    cloud.create_database_integration(json!({
        "connection_string": connection_string,
        "time_zone": "UTC",
        "imports": [{
            "id": "interval", "type": "interval", "query": query,
            "every_seconds": 5, "reconcile_hours": 1, "backfill_days": 1
        }]
    }))
}

#[test]
fn no_secret_reaches_any_output_and_every_state_file_is_private() {
    let table = format!("icl_secrets_{}", std::process::id());
    psql(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (queue_id text, queue_name text, ts timestamp, \
         offered int, answered int, aht int, channel text); \
         INSERT INTO {table} VALUES ('q1', 'Secret queue', (now() AT TIME ZONE 'UTC') - interval '2 hours', 1, 1, 100, 'calls')"
    ));
    struct DropTable(String);
    impl Drop for DropTable {
        fn drop(&mut self) {
            drop_table_quietly(&self.0);
        }
    }
    let _table = DropTable(table.clone());

    // Short tokens, so that several generations are issued over the run.
    let cloud = Emulator::start(&["--token-ttl", "3"]);
    let proxy = Tinyproxy::start(Some((PROXY_USER, PROXY_PASSWORD)), &[]);
    let integration = interval_integration(
        &cloud,
        &format!(
            "Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;Pwd={CLOUD_DB_PASSWORD};"
        ),
        &format!(
            "SELECT queue_id AS queueidentifier, queue_name AS queuename, ts AS timestamp, offered, answered, \
             aht AS handlingtime, channel FROM {table} WHERE ts >= ? AND ts < ? ORDER BY ts"
        ),
    );
    let install = InstallDir::new();
    install.write_config(&format!(
        "[app]\nverbose = true\n[cloud]\nurl = \"{}\"\n[database]\npassword = \"{LOCAL_DB_PASSWORD}\"\n",
        cloud.url
    ));
    // Uploads fail until the file modes are checked, so items wait in the spool.
    cloud.add_fault(json!({"path_prefix": "/api/cloud-link/v1/uploads", "mode": "status", "status": 503, "count": 100000, "probability": 1.0}));

    // The loopback cloud is reached through the proxy of `http_proxy`.
    let mut command = install.command(&["run"]);
    command
        .env(
            "http_proxy",
            format!(
                "http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{}",
                proxy.port
            ),
        )
        .env_remove("HTTP_PROXY")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let client = ClientProcess::spawn(command);
    let pin = install.wait_for_pin(1, Duration::from_secs(30));
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("assignment received", Duration::from_secs(30));
    wait_for("an item waiting in the spool", ARRIVE, || {
        (install.spooled_files() >= 1).then_some(())
    });

    // File modes, while the spool holds an item and everything exists.
    let state = install.path().join("state");
    assert_eq!(mode(&state), 0o700, "state/ is the owner's only");
    let mut seen = BTreeSet::new();
    for path in walk(&state) {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let name = path.strip_prefix(&state).unwrap().display().to_string();
        if meta.is_dir() {
            continue; // inside state/ (0700): unreachable for other users
        }
        assert!(
            meta.is_file() || meta.file_type().is_socket(),
            "{name}: unexpected file type"
        );
        assert_eq!(mode(&path) & 0o077, 0, "{name} is mode {:o}", mode(&path));
        seen.insert(name);
    }
    for expected in [
        "credentials.json",
        "assignment.json",
        "control.sock",
        "injixo-cloud-link.lock",
    ] {
        assert!(seen.contains(expected), "{expected} checked: {seen:?}");
    }
    assert!(
        seen.iter().any(|n| n.starts_with("spool/")),
        "a spool item checked: {seen:?}"
    );
    assert!(
        seen.iter().any(|n| n.starts_with("watermarks/")),
        "watermarks checked: {seen:?}"
    );
    let log_mode = mode(&install.log_path());
    assert_eq!(
        log_mode & 0o007,
        0,
        "the log is not world-readable: {log_mode:o}"
    );

    // Uploads resume; the row arrives (so the query, with the local
    // password, really ran).
    cloud.clear_faults();
    wait_for("the row in the cloud", ARRIVE, || {
        rows_in_cloud(&cloud)
            .iter()
            .any(|r| r.contains("Secret queue"))
            .then_some(())
    });

    // Every token generation the client held over a few refreshes.
    let mut tokens = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(install.state_file("credentials.json")) {
            if let Ok(json) = serde_json::from_str::<Value>(&text) {
                for key in ["access_token", "refresh_token"] {
                    if let Some(t) = json[key].as_str() {
                        tokens.insert(t.to_owned());
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tokens.len() >= 4, "several generations: {}", tokens.len());

    // Every command an admin runs, while the client runs.
    let mut outputs = String::new();
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["pin", "--json"],
        &["check-config"],
    ] {
        outputs.push_str(&output_text(&install.output(args)));
    }
    assert!(outputs.contains("\"state\""), "status answered: {outputs}");
    let (exit, stderr) = client.terminate(Duration::from_secs(20));
    assert_eq!(exit.code(), Some(0), "{stderr}");
    outputs.push_str(&stderr);
    outputs.push_str(&output_text(&install.output(&["status", "--json"])));
    outputs.push_str(&install.all_logs());
    outputs.push_str(&cloud.log_text());
    // State files that are not meant to hold secrets, which are only
    // credentials.json (tokens) and assignment.json (the cloud's string).
    for path in walk(&state) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && name != "credentials.json" && name != "assignment.json" {
            outputs.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
    }

    assert!(
        proxy.requests() >= 1,
        "the cloud was reached through the proxy: {}",
        proxy.log()
    );
    let log = install.all_logs();
    assert!(
        log.contains("PWD=***") || log.contains("Pwd=***"),
        "the connection string is shown, masked: {log}"
    );
    for secret in [
        PROXY_PASSWORD,
        PROXY_BASIC,
        CLOUD_DB_PASSWORD,
        LOCAL_DB_PASSWORD,
    ]
    .into_iter()
    .chain(tokens.iter().map(String::as_str))
    {
        assert!(
            !outputs.contains(secret),
            "a secret ({}…) leaked",
            &secret[..6]
        );
    }
}

fn as_other_user(install: &InstallDir, args: &[&str]) -> std::process::Output {
    install
        .command(args)
        .uid(OTHER_USER)
        .gid(OTHER_USER)
        .output()
        .expect("run the client as another user")
}

#[test]
fn a_local_user_who_is_not_root_gets_neither_a_pin_nor_the_status() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Switching to another user needs root; CI runs as root
        // (scripts/setup installs with apt-get).
        eprintln!("skipped: needs root to run a command as another user");
        return;
    }
    let cloud = Emulator::start(&[]);
    let install = InstallDir::with_cloud(&cloud.url);
    // A typical install folder: the folder and the file readable by all.
    std::fs::set_permissions(install.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        install.config_path(),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let _client = install.spawn_run();
    let pin = install.wait_for_pin(1, Duration::from_secs(30));
    let socket = install.state_file("control.sock");
    assert_eq!(mode(&socket), 0o600, "control socket mode");
    assert_eq!(mode(&install.path().join("state")), 0o700);

    // The state folder keeps the other user out altogether.
    for args in [&["status", "--json"][..], &["pin", "--json"]] {
        let output = as_other_user(&install, args);
        let text = output_text(&output);
        assert!(!output.status.success(), "{args:?} refused: {text}");
        assert!(
            text.contains("Permission denied"),
            "{args:?} says why: {text}"
        );
        assert!(!text.contains(&pin), "{args:?} shows no PIN: {text}");
        assert!(
            !text.contains("\"link\""),
            "{args:?} shows no status: {text}"
        );
    }

    // Even with the folder and the socket opened up by mistake, the client
    // checks who is on the other end of the socket.
    std::fs::set_permissions(
        install.path().join("state"),
        std::fs::Permissions::from_mode(0o711),
    )
    .unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [&["status", "--json"][..], &["pin", "--json"]] {
        let text = output_text(&as_other_user(&install, args));
        assert!(!text.contains(&pin), "{args:?} shows no PIN: {text}");
        assert!(!text.contains("\"link\""), "{args:?}: {text}");
    }
    install.wait_for_log(
        "control channel: refused a connection from another user",
        Duration::from_secs(10),
    );
    // Root still gets both.
    let output = install.output(&["pin", "--json"]);
    assert!(output_text(&output).contains(&pin), "root gets the PIN");
}

#[test]
fn a_driver_library_named_by_the_cloud_is_not_loaded() {
    // The real psqlODBC library: before the check, unixODBC loaded it from
    // this path and the import ran. Any library at any path would have been
    // loaded the same way.
    const LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so";
    let cloud = Emulator::start(&[]);
    let integration = interval_integration(
        &cloud,
        &format!("Driver={LIBRARY};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;"),
        "SELECT 1 WHERE 1 = ? OR 1 = ?",
    );
    let install = InstallDir::new();
    install.write_config(&format!(
        "[app]\nverbose = true\n[cloud]\nurl = \"{}\"\n",
        cloud.url
    ));
    let _client = install.run_paired(&cloud, &integration);
    let log = install.wait_for_log(
        "the connection string from the cloud is refused",
        Duration::from_secs(30),
    );
    assert!(
        log.contains("`Driver=` is a file path") && log.contains("[database] connectionString"),
        "says why and what to do: {log}"
    );
    let status: Value =
        serde_json::from_slice(&install.output(&["status", "--json"]).stdout).unwrap();
    let text = status.to_string();
    assert!(
        text.contains("failing") && text.contains("is refused"),
        "status shows it: {text}"
    );
    // Past the first tick (every 5 s): had the library been loaded, the
    // import would have connected and logged its query's outcome.
    std::thread::sleep(Duration::from_secs(8));
    let log = install.read_log();
    assert!(
        !log.contains("import interval"),
        "the import never ran: {log}"
    );
    assert!(cloud.imports().is_empty(), "nothing imported");
}
