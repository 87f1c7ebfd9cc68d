//! The cloud emulator as a real process for the client's end-to-end tests,
//! and calls to its control API.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The emulator binary, built by `cargo test --workspace` next to the
/// client's.
pub fn emulator_binary() -> PathBuf {
    let path = PathBuf::from(super::CLIENT)
        .parent()
        .expect("target dir")
        .join("injixo-cloud-emulator");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p injixo-cloud-emulator` (or run `cargo test --workspace`)",
        path.display()
    );
    path
}

pub struct Emulator {
    child: Option<Child>,
    pub url: String,
    pub log: tempfile::NamedTempFile,
    agent: ureq::Agent,
}

impl Emulator {
    /// Starts an emulator on a free loopback port with extra `args`.
    pub fn start(args: &[&str]) -> Emulator {
        Emulator::start_on("127.0.0.1:0", args)
    }

    /// Starts an emulator listening on `listen` (e.g. a port chosen before).
    pub fn start_on(listen: &str, args: &[&str]) -> Emulator {
        Emulator::start_trusting(listen, args, None)
    }

    /// Like [`Emulator::start_on`]; the test's own calls trust `ca` (DER),
    /// for an emulator serving HTTPS with a throwaway certificate.
    pub fn start_trusting(listen: &str, args: &[&str], ca: Option<&[u8]>) -> Emulator {
        let log = tempfile::NamedTempFile::new().expect("emulator log file");
        let mut child = Command::new(emulator_binary())
            .arg("--listen")
            .arg(listen)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("log handle"))
            .spawn()
            .expect("spawn emulator");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = sender.send(first);
            }
            for _ in lines {} // keep draining so the emulator never blocks
        });
        let first = receiver
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "the emulator printed no `listening on` line; its log:\n{}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                )
            });
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_owned();
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)));
        if let Some(ca) = ca {
            let roots = vec![ureq::tls::Certificate::from_der(ca).to_owned()];
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
        Emulator {
            child: Some(child),
            url,
            log,
            agent,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let mut response = self
            .agent
            .get(format!("{}{path}", self.url))
            .call()
            .expect("GET emulator");
        let status = response.status().as_u16();
        // Beyond ureq's default 10 MB: the list of 20,000 imports is 13 MB.
        let body = response
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_json()
            .unwrap_or(Value::Null);
        (status, body)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let mut response = self
            .agent
            .post(format!("{}{path}", self.url))
            .send_json(body)
            .expect("POST emulator");
        let status = response.status().as_u16();
        let body = response.body_mut().read_json().unwrap_or(Value::Null);
        (status, body)
    }

    pub fn delete(&self, path: &str) -> u16 {
        self.agent
            .delete(format!("{}{path}", self.url))
            .call()
            .expect("DELETE emulator")
            .status()
            .as_u16()
    }

    /// Creates a CSV integration; returns its id.
    pub fn create_csv_integration(&self, name: &str) -> String {
        let (status, body) = self.post(
            "/_emulator/integrations",
            &json!({"name": name, "kind": "csv", "csv": {"pattern": "*.csv"}}),
        );
        assert_eq!(status, 201, "create integration: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Creates a database integration "ACD database" with the assignment's
    /// `database` block; returns its id.
    #[allow(dead_code)] // not every test crate reads a database
    pub fn create_database_integration(&self, database: Value) -> String {
        let (status, body) = self.post(
            "/_emulator/integrations",
            &json!({"name": "ACD database", "kind": "database", "database": database}),
        );
        assert_eq!(status, 201, "create integration: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Enters `pin` for `integration_id`, as a person on the page would.
    pub fn connect(&self, pin: &str, integration_id: &str) -> u16 {
        let (status, _) = self.post(
            "/_emulator/connect",
            &json!({"pin": pin, "integration_id": integration_id}),
        );
        status
    }

    /// The committed imports, optionally of one integration.
    pub fn imports(&self) -> Vec<Value> {
        let (status, body) = self.get("/_emulator/imports");
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// The decoded content of one import.
    pub fn import_content(&self, import_id: &str) -> Vec<u8> {
        let mut response = self
            .agent
            .get(format!(
                "{}/_emulator/imports/{import_id}/content",
                self.url
            ))
            .call()
            .expect("GET import content");
        assert_eq!(response.status().as_u16(), 200);
        response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .expect("content")
    }

    /// Adds a fault rule (protocol §6).
    pub fn add_fault(&self, rule: Value) {
        let (status, body) = self.post("/_emulator/faults", &rule);
        assert!(
            (200..300).contains(&status),
            "fault rule refused: {status} {body}"
        );
    }

    pub fn clear_faults(&self) {
        let status = self.delete("/_emulator/faults");
        assert!((200..300).contains(&status), "clear faults: {status}");
    }

    pub fn clients(&self) -> Vec<Value> {
        let (status, body) = self.get("/_emulator/clients");
        assert_eq!(status, 200);
        body.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
