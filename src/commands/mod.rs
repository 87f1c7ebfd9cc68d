//! The commands that talk to a running client over the control channel, or,
//! when none runs, work from the state folder.

pub mod pin;
pub mod service;
pub mod status;

use std::path::{Path, PathBuf};

use std::time::Duration;

use crate::config::Config;
use crate::control::{ControlRequest, ControlResponse};
use crate::report::Failure;
use crate::state::StateDir;

/// The install folder and, if it loads, the configuration of the instance
/// that `config_path` names.
pub(crate) struct Instance {
    pub install_dir: PathBuf,
    pub state: StateDir,
    pub config: Option<Config>,
}

impl Instance {
    pub fn of(config_path: &Path) -> Instance {
        let config_path =
            std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
        let install_dir = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Instance {
            state: StateDir::of_install_dir(&install_dir),
            config: Config::load(&config_path).ok(),
            install_dir,
        }
    }
}

/// Asks the client running from this install folder; `None` when none runs.
/// An error answer of the client becomes a failure that quotes it.
#[cfg(any(unix, windows))]
pub(crate) fn ask_running(
    instance: &Instance,
    request: &ControlRequest,
    timeout: Duration,
) -> Result<Option<ControlResponse>, Failure> {
    use crate::control::client::{ask, AskError};
    match ask(&instance.state, request, timeout) {
        Ok(ControlResponse::Error { message }) => Err(Failure::new(
            exitcode::UNAVAILABLE,
            format!("the running client answered: {message}"),
        )),
        Ok(answer) => Ok(Some(answer)),
        Err(AskError::NotRunning) => Ok(None),
        Err(e) => Err(Failure::new(exitcode::IOERR, e).hint(if cfg!(windows) {
            "run the command from a command prompt opened as Administrator"
        } else {
            "run the command as the service's user (or root)"
        })),
    }
}

/// No control channel on this platform: commands work from the state folder.
#[cfg(not(any(unix, windows)))]
pub(crate) fn ask_running(
    _: &Instance,
    _: &ControlRequest,
    _: Duration,
) -> Result<Option<ControlResponse>, Failure> {
    Ok(None)
}

/// An answer of another kind than the request asked for.
pub(crate) fn unexpected(answer: &ControlResponse) -> Failure {
    Failure::new(
        exitcode::PROTOCOL,
        format!("unexpected answer from the running client: {answer:?}"),
    )
}
