//! Shared helpers of the end-to-end tests: a client process in a temporary
//! install folder, killed when the test ends whatever happens.

#![allow(dead_code)] // each test binary uses a different subset

#[cfg(unix)]
pub mod browser;
pub mod db;
pub mod emulator;
pub mod wine;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const CLIENT: &str = env!("CARGO_BIN_EXE_injixo-cloud-link");
pub const LOG_FILE: &str = "injixo-cloud-link.log";

/// An install folder: the config file's folder.
pub struct InstallDir {
    pub dir: tempfile::TempDir,
}

impl InstallDir {
    pub fn new() -> Self {
        InstallDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("injixo-cloud-link.toml")
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write config");
    }

    pub fn log_path(&self) -> PathBuf {
        self.path().join(LOG_FILE)
    }

    pub fn read_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Names of the files in the install folder, sorted.
    pub fn file_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path())
            .expect("read install dir")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A client command with `--config` pointing here and a clean environment
    /// for the variables the client reads.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CLIENT);
        cmd.arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("INJIXO_CLOUD_LINK_CONFIG")
            .env_remove("INJIXO_CLOUD_LINK_LOG")
            .stdin(Stdio::null());
        cmd
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run client")
    }

    /// Starts `run` in the background.
    pub fn spawn_run(&self) -> ClientProcess {
        let child = self
            .command(&["run"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        ClientProcess { child: Some(child) }
    }

    /// Waits until the client that has `pid` is ready: its actors run and
    /// its signal handlers are in place.
    pub fn wait_until_ready(&self, pid: u32, timeout: Duration) -> String {
        wait_for("the client to be ready", timeout, || {
            let log = self.read_log();
            let started = log.find(&format!("starting (pid {pid})"))?;
            log[started..]
                .contains("supervisor: running: ")
                .then_some(log)
        })
    }

    /// Waits until the current log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        wait_for(&format!("{needle:?} in the log"), timeout, || {
            let log = self.read_log();
            log.contains(needle).then_some(log)
        })
    }
}

pub struct ClientProcess {
    child: Option<Child>,
}

impl ClientProcess {
    /// Spawns a prepared client command (see [`InstallDir::command`]).
    pub fn spawn(mut command: Command) -> ClientProcess {
        ClientProcess {
            child: Some(command.spawn().expect("spawn client")),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with a PID we own (our child, not yet reaped).
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Sends SIGTERM and waits for the exit, at most `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> (ExitStatus, String) {
        self.signal(libc::SIGTERM);
        self.wait(timeout)
    }

    /// Waits for the process to exit; returns its status and stderr.
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the client did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The PINs of the banners in `log`, oldest first.
pub fn pins_in(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.split("Enter your pin: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

impl InstallDir {
    /// A config pointing the client at `cloud_url`.
    pub fn with_cloud(cloud_url: &str) -> InstallDir {
        let install = InstallDir::new();
        install.write_config(&format!("[cloud]\nurl = \"{cloud_url}\"\n"));
        install
    }

    /// Waits for the `n`-th banner (1-based) and returns its PIN.
    pub fn wait_for_pin(&self, n: usize, timeout: Duration) -> String {
        wait_for(&format!("banner #{n} in the log"), timeout, || {
            pins_in(&self.read_log()).get(n - 1).cloned()
        })
    }

    /// Every log file of the install folder, concatenated.
    pub fn all_logs(&self) -> String {
        self.file_names()
            .iter()
            .filter(|n| n.ends_with(".log"))
            .map(|n| std::fs::read_to_string(self.path().join(n)).unwrap_or_default())
            .collect()
    }

    pub fn state_file(&self, name: &str) -> PathBuf {
        self.path().join("state").join(name)
    }

    /// Starts `run`, enters its PIN for `integration` and waits until the
    /// client is linked.
    pub fn run_paired(&self, cloud: &emulator::Emulator, integration: &str) -> ClientProcess {
        let client = self.spawn_run();
        let pin = self.wait_for_pin(1, Duration::from_secs(20));
        assert_eq!(cloud.connect(&pin, integration), 200);
        self.wait_for_log("assignment received", Duration::from_secs(20));
        client
    }

    /// Files waiting in the spool (data files only).
    pub fn spooled_files(&self) -> usize {
        std::fs::read_dir(self.path().join("state").join("spool"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// Polls `probe` every 20 ms until it returns `Some`, at most `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
