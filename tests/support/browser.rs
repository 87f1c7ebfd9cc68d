//! Headless Chromium driven through chromedriver, for tests of what a
//! person does on the cloud's pages. Needs Debian's chromium and
//! chromium-driver (scripts/setup installs them): a missing one fails the
//! test with that hint, never skips it.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::ClientBuilder;
use serde_json::json;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver in a process group of its own, so that the browsers it
/// starts die with it even when a test fails half-way.
pub struct ChromeDriver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group we created for the driver.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    pub fn start() -> ChromeDriver {
        for (path, what) in [(CHROMIUM, "Chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(path).exists(),
                "{what} is missing at {path}: run scripts/setup"
            );
        }
        let port = super::emulator::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: tempfile::tempdir().unwrap(),
        };
        super::wait_for("chromedriver to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        driver
    }

    /// A fresh headless browser session. The flags keep Chromium from
    /// reaching out to the internet, which this machine does not have.
    pub async fn browser(&self) -> fantoccini::Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ]
            }
        });
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities.as_object().unwrap().clone());
        actix_rt::time::timeout(Duration::from_secs(60), builder.connect(&self.url))
            .await
            .expect("a browser session within 60 s")
            .expect("a browser session")
    }
}
