//! Several instances on one machine, the way the install guide sets them
//! up on Linux: the first instance runs and is linked; the admin copies its
//! folder, gives the copy its own `[app] name`, and starts it. Both real
//! clients then run side by side against one real emulator, each linked to
//! its own integration and importing its own files, with its own state
//! folder, log and control channel.
//!
//! The `service install` part uses the stand-in systemd of
//! `support/fake_systemd.rs` (systemd is not PID 1 here); everything else
//! is real processes over real HTTP.

#[path = "support/fake_systemd.rs"]
mod fake_systemd;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fake_systemd::FakeSystem;
use serde_json::Value;
use support::emulator::Emulator;
use support::*;

const SECOND_NAME: &str = "com.injixo.cloud-link.instance.1";
/// With the emulator polled every second, pairing takes a second or two.
const LINK: Duration = Duration::from_secs(20);
const ARRIVE: Duration = Duration::from_secs(30);

/// The original install folder: importing CSV files from `import/`.
fn first_folder(cloud_url: &str) -> InstallDir {
    let install = InstallDir::new();
    std::fs::create_dir(install.path().join("import")).unwrap();
    install.write_config(&format!(
        "[app]\nimportDirectory = \"import\"\n\n[cloud]\nurl = \"{}\"\n\n[csv]\nsettleSeconds = 1\n",
        cloud_url
    ));
    install
}

/// The guide's steps: a new folder holding a copy of the original's files,
/// and a unique `[app] name` in the copy's configuration.
fn copy_as_instance(original: &InstallDir, name: &str) -> InstallDir {
    let copy = InstallDir::new();
    let out = Command::new("cp")
        .arg("-R")
        .arg(format!("{}/.", original.path().display()))
        .arg(copy.path())
        .output()
        .expect("run cp");
    // cp reports the live control socket it cannot copy; the rest is copied.
    let config = std::fs::read_to_string(copy.config_path())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let renamed = config.replacen("[app]\n", &format!("[app]\nname = \"{name}\"\n"), 1);
    assert_ne!(renamed, config, "the configuration has an [app] section");
    copy.write_config(&renamed);
    copy
}

/// An emulator polled every second, with two CSV integrations.
fn cloud_with_two_integrations() -> (Emulator, String, String) {
    let cloud = Emulator::start(&["--poll-interval", "1"]);
    let sales = cloud.create_csv_integration("Sales queues");
    let support_queues = cloud.create_csv_integration("Support queues");
    (cloud, sales, support_queues)
}

/// The cloud's record of the client linked to `integration`.
fn client_on(cloud: &Emulator, integration: &str) -> Value {
    let clients = cloud.clients();
    clients
        .iter()
        .find(|c| c["integration_id"] == integration)
        .unwrap_or_else(|| panic!("no client on {integration}: {clients:?}"))
        .clone()
}

/// The PIN of the banner the client `pid` shows; the log may start with
/// lines copied from the original folder.
fn pin_of_this_run(install: &InstallDir, pid: u32) -> String {
    wait_for("a banner of this run", LINK, || {
        let log = install.read_log();
        let start = log.find(&format!("starting (pid {pid})"))?;
        pins_in(&log[start..]).into_iter().next()
    })
}

fn status_json(install: &InstallDir) -> Value {
    let out = install.output(&["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "status of a running client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

fn drop_file(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!("{name}.part"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// File names imported into `integration`, once `n` have arrived.
fn imported_names(cloud: &Emulator, integration: &str, n: usize) -> Vec<String> {
    wait_for(&format!("{n} imports into {integration}"), ARRIVE, || {
        let (status, body) = cloud.get(&format!("/_emulator/imports?integration_id={integration}"));
        assert_eq!(status, 200, "{body}");
        let imports = body.as_array().cloned().unwrap_or_default();
        (imports.len() >= n).then(|| {
            let mut names: Vec<String> = imports
                .iter()
                .map(|i| {
                    assert_eq!(i["integration_id"], integration, "{i}");
                    i["file_name"].as_str().unwrap().to_owned()
                })
                .collect();
            names.sort();
            names
        })
    })
}

#[test]
fn a_copied_folder_with_its_own_name_runs_beside_the_original_with_its_own_integration() {
    let (cloud, sales, support_queues) = cloud_with_two_integrations();

    // The original instance, linked and importing.
    let first = first_folder(&cloud.url);
    let first_client = first.spawn_run();
    let first_pin = first.wait_for_pin(1, LINK);
    assert_eq!(cloud.connect(&first_pin, &sales), 200);
    first.wait_for_log("watching", LINK);

    // The copy carries the original's state folder (its link, its
    // installation id): the copy must not take them over.
    let second = copy_as_instance(&first, SECOND_NAME);
    assert!(second.state_file("credentials.json").exists());
    let second_client = second.spawn_run();
    let second_pin = pin_of_this_run(&second, second_client.pid());
    assert_ne!(second_pin, first_pin);
    let second_log = second.read_log();
    assert!(
        second_log.contains(&format!(
            "the state folder was copied from {} ",
            std::fs::canonicalize(first.path()).unwrap().display()
        )),
        "{second_log}"
    );
    assert_eq!(cloud.connect(&second_pin, &support_queues), 200);
    second.wait_for_log("watching", LINK);

    // Each imports its own folder into its own integration, at the same time.
    for n in 0..3 {
        drop_file(
            &first.path().join("import"),
            &format!("sales-{n}.csv"),
            &format!("Queue;Calls\nSales;{n}\n"),
        );
        drop_file(
            &second.path().join("import"),
            &format!("support-{n}.csv"),
            &format!("Queue;Calls\nSupport;{n}\n"),
        );
    }
    assert_eq!(
        imported_names(&cloud, &sales, 3),
        ["sales-0.csv", "sales-1.csv", "sales-2.csv"]
    );
    assert_eq!(
        imported_names(&cloud, &support_queues, 3),
        ["support-0.csv", "support-1.csv", "support-2.csv"]
    );
    assert_eq!(cloud.imports().len(), 6, "nothing went to both");

    // The cloud sees two clients, each with its own name and installation id.
    let (on_sales, on_support) = (
        client_on(&cloud, &sales),
        client_on(&cloud, &support_queues),
    );
    assert_eq!(on_sales["instance"], "com.injixo.cloud-link");
    assert_eq!(on_support["instance"], SECOND_NAME);
    assert_ne!(on_sales["installation_id"], on_support["installation_id"]);

    // Each control channel answers for its own client only.
    for (install, client, name, integration) in [
        (&first, &first_client, "com.injixo.cloud-link", &sales),
        (&second, &second_client, SECOND_NAME, &support_queues),
    ] {
        let status = status_json(install);
        assert_eq!(status["instance"], name, "{status}");
        assert_eq!(status["pid"], client.pid(), "{status}");
        assert_eq!(status["link"]["integration_id"], integration.as_str());
        assert_eq!(
            status["install_dir"],
            install.path().display().to_string(),
            "{status}"
        );
    }
    let out = second.output(&["pin", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("pin --json prints JSON");
    assert_eq!(
        answer["linked_to"],
        format!("integration Support queues ({support_queues})")
    );
    let relink_pin = answer["offer"]["pin"].as_str().unwrap();
    second.wait_for_log(
        &format!("PIN {relink_pin} shown by the `pin` command"),
        LINK,
    );
    assert!(
        !first.read_log().contains("shown by the `pin` command"),
        "the second instance's `pin` reached the first:\n{}",
        first.read_log()
    );
    assert!(status_json(&first)["link"].get("relink_pin").is_none());

    // Separate logs: each tells its own start and link only.
    let (first_log, second_log) = (first.read_log(), second.read_log());
    assert!(second_log.contains(&format!("instance {SECOND_NAME}")));
    assert!(!first_log.contains(SECOND_NAME), "{first_log}");
    assert!(!first_log.contains(&second_pin), "{first_log}");

    // Both stop cleanly, each on its own signal.
    let (status, _) = second_client.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert_eq!(status_json(&first)["pid"], first_client.pid());
    let (status, _) = first_client.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

/// `service <action>` in the stand-in system, which must succeed.
fn service_ok(system: &FakeSystem, install: &InstallDir, action: &str) {
    let out = system.service(install, action, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "service {action}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_second_instance_installs_its_own_unit_and_leaves_the_first_alone() {
    let system = FakeSystem::new();
    let first = first_folder("http://127.0.0.1:9");
    service_ok(&system, &first, "install");
    let first_unit = system.units().join("injixo-cloud-link.service");
    let first_text = std::fs::read_to_string(&first_unit).expect("the first unit");

    let second = copy_as_instance(&first, SECOND_NAME);
    service_ok(&system, &second, "install");
    let second_unit = system.units().join("injixo-cloud-link.instance.1.service");
    let second_text = std::fs::read_to_string(&second_unit).expect("a unit of its own");
    let second_folder = std::fs::canonicalize(second.path()).unwrap();
    assert!(
        second_text.contains(&format!(
            " run --config {}\n",
            second_folder.join("injixo-cloud-link.toml").display()
        )),
        "{second_text}"
    );
    assert!(
        second_text.contains(&format!("\nWorkingDirectory={}\n", second_folder.display())),
        "{second_text}"
    );
    assert_eq!(
        std::fs::read_to_string(&first_unit).unwrap(),
        first_text,
        "the first instance's unit is untouched"
    );
    let calls = system.calls();
    assert!(
        calls.contains(&format!("enable {}", second_unit.display())),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("stop ") || c.starts_with("disable ")),
        "installing the second touched a running service: {calls:?}"
    );

    // Removing the second leaves the first installed.
    service_ok(&system, &second, "uninstall");
    assert!(!second_unit.exists());
    assert_eq!(std::fs::read_to_string(&first_unit).unwrap(), first_text);
}

/// `pin` in a copied folder, before the copy ever ran: it pairs the copy as
/// a new client, instead of offering to move the original's link.
#[test]
fn pin_in_a_copied_folder_pairs_the_copy_anew() {
    let (cloud, sales, support_queues) = cloud_with_two_integrations();
    let first = first_folder(&cloud.url);
    let first_client = first.run_paired(&cloud, &sales);
    let (status, _) = first_client.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));

    let second = copy_as_instance(&first, SECOND_NAME);
    let mut pin = ClientProcess::spawn({
        let mut cmd = second.command(&["pin", "--json"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    });
    let offer = wait_for("a PIN from `pin --json`", LINK, || {
        pins_in(&second.read_log())
            .into_iter()
            .find(|p| !pins_in(&first.read_log()).contains(p))
    });
    assert_eq!(cloud.connect(&offer, &support_queues), 200);
    let (status, stderr) = pin.wait(LINK);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let credentials: Value =
        serde_json::from_slice(&std::fs::read(second.state_file("credentials.json")).unwrap())
            .unwrap();
    assert_eq!(credentials["integration_id"], support_queues.as_str());
    let original: Value =
        serde_json::from_slice(&std::fs::read(first.state_file("credentials.json")).unwrap())
            .unwrap();
    assert_eq!(original["integration_id"], sales.as_str(), "untouched");
    // The cloud still has the original on its integration, beside the copy.
    assert_ne!(
        client_on(&cloud, &sales)["installation_id"],
        client_on(&cloud, &support_queues)["installation_id"],
        "two clients"
    );
}
