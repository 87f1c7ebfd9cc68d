//! `run` on Windows: as a service when the Service Control Manager (SCM)
//! started the process, else in the console as on every other platform.
//!
//! The main thread goes to the service dispatcher, which calls
//! `service_main` on a thread of its own. That thread runs the daemon as the
//! console does; `service::windows` reports StartPending, Running (once the
//! actors run, through `service::notify`), StopPending and Stopped. Stop and
//! Shutdown stop the client the way SIGTERM does on Unix
//! (`supervisor::request_stop`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use windows_service::service::ServiceControl;
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

use crate::actors::supervisor::{request_stop, SHUTDOWN_DEADLINE};
use crate::report::Failure;
use crate::service::windows as status;

/// ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: the dispatcher's answer when
/// the process was started from a console, not by the SCM.
const NOT_STARTED_BY_THE_SCM: i32 = 1063;

/// The configuration `service_main` runs with: the SCM calls it with the
/// service's arguments only, so `run` leaves the path here.
static CONFIG_PATH: OnceLock<PathBuf> = OnceLock::new();
/// The exit code of the daemon `service_main` ran, for `run` to return.
static EXIT_CODE: AtomicI32 = AtomicI32::new(exitcode::OK);

define_windows_service!(ffi_service_main, service_main);

/// `run`: as a service when the SCM started the process, else in the
/// console.
pub fn run(config_path: &Path, console: bool) -> Result<(), Failure> {
    let _ = CONFIG_PATH.set(config_path.to_path_buf());
    // The name is ignored for a service in its own process (and may be
    // empty, per SERVICE_TABLE_ENTRYW's documentation): the MSI decides it.
    match service_dispatcher::start("", ffi_service_main) {
        Ok(()) => match EXIT_CODE.load(Ordering::SeqCst) {
            exitcode::OK => Ok(()),
            code => Err(Failure::new(
                code,
                "the service stopped on an error; its log in the install folder says why",
            )),
        },
        Err(windows_service::Error::Winapi(e))
            if e.raw_os_error() == Some(NOT_STARTED_BY_THE_SCM) =>
        {
            crate::daemon::run(config_path, console)
        }
        Err(e) => Err(Failure::new(
            exitcode::OSERR,
            format!("cannot start as a service: {e}"),
        )),
    }
}

/// Called by the SCM (through `ffi_service_main`) on a thread of its own;
/// the first argument is the service's name.
fn service_main(arguments: Vec<OsString>) {
    let name = arguments.into_iter().next().unwrap_or_default();
    let handler = |control: ServiceControl| -> ServiceControlHandlerResult {
        match control {
            // Controls are accepted only once Running is reported, which the
            // supervisor does after it took its place for stop requests.
            ServiceControl::Stop | ServiceControl::Shutdown => {
                status::report_stopping();
                request_stop(if control == ServiceControl::Stop {
                    "stop asked by the Service Control Manager"
                } else {
                    "Windows is shutting down"
                });
                ServiceControlHandlerResult::NoError
            }
            ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
            _ => ServiceControlHandlerResult::NotImplemented,
        }
    };
    let handle = match service_control_handler::register(&name, handler) {
        Ok(handle) => handle,
        Err(_) => {
            // Without a handle nothing can be reported; the SCM times out.
            EXIT_CODE.store(exitcode::OSERR, Ordering::SeqCst);
            return;
        }
    };
    status::attach(name, handle, SHUTDOWN_DEADLINE);
    status::report_starting();
    status::adopt_system_variables();

    let config_path = CONFIG_PATH.get().cloned().unwrap_or_default();
    let code = match crate::daemon::run(&config_path, false) {
        Ok(()) => exitcode::OK,
        Err(failure) => failure.code,
    };
    EXIT_CODE.store(code, Ordering::SeqCst);
    status::report_stopped(code);
}
