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

use crate::actors::config::ConfigActor;
use crate::actors::log_rotator::LogRotatorActor;
use crate::actors::supervisor::{install_panic_hook, ChildSpec, Supervisor};
use crate::cli::config_failure;
use crate::config::{Config, ConfigError};
use crate::instance_lock::{InstanceLock, LockError};
use crate::logging::{self, LogSettings};
use crate::report::Failure;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn run(config_path: &Path, console: bool) -> Result<(), Failure> {
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
            return Err(config_failure(e));
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

    let system = actix_rt::System::new();
    let rotation = logging.rotation();
    let keep_days = config.log.keep_days;
    system.block_on(async move {
        Supervisor::new(vec![
            ChildSpec::new("log rotator", move || {
                LogRotatorActor::new(rotation.clone(), keep_days)
            }),
            ChildSpec::new("configuration", move || {
                ConfigActor::new(Arc::clone(&config))
            }),
        ])
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
