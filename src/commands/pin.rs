//! `injixo-cloud-link pin [--json]`: shows a PIN that links this client.
//!
//! With a client running, it asks that client (over the control channel) for
//! a PIN valid at least one more minute; on a linked client that is a
//! re-link PIN. With none running, it pairs in the foreground: banner, wait
//! for the PIN to be entered, save the credentials, exit 0; a service started
//! afterwards is already linked.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use serde::Serialize;
use tracing::info;

use super::Instance;
use crate::actors::pairing::{
    PairingActor, PairingEvent, PairingListener, PairingSettings, RequestPin,
};
use crate::config::Config;
use crate::control::{ControlRequest, ControlResponse, PinAnswer};
use crate::http::HttpClientFactory;
use crate::logging::{self, LogSettings};
use crate::pairing::{banner, describe_integration};
use crate::protocol::VERSION;
use crate::report::Failure;
use crate::state::instance_lock::InstanceLock;
use crate::state::StateDir;
use crate::status::{ClientStatus, StatusBoard};

/// Lines `--json` prints, one JSON object each.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum JsonEvent<'a> {
    Pin(&'a PinAnswer),
    Linked {
        integration_id: &'a str,
        integration_name: Option<&'a str>,
    },
}

pub fn run(config_path: &Path, json: bool) -> Result<(), Failure> {
    let instance = Instance::of(config_path);
    if let Some(answer) = ask_running(&instance)? {
        print_pin(&answer, json);
        return Ok(());
    }
    pair_in_foreground(config_path, &instance.state, json)
}

fn ask_running(instance: &Instance) -> Result<Option<PinAnswer>, Failure> {
    // The client may need to fetch a new PIN from the cloud first.
    match super::ask_running(instance, &ControlRequest::Pin, Duration::from_secs(45))? {
        None => Ok(None),
        Some(ControlResponse::Pin(answer)) => Ok(Some(answer)),
        Some(other) => Err(super::unexpected(&other)),
    }
}

fn print_pin(answer: &PinAnswer, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(&JsonEvent::Pin(answer)).expect("serialises")
        );
    } else {
        for line in banner(&answer.offer, answer.linked_to.as_deref(), Utc::now()) {
            println!("{line}");
        }
    }
    let _ = std::io::stdout().flush();
}

fn pair_in_foreground(config_path: &Path, state: &StateDir, json: bool) -> Result<(), Failure> {
    let lock = InstanceLock::acquire(state.root()).map_err(|e| {
        Failure::new(exitcode::TEMPFAIL, e).hint("a client started meanwhile: run `pin` again")
    })?;
    let config = Arc::new(Config::load(config_path)?);
    let logging = logging::init(&LogSettings {
        install_dir: config.install_dir.clone(),
        verbose: config.app.verbose,
        // The banner goes to stdout below; the log lines stay in the file.
        console: false,
        keep_days: config.log.keep_days,
        event_log: None,
    })
    .map_err(|e| Failure::new(exitcode::CANTCREAT, e))?;
    crate::state::claim(state, &config.install_dir)?;
    let http = HttpClientFactory::from_env(VERSION).map_err(|e| {
        Failure::new(exitcode::CONFIG, e)
            .hint("check the https_proxy / HTTPS_PROXY and no_proxy environment variables")
    })?;
    let already_linked = state.credentials().exists();
    info!("`pin` pairs in the foreground: no client is running from this folder");
    if !json {
        println!(
            "No injixo Cloud Link is running from this folder: pairing here. Press Ctrl-C to stop."
        );
    }

    let outcome: Arc<Mutex<Option<String>>> = Arc::default();
    let listener: PairingListener = {
        let outcome = Arc::clone(&outcome);
        Arc::new(move |event| match event {
            PairingEvent::PinOffered(answer) => print_pin(answer, json),
            PairingEvent::Linked {
                integration_id,
                integration_name,
                ..
            } => {
                let described = describe_integration(integration_id, integration_name.as_deref());
                if json {
                    let event = JsonEvent::Linked {
                        integration_id,
                        integration_name: integration_name.as_deref(),
                    };
                    println!("{}", serde_json::to_string(&event).expect("serialises"));
                } else {
                    println!("Linked to {described}. Start the service to import.");
                }
                *outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some(described);
                System::current().stop();
            }
            PairingEvent::Unlinked => {}
        })
    };
    let board = StatusBoard::new(ClientStatus {
        version: VERSION.to_owned(),
        instance: config.app.name.clone(),
        ..ClientStatus::default()
    });
    let system = System::new();
    let settings = PairingSettings {
        http,
        cloud_url: config.cloud.url.clone(),
        state: state.clone(),
        instance: config.app.name.clone(),
        board,
        listener,
        heartbeat: false,
    };
    system.block_on(async move {
        let pairing = PairingActor::new(settings).start();
        if already_linked {
            // A linked client pairs again only through a re-link PIN.
            pairing.do_send(RequestPin);
        }
        actix_rt::spawn(async {
            if actix_rt::signal::ctrl_c().await.is_ok() {
                System::current().stop_with_code(130);
            }
        });
    });
    let code = system
        .run_with_code()
        .map_err(|e| Failure::new(exitcode::SOFTWARE, e))?;
    drop(logging);
    drop(lock);
    let linked = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
    match linked {
        Some(_) => Ok(()),
        None => Err(Failure::new(
            if code == 0 { exitcode::SOFTWARE } else { code },
            "stopped before the PIN was entered; the client is not linked",
        )),
    }
}
