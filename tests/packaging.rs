//! The packages: the Linux archive as an admin uses it (unpacked into an
//! empty folder, run from there, paired with the emulator), the licences it
//! ships, and the Windows installers' tables.
//!
//! The archive is built by `packaging/linux/build-archive --exe` from the
//! debug executable this `cargo test` built, so the test costs no release
//! build; CI builds the release archive and the .deb in scripts/test.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::emulator::Emulator;
use support::{pins_in, wait_for, ClientProcess, CLIENT};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const UPDATE_LICENSES: &str = "scripts/update-licenses";

/// The targets the client ships for: the archive and the .deb (Linux) and
/// the MSI (Windows) carry the same licenses/ folder, so it covers both.
const SHIPPED_TARGETS: [&str; 2] = ["x86_64-unknown-linux-gnu", "x86_64-pc-windows-msvc"];

/// `name version` of every crate compiled into the client's executable for
/// `target`: the root package's normal dependencies, transitively. Not
/// followed: dev-dependencies (tests only), build-dependencies (they run in
/// build scripts) and proc-macro crates (they run inside the compiler:
/// neither they nor their own dependencies end up in the executable). Our
/// own crates (path dependencies) are not third-party.
///
/// `cargo tree -p`, not `cargo metadata`: metadata's resolve unifies
/// features over the whole workspace and its dev-dependencies, so it names
/// crates the client's build never compiles (e.g. ctutils, cmov), while
/// `cargo tree -p … -e normal` resolves features as `cargo build -p` does;
/// its set matched the rlibs of a release build exactly. scripts/update-licenses
/// runs the same command.
fn crates_in_client(target: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "-p",
            "injixo-cloud-link",
            "--target",
            target,
        ])
        .args([
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(REPO)
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree failed");
    String::from_utf8(out.stdout)
        .expect("UTF-8 cargo tree")
        .lines()
        .filter(|line| !line.contains(" (/"))
        .map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next().expect("name");
            let version = fields.next().expect("version");
            format!("{name} {}", version.trim_start_matches('v'))
        })
        .collect()
}

/// The crates compiled into the client for any shipped target.
fn crates_in_shipped_clients() -> BTreeSet<String> {
    SHIPPED_TARGETS
        .iter()
        .flat_map(|target| crates_in_client(target))
        .collect()
}

/// `name version` of each line `name version licence-expression` of a
/// licenses/crates.txt.
fn crates_listed(licenses: &Path) -> BTreeSet<String> {
    let path = licenses.join("crates.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; generate it with {UPDATE_LICENSES}",
            path.display()
        )
    });
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 3, "not `name version licence`: {line:?}");
            format!("{} {}", fields[0], fields[1])
        })
        .collect()
}

/// Fails, naming the missing and extra crates and the fix, unless
/// `licenses` lists exactly the crates compiled into the client.
fn assert_licenses_current(licenses: &Path, expected: &BTreeSet<String>) {
    let listed = crates_listed(licenses);
    let missing: Vec<&String> = expected.difference(&listed).collect();
    let extra: Vec<&String> = listed.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} is stale.\n  compiled into the client, licence missing: {missing:?}\n  \
         listed, no longer compiled in: {extra:?}\nRegenerate it with {UPDATE_LICENSES} \
         (it installs cargo-about if missing) and commit licenses/.",
        licenses.display()
    );
    let texts = std::fs::read_to_string(licenses.join("THIRD-PARTY-LICENSES.md"))
        .expect("licenses/THIRD-PARTY-LICENSES.md");
    let named: BTreeSet<&str> = texts
        .lines()
        .filter_map(|line| line.strip_prefix("- "))
        .map(|rest| rest.split(" <").next().unwrap_or(rest))
        .collect();
    for name_version in expected {
        assert!(
            named.contains(name_version.as_str()),
            "THIRD-PARTY-LICENSES.md names no licence for {name_version}; run {UPDATE_LICENSES}"
        );
    }
}

#[test]
fn the_crate_set_follows_normal_dependencies_for_each_target() {
    let linux = crates_in_client("x86_64-unknown-linux-gnu");
    let windows = crates_in_client("x86_64-pc-windows-msvc");
    let has =
        |set: &BTreeSet<String>, name: &str| set.iter().any(|c| c.starts_with(&format!("{name} ")));
    for name in ["serde", "odbc-api", "rustls", "ring", "actix"] {
        assert!(has(&linux, name), "{name} is linked into the client");
    }
    // proc-macros and what only they use, build-only and dev-only crates, ours.
    for name in [
        "serde_derive",
        "syn",
        "cc",
        "ureq",
        "fantoccini",
        "injixo-cloud-link",
        "injixo-cloud-emulator",
    ] {
        assert!(!has(&linux, name), "{name} is not in the executable");
    }
    // Target-specific dependencies.
    assert!(has(&linux, "sd-notify") && !has(&windows, "sd-notify"));
    assert!(has(&windows, "windows-sys") && !has(&linux, "windows-sys"));
}

#[test]
fn licenses_list_exactly_the_crates_compiled_into_the_client() {
    assert_licenses_current(
        &Path::new(REPO).join("licenses"),
        &crates_in_shipped_clients(),
    );
}

fn run_script(script: &str, args: &[&str]) -> Output {
    let out = Command::new(Path::new(REPO).join(script))
        .args(args)
        .current_dir(REPO)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The unpacked client: run from its folder, with no hint of another config.
fn client_in(folder: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(folder.join("injixo-cloud-link"));
    cmd.args(args)
        .current_dir(folder)
        .env_remove("INJIXO_CLOUD_LINK_CONFIG")
        .env_remove("INJIXO_CLOUD_LINK_LOG")
        .stdin(Stdio::null());
    cmd
}

#[test]
fn the_linux_archive_unpacked_into_an_empty_folder_runs_and_pairs() {
    let dist = tempfile::tempdir().unwrap();
    run_script(
        "packaging/linux/build-archive",
        &["--exe", CLIENT, "--out", dist.path().to_str().unwrap()],
    );
    let archive_name = format!("injixo-cloud-link-{VERSION}-linux-x86_64.tar.gz");
    assert_eq!(
        sorted_names(dist.path()),
        std::slice::from_ref(&archive_name)
    );

    let unpacked = tempfile::tempdir().unwrap();
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(dist.path().join(&archive_name))
        .arg("-C")
        .arg(unpacked.path())
        .status()
        .expect("run tar");
    assert!(tar.success());
    let top = format!("injixo-cloud-link-{VERSION}");
    assert_eq!(
        sorted_names(unpacked.path()),
        std::slice::from_ref(&top),
        "one top folder"
    );
    let folder = unpacked.path().join(&top);
    assert_eq!(
        sorted_names(&folder),
        [
            "README.txt",
            "injixo-cloud-link",
            "injixo-cloud-link.toml",
            "licenses"
        ]
    );
    let readme = std::fs::read_to_string(folder.join("README.txt")).unwrap();
    for step in [
        "service install",
        "service start",
        "injixo-cloud-link pin",
        "check-config",
    ] {
        assert!(
            readme.contains(step),
            "README.txt tells `{step}`:\n{readme}"
        );
    }
    assert!(readme.contains(VERSION) && !readme.contains("@VERSION@"));
    assert_licenses_current(&folder.join("licenses"), &crates_in_shipped_clients());

    let version = client_in(&folder, &["--version"]).output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("injixo-cloud-link {VERSION}")
    );

    // No --config: the toml beside the executable is the one in use.
    let check = client_in(&folder, &["check-config"]).output().unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "check-config of the shipped toml:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // The admin's one edit for the emulator: the commented cloud url.
    let cloud = Emulator::start(&[]);
    let integration = cloud.create_csv_integration("Unpacked archive");
    let toml_path = folder.join("injixo-cloud-link.toml");
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    let edited = toml.replacen(
        "#url = \"https://www.injixo.com\"",
        &format!("url = \"{}\"", cloud.url),
        1,
    );
    assert_ne!(
        edited, toml,
        "the shipped toml has the commented [cloud] url"
    );
    std::fs::write(&toml_path, edited).unwrap();

    let mut run = client_in(&folder, &["run"]);
    run.stdout(Stdio::null()).stderr(Stdio::piped());
    let client = ClientProcess::spawn(run);
    let log_path = folder.join("injixo-cloud-link.log");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let pin = wait_for(
        "a PIN in the unpacked folder's log",
        Duration::from_secs(20),
        || pins_in(&read_log()).first().cloned(),
    );
    assert_eq!(cloud.connect(&pin, &integration), 200);
    let linked = format!("linked to integration Unpacked archive ({integration})");
    wait_for("the link", Duration::from_secs(15), || {
        read_log().contains(&linked).then_some(())
    });
    let (status, stderr) = client.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        folder.join("state").is_dir(),
        "the state is kept in the install folder"
    );
}

/// Rows of `msiinfo export`'s layout as column name → value.
fn parse_export(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = text.lines();
    let columns: Vec<&str> = lines.next().expect("column names").split('\t').collect();
    // Then the column types and the table name with its keys.
    lines
        .skip(2)
        .map(|line| {
            columns
                .iter()
                .zip(line.split('\t').chain(std::iter::repeat("")))
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn output_text(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// One table of an MSI (`msiinfo export`).
fn msi_table(msi: &Path, table: &str) -> Vec<BTreeMap<String, String>> {
    let out = Command::new("msiinfo")
        .arg("export")
        .arg(msi)
        .arg(table)
        .output()
        .expect("run msiinfo (Debian package msitools; scripts/setup installs it)");
    parse_export(&output_text(&format!("msiinfo export {table}"), out))
}

/// tools/msi-transform, which build-msi builds (debug profile).
fn msi_transform() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1", "--locked"])
        .current_dir(REPO)
        .output()
        .expect("cargo metadata");
    let metadata: serde_json::Value =
        serde_json::from_str(&output_text("cargo metadata", out)).unwrap();
    Path::new(metadata["target_directory"].as_str().unwrap()).join("debug/msi-transform")
}

/// One table of an MSI with its embedded transform `:name` applied (`-`:
/// none), read by tools/msi-transform: msitools reads no transform (libmsi's
/// apply_transform drops the tables it changes, see the tool's docs).
fn transformed_table(msi: &Path, transform: &str, table: &str) -> Vec<BTreeMap<String, String>> {
    let out = Command::new(msi_transform())
        .arg("export")
        .arg(msi)
        .args([transform, table])
        .output()
        .expect("run tools/msi-transform");
    parse_export(&output_text(
        &format!("msi-transform export {transform} {table}"),
        out,
    ))
}

fn row<'a>(
    rows: &'a [BTreeMap<String, String>],
    column: &str,
    value: &str,
) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r[column] == value)
        .unwrap_or_else(|| panic!("no row with {column} = {value:?} in {rows:#?}"))
}

fn build_msis() -> tempfile::TempDir {
    for (tool, package) in [
        ("wixl", "wixl"),
        ("msiinfo", "msitools"),
        ("msiextract", "msitools"),
        ("gcab", "gcab"),
    ] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            found.is_ok_and(|s| s.success()),
            "{tool} is needed to build and check the MSIs: run scripts/setup \
             (Debian package {package})"
        );
    }
    let dist = tempfile::tempdir().unwrap();
    // No --exe: this machine cannot compile for Windows, so build-msi packs
    // a STAND-IN text file as injixo-cloud-link.exe. The tables are real.
    let out = run_script(
        "packaging/windows/build-msi",
        &["--out", dist.path().to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("STAND-IN"));
    dist
}

/// The cabinet's files, named by their File key (msiextract would write
/// the nine tomls to one path).
fn cabinet_files(msi: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cab = dir.path().join("client.cab");
    let out = Command::new("msiinfo")
        .arg("extract")
        .arg(msi)
        .arg("client.cab")
        .output()
        .expect("run msiinfo extract");
    assert!(out.status.success());
    std::fs::write(&cab, out.stdout).unwrap();
    let status = Command::new("gcab")
        .arg("-x")
        .arg("-C")
        .arg(dir.path())
        .arg(&cab)
        .status()
        .expect("run gcab (Debian package gcab)");
    assert!(status.success());
    dir
}

#[test]
fn the_msi_installs_the_first_instance_and_its_transforms_eight_more() {
    let dist = build_msis();
    let file = format!("injixo-cloud-link-{VERSION}-windows-x86_64-stand-in.msi");
    assert_eq!(sorted_names(dist.path()), [file.as_str()], "one MSI");
    let msi = dist.path().join(&file);
    let cabinet = cabinet_files(&msi);

    // The tool reads the base tables as msiinfo does, so its reading of
    // the transformed ones can be trusted as far as the databases go.
    for table in [
        "Property",
        "Component",
        "Feature",
        "File",
        "ServiceInstall",
        "Directory",
    ] {
        let mut by_msiinfo = msi_table(&msi, table);
        let mut by_tool = transformed_table(&msi, "-", table);
        by_msiinfo.sort();
        by_tool.sort();
        assert_eq!(by_tool, by_msiinfo, "{table}");
    }

    let mut upgrade_codes = BTreeSet::new();
    let mut product_codes = BTreeSet::new();
    let mut component_ids = BTreeSet::new();
    for instance in 0..=8 {
        let (transform, service, suffix, own) = match instance {
            0 => (
                "-".to_owned(),
                "com.injixo.cloud-link".to_owned(),
                String::new(),
                "Configuration".to_owned(),
            ),
            n => (
                format!(":instance.{n}"),
                format!("com.injixo.cloud-link.instance.{n}"),
                format!(" (Instance {n})"),
                format!("Configuration{n}"),
            ),
        };
        let table = |name: &str| -> Vec<BTreeMap<String, String>> {
            if instance == 0 {
                msi_table(&msi, name)
            } else {
                transformed_table(&msi, &transform, name)
            }
        };
        let what = format!("instance {instance}");

        let services = table("ServiceInstall");
        assert_eq!(services.len(), 1, "{what}: one service");
        let s = &services[0];
        assert_eq!(
            s["Name"], service,
            "{what}: the service name is the toml's [app] name"
        );
        assert_eq!(s["DisplayName"], format!("injixo Cloud Link{suffix}"));
        assert_eq!(
            s["Arguments"],
            "run --config \"[INSTALLDIR]injixo-cloud-link.toml\""
        );
        assert_eq!(s["StartType"], "2", "automatic start");
        assert_eq!(s["ServiceType"], "16", "own process");
        assert_eq!(
            s["Component_"], "Executable",
            "installed with the executable"
        );
        let control = table("ServiceControl");
        let c = row(&control, "Name", &service);
        // 1 start at install, 2 + 32 stop at install and uninstall, 128 delete at uninstall.
        assert_eq!(c["Event"], "163");

        let dirs = table("Directory");
        let install_dir = row(&dirs, "Directory", "INSTALLDIR");
        assert_eq!(install_dir["Directory_Parent"], "ProgramFiles64Folder");
        assert_eq!(
            install_dir["DefaultDir"],
            format!("injixo Cloud Link{suffix}")
        );
        assert_eq!(
            row(&dirs, "Directory", "LICENSESDIR")["Directory_Parent"],
            "INSTALLDIR"
        );

        let files = table("File");
        for name in [
            "injixo-cloud-link.exe",
            "THIRD-PARTY-LICENSES.md",
            "crates.txt",
        ] {
            row(&files, "FileName", name);
        }
        let components = table("Component");
        assert_eq!(components.len(), 11, "exe, licences, nine tomls");
        for component in &components {
            assert_eq!(
                component["Attributes"], "256",
                "64-bit component: {component:?}"
            );
            assert!(
                component_ids.insert(component["ComponentId"].clone()),
                "{what}: ComponentId {} is another instance's too",
                component["ComponentId"]
            );
        }

        // The instance's toml, and only it, is installed: its feature is
        // the one toml feature of level 1.
        let features = table("Feature");
        let installed: Vec<&str> = features
            .iter()
            .filter(|f| f["Feature"].starts_with("Configuration") && f["Level"] != "0")
            .map(|f| f["Feature"].as_str())
            .collect();
        assert_eq!(installed, [own.as_str()], "{what}");
        assert_eq!(row(&features, "Feature", &own)["Feature_Parent"], "Client");
        let feature_components = table("FeatureComponents");
        assert_eq!(
            row(&feature_components, "Feature_", &own)["Component_"],
            own
        );
        let toml_file = row(&files, "Component_", &own);
        assert_eq!(toml_file["FileName"], "injixo-cloud-link.toml");
        let toml = std::fs::read_to_string(cabinet.path().join(&toml_file["File"])).unwrap();
        assert!(
            toml.contains(&format!("\nname = \"{service}\"\n")),
            "{what}: {toml}"
        );

        let actions = table("CustomAction");
        let find_cmd = row(&actions, "Action", "FindCommandPrompt");
        assert_eq!(find_cmd["Type"], "51", "sets a property");
        assert_eq!(find_cmd["Target"], "[System64Folder]cmd.exe");
        let show_pin = row(&actions, "Action", "ShowPin");
        // 50 runs the exe named by a property, + 64 ignore its exit code,
        // + 128 do not wait: the installer finishes while the console stays.
        assert_eq!(show_pin["Type"], "242");
        assert_eq!(show_pin["Source"], "COMMAND_PROMPT");
        assert_eq!(
            show_pin["Target"],
            "/k \"\"[INSTALLDIR]injixo-cloud-link.exe\" --config \"[INSTALLDIR]injixo-cloud-link.toml\" pin\""
        );
        let sequence = table("InstallExecuteSequence");
        let seq = |action: &str| -> u32 {
            row(&sequence, "Action", action)["Sequence"]
                .parse()
                .unwrap()
        };
        assert!(seq("StartServices") < seq("InstallFinalize"));
        assert!(seq("InstallFinalize") < seq("FindCommandPrompt"));
        assert!(seq("FindCommandPrompt") < seq("ShowPin"));
        assert_eq!(
            row(&sequence, "Action", "ShowPin")["Condition"],
            "NOT Installed AND UILevel >= 4",
            "first install with a UI only"
        );

        let properties = table("Property");
        assert_eq!(
            row(&properties, "Property", "ProductName")["Value"],
            format!("injixo Cloud Link{suffix}")
        );
        assert_eq!(
            row(&properties, "Property", "ProductVersion")["Value"],
            VERSION
        );
        assert_eq!(
            row(&properties, "Property", "INSTANCE_ID")["Value"],
            instance.to_string()
        );
        upgrade_codes.insert(row(&properties, "Property", "UpgradeCode")["Value"].clone());
        assert!(product_codes.insert(row(&properties, "Property", "ProductCode")["Value"].clone()));
    }
    // Each instance its own: a newer version's MajorUpgrade of one instance
    // must not find (and remove) the others.
    assert_eq!(upgrade_codes.len(), 9, "an UpgradeCode per instance");

    // The files of the base install (msiextract writes the last of the nine
    // tomls, so only the rest is checked here).
    let extracted = tempfile::tempdir().unwrap();
    let status = Command::new("msiextract")
        .arg("-C")
        .arg(extracted.path())
        .arg(&msi)
        .stdout(Stdio::null())
        .status()
        .expect("run msiextract");
    assert!(status.success());
    let folder = find_file(extracted.path(), "injixo-cloud-link.exe")
        .expect("injixo-cloud-link.exe in the MSI")
        .parent()
        .unwrap()
        .to_owned();
    assert!(
        folder.ends_with("injixo Cloud Link"),
        "{}",
        folder.display()
    );
    let exe = std::fs::read_to_string(folder.join("injixo-cloud-link.exe")).unwrap();
    assert!(
        exe.starts_with("STAND-IN"),
        "the test MSI holds a stand-in executable"
    );
    assert_licenses_current(&folder.join("licenses"), &crates_in_shipped_clients());
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}
