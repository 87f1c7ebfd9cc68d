//! `injixo-cloud-link service …` against a real systemd: PID 1 of a
//! `systemd-nspawn` container (`support/container.rs`), booted from a
//! minimal Debian that `scripts/nspawn-rootfs` builds once and caches.
//!
//! The client inside is the release archive's content (built by
//! `packaging/linux/build-archive --exe` from the executable this `cargo
//! test` built), unpacked into a folder of the container as an admin would;
//! it talks to the emulator on the host's loopback (the container shares the
//! host's network). Needs root, as CI runs the tests; elsewhere each test
//! says why it is skipped and passes.

#[path = "support/container.rs"]
mod container;
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use container::Container;
use injixo_cloud_link::service::systemd_unit_name;
use serde_json::Value;
use support::emulator::Emulator;
use support::CLIENT;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const PASSWORD: &str = "s3cr%t-pw";

/// An emulator, and a booted container with the release archive unpacked
/// into `install`, whose unit is `unit`.
struct Setup {
    cloud: Emulator,
    container: Container,
    install: String,
    unit: String,
}

/// `None`, saying why, where these tests cannot run.
fn setup(test: &str, machine: &str) -> Option<Setup> {
    if let Some(why) = container::unavailable() {
        eprintln!("SKIPPED {test}: {why}");
        return None;
    }
    let rootfs = container::rootfs();
    let cloud = Emulator::start(&[]);
    let mut container = Container::boot(&rootfs, machine);
    let install = unpack_release(
        &mut container,
        "injixo-cloud-link",
        &cloud.url,
        "/srv/import",
    );
    Some(Setup {
        cloud,
        container,
        install,
        unit: systemd_unit_name("com.injixo.cloud-link"),
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The release archive (debug executable), unpacked into `/opt/<folder>` of
/// the container, with the shipped configuration edited as the README tells
/// an admin to: the cloud's address and the import folder.
fn unpack_release(
    container: &mut Container,
    folder: &str,
    cloud_url: &str,
    import: &str,
) -> String {
    let dist = tempfile::tempdir().unwrap();
    let out = Command::new(Path::new(REPO).join("packaging/linux/build-archive"))
        .args(["--exe", CLIENT, "--out"])
        .arg(dist.path())
        .current_dir(REPO)
        .stdin(Stdio::null())
        .output()
        .expect("run build-archive");
    assert!(out.status.success(), "build-archive: {}", text(&out.stderr));
    let archive = dist
        .path()
        .join(format!("injixo-cloud-link-{VERSION}-linux-x86_64.tar.gz"));
    let opt = container.path("/opt");
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&opt)
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar: {}", text(&out.stderr));
    std::fs::rename(
        opt.join(format!("injixo-cloud-link-{VERSION}")),
        opt.join(folder),
    )
    .unwrap();
    let install = format!("/opt/{folder}");
    edit_config(
        container,
        &install,
        &[
            (
                "#url = \"https://www.injixo.com\"",
                &format!("url = \"{cloud_url}\""),
            ),
            (
                "#importDirectory = \"c:/import\"",
                &format!("importDirectory = \"{import}\""),
            ),
        ],
    );
    container.sh_ok(&format!("mkdir -p {import}"));
    container.show_on_failure(&format!("{install}/injixo-cloud-link.log"));
    install
}

/// Replaces each `(from, to)` once in the install folder's configuration.
fn edit_config(container: &Container, install: &str, edits: &[(&str, &str)]) {
    let path = container.path(&format!("{install}/injixo-cloud-link.toml"));
    let mut config = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(config.contains(from), "{from:?} not in the shipped config");
        config = config.replacen(from, to, 1);
    }
    std::fs::write(&path, config).unwrap();
}

/// `./injixo-cloud-link ARGS` run from the install folder inside the
/// container, with `env` (`NAME=value …`, shell words) set.
fn client(container: &Container, install: &str, env: &str, args: &str) -> Output {
    container.sh(&format!(
        "cd {install} && env {env} ./injixo-cloud-link {args}"
    ))
}

fn client_ok(container: &Container, install: &str, env: &str, args: &str) -> String {
    let out = client(container, install, env, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn read_inside(container: &Container, path: &str) -> String {
    std::fs::read_to_string(container.path(path)).unwrap_or_default()
}

/// `pin --json` asks the running service for a PIN, which the emulator then
/// connects to `integration`; waits until the service is linked.
fn pair(container: &mut Container, cloud: &Emulator, install: &str, integration: &str) {
    let out = client_ok(container, install, "", "pin --json");
    let answer: Value = serde_json::from_str(out.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("pin --json: {e}: {out}"));
    let pin = answer["offer"]["pin"].as_str().expect("a PIN").to_owned();
    assert_eq!(cloud.connect(&pin, integration), 200);
    let log = format!("{install}/injixo-cloud-link.log");
    container.poll("the service to be linked", Duration::from_secs(30), |c| {
        read_inside(c, &log)
            .contains("assignment received")
            .then_some(())
    });
}

fn main_pid(container: &Container, unit: &str) -> String {
    container.property(unit, "MainPID")
}

/// Waits until systemd runs the unit again with a main PID other than
/// `old`, and returns it.
fn restarted(container: &mut Container, unit: &str, old: &str, timeout: Duration) -> String {
    let unit_name = unit.to_owned();
    container.poll(&format!("{unit} to run again"), timeout, |c| {
        let pid = main_pid(c, &unit_name);
        (pid != old && pid != "0" && c.property(&unit_name, "ActiveState") == "active")
            .then_some(pid)
    })
}

/// The admin's journey, from unpacking the archive to removing the service,
/// then a second instance from a copied folder beside the first.
#[test]
fn the_admins_journey_under_systemd_as_pid_1() {
    let Some(Setup {
        cloud,
        mut container,
        install,
        unit,
    }) = setup("the_admins_journey_under_systemd_as_pid_1", "icl-journey")
    else {
        return;
    };

    // Install: the unit is enabled in the real systemd.
    let out = client_ok(&container, &install, "", "service install");
    assert!(
        out.contains(&format!("installed the service {unit}")),
        "{out}"
    );
    assert!(!out.contains("systemd does not run this machine"), "{out}");
    assert_eq!(container.property(&unit, "UnitFileState"), "enabled");
    assert_eq!(container.property(&unit, "LoadState"), "loaded");

    // Start returns once the client said READY=1 (Type=notify).
    client_ok(&container, &install, "", "service start");
    assert_eq!(container.property(&unit, "ActiveState"), "active");
    assert_eq!(container.property(&unit, "SubState"), "running");
    let first_pid = main_pid(&container, &unit);

    // The PIN of the running service, connected in the emulator.
    let csv = cloud.create_csv_integration("journey");
    pair(&mut container, &cloud, &install, &csv);

    // A CSV file dropped into the import folder reaches the cloud.
    let csv_text = "agent;calls\nada;3\nbob;5\n";
    std::fs::write(container.path("/srv/import/agents.csv"), csv_text).unwrap();
    let id = container.poll("the CSV import", Duration::from_secs(60), |_| {
        cloud.imports().first()?["import_id"]
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(text(&cloud.import_content(&id)), csv_text);

    // Status: systemd's view, then the client's own.
    let status = client_ok(&container, &install, "", "service status");
    assert!(
        status.contains(&format!("active, enabled, main PID {first_pid}")),
        "{status}"
    );
    assert!(
        status.contains("journey"),
        "linked to the integration: {status}"
    );

    // A restart by systemctl itself: a new process, still linked, and
    // reachable the moment systemctl returns (it waits for READY=1; the
    // control channel was once opened only after that).
    let out = container.sh(&format!(
        "systemctl restart {unit} && cd {install} && ./injixo-cloud-link status"
    ));
    let status = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{status}{}", text(&out.stderr));
    assert!(status.contains("journey"), "{status}");
    let second_pid = main_pid(&container, &unit);
    assert_ne!(second_pid, first_pid);
    assert_eq!(container.property(&unit, "ActiveState"), "active");

    // A second instance: the folder copied, with its own [app] name and
    // import folder, and a proxy with a password for its service.
    let second = "/opt/injixo-cloud-link-2";
    container.sh_ok(&format!("cp -a {install} {second}"));
    // Installed as it is, the copy would take over the first one's unit:
    // refused, with the name to give it.
    let out = client(&container, second, "", "service install");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("name = \"com.injixo.cloud-link.instance.1\""),
        "{stderr}"
    );
    assert!(
        read_inside(&container, &format!("/etc/systemd/system/{unit}"))
            .contains(&format!("WorkingDirectory={install}\n"))
    );
    edit_config(
        &container,
        second,
        &[
            (
                "name = \"com.injixo.cloud-link\"",
                "name = \"com.injixo.cloud-link.instance.1\"",
            ),
            (
                "importDirectory = \"/srv/import\"",
                "importDirectory = \"/srv/import-2\"",
            ),
        ],
    );
    container.sh_ok("mkdir -p /srv/import-2");
    container.show_on_failure(&format!("{second}/injixo-cloud-link.log"));
    let unit_2 = systemd_unit_name("com.injixo.cloud-link.instance.1");
    // The emulator is on the loopback, which NO_PROXY exempts; the proxy
    // itself is tests/proxy.rs's subject.
    let proxy = format!("http://icl:{PASSWORD}@proxy.example:3128");
    let out = client_ok(
        &container,
        second,
        &format!("'https_proxy={proxy}' NO_PROXY=127.0.0.1,localhost"),
        "service install",
    );
    assert!(
        out.contains(&format!("installed the service {unit_2}")),
        "{out}"
    );
    assert!(!out.contains(PASSWORD), "{out}");
    client_ok(&container, second, "", "service start");
    let pid_2 = main_pid(&container, &unit_2);
    assert_eq!(container.property(&unit_2, "ActiveState"), "active");
    assert_eq!(container.property(&unit, "ActiveState"), "active");

    // The password reaches the service from the root-only file, and
    // neither the world-readable unit nor `systemctl show` has it.
    let environ = std::fs::read(container.path(&format!("/proc/{pid_2}/environ"))).unwrap();
    assert!(
        text(&environ)
            .split('\0')
            .any(|v| v == format!("https_proxy={proxy}")),
        "the service's environment lacks the proxy"
    );
    let shown = container.sh_ok(&format!("systemctl show -p Environment {unit_2}"));
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("NO_PROXY=127.0.0.1,localhost"), "{shown}");
    let unit_text = read_inside(&container, &format!("/etc/systemd/system/{unit_2}"));
    assert!(!unit_text.contains(PASSWORD), "{unit_text}");
    let log_2 = read_inside(&container, &format!("{second}/injixo-cloud-link.log"));
    assert!(
        log_2.contains("through the proxy http://icl:***@proxy.example:3128"),
        "{log_2}"
    );
    assert!(!log_2.contains(PASSWORD), "{log_2}");

    // The copy starts unlinked (its state was the first folder's) and is
    // paired on its own.
    let csv_2 = cloud.create_csv_integration("journey two");
    pair(&mut container, &cloud, second, &csv_2);
    let status_2 = client_ok(&container, second, "", "service status");
    assert!(status_2.contains("journey two"), "{status_2}");

    // Stop: a graceful exit within TimeoutStopSec; the other one runs on.
    client_ok(&container, &install, "", "service stop");
    assert_eq!(container.property(&unit, "ActiveState"), "inactive");
    assert_eq!(container.property(&unit, "Result"), "success");
    assert_eq!(container.property(&unit_2, "ActiveState"), "active");

    // Uninstall: the unit is gone from systemd, the folder stays.
    for (folder, name) in [(install.as_str(), &unit), (second, &unit_2)] {
        client_ok(&container, folder, "", "service uninstall");
        assert_eq!(container.property(name, "LoadState"), "not-found");
        assert_eq!(container.property(name, "ActiveState"), "inactive");
        assert!(container
            .path(&format!("{folder}/injixo-cloud-link.toml"))
            .exists());
    }
    assert!(!container
        .path(&format!("/etc/systemd/system/{unit_2}.d/proxy.env"))
        .exists());
    container.stop();
}

/// What systemd does when the client crashes, hangs or cannot start, and
/// where the unit's sandbox lets it write.
#[test]
fn systemd_restarts_a_crash_and_a_hang_but_not_a_bad_configuration() {
    let test = "systemd_restarts_a_crash_and_a_hang_but_not_a_bad_configuration";
    let Some(Setup {
        cloud: _cloud,
        mut container,
        install,
        unit,
    }) = setup(test, "icl-faults")
    else {
        return;
    };
    client_ok(&container, &install, "", "service install");
    // The shipped WatchdogSec=60 would make this test wait over a minute;
    // an admin's drop-in shortens it. The client pings at half of the
    // WATCHDOG_USEC systemd gives it, so the path is the shipped one.
    let drop_in = container.path(&format!("/etc/systemd/system/{unit}.d"));
    std::fs::create_dir_all(&drop_in).unwrap();
    std::fs::write(drop_in.join("watchdog.conf"), "[Service]\nWatchdogSec=4\n").unwrap();
    container.sh_ok("systemctl daemon-reload");
    client_ok(&container, &install, "", "service start");
    let pid = main_pid(&container, &unit);

    // Alive past three watchdog periods: the pings arrive.
    let watchdog_at = container.property(&unit, "WatchdogTimestampMonotonic");
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        main_pid(&container, &unit),
        pid,
        "{}",
        container.journal(&unit)
    );
    assert_eq!(container.property(&unit, "NRestarts"), "0");
    assert_ne!(
        container.property(&unit, "WatchdogTimestampMonotonic"),
        watchdog_at,
        "no watchdog ping reached systemd"
    );

    // kill -9: Restart=always brings it back after RestartSec.
    container.sh_ok(&format!("kill -9 {pid}"));
    let pid = restarted(&mut container, &unit, &pid, Duration::from_secs(20));
    assert_eq!(container.property(&unit, "NRestarts"), "1");
    assert!(
        container.journal(&unit).contains("status=9/KILL"),
        "{}",
        container.journal(&unit)
    );

    // A hang (SIGSTOP): no pings, so the watchdog kills it, and it restarts.
    container.sh_ok(&format!("kill -STOP {pid}"));
    let pid = restarted(&mut container, &unit, &pid, Duration::from_secs(30));
    assert_eq!(container.property(&unit, "NRestarts"), "2");
    let journal = container.journal(&unit);
    assert!(journal.contains("Watchdog timeout"), "{journal}");

    // The sandbox: the service writes to its own and its import folder,
    // not to /etc or /usr (ProtectSystem=full).
    let probe = |path: &str| container.sh(&format!("nsenter --target {pid} --mount touch {path}"));
    for allowed in [format!("{install}/probe"), "/srv/import/.probe".to_owned()] {
        let out = probe(&allowed);
        assert!(out.status.success(), "{allowed}: {}", text(&out.stderr));
    }
    for denied in ["/etc/probe", "/usr/probe"] {
        let out = probe(denied);
        assert!(
            !out.status.success() && text(&out.stderr).contains("Read-only file system"),
            "{denied}: {}{}",
            out.status,
            text(&out.stderr)
        );
    }

    // A bad configuration ends the client with 78 (EX_CONFIG): a proxy
    // variable it cannot use. systemd does not restart it, and `service
    // status` says why.
    client_ok(&container, &install, "", "service stop");
    client_ok(
        &container,
        &install,
        "https_proxy=socks5://proxy.example:1080",
        "service install",
    );
    let out = client(&container, &install, "", "service start");
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // Longer than RestartSec=5: a restart would have happened by now.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(container.property(&unit, "ActiveState"), "failed");
    assert_eq!(container.property(&unit, "ExecMainStatus"), "78");
    assert_eq!(container.property(&unit, "NRestarts"), "0");
    let out = client(&container, &install, "", "service status");
    let status = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{status}{}", text(&out.stderr));
    assert!(status.contains("exit code 78"), "{status}");
    assert!(status.contains("not restarted"), "{status}");
    container.stop();
}
