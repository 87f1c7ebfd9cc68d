//! Child processes that cannot outlive the soak, the stop flag set by
//! Ctrl-C, and what `/proc` says about a process.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP ask the soak to stop: the loops see
/// [`stop_requested`], return, and the guards stop every child. A signal
/// ignored at start stays ignored (`nohup scripts/soak …` keeps running when
/// its terminal goes away).
pub fn install_signal_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores into an atomic, which is
        // async-signal-safe; putting back SIG_IGN is always allowed.
        unsafe {
            let before = libc::signal(signal, on_signal as *const () as libc::sighandler_t);
            if before == libc::SIG_IGN {
                libc::signal(signal, libc::SIG_IGN);
            }
        }
    }
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleeps `duration` in short steps; `Err` when a stop was asked for.
pub fn sleep(duration: Duration) -> Result<(), String> {
    let end = Instant::now() + duration;
    loop {
        if stop_requested() {
            return Err("interrupted".into());
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

/// A child process stopped when the guard is dropped: with SIGTERM and a
/// grace period when `graceful` (the clients flush their logs and spool), or
/// killed.
pub struct Guarded {
    child: Option<Child>,
    graceful: bool,
}

impl Guarded {
    /// Spawns `command` in a process group of its own (a Ctrl-C in the
    /// terminal reaches only the soak, which stops the children in order)
    /// that the kernel signals when the soak dies without cleaning up.
    pub fn spawn(name: &str, mut command: Command, graceful: bool) -> Result<Guarded, String> {
        command.process_group(0);
        let death_signal = if graceful {
            libc::SIGTERM
        } else {
            libc::SIGKILL
        };
        // SAFETY: prctl is async-signal-safe and touches only this child.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Guarded {
            child: Some(child),
            graceful,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// `Some(status)` when the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits at most `grace` for the process to exit by itself (e.g. once
    /// its input is closed), then kills it. `None` when it had to be killed.
    pub fn wait_or_kill(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGTERM, then waits at most `grace` before killing. Returns the exit
    /// status, or `None` when it had to be killed.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            return Some(status);
        }
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        self.wait_or_kill(grace)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.graceful {
            self.stop(Duration::from_secs(10));
        } else if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Resident memory, open descriptors and threads of a running process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(ProcSample {
        rss_kib: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
    })
}

/// Items waiting in a client's spool: one JSON sidecar each.
pub fn spool_depth(install: &Path) -> u64 {
    std::fs::read_dir(install.join("state").join("spool"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count() as u64
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(std::process::id()).expect("/proc of this process");
        assert!(s.rss_kib > 0 && s.fds >= 3 && s.threads >= 1, "{s:?}");
        assert!(sample(u32::MAX).is_none());
    }
}
