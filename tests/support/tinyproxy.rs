//! A real tinyproxy (installed by `scripts/setup`) on a free loopback port,
//! with its own generated configuration and log, killed when dropped.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/tinyproxy";

pub struct Tinyproxy {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A loopback port that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

impl Tinyproxy {
    /// Starts tinyproxy that asks for `user`/`password` (Basic) and opens
    /// CONNECT tunnels only to `connect_ports` (all ports when empty).
    /// Panics, failing the test, when tinyproxy is not installed.
    pub fn start(auth: Option<(&str, &str)>, connect_ports: &[u16]) -> Tinyproxy {
        let binary = Path::new(BINARY);
        assert!(
            binary.exists(),
            "{BINARY} is missing: run scripts/setup (the proxy tests need a real tinyproxy)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("tinyproxy.log");
        let port = free_port();
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\n\
             MaxClients 20\nAllow 127.0.0.1\n",
            log.display()
        );
        if let Some((user, password)) = auth {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        for p in connect_ports {
            conf.push_str(&format!("ConnectPort {p}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::File::create(&conf_path)
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .expect("write tinyproxy.conf");
        let mut child = Command::new(binary)
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tinyproxy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().expect("poll tinyproxy") {
                panic!(
                    "tinyproxy exited with {status} before listening; config:\n{conf}\nlog:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many CONNECT requests to `target` (`host:port`) the log shows.
    pub fn connects_to(&self, target: &str) -> usize {
        let needle = format!("CONNECT {target} ");
        self.log().lines().filter(|l| l.contains(&needle)).count()
    }

    /// How many requests (of any method) the log shows. Not connections:
    /// the readiness probe of `start` connects without a request.
    pub fn requests(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("Request (file descriptor"))
            .count()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
