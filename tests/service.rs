//! `injixo-cloud-link service …` and the systemd notifications, as real
//! processes, on any machine and without root.
//!
//! `tests/service_systemd.rs` drives the same commands against a real
//! systemd (PID 1 of a systemd-nspawn container, root needed, as in CI):
//! starting, restarts, the watchdog, status and removal are shown there.
//! What stays here is what that one does not show, behind a stand-in
//! `systemctl` (`support/fake_systemd.rs`: a recording script on `PATH` and
//! a temporary unit folder): the exact text and modes of the files `service
//! install` writes, the `systemctl` calls in their order, the refusals that
//! make no call at all, and all of it where a developer runs `cargo test`
//! without root. The files are real, and the unit is checked by the real
//! `systemd-analyze verify` (it needs no running systemd). The readiness
//! test speaks systemd's real notification protocol over a Unix datagram
//! socket, as systemd does.

#[path = "support/fake_systemd.rs"]
mod fake_systemd;
#[path = "support/notify.rs"]
mod notify;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fake_systemd::FakeSystem;
use notify::NotifySocket;
use support::*;

const PASSWORD: &str = "s3cr%t-pw";
const PROXY_WITH_PASSWORD: &str = "http://icl:s3cr%t-pw@proxy.example:8080";

/// An install folder in the build's temp folder: outside /tmp (so the unit
/// keeps `PrivateTmp=yes`) unless the checkout itself is under /tmp.
fn install_dir(app_name: &str, import_dir: &Path) -> InstallDir {
    let install = InstallDir {
        dir: tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir"),
    };
    install.write_config(&format!(
        "[app]\nname = \"{app_name}\"\nimportDirectory = \"{}\"\n\n[cloud]\nurl = \"http://127.0.0.1:9\"\n",
        import_dir.display()
    ));
    install
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const NAME: &str = "com.injixo.cloud-link.instance.7";
const UNIT: &str = "injixo-cloud-link.instance.7.service";

#[test]
fn install_writes_our_unit_keeps_the_proxy_password_root_only_and_refuses_another_folder() {
    let system = FakeSystem::new();
    let import = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let import_path = std::fs::canonicalize(import.path()).unwrap();
    let install = install_dir(NAME, &import_path);
    let folder = std::fs::canonicalize(install.path()).unwrap();
    let exe = std::fs::canonicalize(CLIENT).unwrap();
    let proxy_env = [
        ("https_proxy", PROXY_WITH_PASSWORD),
        ("NO_PROXY", "localhost,127.0.0.1"),
    ];

    let out = system.service(&install, "install", &proxy_env);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("service start") && stdout.contains(" pin"),
        "says how to start and get the PIN: {stdout}"
    );
    assert!(!stdout.contains(PASSWORD), "{stdout}");
    assert!(
        stdout.contains("http://icl:***@proxy.example:8080"),
        "{stdout}"
    );

    let unit_path = system.units().join(UNIT);
    let unit = std::fs::read_to_string(&unit_path).expect("the unit is written");
    assert_eq!(mode(&unit_path), 0o644);
    for expected in [
        format!(
            "\nExecStart={} run --config {}\n",
            exe.display(),
            folder.join("injixo-cloud-link.toml").display()
        ),
        format!("\nWorkingDirectory={}\n", folder.display()),
        "\nType=notify\nNotifyAccess=main\n".to_owned(),
        "\nRestart=always\nRestartSec=5\nRestartPreventExitStatus=78\nWatchdogSec=60\nTimeoutStopSec=15\n".to_owned(),
        // A checkout under /tmp (CI may clone there) puts the folders under
        // /tmp too, where the unit leaves PrivateTmp out on purpose.
        if [folder.as_path(), import_path.as_path()]
            .iter()
            .any(|dir| dir.starts_with("/tmp") || dir.starts_with("/var/tmp"))
        {
            "\nNoNewPrivileges=yes\nProtectSystem=full\n# PrivateTmp=yes is left out: the install or import folder is under /tmp or /var/tmp.\n".to_owned()
        } else {
            "\nNoNewPrivileges=yes\nProtectSystem=full\nPrivateTmp=yes\n".to_owned()
        },
        format!(
            "\nReadWritePaths={} -{}\n",
            folder.display(),
            import_path.display()
        ),
        "\nEnvironment=\"NO_PROXY=localhost,127.0.0.1\"\n".to_owned(),
        "After=network-online.target\nWants=network-online.target\n".to_owned(),
    ] {
        assert!(unit.contains(&expected), "{expected:?} missing in:\n{unit}");
    }
    assert!(!unit.contains(PASSWORD), "password in the unit:\n{unit}");
    assert!(!unit.contains("https_proxy"), "{unit}");

    let drop_in = system.units().join(format!("{UNIT}.d"));
    let conf = drop_in.join("proxy.conf");
    let env_file = drop_in.join("proxy.env");
    assert_eq!(mode(&conf), 0o600);
    assert_eq!(mode(&env_file), 0o600);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap().lines().last(),
        Some(format!("EnvironmentFile={}", env_file.display()).as_str())
    );
    let env_text = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        env_text.contains(&format!("\nhttps_proxy='{PROXY_WITH_PASSWORD}'\n")),
        "{env_text}"
    );
    assert_eq!(
        system.calls(),
        vec![
            format!("enable {}", unit_path.display()),
            "daemon-reload".to_owned()
        ]
    );
    verify_with_systemd_analyze(&unit_path);

    // Reinstalling over our own unit is fine, and follows the environment:
    // without a password the drop-in goes.
    let out = system.service(
        &install,
        "install",
        &[("https_proxy", "http://proxy.example:3128")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("reinstalled"),
        "{}",
        text(&out.stdout)
    );
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(
        unit.contains("\nEnvironment=\"https_proxy=http://proxy.example:3128\"\n"),
        "{unit}"
    );
    assert!(!drop_in.exists(), "the stale drop-in is removed");

    // Another folder with the same [app] name is refused, and nothing changes.
    let other = install_dir(NAME, &import_path);
    let out = system.service(&other, "install", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!(
            "belongs to the install folder {}",
            folder.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("unique name"), "{stderr}");
    assert!(
        stderr.contains("name = \"com.injixo.cloud-link.instance.8\""),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&unit_path).unwrap(), unit);

    // Nor may the other folder uninstall or start it.
    for action in ["uninstall", "start"] {
        let out = system.service(&other, action, &[]);
        assert_eq!(
            out.status.code(),
            Some(78),
            "{action}: {}",
            text(&out.stderr)
        );
        assert!(unit_path.exists());
    }

    // The owner removes its own unit (stopped first), and only that.
    std::fs::write(system.units().join("unrelated.service"), "[Service]\n").unwrap();
    let out = system.service(&install, "uninstall", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!unit_path.exists());
    assert!(system.units().join("unrelated.service").exists());
    let calls = system.calls();
    let stop = calls.iter().position(|c| *c == format!("stop {UNIT}"));
    let disable = calls.iter().position(|c| *c == format!("disable {UNIT}"));
    assert!(stop.is_some() && stop < disable, "{calls:?}");
    let out = system.service(&install, "uninstall", &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("nothing to do"));
}

/// `systemd-analyze verify` (from the `systemd` package, which
/// `scripts/setup` has installed) parses the unit and its drop-ins without a
/// running systemd. It only warns about unknown or bad settings, so its
/// stderr must be empty too.
fn verify_with_systemd_analyze(unit: &Path) {
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is missing: run scripts/setup"
    );
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(unit)
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn start_of_a_unit_not_installed_says_to_install_first() {
    let system = FakeSystem::new();
    let install = install_dir("com.injixo.cloud-link.instance.5", Path::new("/srv/none"));
    let out = system.service(&install, "start", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{stderr}");
    assert!(stderr.contains("service install"), "{stderr}");
    assert!(system.calls().is_empty());
}

/// The daemon tells systemd it is ready once its actors run, feeds the
/// watchdog at half `WATCHDOG_USEC`, and says it is stopping on SIGTERM.
#[test]
fn run_notifies_ready_watchdog_and_stopping() {
    let socket = NotifySocket::bind();
    let install = InstallDir::with_cloud("http://127.0.0.1:9");
    let mut cmd = install.command(&["run"]);
    cmd.env("NOTIFY_SOCKET", &socket.path)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let client = ClientProcess::spawn(cmd);

    let before_ready = socket.wait_for("READY=1", Duration::from_secs(20));
    assert_eq!(
        before_ready.len(),
        1,
        "READY=1 comes first: {before_ready:?}"
    );
    let log = install.wait_until_ready(client.pid(), Duration::from_secs(5));
    assert!(log.contains("running: "), "{log}");

    // Every second (half of 2 s): two pings within 3 s.
    let first = socket.wait_for("WATCHDOG=1", Duration::from_secs(3));
    let second = socket.wait_for("WATCHDOG=1", Duration::from_secs(3));
    let gap = second.last().unwrap().at - first.last().unwrap().at;
    assert!(
        gap >= Duration::from_millis(700) && gap < Duration::from_millis(1900),
        "watchdog interval {gap:?}"
    );

    client.signal(libc::SIGTERM);
    socket.wait_for("STOPPING=1", Duration::from_secs(5));
    let mut client = client;
    let (status, _) = client.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}
