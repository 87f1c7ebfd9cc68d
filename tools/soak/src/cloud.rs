//! The emulator process and the calls the soak makes to its control API.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use injixo_cloud_link_protocol::emulator::{
    self, ConnectRequest, CreatedIntegration, FaultRule, ImportRecord,
};
use injixo_cloud_link_protocol::Integration;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::procs::Guarded;

/// Bodies are small (CSV files of a few KiB, database windows of a few
/// seconds), but the import list grows with the run.
const BODY_LIMIT: u64 = 256 * 1024 * 1024;

pub struct Cloud {
    pub url: String,
    /// Held for its `Drop`, which stops the emulator.
    _process: Guarded,
    agent: ureq::Agent,
}

impl Cloud {
    /// Starts the emulator in memory on a free loopback port; its log goes
    /// to `log`.
    pub fn start(binary: &Path, log: &Path) -> Result<Cloud, String> {
        let mut command = Command::new(binary);
        command
            // Fast pairing; tokens short enough that refreshes happen (under
            // faults) during the run.
            .args(["--listen", "127.0.0.1:0", "--poll-interval", "1"])
            .args(["--token-ttl", "300"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(log)
                    .map_err(|e| format!("cannot create {}: {e}", log.display()))?,
            );
        let mut process = Guarded::spawn("the emulator", command, false)?;
        let stdout = process
            .child_mut()
            .and_then(|c| c.stdout.take())
            .ok_or("no stdout")?;
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
            .map_err(|_| format!("the emulator did not start; see {}", log.display()))?;
        let url = first
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line of the emulator: {first:?}"))?
            .trim()
            .to_owned();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Cloud {
            url,
            _process: process,
            agent,
        })
    }

    fn check(
        what: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, String> {
        let mut response = response.map_err(|e| format!("{what}: {e}"))?;
        if !response.status().is_success() {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            return Err(format!("{what}: {} {body}", response.status()));
        }
        Ok(response)
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let mut response = Self::check(
            &format!("GET {path}"),
            self.agent.get(format!("{}{path}", self.url)).call(),
        )?;
        response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_json()
            .map_err(|e| format!("GET {path}: {e}"))
    }

    fn post_json<T: serde::Serialize>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<serde_json::Value, String> {
        let mut response = Self::check(
            &format!("POST {path}"),
            self.agent
                .post(format!("{}{path}", self.url))
                .send_json(body),
        )?;
        Ok(response.body_mut().read_json().unwrap_or_default())
    }

    pub fn create_integration(&self, integration: &Integration) -> Result<String, String> {
        let created: CreatedIntegration =
            serde_json::from_value(self.post_json(emulator::INTEGRATIONS, integration)?)
                .map_err(|e| format!("created integration: {e}"))?;
        Ok(created.id)
    }

    pub fn connect(&self, pin: &str, integration_id: &str) -> Result<(), String> {
        self.post_json(
            emulator::CONNECT,
            &ConnectRequest {
                pin: pin.to_owned(),
                integration_id: integration_id.to_owned(),
            },
        )
        .map(drop)
    }

    pub fn add_fault(&self, rule: &FaultRule) -> Result<(), String> {
        self.post_json(emulator::FAULTS, rule).map(drop)
    }

    pub fn clear_faults(&self) -> Result<(), String> {
        Self::check(
            "DELETE faults",
            self.agent
                .delete(format!("{}{}", self.url, emulator::FAULTS))
                .call(),
        )
        .map(drop)
    }

    pub fn imports(&self, integration_id: &str) -> Result<Vec<ImportRecord>, String> {
        self.get_json(&format!(
            "{}?integration_id={integration_id}",
            emulator::IMPORTS
        ))
    }

    pub fn content(&self, import_id: &str) -> Result<Vec<u8>, String> {
        let path = emulator::import_content(import_id);
        let mut response = Self::check(
            &format!("GET {path}"),
            self.agent.get(format!("{}{path}", self.url)).call(),
        )?;
        response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| format!("GET {path}: {e}"))
    }
}

/// What one integration's imports hold, read incrementally: each import's
/// content is fetched once, however often the view is refreshed.
#[derive(Default)]
pub struct CloudView {
    seen: BTreeSet<String>,
    /// sha256 of each import's content, one per import (CSV).
    pub content_sha: Vec<String>,
    /// Every distinct data line of every import (database).
    pub lines: BTreeSet<String>,
    /// Data lines summed over imports, before deduplication.
    pub lines_with_repeats: u64,
    /// Commits the cloud answered with an existing import.
    pub duplicate_commits: BTreeMap<String, u64>,
}

impl CloudView {
    pub fn refresh(&mut self, cloud: &Cloud, integration_id: &str) -> Result<(), String> {
        for import in cloud.imports(integration_id)? {
            self.duplicate_commits
                .insert(import.import_id.clone(), import.duplicates);
            if self.seen.contains(&import.import_id) {
                continue;
            }
            let content = cloud.content(&import.import_id)?;
            self.content_sha.push(hex::encode(Sha256::digest(&content)));
            let text = String::from_utf8_lossy(&content);
            for line in text.lines().skip(1) {
                self.lines_with_repeats += 1;
                self.lines.insert(line.trim_end_matches('\r').to_owned());
            }
            self.seen.insert(import.import_id);
        }
        Ok(())
    }

    pub fn imports(&self) -> usize {
        self.seen.len()
    }

    pub fn total_duplicate_commits(&self) -> u64 {
        self.duplicate_commits.values().sum()
    }
}
