//! The listening end of systemd's notification protocol: a Unix datagram
//! socket in a temporary folder, whose path a client is given as
//! `NOTIFY_SOCKET`, exactly as systemd does for a `Type=notify` service.

#![allow(dead_code)] // each test binary uses a different subset

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct NotifySocket {
    socket: UnixDatagram,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// One datagram and when it arrived.
#[derive(Debug, Clone)]
pub struct Notification {
    pub text: String,
    pub at: Instant,
}

impl NotifySocket {
    pub fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            socket,
            path,
            _dir: dir,
        }
    }

    /// Waits for a datagram whose lines include `line` (such as `READY=1`);
    /// returns every datagram received until then, that one last.
    pub fn wait_for(&self, line: &str, timeout: Duration) -> Vec<Notification> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {line:?} within {timeout:?}; received: {seen:?}"
            );
            self.socket
                .set_read_timeout(Some(left))
                .expect("set timeout");
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue; // timed out: the assertion above ends it
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let found = text.lines().any(|l| l == line);
            seen.push(Notification {
                text,
                at: Instant::now(),
            });
            if found {
                return seen;
            }
        }
    }
}
