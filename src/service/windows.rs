//! The client as a Windows service.
//!
//! NOT COMPILED BY CI. This project's machines cannot build for Windows (no
//! Windows standard library can be installed there), so this module is
//! written against the documented APIs of windows-service 0.8 and
//! windows-sys 0.61 and has been checked by no compiler. It is kept small:
//! the logic it relies on lives in plain modules tested on Linux — the
//! service names (`super::display_name`, `super::windows_service_name`), the
//! graceful stop (`supervisor::request_stop`, SIGTERM's path), the control
//! pipe's name (`StateDir::control_pipe_name`).
//!
//! - [`run`]: when the Service Control Manager started the process, the
//!   main thread goes to the service dispatcher, which calls `service_main`
//!   on a thread of its own. That thread runs the daemon as the console
//!   does and reports StartPending, Running (once the actors run, through
//!   `super::notify`), StopPending and Stopped. Stop and Shutdown stop the
//!   client the way SIGTERM does on Unix.
//! - [`restrict_to_system_and_administrators`]: the credentials file's ACL.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::warn;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::{define_windows_service, service_dispatcher};

use crate::actors::supervisor::{request_stop, SHUTDOWN_DEADLINE};
use crate::report::Failure;

/// ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: the dispatcher's answer when
/// the process was started from a console, not by the SCM.
const NOT_STARTED_BY_THE_SCM: i32 = 1063;

/// The configuration `service_main` runs with: the SCM calls it with the
/// service's arguments only, so `run` leaves the path here.
static CONFIG_PATH: OnceLock<PathBuf> = OnceLock::new();
/// The exit code of the daemon `service_main` ran, for `run` to return.
static EXIT_CODE: AtomicI32 = AtomicI32::new(exitcode::OK);
/// Set once the control handler is registered: we run as a service.
static STATUS: OnceLock<StatusHandle> = OnceLock::new();

struct StatusHandle(ServiceStatusHandle);

// SAFETY: the handle is an opaque token the SCM hands out once per service;
// SetServiceStatus accepts it from any thread, and it is never closed.
unsafe impl Send for StatusHandle {}
unsafe impl Sync for StatusHandle {}

define_windows_service!(ffi_service_main, service_main);

/// `run`: as a service when the SCM started the process, else in the
/// console as on every other platform.
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
                report(ServiceState::StopPending, ServiceExitCode::NO_ERROR);
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
    let _ = STATUS.set(StatusHandle(handle));
    report(ServiceState::StartPending, ServiceExitCode::NO_ERROR);

    let config_path = CONFIG_PATH.get().cloned().unwrap_or_default();
    let code = match crate::daemon::run(&config_path, false) {
        Ok(()) => exitcode::OK,
        Err(failure) => failure.code,
    };
    EXIT_CODE.store(code, Ordering::SeqCst);
    let exit = match code {
        exitcode::OK => ServiceExitCode::NO_ERROR,
        // A service-specific code makes the SCM count a failure and apply
        // the recovery actions (restart) the MSI sets.
        code => ServiceExitCode::ServiceSpecific(code as u32),
    };
    report(ServiceState::Stopped, exit);
}

/// True when the SCM runs this process as a service.
pub fn running_as_service() -> bool {
    STATUS.get().is_some()
}

/// The actors run (`notify::ready`).
pub fn report_running() {
    report(ServiceState::Running, ServiceExitCode::NO_ERROR);
}

/// A graceful stop began (`notify::stopping`).
pub fn report_stopping() {
    report(ServiceState::StopPending, ServiceExitCode::NO_ERROR);
}

fn report(state: ServiceState, exit_code: ServiceExitCode) {
    let Some(handle) = STATUS.get() else {
        return;
    };
    let (controls_accepted, wait_hint) = match state {
        ServiceState::Running => (
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
            Duration::ZERO,
        ),
        ServiceState::StartPending => (ServiceControlAccept::empty(), Duration::from_secs(30)),
        ServiceState::StopPending => (
            ServiceControlAccept::empty(),
            SHUTDOWN_DEADLINE + Duration::from_secs(2),
        ),
        _ => (ServiceControlAccept::empty(), Duration::ZERO),
    };
    let pending = matches!(
        state,
        ServiceState::StartPending | ServiceState::StopPending
    );
    let status = ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted,
        exit_code,
        checkpoint: u32::from(pending),
        wait_hint,
        process_id: None,
    };
    if let Err(e) = handle.0.set_service_status(status) {
        warn!("cannot report {state:?} to the Service Control Manager: {e}");
    }
}

/// SYSTEM and the Administrators group only, nothing inherited from the
/// folder: the security descriptor the credentials file gets.
const SYSTEM_AND_ADMINISTRATORS: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";

/// Sets the ACL of `path` to SYSTEM and Administrators only (the Windows
/// counterpart of mode 0600), before any secret is written to it.
pub fn restrict_to_system_and_administrators(path: &Path) -> io::Result<()> {
    use std::os::windows::ffi::OsStrExt;

    use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS};
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW,
        SDDL_REVISION_1, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };

    let sddl: Vec<u16> = SYSTEM_AND_ADMINISTRATORS
        .encode_utf16()
        .chain(std::iter::once(0))
        .collect();
    let wide_path: Vec<u16> = path
        .as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect();
    let mut descriptor: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `sddl` is NUL-terminated UTF-16 that outlives the call; on
    // success `descriptor` points to memory we free with LocalFree below.
    let converted = unsafe {
        ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut descriptor,
            std::ptr::null_mut(),
        )
    };
    if converted == 0 {
        return Err(io::Error::last_os_error());
    }
    let mut present = 0;
    let mut defaulted = 0;
    let mut dacl: *mut ACL = std::ptr::null_mut();
    // SAFETY: `descriptor` is the valid descriptor made above; `dacl` points
    // into it and is used before it is freed.
    let result = unsafe {
        if GetSecurityDescriptorDacl(descriptor, &mut present, &mut dacl, &mut defaulted) == 0 {
            Err(io::Error::last_os_error())
        } else {
            match SetNamedSecurityInfoW(
                wide_path.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            ) {
                ERROR_SUCCESS => Ok(()),
                error => Err(io::Error::from_raw_os_error(error as i32)),
            }
        }
    };
    // SAFETY: allocated by ConvertStringSecurityDescriptorToSecurityDescriptorW.
    unsafe { LocalFree(descriptor) };
    result
}
