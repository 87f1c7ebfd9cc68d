//! The Windows client end to end, under Wine 8 on this Linux machine
//! (issue 12): the real `injixo-cloud-link.exe` (x86_64-pc-windows-gnu)
//! against the cloud emulator on loopback.
//!
//! Run by `scripts/windows e2e` (part of `scripts/test`), which builds the
//! .exe and the Wine prefix first; ignored by a plain `cargo test`, which has
//! neither. They run one at a time: they share the prefix's service manager.
//!
//! What Wine proves: the Windows code paths of our own (the service
//! dispatcher and its status reports, Stop as a graceful stop, the named
//! pipe of `pin` and `status`, Windows paths in the toml, ChangeServiceConfig
//! of the command line) run and do what they should against Wine's
//! implementation of the same Win32 APIs. What it does not prove: Windows'
//! own SCM (Wine 8's neither keeps recovery actions nor notices a service
//! process that died, so restart-after-crash needs a real Windows), NTFS
//! ACLs (Wine keeps no per-file security), and Windows' file sharing rules in
//! every case (Wine follows them for open handles, which is what the ledger
//! test relies on).

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::emulator::Emulator;
use support::wine::{self, WindowsInstall};

const START: Duration = Duration::from_secs(60);
const SYSTEM_ENVIRONMENT: &str =
    r"HKLM\System\CurrentControlSet\Control\Session Manager\Environment";

/// Waits until the emulator holds `count` imports of `integration`.
fn wait_for_imports(cloud: &Emulator, integration: &str, count: usize) -> Vec<Value> {
    support::wait_for(
        &format!("{count} imports of {integration} in the cloud"),
        Duration::from_secs(60),
        || {
            let imports: Vec<Value> = cloud
                .imports()
                .into_iter()
                .filter(|i| i["integration_id"] == integration)
                .collect();
            (imports.len() >= count).then_some(imports)
        },
    )
}

fn status_json(install: &WindowsInstall) -> Value {
    let (status, text) = install.client(&["status", "--json"]);
    assert!(status.success(), "status --json: {status}: {text}");
    let start = text.find('{').unwrap_or_else(|| panic!("no JSON: {text}"));
    serde_json::from_str(&text[start..]).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
#[ignore = "needs the Windows build and Wine: run by scripts/windows e2e"]
fn console_run_pairs_imports_from_a_windows_path_answers_over_the_pipe_and_stops_on_ctrl_c() {
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Windows console");
    // The toml as the install guide writes it: backslashes escaped.
    let install = WindowsInstall::new(
        r"C:\e2e-console",
        &format!(
            "[app]\nimportDirectory = \"C:\\\\e2e-console-import\"\n\n[cloud]\nurl = \"{}\"\n",
            cloud.url
        ),
    );
    let _ = std::fs::remove_dir_all(wine::linux_path(r"C:\e2e-console-import"));
    let exe = install.exe();
    let config = install.config();
    let mut client = wine::Process::start(&[&exe, "--config", &config, "run"]);

    let pin = install.wait_for_pin(START);
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("linked to integration", START);
    let dropped = wine::drop_examples(&wine::linux_path(r"C:\e2e-console-import"));
    let imports = wait_for_imports(&cloud, &integration, dropped);
    assert_eq!(imports.len(), dropped, "each file once: {imports:?}");

    // `status` and `pin` reach the running client over its named pipe.
    let status = status_json(&install);
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["link"]["state"], "linked", "{status}");
    assert_eq!(status["install_dir"], r"C:\e2e-console", "{status}");
    let (pin_status, pin_text) = install.client(&["pin"]);
    assert!(pin_status.success(), "{pin_text}");
    assert!(
        pin_text.contains("linked to integration Windows console"),
        "{pin_text}"
    );

    // A second client from the same folder is refused (the instance lock).
    let (second, second_text) = install.client(&["run"]);
    assert_eq!(second.code(), Some(75), "{second_text}");

    // Ctrl-C (Wine turns SIGINT into CTRL_C_EVENT): a graceful stop, exit 0.
    let pid = client.child.id() as libc::pid_t;
    // SAFETY: plain kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let exit = client.wait(Duration::from_secs(30));
    let log = install.log();
    assert!(exit.success(), "exit {exit}; log:\n{log}");
    assert!(log.contains("stopping (Ctrl-C received)"), "{log}");
    assert!(log.contains("injixo Cloud Link stopped"), "{log}");
}

#[test]
#[ignore = "needs the Windows build and Wine: run by scripts/windows e2e"]
fn service_from_a_folder_with_spaces_runs_imports_answers_and_stops_gracefully_on_net_stop() {
    const SERVICE: &str = "injixo-e2e-service";
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Windows service");
    // A relative import folder: the service's working folder is system32,
    // the folder must still be the install folder's.
    let install = WindowsInstall::new(
        r"C:\Program Files\e2e service",
        &format!(
            "[app]\nname = \"com.injixo.cloud-link.e2e\"\nimportDirectory = \"import\"\n\n[cloud]\nurl = \"{}\"\n",
            cloud.url
        ),
    );
    let _ = wine::run(&["sc", "stop", SERVICE]);
    let _ = wine::run(&["sc", "delete", SERVICE]);
    // Unquoted, as Wine's msiexec writes an ImagePath: the client quotes
    // its own once it runs (service::recovery).
    let command_line = format!("{} run --config \"{}\"", install.exe(), install.config());
    wine::run_ok(&[
        "sc",
        "create",
        SERVICE,
        "binPath=",
        &command_line,
        "start=",
        "auto",
        "DisplayName=",
        "injixo Cloud Link (e2e)",
    ]);
    // The install guide sets the proxy as a system environment variable.
    // Windows hands services the environment of boot time; the service takes
    // it from the registry. (The emulator is plain HTTP on loopback, which
    // never goes through a proxy: only the log shows it.)
    wine::run_ok(&[
        "reg",
        "add",
        SYSTEM_ENVIRONMENT,
        "/v",
        "https_proxy",
        "/d",
        "http://127.0.0.1:9",
        "/f",
    ]);
    let started = wine::run_ok(&["net", "start", SERVICE]);
    assert!(started.contains("started successfully"), "{started}");
    // START_PENDING until the actors run, then RUNNING (service::windows).
    support::wait_for("the service to report RUNNING", START, || {
        (wine::service_state(SERVICE).as_deref() == Some("RUNNING")).then_some(())
    });

    let pin = install.wait_for_pin(START);
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("linked to integration", START);
    let dropped = wine::drop_examples(&install.dir.join("import"));
    let imports = wait_for_imports(&cloud, &integration, dropped);
    assert_eq!(imports.len(), dropped, "each file once: {imports:?}");

    let status = status_json(&install);
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["instance"], "com.injixo.cloud-link.e2e", "{status}");
    let log = install.wait_for_log("https_proxy taken from the system environment", START);
    assert!(
        log.contains("HTTPS requests go through the proxy http://127.0.0.1:9"),
        "{log}"
    );
    wine::run_ok(&[
        "reg",
        "delete",
        SYSTEM_ENVIRONMENT,
        "/v",
        "https_proxy",
        "/f",
    ]);

    // Starts, stops, warnings and errors also go to the Event Log, under a
    // source of the instance's own. Wine's ReportEventW only writes to its
    // debug channel, so here only the source's registration is seen.
    let source = r"HKLM\System\CurrentControlSet\Services\EventLog\Application\injixo Cloud Link (com.injixo.cloud-link.e2e)";
    let (found, text) = wine::run(&["reg", "query", source, "/v", "TypesSupported"]);
    assert!(found.success() && text.contains("0x7"), "{text}");

    // The client gave its service a quoted command line, and recovery
    // actions. Wine 8's SCM has no recovery actions (`sc failure` stores
    // nothing, and the calls fail), so under Wine the client says how to set
    // them by hand; that Windows stores them only a real Windows shows.
    install.wait_for_log("its command line had an unquoted path", START);
    let log = support::wait_for("the recovery line in the log", START, || {
        let log = install.log();
        let set = log.contains("recovery set: restart after 1 s");
        let told = log.contains("cannot set its recovery (")
            && log.contains("sc failure \"injixo-e2e-service\" reset= 86400");
        (set || told).then_some(log)
    });
    assert!(!log.contains("cannot quote"), "{log}");
    let image_path = wine::service_registry_value(SERVICE, "ImagePath").unwrap_or_default();
    assert!(
        image_path.starts_with(&format!("\"{}\"", install.exe())),
        "ImagePath {image_path}"
    );

    // Stop: the graceful path, reported to the SCM; exit code 0.
    let stopped = wine::run_ok(&["net", "stop", SERVICE]);
    assert!(stopped.contains("stopped successfully"), "{stopped}");
    let log = install.wait_for_log("injixo Cloud Link stopped", START);
    assert!(
        log.contains("stopping (stop asked by the Service Control Manager)"),
        "{log}"
    );
    assert_eq!(wine::service_state(SERVICE).as_deref(), Some("STOPPED"));
    let (_, query) = wine::run(&["sc", "query", SERVICE]);
    assert!(query.contains("WIN32_EXIT_CODE    : 0"), "{query}");

    // Started again with the new, quoted command line, it is still linked
    // (the log of the first run was rotated away at this start).
    wine::run_ok(&["net", "start", SERVICE]);
    support::wait_for("the second run to be linked", START, || {
        let log = install.log();
        (log.contains("linked to integration") && !log.contains("injixo Cloud Link stopped"))
            .then_some(())
    });
    wine::run_ok(&["net", "stop", SERVICE]);
    wine::run_ok(&["sc", "delete", SERVICE]);
    assert!(Path::new(&install.dir).join("state").is_dir());
}

/// An instance the MSI installed: its folder, service and display name.
struct MsiInstance {
    install: WindowsInstall,
    service: String,
    display_name: String,
}

impl MsiInstance {
    fn new(instance: u32) -> MsiInstance {
        let (suffix, service) = match instance {
            0 => (String::new(), "com.injixo.cloud-link".to_owned()),
            n => (
                format!(" (Instance {n})"),
                format!("com.injixo.cloud-link.instance.{n}"),
            ),
        };
        let windows_dir = format!(r"C:\Program Files\injixo Cloud Link{suffix}");
        MsiInstance {
            install: WindowsInstall::existing(&windows_dir),
            service,
            display_name: format!("injixo Cloud Link{suffix}"),
        }
    }

    /// Points the installed toml at the emulator and restarts the service.
    fn use_cloud(&self, cloud: &Emulator) {
        let path = self.install.dir.join("injixo-cloud-link.toml");
        let toml = std::fs::read_to_string(&path).expect("installed toml");
        assert!(
            toml.contains(&format!("name = \"{}\"", self.service)),
            "the instance's toml names it: {toml}"
        );
        let toml = toml.replacen(
            "[cloud]\n",
            &format!("[cloud]\nurl = \"{}\"\n", cloud.url),
            1,
        );
        std::fs::write(&path, toml).expect("write toml");
        wine::run_ok(&["net", "stop", &self.service]);
        wine::run_ok(&["net", "start", &self.service]);
    }
}

fn msiexec(args: &[&str]) {
    let mut all = vec!["msiexec"];
    all.extend_from_slice(args);
    all.push("/qn");
    wine::run_ok(&all);
}

/// The Uninstall entries (Programs and Features) whose DisplayName starts
/// with "injixo Cloud Link".
fn programs_and_features() -> Vec<String> {
    let key = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall";
    let (_, text) = wine::run(&["reg", "query", key, "/s", "/v", "DisplayName"]);
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| line.split_once("REG_SZ"))
        .map(|(_, name)| name.trim().to_owned())
        .filter(|name| name.starts_with("injixo Cloud Link"))
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "needs the Windows build and Wine: run by scripts/windows e2e"]
fn the_msi_installs_the_service_and_its_transforms_install_two_more_instances_beside_it() {
    let msi = wine::msi();
    let msi = msi.to_str().expect("UTF-8 path");
    // What earlier tests of this prefix may have left.
    for instance in [1, 2, 0] {
        let product = MsiInstance::new(instance);
        if product.install.dir.exists() {
            let _ = wine::run(&["msiexec", "/x", msi, "/qn"]);
            let _ = std::fs::remove_dir_all(&product.install.dir);
        }
    }

    // The install guide's commands. Wine 8 has no MSINEWINSTANCE: it takes
    // the product's state from the untransformed ProductCode, so under Wine
    // the instances go in before the first product (Windows takes any
    // order). The transforms themselves are Wine's to apply.
    msiexec(&["/i", msi, "MSINEWINSTANCE=1", "TRANSFORMS=:instance.1"]);
    msiexec(&["/i", msi, "MSINEWINSTANCE=1", "TRANSFORMS=:instance.2"]);
    msiexec(&["/i", msi]);
    assert_eq!(
        programs_and_features(),
        [
            "injixo Cloud Link",
            "injixo Cloud Link (Instance 1)",
            "injixo Cloud Link (Instance 2)"
        ]
    );

    let cloud = Emulator::start(&[]);
    let instances: Vec<MsiInstance> = [0, 1, 2].into_iter().map(MsiInstance::new).collect();
    for product in &instances {
        // Installed, started at install, shown by its own name.
        assert!(product.install.dir.join("injixo-cloud-link.exe").is_file());
        assert!(product.install.dir.join("licenses").is_dir());
        let display = wine::service_registry_value(&product.service, "DisplayName");
        assert_eq!(display.as_deref(), Some(product.display_name.as_str()));
        product.use_cloud(&cloud);
    }
    for product in &instances {
        let integration = cloud.create_csv_integration(&product.display_name);
        let pin = product.install.wait_for_pin(START);
        assert_eq!(cloud.connect(&pin, &integration), 200);
        product.install.wait_for_log("linked to integration", START);
        let dropped = wine::drop_examples(&product.install.dir);
        let imports = wait_for_imports(&cloud, &integration, dropped);
        assert_eq!(
            imports.len(),
            dropped,
            "{}: {imports:?}",
            product.display_name
        );
        let status = status_json(&product.install);
        assert_eq!(status["instance"], product.service.as_str(), "{status}");
        assert_eq!(
            status["link"]["integration_id"],
            integration.as_str(),
            "{status}"
        );
    }

    // Removing the first product leaves the two instances running. (Wine
    // cannot remove an instance by its own ProductCode: it opens the cached,
    // untransformed package; Windows keeps the instance's transform for it.)
    msiexec(&["/x", msi]);
    assert!(!instances[0]
        .install
        .dir
        .join("injixo-cloud-link.exe")
        .exists());
    assert_eq!(wine::service_state(&instances[0].service), None);
    for product in &instances[1..] {
        assert_eq!(
            wine::service_state(&product.service).as_deref(),
            Some("RUNNING"),
            "{}",
            product.display_name
        );
        assert!(product.install.dir.join("injixo-cloud-link.exe").is_file());
        let status = status_json(&product.install);
        assert_eq!(status["running"], true, "{status}");
    }
    assert_eq!(
        programs_and_features(),
        [
            "injixo Cloud Link (Instance 1)",
            "injixo Cloud Link (Instance 2)"
        ]
    );
    for product in &instances[1..] {
        wine::run_ok(&["net", "stop", &product.service]);
        product
            .install
            .wait_for_log("injixo Cloud Link stopped", START);
    }
}
