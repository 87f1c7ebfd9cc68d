//! What the Windows Service Control Manager (SCM) is told about the running
//! service: StartPending, Running, StopPending and Stopped, with the wait
//! hints it uses to decide that a service hangs. The entry point that the
//! SCM starts (`crate::scm`) registers the status handle here with
//! [`attach`]; `super::notify` reports Running and StopPending at the same
//! moments it tells systemd READY=1 and STOPPING=1 on Linux.

use std::sync::OnceLock;
use std::time::Duration;

use tracing::warn;
use windows_service::service::{
    ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::ServiceStatusHandle;

/// Set once the control handler is registered: we run as a service.
static STATUS: OnceLock<Attached> = OnceLock::new();

struct Attached {
    handle: ServiceStatusHandle,
    /// How long a graceful stop may take (the SCM's StopPending wait hint).
    stop_wait: Duration,
}

// SAFETY: the handle is an opaque token the SCM hands out once per service;
// SetServiceStatus accepts it from any thread, and it is never closed.
unsafe impl Send for Attached {}
unsafe impl Sync for Attached {}

/// Called once by the service's entry point after the SCM gave it a status
/// handle; from then on the process runs as a service.
pub fn attach(handle: ServiceStatusHandle, stop_wait: Duration) {
    let _ = STATUS.set(Attached { handle, stop_wait });
}

/// True when the SCM runs this process as a service.
pub fn running_as_service() -> bool {
    STATUS.get().is_some()
}

/// The actors run (`notify::ready`).
pub fn report_running() {
    report(ServiceState::Running, ServiceExitCode::NO_ERROR);
}

/// A graceful stop began (`notify::stopping`, or Stop from the SCM).
pub fn report_stopping() {
    report(ServiceState::StopPending, ServiceExitCode::NO_ERROR);
}

/// The client is starting (before the actors run).
pub fn report_starting() {
    report(ServiceState::StartPending, ServiceExitCode::NO_ERROR);
}

/// The service has stopped; a non-zero `code` is reported as a
/// service-specific error, which makes the SCM count a failure and apply
/// the recovery actions (restart) the installer set.
pub fn report_stopped(code: i32) {
    let exit = match code {
        0 => ServiceExitCode::NO_ERROR,
        code => ServiceExitCode::ServiceSpecific(code as u32),
    };
    report(ServiceState::Stopped, exit);
}

fn report(state: ServiceState, exit_code: ServiceExitCode) {
    let Some(attached) = STATUS.get() else {
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
            attached.stop_wait + Duration::from_secs(2),
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
    if let Err(e) = attached.handle.set_service_status(status) {
        warn!("cannot report {state:?} to the Service Control Manager: {e}");
    }
}
