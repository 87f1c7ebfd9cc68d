//! A real systemd as PID 1 of a `systemd-nspawn` container, for the tests
//! of the Linux service (`tests/service_systemd.rs`).
//!
//! systemd is not PID 1 on the machines the tests run on, but it runs as
//! PID 1 of a container: the root file system is a minimal Debian that
//! `scripts/nspawn-rootfs` builds once and caches under `target/nspawn/`,
//! booted with `--volatile=overlay` (every write goes to a tmpfs, so one
//! build serves every run) and without `--private-network` (the client
//! inside reaches the emulator on the host's loopback). There is no systemd
//! on the host, hence no `machinectl`: commands run inside with `nsenter`
//! into every namespace of the container's systemd, and files are copied in
//! through `/proc/<its pid>/root`. The container is killed when the value is
//! dropped, whatever happens.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NSPAWN: &str = "/usr/bin/systemd-nspawn";
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Why a container cannot run on this machine, if it cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("systemd-nspawn needs root (CI runs the tests as root)".to_owned());
    }
    // Root in a container that was not given CAP_SYS_ADMIN cannot mount.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_ADMIN: u32 = 21;
    if effective & (1 << CAP_SYS_ADMIN) == 0 {
        return Some("systemd-nspawn needs CAP_SYS_ADMIN, which this root lacks".to_owned());
    }
    if !Path::new(NSPAWN).exists() {
        return Some(format!("{NSPAWN} is missing: run scripts/setup"));
    }
    None
}

/// The root file system, built on the first call of a machine (about a
/// minute, debootstrap) and reused after that.
pub fn rootfs() -> PathBuf {
    let out = Command::new(Path::new(REPO).join("scripts/nspawn-rootfs"))
        .current_dir(REPO)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/nspawn-rootfs");
    assert!(
        out.status.success(),
        "scripts/nspawn-rootfs failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub struct Container {
    nspawn: Option<Child>,
    /// The host's PID of the container's systemd.
    leader: libc::pid_t,
    log: tempfile::NamedTempFile,
    /// Files inside whose end a failed wait shows (the client's logs).
    shown_on_failure: Vec<String>,
}

impl Container {
    /// Boots `rootfs` as machine `name` and waits until its systemd says
    /// `running`.
    pub fn boot(rootfs: &Path, name: &str) -> Container {
        let log = tempfile::NamedTempFile::new().expect("container log");
        let nspawn = Command::new(NSPAWN)
            .arg("--directory")
            .arg(rootfs)
            .args([
                "--boot",
                // The host has no systemd to register with or to make a scope.
                "--register=no",
                "--keep-unit",
                "--console=pipe",
                "--volatile=overlay",
                "--machine",
                name,
            ])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log handle"))
            .stderr(log.reopen().expect("log handle"))
            .spawn()
            .expect("spawn systemd-nspawn");
        let nspawn_pid = nspawn.id() as libc::pid_t;
        let mut container = Container {
            nspawn: Some(nspawn),
            leader: 0,
            log,
            shown_on_failure: Vec::new(),
        };
        container.leader =
            container.poll("the container's systemd", Duration::from_secs(20), |c| {
                c.find_leader(nspawn_pid)
            });
        container.wait_until_running();
        container
    }

    /// nspawn's child that is PID 1 of its own PID namespace and has become
    /// systemd.
    fn find_leader(&self, nspawn_pid: libc::pid_t) -> Option<libc::pid_t> {
        std::fs::read_dir("/proc").ok()?.find_map(|entry| {
            let pid: libc::pid_t = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .map(str::to_owned)
            };
            let is_child = field("PPid:")?.parse::<libc::pid_t>().ok()? == nspawn_pid;
            let is_init = field("NSpid:")?.split_whitespace().last()? == "1";
            let is_systemd = field("Name:")? == "systemd";
            (is_child && is_init && is_systemd).then_some(pid)
        })
    }

    fn wait_until_running(&mut self) {
        let state = self.poll(
            "systemctl is-system-running",
            Duration::from_secs(60),
            |c| {
                let out = c.sh("systemctl is-system-running");
                let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                matches!(state.as_str(), "running" | "degraded").then_some(state)
            },
        );
        if state == "degraded" {
            // A unit of the container's own failed: the service under test
            // does not depend on it, so the test goes on, and says which.
            let failed = self.sh_ok("systemctl --failed --no-legend --plain");
            let mut report = format!("the container booted degraded; failed units:\n{failed}");
            for unit in failed.lines().filter_map(|l| l.split_whitespace().next()) {
                report.push_str(&self.journal(unit));
            }
            eprintln!("{report}");
        }
    }

    /// Polls `probe` every 100 ms; fails with nspawn's output if the
    /// container ends or `timeout` passes first.
    pub fn poll<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&mut Container) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            if let Some(status) = self
                .nspawn
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                panic!(
                    "the container ended ({status}) while waiting for {what}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Shows the end of `inside` (a path in the container) when a wait fails.
    pub fn show_on_failure(&mut self, inside: &str) {
        self.shown_on_failure.push(inside.to_owned());
    }

    fn diagnostics(&self) -> String {
        let mut out = String::new();
        for inside in &self.shown_on_failure {
            let text = std::fs::read_to_string(self.path(inside)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            out.push_str(&format!("\n--- the end of {inside}:\n{tail}"));
        }
        out
    }

    /// nspawn's output: the container's console.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Runs `script` with `/bin/sh` inside the container, as root, with a
    /// clean environment (none of the test's variables leak in).
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .arg("--target")
            .arg(self.leader.to_string())
            .args(["--all", "/bin/sh", "-c", script])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter")
    }

    /// Like [`Container::sh`]; fails unless it exits 0, and returns stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "`{script}` in the container failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The host's path of `inside` (absolute) in the container's file system.
    pub fn path(&self, inside: &str) -> PathBuf {
        let relative = inside.strip_prefix('/').expect("an absolute path");
        PathBuf::from(format!("/proc/{}/root", self.leader)).join(relative)
    }

    /// One property of a unit, from `systemctl show`.
    pub fn property(&self, unit: &str, name: &str) -> String {
        self.sh_ok(&format!("systemctl show --value -p {name} {unit}"))
            .trim()
            .to_owned()
    }

    /// The unit's journal, for failure messages.
    pub fn journal(&self, unit: &str) -> String {
        String::from_utf8_lossy(
            &self
                .sh(&format!("journalctl --no-pager -o cat -u {unit}"))
                .stdout,
        )
        .into_owned()
    }

    /// Halts the container as `poweroff` would (nspawn forwards SIGTERM to
    /// systemd as a shutdown request) and waits for it to end.
    pub fn stop(mut self) {
        let Some(mut nspawn) = self.nspawn.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(nspawn.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while nspawn.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                self.nspawn = Some(nspawn);
                panic!(
                    "the container did not halt within 30 s:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut nspawn) = self.nspawn.take() {
            // Killing the init of a PID namespace kills everything in it.
            if self.leader > 0 {
                // SAFETY: kill(2); the leader is alive while nspawn is.
                unsafe { libc::kill(self.leader, libc::SIGKILL) };
            }
            let _ = nspawn.kill();
            let _ = nspawn.wait();
        }
    }
}
