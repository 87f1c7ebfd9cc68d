//! `injixo-cloud-link status [--json]`: what the client is doing. Exit 0
//! when it runs, 3 when it does not (LSB), with what the state folder holds.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use super::Instance;
use crate::assignment::{summary, CachedAssignment};
use crate::control::{ControlRequest, ControlResponse};
use crate::pairing::describe_integration;
use crate::report::human_duration;
use crate::report::Failure;
use crate::state::load_json;
use crate::state::Credentials;
use crate::status::{ClientStatus, LinkStatus};

/// LSB: "program is not running".
pub const NOT_RUNNING: i32 = 3;

#[derive(Debug, Serialize)]
struct Report {
    running: bool,
    #[serde(flatten)]
    status: ClientStatus,
}

pub fn run(config_path: &Path, json: bool) -> Result<i32, Failure> {
    let instance = Instance::of(config_path);
    let report = match ask_running(&instance)? {
        Some(status) => Report {
            running: true,
            status,
        },
        None => Report {
            running: false,
            status: from_state_folder(&instance),
        },
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("status serialises")
        );
    } else {
        print!("{}", render(&report));
    }
    Ok(if report.running { 0 } else { NOT_RUNNING })
}

fn ask_running(instance: &Instance) -> Result<Option<ClientStatus>, Failure> {
    match super::ask_running(instance, &ControlRequest::Status, Duration::from_secs(10))? {
        None => Ok(None),
        Some(ControlResponse::Status { status }) => Ok(Some(*status)),
        Some(other) => Err(super::unexpected(&other)),
    }
}

/// What a stopped client left: its link and last assignment.
fn from_state_folder(instance: &Instance) -> ClientStatus {
    let credentials = Credentials::load(&instance.state.credentials())
        .ok()
        .flatten();
    let assignment = load_json::<CachedAssignment>(&instance.state.assignment())
        .ok()
        .flatten();
    ClientStatus {
        version: crate::protocol::VERSION.to_owned(),
        instance: instance
            .config
            .as_ref()
            .map(|c| c.app.name.clone())
            .unwrap_or_default(),
        install_dir: instance.install_dir.display().to_string(),
        cloud_url: instance
            .config
            .as_ref()
            .map(|c| c.cloud.url.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_default(),
        link: match credentials {
            Some(c) => LinkStatus::Linked {
                integration_id: c.integration_id,
                integration_name: c.integration_name,
                linked_at: c.linked_at,
                relink_pin: None,
            },
            None => LinkStatus::Unpaired,
        },
        assignment: assignment.map(|a| summary(&a.integration)),
        ..ClientStatus::default()
    }
}

fn render(report: &Report) -> String {
    let s = &report.status;
    let now = Utc::now();
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("{label:<12} {value}\n"));
    };
    line(
        "state:",
        if report.running {
            let up = s
                .started_at
                .and_then(|t| (now - t).to_std().ok())
                .map(|d| format!(", up {}", human_duration(Duration::from_secs(d.as_secs()))))
                .unwrap_or_default();
            format!("running (pid {}{up}), version {}", s.pid, s.version)
        } else {
            "not running".to_owned()
        },
    );
    if !s.instance.is_empty() {
        line("instance:", s.instance.clone());
    }
    line("install:", s.install_dir.clone());
    line(
        "link:",
        match &s.link {
            LinkStatus::Unpaired => "not paired: run `injixo-cloud-link pin`".to_owned(),
            LinkStatus::Pairing { pin } => format!(
                "not paired: waiting for PIN {} to be entered ({} s left)",
                pin.pin,
                pin.seconds_left(now)
            ),
            LinkStatus::Linked {
                integration_id,
                integration_name,
                linked_at,
                relink_pin,
            } => {
                let mut text = format!(
                    "linked to {} since {}",
                    describe_integration(integration_id, integration_name.as_deref()),
                    linked_at
                        .with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M")
                );
                if let Some(pin) = relink_pin {
                    text.push_str(&format!("; re-link PIN {} on offer", pin.pin));
                }
                text
            }
        },
    );
    line(
        "assignment:",
        s.assignment
            .clone()
            .unwrap_or_else(|| "none yet".to_owned()),
    );
    if report.running {
        let reach = match s.cloud.reachable {
            None => "not contacted yet".to_owned(),
            Some(true) => "reachable".to_owned(),
            Some(false) => format!(
                "NOT reachable: {}",
                s.cloud.last_error.as_deref().unwrap_or("unknown error")
            ),
        };
        let contact = s
            .cloud
            .last_contact_at
            .and_then(|t| (now - t).to_std().ok())
            .map(|d| {
                format!(
                    " (last answer {} ago)",
                    human_duration(Duration::from_secs(d.as_secs()))
                )
            })
            .unwrap_or_default();
        line("cloud:", format!("{} {reach}{contact}", s.cloud_url));
    } else if !s.cloud_url.is_empty() {
        line("cloud:", s.cloud_url.clone());
    }
    if s.importers.is_empty() {
        line("importers:", "none".to_owned());
    }
    for (id, importer) in &s.importers {
        let mut text = format!("{id}: {}", importer.state);
        if let Some(progress) = &importer.progress {
            text.push_str(&format!(", {progress}"));
        }
        if let Some(t) = importer.last_success_at {
            text.push_str(&format!(
                ", last success {}",
                t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S")
            ));
        }
        if let Some(skew) = importer.clock_skew_ms {
            text.push_str(&format!(", {}", crate::db::clock::skew_summary(skew)));
        }
        if let Some(e) = &importer.last_error {
            text.push_str(&format!(", last error: {e}"));
        }
        line("importer", text);
    }
    for (name, feed) in &s.feeds {
        let mut text = format!("{name}: {}", feed.state);
        if feed.peers.is_empty() {
            text.push_str(", nothing connected");
        } else {
            text.push_str(&format!(", connected: {}", feed.peers.join(", ")));
        }
        text.push_str(&format!(
            ", {} event(s) in the last minute, {} in all",
            feed.events_last_minute, feed.events_total
        ));
        if let Some(t) = feed.last_event_at {
            text.push_str(&format!(
                ", last {}",
                t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S")
            ));
        }
        if feed.parse_errors > 0 {
            text.push_str(&format!(", {} line(s) skipped", feed.parse_errors));
        }
        if feed.undelivered > 0 {
            text.push_str(&format!(", {} waiting for the cloud", feed.undelivered));
        }
        if let Some(w) = &feed.warning {
            text.push_str(&format!(", warning: {w}"));
        }
        if let Some(e) = &feed.last_error {
            text.push_str(&format!(", last error: {e}"));
        }
        line("feed", text);
    }
    line(
        "spool:",
        format!("{} files, {} bytes", s.spool.files, s.spool.bytes),
    );
    out
}
