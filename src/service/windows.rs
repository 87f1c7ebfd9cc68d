//! What the Windows Service Control Manager (SCM) is told about the running
//! service: StartPending, Running, StopPending and Stopped, with the wait
//! hints it uses to decide that a service hangs. The entry point that the
//! SCM starts (`crate::scm`) registers the status handle here with
//! [`attach`]; `super::notify` reports Running and StopPending at the same
//! moments it tells systemd READY=1 and STOPPING=1 on Linux, and once
//! Running is reported, [`apply_recommended_configuration`] gives the service
//! the recovery, start type and quoted command line of `super::recovery`.

use std::ffi::{OsStr, OsString};
use std::sync::OnceLock;
use std::time::Duration;

use tracing::{info, warn};
use windows_service::service::{
    Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceConfig, ServiceControlAccept,
    ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod, ServiceStartType,
    ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::ServiceStatusHandle;
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use crate::report::chain;
use crate::win32::wide;

use super::recovery::{quoted_image_path, FAILURE_COUNT_RESET, RESTART_DELAYS};

/// Set once the control handler is registered: we run as a service.
static STATUS: OnceLock<Attached> = OnceLock::new();

struct Attached {
    /// The service's key name, as the SCM passed it.
    name: OsString,
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
pub fn attach(name: OsString, handle: ServiceStatusHandle, stop_wait: Duration) {
    let _ = STATUS.set(Attached {
        name,
        handle,
        stop_wait,
    });
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

/// Gives this service the configuration of `super::recovery` where it lacks
/// it, and logs each change once. A failure is logged and changes nothing
/// else: the client runs as before, only without that safety net.
pub fn apply_recommended_configuration() {
    let Some(attached) = STATUS.get() else {
        return;
    };
    let name = attached.name.to_string_lossy();
    for variable in ADOPTED.get().into_iter().flatten() {
        info!(
            "Windows service {name}: {variable} taken from the system environment (a service gets the one of boot time otherwise)"
        );
    }
    let service = match open_own_service(&attached.name) {
        Ok(service) => service,
        Err(e) => {
            warn!(
                "cannot read the configuration of the Windows service {name} ({}); its recovery settings are not checked",
                chain(&e)
            );
            return;
        }
    };
    let config = match service.query_config() {
        Ok(config) => config,
        Err(e) => {
            warn!(
                "cannot read the configuration of the Windows service {name} ({}); its recovery settings are not checked",
                chain(&e)
            );
            return;
        }
    };
    match quote_command_line(&service, &config) {
        Ok(Some(quoted)) => info!(
            "Windows service {name}: its command line had an unquoted path with spaces; it is now {quoted}"
        ),
        Ok(None) => {}
        Err(e) => warn!(
            "Windows service {name}: cannot quote its command line ({}); an admin should quote the path in its ImagePath",
            chain(&e)
        ),
    }
    match set_recovery(&service, &config) {
        Ok(Some(delayed)) => info!(
            "Windows service {name}: recovery set: restart after 1 s, 10 s, then every 60 s (failure count reset after a day){}",
            if delayed { "; automatic start delayed" } else { "" }
        ),
        Ok(None) => {}
        Err(e) => warn!(
            "Windows service {name}: cannot set its recovery ({}); set it with: sc failure \"{name}\" reset= 86400 actions= restart/1000/restart/10000/restart/60000",
            chain(&e)
        ),
    }
}

fn open_own_service(name: &OsStr) -> windows_service::Result<Service> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
    manager.open_service(
        name,
        ServiceAccess::QUERY_CONFIG | ServiceAccess::CHANGE_CONFIG,
    )
}

/// Quotes the command line when it needs it; the new one, if changed.
fn quote_command_line(
    service: &Service,
    config: &ServiceConfig,
) -> windows_service::Result<Option<String>> {
    // `executable_path` is the whole command line (lpBinaryPathName).
    let command_line = config.executable_path.to_string_lossy().into_owned();
    let Some(quoted) = quoted_image_path(&command_line) else {
        return Ok(None);
    };
    set_command_line(service, &quoted)?;
    Ok(Some(quoted))
}

/// Sets the recovery actions (and the delayed start of an automatic
/// service) when the service has none; `Some(delayed start)` when it did.
fn set_recovery(
    service: &Service,
    config: &ServiceConfig,
) -> windows_service::Result<Option<bool>> {
    let has_recovery = service
        .get_failure_actions()?
        .actions
        .is_some_and(|actions| !actions.is_empty());
    if has_recovery {
        return Ok(None);
    }
    service.update_failure_actions(ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(FAILURE_COUNT_RESET),
        reboot_msg: None,
        command: None,
        actions: Some(
            RESTART_DELAYS
                .iter()
                .map(|delay| ServiceAction {
                    action_type: ServiceActionType::Restart,
                    delay: *delay,
                })
                .collect(),
        ),
    })?;
    // Also when the client stops itself with an error code, not only when
    // its process dies.
    service.set_failure_actions_on_non_crash_failures(true)?;
    let automatic = config.start_type == ServiceStartType::AutoStart;
    if automatic {
        service.set_delayed_auto_start(true)?;
    }
    Ok(Some(automatic))
}

/// ChangeServiceConfigW with only the command line changed (windows-service's
/// `change_config` rewrites every field).
fn set_command_line(service: &Service, command_line: &str) -> windows_service::Result<()> {
    use windows_sys::Win32::System::Services::{ChangeServiceConfigW, SERVICE_NO_CHANGE};

    let wide = wide(command_line);
    // SAFETY: the handle is open with SERVICE_CHANGE_CONFIG; `wide` is
    // NUL-terminated and outlives the call; null pointers leave the other
    // fields unchanged, as documented.
    let changed = unsafe {
        ChangeServiceConfigW(
            service.raw_handle() as _,
            SERVICE_NO_CHANGE,
            SERVICE_NO_CHANGE,
            SERVICE_NO_CHANGE,
            wide.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if changed == 0 {
        return Err(windows_service::Error::Winapi(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The variables of the install guide's proxy and trust set-up, as an admin
/// sets them for the whole system.
const SYSTEM_VARIABLES: [&str; 4] = ["https_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// Which of them [`adopt_system_variables`] took from the registry.
static ADOPTED: OnceLock<Vec<&'static str>> = OnceLock::new();

/// Takes the proxy and trust variables from the system environment in the
/// registry when the process lacks them. Windows hands a service the
/// environment the Service Control Manager had when it started (at boot),
/// so a variable an admin sets afterwards, as the install guide says, would
/// reach the service only after a reboot. Call it before any other thread
/// reads the environment; what it took is logged by
/// [`apply_recommended_configuration`] once logging runs.
pub fn adopt_system_variables() {
    let mut adopted = Vec::new();
    for name in SYSTEM_VARIABLES {
        // Environment names are case-insensitive on Windows.
        if std::env::var_os(name).is_some() {
            continue;
        }
        if let Some(value) = system_variable(name) {
            // SAFETY (of set_var): on Windows the environment is guarded by
            // the OS; this runs before the daemon starts its threads.
            unsafe { std::env::set_var(name, value) };
            adopted.push(name);
        }
    }
    let _ = ADOPTED.set(adopted);
}

/// A value of `HKLM\SYSTEM\CurrentControlSet\Control\Session Manager\Environment`.
fn system_variable(name: &str) -> Option<OsString> {
    use std::os::windows::ffi::OsStringExt;
    use windows_sys::Win32::Foundation::ERROR_SUCCESS;
    use windows_sys::Win32::System::Registry::{RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ};

    let key = wide(r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment");
    let value_name = wide(name);
    let mut buffer = vec![0u16; 4096];
    let mut bytes = (buffer.len() * 2) as u32;
    // SAFETY: NUL-terminated names; `buffer` holds `bytes` bytes.
    // RRF_RT_REG_SZ also takes a REG_EXPAND_SZ value, expanded (asking for
    // RRF_RT_REG_EXPAND_SZ without RRF_NOEXPAND is an invalid parameter).
    let result = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value_name.as_ptr(),
            RRF_RT_REG_SZ,
            std::ptr::null_mut(),
            buffer.as_mut_ptr().cast(),
            &mut bytes,
        )
    };
    if result != ERROR_SUCCESS {
        return None;
    }
    let length = (bytes as usize / 2).saturating_sub(1).min(buffer.len());
    buffer.truncate(length);
    let value = OsString::from_wide(&buffer);
    (!value.is_empty()).then_some(value)
}
