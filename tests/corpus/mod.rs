//! Helpers of the bad-input corpus, disk-full and field-condition tests: a
//! linked client importing from `import/`, checks on what the cloud
//! received, and a tmpfs to mount.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::emulator::Emulator;
use crate::support::*;

pub const ARRIVE: Duration = Duration::from_secs(120);

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An install folder whose client imports from `import/` with a short
/// settle time; `extra` is appended to the configuration.
pub fn csv_install(cloud_url: &str, extra: &str) -> InstallDir {
    let install = InstallDir::new();
    std::fs::create_dir_all(install.path().join("import")).unwrap();
    install.write_config(&format!(
        "[app]\nimportDirectory = \"import\"\n[cloud]\nurl = \"{cloud_url}\"\n\
         [csv]\nsettleSeconds = 1\n{extra}"
    ));
    install
}

pub fn import_dir(install: &InstallDir) -> PathBuf {
    install.path().join("import")
}

/// Starts `command` (a client `run`), enters its PIN for a new CSV
/// integration and waits until it watches the import folder.
pub fn link(install: &InstallDir, cloud: &Emulator, command: Command) -> ClientProcess {
    let integration = cloud.create_csv_integration("bad input");
    let client = ClientProcess::spawn(command);
    let pin = install.wait_for_pin(1, Duration::from_secs(20));
    assert_eq!(cloud.connect(&pin, &integration), 200);
    install.wait_for_log("watching", Duration::from_secs(20));
    client
}

/// `run` for `install`, output discarded (the log file is what is read).
pub fn run_command(install: &InstallDir) -> Command {
    let mut command = install.command(&["run"]);
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

/// A good file whose content no other test file has.
pub fn good_csv(tag: &str) -> Vec<u8> {
    format!("Queue;Date;Time;IncomingCalls\n{tag};25/05/2020;08:00;12\n{tag};25/05/2020;08:15;7\n")
        .into_bytes()
}

/// Writes a file to a temporary name and renames it into place.
pub fn drop_file(dir: &Path, name: &str, content: &[u8]) {
    let tmp = dir.join(format!("{name}.part"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The committed imports by idempotency key (the sha256 of a CSV file's
/// original bytes), once at least `n` arrived.
pub fn wait_for_imports(cloud: &Emulator, n: usize) -> BTreeMap<String, Value> {
    wait_for(&format!("{n} imports in the cloud"), ARRIVE, || {
        let imports = cloud.imports();
        (imports.len() >= n).then(|| by_key(&imports))
    })
}

pub fn by_key(imports: &[Value]) -> BTreeMap<String, Value> {
    imports
        .iter()
        .map(|i| (i["idempotency_key"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

/// Every import arrived once: no key twice.
pub fn assert_no_duplicates(cloud: &Emulator) {
    let imports = cloud.imports();
    assert_eq!(
        by_key(&imports).len(),
        imports.len(),
        "an idempotency key was imported twice: {imports:#?}"
    );
}

/// The lines of `log` that contain `needle`.
pub fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// No panic and no actor restart in `log`.
pub fn assert_no_crash(log: &str) {
    for bad in ["panic in thread", "failed after running"] {
        assert!(
            lines_with(log, bad).is_empty(),
            "{bad:?} in the log:\n{log}"
        );
    }
}

/// A tmpfs of `size` mounted on `path`, unmounted when dropped (declare it
/// before a client that uses it, so that the client is dropped first). Needs
/// root, as CI has.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} (this test needs root, as CI has)",
            path.display()
        );
        Tmpfs {
            path: path.to_owned(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for _ in 0..50 {
            let unmounted = Command::new("umount").arg(&self.path).status();
            if unmounted.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
