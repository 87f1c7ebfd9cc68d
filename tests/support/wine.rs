//! The Windows build of the client under Wine 8, for tests/windows_wine.rs.
//!
//! `scripts/windows e2e` builds the .exe (and the MSI), prepares the
//! project's Wine prefix (with the test-only ProcessPrng stand-in that Rust's
//! std needs and Wine 8 lacks), keeps one `wineserver -p` running, and sets
//! `INJIXO_WINDOWS_EXE`, `INJIXO_WINDOWS_MSI` and `WINEPREFIX` for the tests.
//!
//! Every Wine call has its standard streams on files, never on pipes: a call
//! may start Wine's background processes (services.exe, winedevice.exe),
//! which inherit the streams and would hold a pipe open for as long as they
//! run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::wait_for;

/// Debian's wine64 keeps its loader off PATH.
const WINE64: &str = "/usr/lib/wine/wine64";

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: these tests run under `scripts/windows e2e`, which builds the Windows client and its Wine prefix")
    })
}

/// The Windows executable under test.
pub fn exe() -> PathBuf {
    let exe = PathBuf::from(required("INJIXO_WINDOWS_EXE"));
    assert!(exe.is_file(), "{} is missing", exe.display());
    exe
}

/// The MSI under test.
pub fn msi() -> PathBuf {
    let msi = PathBuf::from(required("INJIXO_WINDOWS_MSI"));
    assert!(msi.is_file(), "{} is missing", msi.display());
    msi
}

/// `C:\` of the prefix, as a Linux path.
pub fn drive_c() -> PathBuf {
    PathBuf::from(required("WINEPREFIX")).join("drive_c")
}

/// The Linux path of a `C:\…` path.
pub fn linux_path(windows_path: &str) -> PathBuf {
    let rest = windows_path
        .strip_prefix("C:\\")
        .unwrap_or_else(|| panic!("{windows_path} is not on C:"));
    rest.split('\\')
        .filter(|part| !part.is_empty())
        .fold(drive_c(), |path, part| path.join(part))
}

/// A Wine command (stdin closed; the caller decides stdout and stderr).
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(WINE64);
    command
        .args(args)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .stdin(Stdio::null());
    command
}

/// Runs a Wine command to its end; its exit status and what it printed
/// (stdout and stderr, through a file).
pub fn run(args: &[&str]) -> (ExitStatus, String) {
    let output = tempfile::NamedTempFile::new().expect("output file");
    let status = command(args)
        .stdout(output.reopen().expect("output handle"))
        .stderr(output.reopen().expect("output handle"))
        .status()
        .expect("run wine64");
    let text = fs::read_to_string(output.path()).unwrap_or_default();
    (status, text)
}

/// Like [`run`], and fails the test unless it exits 0.
pub fn run_ok(args: &[&str]) -> String {
    let (status, text) = run(args);
    assert!(
        status.success(),
        "wine64 {args:?} failed ({status}): {text}"
    );
    text
}

/// A Windows process started in the background, killed when dropped.
pub struct Process {
    pub child: Child,
    pub output: tempfile::NamedTempFile,
}

impl Process {
    pub fn start(args: &[&str]) -> Process {
        let output = tempfile::NamedTempFile::new().expect("output file");
        let child = command(args)
            .stdout(output.reopen().expect("output handle"))
            .stderr(output.reopen().expect("output handle"))
            .spawn()
            .expect("spawn wine64");
        Process { child, output }
    }

    pub fn output_text(&self) -> String {
        fs::read_to_string(self.output.path()).unwrap_or_default()
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        wait_for("the Windows process to end", timeout, || {
            self.child.try_wait().expect("try_wait")
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An install folder in the prefix with the client's .exe and a toml.
pub struct WindowsInstall {
    /// `C:\…` without a trailing backslash.
    pub windows_dir: String,
    pub dir: PathBuf,
}

impl WindowsInstall {
    /// A fresh folder `windows_dir` (any earlier one removed) holding the
    /// executable and `toml` as its configuration.
    pub fn new(windows_dir: &str, toml: &str) -> WindowsInstall {
        let dir = linux_path(windows_dir);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("install folder");
        fs::copy(exe(), dir.join("injixo-cloud-link.exe")).expect("copy the .exe");
        fs::write(dir.join("injixo-cloud-link.toml"), toml).expect("write the toml");
        WindowsInstall {
            windows_dir: windows_dir.to_owned(),
            dir,
        }
    }

    /// A folder something else (the MSI) installed into.
    pub fn existing(windows_dir: &str) -> WindowsInstall {
        WindowsInstall {
            windows_dir: windows_dir.to_owned(),
            dir: linux_path(windows_dir),
        }
    }

    pub fn exe(&self) -> String {
        format!("{}\\injixo-cloud-link.exe", self.windows_dir)
    }

    pub fn config(&self) -> String {
        format!("{}\\injixo-cloud-link.toml", self.windows_dir)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("injixo-cloud-link.log")).unwrap_or_default()
    }

    /// Waits until the log holds `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for(&format!("`{needle}` in the client's log"), timeout, || {
            let log = self.log();
            log.contains(needle).then_some(log)
        })
    }

    /// The PIN of the latest banner in the log.
    pub fn wait_for_pin(&self, timeout: Duration) -> String {
        wait_for("a PIN in the client's log", timeout, || pin_in(&self.log()))
    }

    /// Runs a command of the client (`pin`, `status`, …) with this
    /// folder's configuration.
    pub fn client(&self, args: &[&str]) -> (ExitStatus, String) {
        let exe = self.exe();
        let config = self.config();
        let mut all = vec![exe.as_str(), "--config", config.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }
}

/// The PIN of the last banner in `log`.
pub fn pin_in(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|line| line.split("Enter your pin: ").nth(1))
        .next_back()
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
}

/// Copies the CSV files of `examples/` into `folder` (written under a
/// temporary name, then renamed, as an exporter should); returns their number.
pub fn drop_examples(folder: &Path) -> usize {
    fs::create_dir_all(folder).expect("import folder");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut count = 0;
    for entry in fs::read_dir(examples).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "csv") {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let part = folder.join(format!(".{name}.part"));
            fs::copy(&path, &part).expect("copy example");
            fs::rename(&part, folder.join(&name)).expect("rename example");
            count += 1;
        }
    }
    count
}

/// `sc query NAME`'s STATE word (RUNNING, STOPPED, …), or None when Wine's
/// SCM does not know the service.
pub fn service_state(name: &str) -> Option<String> {
    let (status, text) = run(&["sc", "query", name]);
    if !status.success() {
        return None;
    }
    text.lines()
        .find(|line| line.trim_start().starts_with("STATE"))
        .and_then(|line| line.split_whitespace().nth(3))
        .map(str::to_owned)
}

/// A value of the service's registry key (`reg query`), as printed.
pub fn service_registry_value(name: &str, value: &str) -> Option<String> {
    let key = format!("HKLM\\System\\CurrentControlSet\\Services\\{name}");
    let (status, text) = run(&["reg", "query", &key, "/v", value]);
    if !status.success() {
        return None;
    }
    text.lines()
        .find(|line| line.trim_start().starts_with(value))
        .and_then(|line| line.split_once("REG_").map(|(_, rest)| rest.to_owned()))
        .and_then(|rest| {
            rest.split_once(char::is_whitespace)
                .map(|(_, v)| v.trim().to_owned())
        })
}
