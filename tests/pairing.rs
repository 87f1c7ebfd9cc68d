//! Pairing by PIN, end to end: the real client and the real emulator as
//! processes, over real HTTP.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::emulator::{free_port, Emulator};
use support::*;

/// The emulator's polling interval is 5 s; two intervals plus slack.
const LINK: Duration = Duration::from_secs(15);
const BANNER: Duration = Duration::from_secs(20);
const STOP: Duration = Duration::from_secs(10);

fn status_json(install: &InstallDir) -> (i32, Value) {
    let out = install.output(&["status", "--json"]);
    let code = out.status.code().expect("exit code");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (code, json)
}

#[test]
fn a_fresh_client_shows_a_pin_and_links_when_it_is_entered() {
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Avaya CMS interval data");
    let install = InstallDir::with_cloud(&cloud.url);
    let client = install.spawn_run();

    let pin = install.wait_for_pin(1, BANNER);
    let log = install.read_log();
    assert!(
        log.contains("** Before you are able to run the client,"),
        "{log}"
    );
    assert!(
        log.contains(&format!("**  2) Visit {}/account/integrations", cloud.url)),
        "{log}"
    );
    assert!(log.contains("(expires in 5 minutes)"), "{log}");
    assert_eq!(pin.len(), 6);

    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log(
        &format!("linked to integration Avaya CMS interval data ({integration})"),
        LINK,
    );
    install.wait_for_log(
        "assignment received: integration Avaya CMS interval data",
        LINK,
    );
    let clients = cloud.clients();
    assert_eq!(clients[0]["integration_id"], integration.as_str());
    // A heartbeat follows the link at once (then every minute).
    let heartbeat = wait_for("a heartbeat", Duration::from_secs(10), || {
        let clients = cloud.clients();
        (!clients[0]["heartbeat"].is_null()).then(|| clients[0]["heartbeat"].clone())
    });
    assert_eq!(heartbeat["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(heartbeat["state"], "online");

    let (status, _) = client.terminate(STOP);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn an_expired_pin_is_replaced_by_a_new_one_that_works() {
    let cloud = Emulator::start(&["--pin-ttl", "3"]);
    let integration = cloud.create_csv_integration("Short PINs");
    let install = InstallDir::with_cloud(&cloud.url);
    let _client = install.spawn_run();

    let first = install.wait_for_pin(1, BANNER);
    let second = install.wait_for_pin(2, BANNER);
    assert_ne!(first, second, "a new PIN after expiry");
    // The first one is dead: the emulator refuses it.
    assert_ne!(cloud.connect(&first, &integration), 200);
    // The newest PIN on offer links the client (PINs keep rolling every 3 s).
    let newest = pins_in(&install.read_log()).pop().unwrap();
    assert_eq!(cloud.connect(&newest, &integration), 200);
    install.wait_for_log(
        &format!("linked to integration Short PINs ({integration})"),
        LINK,
    );
}

#[test]
fn deleting_the_integration_unlinks_and_a_new_pin_links_elsewhere() {
    // Short tokens: the client refreshes every few seconds, so it learns of
    // the deletion at the next refresh.
    let cloud = Emulator::start(&["--token-ttl", "5"]);
    let first = cloud.create_csv_integration("First");
    let second = cloud.create_csv_integration("Second");
    let install = InstallDir::with_cloud(&cloud.url);
    let _client = install.spawn_run();

    let pin = install.wait_for_pin(1, BANNER);
    assert_eq!(cloud.connect(&pin, &first), 200);
    install.wait_for_log(&format!("linked to integration First ({first})"), LINK);

    assert_eq!(
        cloud.delete(&format!("/_emulator/integrations/{first}")),
        204
    );
    let new_pin = install.wait_for_pin(2, Duration::from_secs(30));
    let log = install.read_log();
    assert!(
        log.contains(&format!("the link to integration First ({first}) ended")),
        "{log}"
    );
    assert!(!install.state_file("credentials.json").exists());

    assert_eq!(cloud.connect(&new_pin, &second), 200);
    install.wait_for_log(&format!("linked to integration Second ({second})"), LINK);
}

#[test]
fn pin_against_a_running_client_links_it() {
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Via pin");
    let install = InstallDir::with_cloud(&cloud.url);
    let _client = install.spawn_run();
    install.wait_for_pin(1, BANNER);

    let out = install.output(&["pin"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("** Before you are able to run the client,"),
        "{stdout}"
    );
    let pin = pins_in(&stdout).pop().expect("a PIN on stdout");

    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log(
        &format!("linked to integration Via pin ({integration})"),
        LINK,
    );
}

#[test]
fn pin_with_no_client_running_pairs_in_the_foreground_for_the_next_run() {
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Foreground");
    let install = InstallDir::with_cloud(&cloud.url);

    let mut pin_process = install
        .command(&["pin"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pin");
    let stdout = pin_process.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let pin = loop {
        let line = receiver
            .recv_timeout(BANNER)
            .expect("the pin command prints a banner");
        if let Some(pin) = pins_in(&line).pop() {
            break pin;
        }
    };
    assert_eq!(cloud.connect(&pin, &integration), 200);
    let linked_line = loop {
        let line = receiver.recv_timeout(LINK).expect("a linked line");
        if line.starts_with("Linked to") {
            break line;
        }
    };
    assert_eq!(
        linked_line,
        format!("Linked to integration Foreground ({integration}). Start the service to import.")
    );
    let status = wait_for("the pin command to exit", STOP, || {
        pin_process.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
    assert!(install.state_file("credentials.json").exists());

    // The next run is linked at once: no banner.
    let client = install.spawn_run();
    install.wait_until_ready(client.pid(), BANNER);
    install.wait_for_log(
        &format!("linked to integration Foreground ({integration})"),
        LINK,
    );
    assert!(
        pins_in(&install.read_log()).is_empty(),
        "{}",
        install.read_log()
    );
    let (status, _) = client.terminate(STOP);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn pin_on_a_linked_client_gives_a_relink_pin_that_moves_it() {
    let cloud = Emulator::start(&[]);
    let first = cloud.create_csv_integration("Old");
    let second = cloud.create_csv_integration("New");
    let install = InstallDir::with_cloud(&cloud.url);
    let _client = install.spawn_run();
    let pin = install.wait_for_pin(1, BANNER);
    assert_eq!(cloud.connect(&pin, &first), 200);
    install.wait_for_log(&format!("linked to integration Old ({first})"), LINK);

    let out = install.output(&["pin", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(answer["event"], "pin");
    assert_eq!(answer["offer"]["relink"], true);
    assert_eq!(answer["linked_to"], format!("integration Old ({first})"));
    let relink_pin = answer["offer"]["pin"].as_str().unwrap().to_owned();

    // Until the PIN is used the old link stays active.
    let (_, status) = status_json(&install);
    assert_eq!(status["link"]["integration_id"], first.as_str());

    assert_eq!(cloud.connect(&relink_pin, &second), 200);
    install.wait_for_log(
        &format!("moved from integration Old ({first}) to integration New ({second})"),
        LINK,
    );
    install.wait_for_log("assignment received: integration New", LINK);
}

#[test]
fn status_tells_each_phase_with_exit_codes_0_and_3() {
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Status");
    let install = InstallDir::with_cloud(&cloud.url);

    let (code, status) = status_json(&install);
    assert_eq!(code, 3, "not running");
    assert_eq!(status["running"], false);
    assert_eq!(status["link"]["state"], "unpaired");
    let text = install.output(&["status"]);
    assert_eq!(text.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&text.stdout).contains("not running"));

    let client = install.spawn_run();
    let pin = install.wait_for_pin(1, BANNER);
    let (code, status) = status_json(&install);
    assert_eq!(code, 0, "running");
    assert_eq!(status["link"]["state"], "pairing");
    assert_eq!(status["link"]["pin"]["pin"], pin.as_str());
    assert_eq!(status["pid"], client.pid());

    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("assignment received", LINK);
    let (code, status) = status_json(&install);
    assert_eq!(code, 0);
    assert_eq!(status["link"]["state"], "linked");
    assert_eq!(status["link"]["integration_name"], "Status");
    assert_eq!(status["cloud"]["reachable"], true);
    assert!(status["assignment"]
        .as_str()
        .unwrap()
        .contains("CSV files matching *.csv"));
    let text = String::from_utf8_lossy(&install.output(&["status"]).stdout).into_owned();
    assert!(
        text.contains(&format!("linked to integration Status ({integration})")),
        "{text}"
    );

    let (exit, _) = client.terminate(STOP);
    assert_eq!(exit.code(), Some(0));
    let (code, status) = status_json(&install);
    assert_eq!(code, 3, "stopped again");
    assert_eq!(status["link"]["state"], "linked", "from the state folder");
}

#[test]
fn credentials_are_private_and_no_token_reaches_a_log() {
    // Short tokens, so several generations are issued and refreshed.
    let cloud = Emulator::start(&["--token-ttl", "3"]);
    let integration = cloud.create_csv_integration("Secrets");
    let install = InstallDir::with_cloud(&cloud.url);
    install.write_config(&format!(
        "[app]\nverbose = true\n[cloud]\nurl = \"{}\"\n",
        cloud.url
    ));
    let client = install.spawn_run();
    let pin = install.wait_for_pin(1, BANNER);
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("linked to integration", LINK);

    // Collect every token generation the client holds over ~10 s.
    let credentials = install.state_file("credentials.json");
    let mut tokens = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&credentials) {
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
    assert!(
        tokens.len() >= 4,
        "several generations were issued: {}",
        tokens.len()
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "credentials file mode");
        let dir_mode = std::fs::metadata(install.path().join("state"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700, "state folder mode");
    }

    let (exit, stderr) = client.terminate(STOP);
    assert_eq!(exit.code(), Some(0));
    let outputs = format!(
        "{}{}{}{}",
        install.all_logs(),
        stderr,
        cloud.log_text(),
        String::from_utf8_lossy(&install.output(&["status", "--json"]).stdout)
    );
    for token in &tokens {
        assert!(
            !outputs.contains(token.as_str()),
            "a token leaked into the logs"
        );
    }
}

#[test]
fn a_cloud_that_is_down_at_start_is_paired_with_once_it_comes_up() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let install = InstallDir::with_cloud(&url);
    let _client = install.spawn_run();

    let log = install.wait_for_log("pairing:", BANNER);
    assert!(log.contains("Connection refused (os error 111)"), "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{port}")),
        "names the host: {log}"
    );

    let cloud = Emulator::start_on(&format!("127.0.0.1:{port}"), &[]);
    let integration = cloud.create_csv_integration("Late cloud");
    let pin = install.wait_for_pin(1, Duration::from_secs(30));
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log(
        &format!("linked to integration Late cloud ({integration})"),
        LINK,
    );
    let log = install.read_log();
    assert!(log.contains("answers again"), "{log}");
    // One warning for the whole outage, not one per retry.
    assert_eq!(log.matches("os error 111").count(), 1, "{log}");
}

#[test]
fn assignment_changes_are_logged_and_a_revoked_token_leads_to_a_new_pin() {
    // Default token lifetime: the deletion is noticed through a 401 on the
    // minute's assignment poll or heartbeat, then a refused refresh.
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Changing");
    let install = InstallDir::with_cloud(&cloud.url);
    let _client = install.spawn_run();
    let pin = install.wait_for_pin(1, BANNER);
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("assignment received: integration Changing", LINK);

    let (status, body) = {
        let mut response = ureq::put(format!(
            "{}/_emulator/integrations/{integration}",
            cloud.url
        ))
        .send_json(
            serde_json::json!({"name": "Changing", "kind": "csv", "csv": {"pattern": "*.txt"}}),
        )
        .expect("PUT integration");
        let status = response.status().as_u16();
        (
            status,
            response.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    assert!((200..300).contains(&status), "{status} {body}");
    // The assignment is polled about once a minute.
    install.wait_for_log(
        "assignment changed: CSV pattern *.csv → *.txt",
        Duration::from_secs(75),
    );

    assert_eq!(
        cloud.delete(&format!("/_emulator/integrations/{integration}")),
        204
    );
    install.wait_for_pin(2, Duration::from_secs(75));
    let log = install.read_log();
    assert!(log.contains("the link to integration Changing"), "{log}");
    assert!(log.contains("refused to refresh"), "{log}");
}
