//! The `run` command: the daemon's life from start to exit.
//!
//! Order matters: the instance lock comes first (a refused second start must
//! not touch the running instance's log), then the configuration, then the
//! log (which needs `verbose` and `keepDays`, and rotates the previous run's
//! file), then the actor system.

use std::path::Path;
use std::sync::Arc;

use actix::Actor;
use tracing::{error, info};

use crate::actors::config::{
    AssignmentListener, AssignmentNews, ConfigActor, ConfigSettings, PairingNews,
};
use crate::actors::control::ControlActor;
use crate::actors::db_poll::{self, DbDelivered, DbPollActor, DbPollSettings};
use crate::actors::folder_watch::{self, Delivered, FolderWatchActor, FolderWatchSettings};
use crate::actors::log_rotator::LogRotatorActor;
use crate::actors::pairing::{PairingActor, PairingListener, PairingSettings};
use crate::actors::realtime_feed::{RealtimeFeedActor, RealtimeFeedSettings};
use crate::actors::slot::Slot;
use crate::actors::supervisor::{install_panic_hook, ChildSpec, Supervisor};
use crate::actors::uploader::{DeliveryListener, UploaderActor, UploaderSettings};
use crate::config::{Config, ConfigError};
use crate::http::HttpClientFactory;
use crate::logging::{self, LogSettings, RotationHandle};
use crate::protocol::VERSION;
use crate::report::Failure;
use crate::spool::{Spool, SpoolSettings};
use crate::state::instance_lock::{InstanceLock, LockError};
use crate::state::StateDir;
use crate::status::{ClientStatus, StatusBoard};

pub fn run(config_path: &Path, console: bool) -> Result<(), Failure> {
    crate::malloc::limit_retained_memory();
    let config_path =
        std::path::absolute(config_path).map_err(|e| Failure::new(exitcode::OSERR, e))?;
    let install_dir = config_path
        .parent()
        .expect("an absolute file path has a parent")
        .to_path_buf();

    let lock = InstanceLock::acquire(&install_dir.join("state")).map_err(lock_failure)?;
    let loaded = Config::load(&config_path);

    let settings = LogSettings {
        install_dir: install_dir.clone(),
        verbose: loaded.as_ref().is_ok_and(|c| c.app.verbose),
        console,
        keep_days: loaded.as_ref().ok().and_then(|c| c.log.keep_days),
        event_log: event_log_source(loaded.as_ref().ok()),
    };
    let logging = logging::init(&settings).map_err(|e| {
        Failure::new(exitcode::CANTCREAT, e)
            .hint("the service's user must be able to write to the install folder")
    })?;

    let config = match loaded {
        Ok(config) => Arc::new(config),
        Err(e) => {
            // On a service nobody sees stderr: the log must say why.
            error!(
                "cannot start: {}; fix the file, then start again",
                one_line(&e)
            );
            return Err(Failure::from(e));
        }
    };
    install_panic_hook();
    info!(
        "injixo Cloud Link {VERSION} starting (pid {}); install folder {}; configuration {} ({}); instance {}",
        std::process::id(),
        install_dir.display(),
        config.file.display(),
        if config.file_found {
            "found"
        } else {
            "not found: defaults"
        },
        config.app.name,
    );

    let logging_rotation = logging.rotation();
    let http = HttpClientFactory::from_env(VERSION).map_err(|e| {
        error!("cannot start: {}", crate::report::chain(&e));
        Failure::new(exitcode::CONFIG, e)
            .hint("check the https_proxy / HTTPS_PROXY and no_proxy environment variables")
    })?;
    if let Some(proxy) = http.proxy().https_proxy() {
        // ProxyUrl's Display hides the password.
        info!("HTTPS requests go through the proxy {proxy} (from https_proxy)");
    }

    let state = StateDir::of_install_dir(&install_dir);
    crate::state::claim(&state, &install_dir)?;
    let spool = Spool::open(SpoolSettings {
        dir: state.spool(),
        rejected_dir: state.rejected(),
        max_bytes: config.spool.max_bytes,
    })
    .map_err(|e| {
        error!("cannot start: {}", crate::report::chain(&e));
        Failure::new(exitcode::CANTCREAT, e)
            .hint("the service's user must be able to write to the state folder")
    })?;
    let usage = spool.usage();
    if usage.files > 0 {
        info!(
            "{} item(s) ({}) wait in the spool from before; uploading them first",
            usage.files,
            crate::config::format_byte_size(usage.bytes)
        );
    }
    let board = StatusBoard::new(ClientStatus {
        version: VERSION.to_owned(),
        instance: config.app.name.clone(),
        pid: std::process::id(),
        started_at: Some(chrono::Utc::now()),
        install_dir: install_dir.display().to_string(),
        cloud_url: config.cloud.url.as_str().trim_end_matches('/').to_owned(),
        ..ClientStatus::default()
    });
    let system = actix_rt::System::new();
    system.block_on(async move {
        Supervisor::new(children(
            &config,
            &logging_rotation,
            http,
            state,
            board,
            spool,
        ))
        .start();
    });
    let result = system.run();
    match &result {
        Ok(()) => info!("injixo Cloud Link stopped"),
        Err(e) => error!("the actor system failed: {e}; exiting"),
    }
    drop(logging); // flushes every queued line before the lock is released
    drop(lock);
    result.map_err(|e| Failure::new(exitcode::SOFTWARE, e))
}

/// The supervised actors, in start order (they stop in reverse).
fn children(
    config: &Arc<Config>,
    rotation: &RotationHandle,
    http: HttpClientFactory,
    state: StateDir,
    board: StatusBoard,
    spool: Spool,
) -> Vec<ChildSpec> {
    let pairing_slot: Slot<PairingActor> = Slot::empty();
    let config_slot: Slot<ConfigActor> = Slot::empty();
    let uploader_slot: Slot<UploaderActor> = Slot::empty();
    let folder_watch_slot: Slot<FolderWatchActor> = Slot::empty();
    let db_poll_slot: Slot<DbPollActor> = Slot::empty();
    let realtime_slot: Slot<RealtimeFeedActor> = Slot::empty();

    // Importers learn the assignment from ConfigActor, and their deliveries
    // from the uploader, through their slots (they may be restarted).
    let assignment_listener: AssignmentListener = {
        let folder_watch = folder_watch_slot.clone();
        let db_poll = db_poll_slot.clone();
        let realtime = realtime_slot.clone();
        Arc::new(move |integration| {
            if let Some(feed) = realtime.get() {
                feed.do_send(AssignmentNews(integration.cloned()));
            }
            if let Some(importer) = folder_watch.get() {
                importer.do_send(AssignmentNews(integration.cloned()));
            }
            if let Some(importer) = db_poll.get() {
                importer.do_send(AssignmentNews(integration.cloned()));
            }
        })
    };
    let delivery_listener: DeliveryListener = {
        let folder_watch = folder_watch_slot.clone();
        let db_poll = db_poll_slot.clone();
        Arc::new(move |delivery| {
            let origin = &delivery.item().origin;
            if origin == folder_watch::IMPORTER_ID {
                if let Some(importer) = folder_watch.get() {
                    importer.do_send(Delivered(delivery.clone()));
                }
            } else if origin.starts_with(db_poll::ORIGIN_PREFIX) {
                if let Some(importer) = db_poll.get() {
                    importer.do_send(DbDelivered(delivery.clone()));
                }
            }
        })
    };

    let rotation = rotation.clone();
    let keep_days = config.log.keep_days;
    let log_rotator = ChildSpec::new("log rotator", move || {
        LogRotatorActor::new(rotation.clone(), keep_days)
    });

    let config_slot_for_importers = config_slot.clone();
    let configuration = ChildSpec::with_slot("configuration", config_slot.clone(), {
        let (config, http, state, board, pairing) = (
            Arc::clone(config),
            http.clone(),
            state.clone(),
            board.clone(),
            pairing_slot.clone(),
        );
        move || {
            ConfigActor::new(ConfigSettings {
                config: Arc::clone(&config),
                http: http.clone(),
                state: state.clone(),
                pairing: pairing.clone(),
                board: board.clone(),
                listener: Arc::clone(&assignment_listener),
            })
        }
    });

    let pairing = ChildSpec::with_slot("pairing", pairing_slot.clone(), {
        let (http, cloud_url, instance, state, board) = (
            http.clone(),
            config.cloud.url.clone(),
            config.app.name.clone(),
            state.clone(),
            board.clone(),
        );
        let listener: PairingListener = Arc::new(move |event| {
            if let Some(config) = config_slot.get() {
                config.do_send(PairingNews(event.clone()));
            }
        });
        move || {
            PairingActor::new(PairingSettings {
                http: http.clone(),
                cloud_url: cloud_url.clone(),
                state: state.clone(),
                instance: instance.clone(),
                board: board.clone(),
                listener: Arc::clone(&listener),
                heartbeat: true,
            })
        }
    });

    let uploader = ChildSpec::with_slot("uploader", uploader_slot.clone(), {
        let (spool, http, cloud_url, pairing, board) = (
            spool.clone(),
            http.clone(),
            config.cloud.url.clone(),
            pairing_slot.clone(),
            board.clone(),
        );
        move || {
            UploaderActor::new(UploaderSettings {
                spool: spool.clone(),
                http: http.clone(),
                cloud_url: cloud_url.clone(),
                pairing: pairing.clone(),
                board: board.clone(),
                concurrency: crate::actors::uploader::DEFAULT_CONCURRENCY,
                listener: Arc::clone(&delivery_listener),
            })
        }
    });

    let database_importer = ChildSpec::with_slot("database importer", db_poll_slot, {
        let (config, spool, uploader, assignment, board, state) = (
            Arc::clone(config),
            spool.clone(),
            uploader_slot.clone(),
            config_slot_for_importers.clone(),
            board.clone(),
            state.clone(),
        );
        move || {
            DbPollActor::new(DbPollSettings {
                config: Arc::clone(&config),
                spool: spool.clone(),
                uploader: uploader.clone(),
                assignment: assignment.clone(),
                board: board.clone(),
                state: state.clone(),
            })
        }
    });

    let csv_importer = ChildSpec::with_slot("CSV importer", folder_watch_slot, {
        let (config, spool, uploader, assignment, board, state) = (
            Arc::clone(config),
            spool,
            uploader_slot,
            config_slot_for_importers.clone(),
            board.clone(),
            state.clone(),
        );
        move || {
            FolderWatchActor::new(FolderWatchSettings {
                config: Arc::clone(&config),
                spool: spool.clone(),
                uploader: uploader.clone(),
                assignment: assignment.clone(),
                board: board.clone(),
                state: state.clone(),
            })
        }
    });

    let realtime_feed = ChildSpec::with_slot("real-time feed", realtime_slot, {
        let (config, http, pairing, assignment, board, state) = (
            Arc::clone(config),
            http.clone(),
            pairing_slot.clone(),
            config_slot_for_importers.clone(),
            board.clone(),
            state.clone(),
        );
        move || {
            RealtimeFeedActor::new(RealtimeFeedSettings {
                cloud_url: config.cloud.url.clone(),
                config: Arc::clone(&config),
                http: http.clone(),
                pairing: pairing.clone(),
                assignment: assignment.clone(),
                board: board.clone(),
                state: state.clone(),
            })
        }
    });

    let control = ChildSpec::new("control channel", move || {
        ControlActor::new(state.clone(), board.clone(), pairing_slot.clone())
    });

    vec![
        log_rotator,
        configuration,
        pairing,
        uploader,
        csv_importer,
        database_importer,
        realtime_feed,
        control,
    ]
}

/// The Windows Event Log source of a service ("injixo Cloud Link",
/// "injixo Cloud Link (Instance 1)"); none in a console, which has the
/// console. A configuration that did not load still gets the product's name,
/// so that a failed start reaches the Event Log.
#[cfg(windows)]
fn event_log_source(config: Option<&Config>) -> Option<String> {
    crate::service::windows::running_as_service().then(|| {
        let app_name = config.map_or(crate::config::DEFAULT_APP_NAME, |c| c.app.name.as_str());
        crate::service::display_name(app_name)
    })
}

#[cfg(not(windows))]
fn event_log_source(_config: Option<&Config>) -> Option<String> {
    None
}

fn lock_failure(error: LockError) -> Failure {
    match error {
        e @ LockError::Held { .. } => Failure::new(exitcode::TEMPFAIL, e).hint(
            "stop the running one first, or copy the client to its own folder \
             with its own [app] name to run another instance",
        ),
        e @ LockError::Io { .. } => Failure::new(exitcode::CANTCREAT, e)
            .hint("the service's user must be able to write to the install folder"),
    }
}

/// A configuration error on one log line.
fn one_line(error: &ConfigError) -> String {
    match error {
        ConfigError::Invalid { path, problems } => {
            let problems: Vec<String> = problems
                .iter()
                .map(|p| {
                    let at = p
                        .location
                        .as_ref()
                        .map(|l| format!("line {}, column {}: ", l.line, l.column))
                        .unwrap_or_default();
                    let help = p
                        .help
                        .as_ref()
                        .map(|h| format!(" ({h})"))
                        .unwrap_or_default();
                    format!("{at}{}{help}", p.message)
                })
                .collect();
            format!(
                "the configuration file {} is invalid: {}",
                path.display(),
                problems.join("; ")
            )
        }
        other => crate::report::chain(other),
    }
}
