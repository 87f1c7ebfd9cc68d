//! `injixo-cloud-link service install | uninstall | start | stop | restart |
//! status`: the instance as an OS service named after its `[app] name`
//! (see `crate::service`). On systemd the unit is our own
//! (`crate::service::unit`); other service managers (launchd, OpenRC) get
//! service-manager's defaults.

use std::path::{Path, PathBuf};

use clap::Subcommand;

#[cfg(unix)]
use crate::config::Config;
use crate::config::FILE_NAME;
use crate::report::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ServiceAction {
    /// Install the service from this folder, started at boot (needs root).
    Install,
    /// Stop and remove this folder's service (needs root).
    Uninstall,
    /// Start the service (needs root).
    Start,
    /// Stop the service (needs root).
    Stop,
    /// Restart the service, for example after a configuration change (needs root).
    Restart,
    /// Show the service manager's view, then the client's own status.
    Status,
}

impl ServiceAction {
    fn word(self) -> &'static str {
        match self {
            ServiceAction::Install => "install",
            ServiceAction::Uninstall => "uninstall",
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Status => "status",
        }
    }

    fn needs_root(self) -> bool {
        self != ServiceAction::Status
    }
}

pub fn run(config_path: &Path, action: ServiceAction) -> Result<i32, Failure> {
    let invocation = Invocation::current(config_path);
    if action.needs_root() {
        require_root(effective_uid(), action, &invocation)?;
    }
    platform::run(config_path, action, &invocation)
}

/// How the admin called us, to write commands they can paste:
/// `sudo ./injixo-cloud-link service start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program as typed (`./injixo-cloud-link`).
    pub program: String,
    /// `--config PATH` when the configuration is not the one beside the
    /// program, so the pasted command finds the same instance.
    pub config: Option<PathBuf>,
}

impl Invocation {
    fn current(config_path: &Path) -> Invocation {
        let program = std::env::args_os()
            .next()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| "injixo-cloud-link".to_owned());
        let beside_exe = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join(FILE_NAME)));
        let config = std::path::absolute(config_path).unwrap_or_else(|_| config_path.into());
        let config = (beside_exe.as_deref() != Some(config.as_path())).then_some(config);
        Invocation { program, config }
    }

    /// `sudo <program> [--config PATH] <args>`.
    pub fn sudo(&self, args: &str) -> String {
        let mut out = format!("sudo {}", shell_word(&self.program));
        if let Some(config) = &self.config {
            out.push_str(" --config ");
            out.push_str(&shell_word(&config.to_string_lossy()));
        }
        out.push(' ');
        out.push_str(args);
        out
    }
}

fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(unix)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

#[cfg(not(unix))]
fn effective_uid() -> u32 {
    0
}

/// Refuses a command that changes the system's services unless run by root
/// (EX_NOPERM, 77), saying exactly what to type instead.
pub fn require_root(
    euid: u32,
    action: ServiceAction,
    invocation: &Invocation,
) -> Result<(), Failure> {
    if euid == 0 || !action.needs_root() {
        return Ok(());
    }
    let command = invocation.sudo(&format!("service {}", action.word()));
    Err(Failure::new(
        exitcode::NOPERM,
        format!(
            "`service {}` changes the system's services and needs root: run it with sudo: {command}",
            action.word()
        ),
    ))
}

/// The instance the command is about. (On Windows the MSI installs the
/// service and this command only says so.)
#[cfg(unix)]
struct Target {
    config: Config,
    config_file: PathBuf,
    install_dir: PathBuf,
    exe: PathBuf,
}

#[cfg(unix)]
impl Target {
    fn resolve(config_path: &Path) -> Result<Target, Failure> {
        let absolute = std::path::absolute(config_path).map_err(|e| {
            Failure::new(exitcode::OSERR, e).hint("give the configuration file with --config PATH")
        })?;
        let config = Config::load(&absolute)?;
        // Symlinks resolved, so that two paths to one folder are one instance.
        let install_dir = std::fs::canonicalize(&config.install_dir).map_err(|e| {
            Failure::new(
                exitcode::NOINPUT,
                format!(
                    "the install folder {} is not accessible",
                    config.install_dir.display()
                ),
            )
            .hint(e.to_string())
        })?;
        let config_file = install_dir.join(absolute.file_name().unwrap_or(FILE_NAME.as_ref()));
        let exe = std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .map_err(|e| Failure::new(exitcode::OSERR, e))?;
        Ok(Target {
            config,
            config_file,
            install_dir,
            exe,
        })
    }

    #[cfg(target_os = "linux")]
    fn import_dir(&self) -> PathBuf {
        std::fs::canonicalize(&self.config.app.import_directory)
            .unwrap_or_else(|_| self.config.app.import_directory.clone())
    }
}

/// How to get out of a name clash: a unique `[app] name`, in the folder's
/// configuration file.
#[cfg(target_os = "linux")]
fn name_hint(target: &Target) -> String {
    format!(
        "give this instance a unique name in {}, for example\n    [app]\n    name = \"{}\"\n  then install again",
        target.config_file.display(),
        next_instance_name(&target.config.app.name)
    )
}

/// `com.injixo.cloud-link` → `com.injixo.cloud-link.instance.1`,
/// `….instance.1` → `….instance.2` (the original client's naming).
#[cfg(any(target_os = "linux", test))]
fn next_instance_name(name: &str) -> String {
    if let Some((base, n)) = name.rsplit_once(".instance.") {
        if let Ok(n) = n.parse::<u32>() {
            return format!("{base}.instance.{}", n + 1);
        }
    }
    format!("{name}.instance.1")
}

#[cfg(not(unix))]
mod platform {
    use super::*;

    pub fn run(_: &Path, _: ServiceAction, _: &Invocation) -> Result<i32, Failure> {
        Err(Failure::new(
            exitcode::UNAVAILABLE,
            "the `service` command is not supported on this platform yet",
        )
        .hint("install the client with its installer (MSI) instead"))
    }
}

#[cfg(unix)]
mod platform {
    use service_manager::{
        RestartPolicy, ServiceInstallCtx, ServiceManager, ServiceManagerKind, ServiceStartCtx,
        ServiceStatus, ServiceStatusCtx, ServiceStopCtx, ServiceUninstallCtx, TypedServiceManager,
    };

    use super::*;
    use crate::service::label;

    pub fn run(
        config_path: &Path,
        action: ServiceAction,
        invocation: &Invocation,
    ) -> Result<i32, Failure> {
        let target = Target::resolve(config_path)?;
        let kind = ServiceManagerKind::native().map_err(|e| {
            Failure::new(
                exitcode::UNAVAILABLE,
                format!("no supported service manager found: {e}"),
            )
            .hint("run `injixo-cloud-link run` from your own init system instead")
        })?;
        #[cfg(target_os = "linux")]
        if kind == ServiceManagerKind::Systemd {
            return super::systemd::run(&target, action, invocation);
        }
        generic(&target, kind, action, invocation)
    }

    /// launchd, OpenRC, rc.d: service-manager's own service definition.
    fn generic(
        target: &Target,
        kind: ServiceManagerKind,
        action: ServiceAction,
        invocation: &Invocation,
    ) -> Result<i32, Failure> {
        let manager = TypedServiceManager::target(kind);
        let label = label(&target.config.app.name);
        let os_failure = |e: std::io::Error| Failure::new(exitcode::UNAVAILABLE, e);
        match action {
            ServiceAction::Install => {
                manager
                    .install(ServiceInstallCtx {
                        label: label.clone(),
                        program: target.exe.clone(),
                        args: vec![
                            "run".into(),
                            "--config".into(),
                            target.config_file.clone().into_os_string(),
                        ],
                        contents: None,
                        username: None,
                        working_directory: Some(target.install_dir.clone()),
                        environment: None,
                        autostart: true,
                        restart_policy: RestartPolicy::Always {
                            delay_secs: Some(crate::service::unit::RESTART_SEC),
                        },
                    })
                    .map_err(os_failure)?;
                println!("installed the service {label} ({kind:?})");
                print_next_steps(invocation);
            }
            ServiceAction::Uninstall => {
                let _ = manager.stop(ServiceStopCtx {
                    label: label.clone(),
                });
                manager
                    .uninstall(ServiceUninstallCtx {
                        label: label.clone(),
                    })
                    .map_err(os_failure)?;
                println!("removed the service {label}");
            }
            ServiceAction::Start => {
                manager
                    .start(ServiceStartCtx {
                        label: label.clone(),
                    })
                    .map_err(os_failure)?;
                println!("started the service {label}");
            }
            ServiceAction::Stop => {
                manager
                    .stop(ServiceStopCtx {
                        label: label.clone(),
                    })
                    .map_err(os_failure)?;
                println!("stopped the service {label}");
            }
            ServiceAction::Restart => {
                let _ = manager.stop(ServiceStopCtx {
                    label: label.clone(),
                });
                manager
                    .start(ServiceStartCtx {
                        label: label.clone(),
                    })
                    .map_err(os_failure)?;
                println!("restarted the service {label}");
            }
            ServiceAction::Status => {
                let state = match manager.status(ServiceStatusCtx {
                    label: label.clone(),
                }) {
                    Ok(ServiceStatus::NotInstalled) => "not installed".to_owned(),
                    Ok(ServiceStatus::Running) => "running".to_owned(),
                    Ok(ServiceStatus::Stopped(reason)) => match reason {
                        Some(reason) => format!("stopped ({reason})"),
                        None => "stopped".to_owned(),
                    },
                    Err(e) => format!("unknown ({e})"),
                };
                println!("{:<12} {label}: {state}", "service:");
                return crate::commands::status::run(&target.config_file, false);
            }
        }
        Ok(exitcode::OK)
    }
}

#[cfg(unix)]
fn print_next_steps(invocation: &Invocation) {
    println!("next:");
    println!("  start it:     {}", invocation.sudo("service start"));
    println!("  get the PIN:  {}", invocation.sudo("pin"));
    println!("  check it:     {}", invocation.sudo("service status"));
}

#[cfg(target_os = "linux")]
mod systemd {
    use std::ffi::OsString;

    use super::*;
    use crate::http::proxy::redact_url;
    use crate::service::systemd::{self as units, InstallRequest, Installed, UnitDir};
    use crate::service::unit::{render_unit, split_environment, UnitSpec};
    use crate::service::{label, systemd_unit_name};

    pub fn run(
        target: &Target,
        action: ServiceAction,
        invocation: &Invocation,
    ) -> Result<i32, Failure> {
        let dir = UnitDir::from_env();
        let unit = systemd_unit_name(&target.config.app.name);
        let installed = dir.installed(&unit, &target.install_dir).map_err(|e| {
            Failure::new(
                exitcode::IOERR,
                format!("cannot read the unit {}", dir.unit_path(&unit).display()),
            )
            .hint(e.to_string())
        })?;
        if let Installed::Other(folder) = &installed {
            if action != ServiceAction::Status {
                return Err(not_ours(target, &dir, &unit, folder.as_deref(), action));
            }
        }
        match action {
            ServiceAction::Install => install(target, &dir, &unit, &installed, invocation),
            ServiceAction::Uninstall => uninstall(target, &dir, &unit, &installed),
            ServiceAction::Start | ServiceAction::Stop | ServiceAction::Restart => {
                if installed == Installed::No {
                    return Err(Failure::new(
                        exitcode::UNAVAILABLE,
                        format!("the service {unit} is not installed"),
                    )
                    .hint(format!(
                        "install it first: {}",
                        invocation.sudo("service install")
                    )));
                }
                units::systemctl_checked(&[action.word(), &unit]).map_err(|e| {
                    Failure::new(exitcode::UNAVAILABLE, e).hint(format!(
                        "see `journalctl -u {unit}` and the log in {}",
                        target.install_dir.display()
                    ))
                })?;
                let done = match action {
                    ServiceAction::Start => "started",
                    ServiceAction::Stop => "stopped",
                    _ => "restarted",
                };
                println!("{done} the service {unit}");
                if action != ServiceAction::Stop {
                    println!("get the PIN: {}", invocation.sudo("pin"));
                }
                Ok(exitcode::OK)
            }
            ServiceAction::Status => status(target, &dir, &unit, &installed),
        }
    }

    fn not_ours(
        target: &Target,
        dir: &UnitDir,
        unit: &str,
        folder: Option<&Path>,
        action: ServiceAction,
    ) -> Failure {
        let whose = match folder {
            Some(folder) => format!("the install folder {}", folder.display()),
            None => "another program (it names no install folder)".to_owned(),
        };
        Failure::new(
            exitcode::CONFIG,
            format!(
                "cannot {} the service {unit}: {} belongs to {whose}, not to {}",
                action.word(),
                dir.unit_path(unit).display(),
                target.install_dir.display()
            ),
        )
        .hint(if action == ServiceAction::Install {
            name_hint(target)
        } else {
            format!(
                "run the command from that folder, or check `[app] name` in {}",
                target.config_file.display()
            )
        })
    }

    fn install(
        target: &Target,
        dir: &UnitDir,
        unit: &str,
        installed: &Installed,
        invocation: &Invocation,
    ) -> Result<i32, Failure> {
        let (public, secret) = split_environment(|name| std::env::var(name).ok());
        let spec = UnitSpec {
            app_name: target.config.app.name.clone(),
            exe: target.exe.clone(),
            config: target.config_file.clone(),
            install_dir: target.install_dir.clone(),
            import_dir: target.import_dir(),
            environment: public.clone(),
        };
        let contents = render_unit(&spec).map_err(|e| Failure::new(exitcode::DATAERR, e))?;
        dir.install(InstallRequest {
            label: label(&target.config.app.name),
            unit,
            contents,
            program: target.exe.clone(),
            args: vec![
                OsString::from("run"),
                OsString::from("--config"),
                target.config_file.clone().into_os_string(),
            ],
            working_directory: target.install_dir.clone(),
            secret_environment: &secret,
        })
        .map_err(|e| Failure::new(exitcode::CANTCREAT, e))?;
        reload();

        let verb = if *installed == Installed::Ours {
            "reinstalled"
        } else {
            "installed"
        };
        println!(
            "{verb} the service {unit} ({}), started at boot",
            dir.unit_path(unit).display()
        );
        println!(
            "  runs: {} run --config {}",
            target.exe.display(),
            target.config_file.display()
        );
        for (name, value) in &public {
            println!("  keeps {name}={value}");
        }
        if !secret.is_empty() {
            println!(
                "  keeps, readable by root only in {}:",
                dir.proxy_env_file(unit).display()
            );
            for (name, value) in &secret {
                println!("    {name}={}", redact_url(value));
            }
        }
        if public.is_empty() && secret.is_empty() {
            println!("  no proxy: https_proxy was not set for this command (`sudo` reads /etc/environment)");
        }
        if !units::booted() {
            println!("note: systemd does not run this machine, so the service cannot start here");
        }
        if *installed == Installed::Ours && active(unit) {
            println!(
                "it is running: restart it to apply the new unit: {}",
                invocation.sudo("service restart")
            );
        } else {
            print_next_steps(invocation);
        }
        Ok(exitcode::OK)
    }

    fn uninstall(
        target: &Target,
        dir: &UnitDir,
        unit: &str,
        installed: &Installed,
    ) -> Result<i32, Failure> {
        if *installed == Installed::No {
            println!(
                "the service {unit} is not installed ({} does not exist): nothing to do",
                dir.unit_path(unit).display()
            );
            return Ok(exitcode::OK);
        }
        // An uninstalled unit that still runs would hold the instance lock
        // with nothing left to stop it.
        if let Err(e) = units::systemctl_checked(&["stop", unit]) {
            eprintln!("warning: {e}");
        }
        dir.uninstall(label(&target.config.app.name), unit)
            .map_err(|e| Failure::new(exitcode::CANTCREAT, e))?;
        reload();
        println!(
            "removed the service {unit}; the install folder {} is left as it is",
            target.install_dir.display()
        );
        Ok(exitcode::OK)
    }

    fn status(
        target: &Target,
        dir: &UnitDir,
        unit: &str,
        installed: &Installed,
    ) -> Result<i32, Failure> {
        let os_view = match installed {
            Installed::No => "not installed".to_owned(),
            Installed::Other(folder) => format!(
                "belongs to another install folder ({})",
                folder
                    .as_deref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| "unknown".to_owned())
            ),
            Installed::Ours => match units::show(unit) {
                Ok(props) => units::describe(&props),
                Err(e) => format!("unknown: {e}"),
            },
        };
        println!(
            "{:<12} {unit} ({}): {os_view}",
            "service:",
            dir.unit_path(unit).display()
        );
        crate::commands::status::run(&target.config_file, false)
    }

    fn active(unit: &str) -> bool {
        units::show(unit).is_ok_and(|p| {
            p.get("ActiveState")
                .is_some_and(|s| s == "active" || s == "activating" || s == "reloading")
        })
    }

    /// A failed reload is not fatal (`systemctl enable` reloads too, and a
    /// machine without systemd running has nothing to reload).
    fn reload() {
        if let Err(e) = units::systemctl_checked(&["daemon-reload"]) {
            eprintln!("warning: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            program: "./injixo-cloud-link".to_owned(),
            config: None,
        }
    }

    #[test]
    fn changing_commands_need_root() {
        for action in [
            ServiceAction::Install,
            ServiceAction::Uninstall,
            ServiceAction::Start,
            ServiceAction::Stop,
            ServiceAction::Restart,
        ] {
            assert!(require_root(0, action, &invocation()).is_ok());
            let failure = require_root(1000, action, &invocation()).unwrap_err();
            assert_eq!(failure.code, 77);
            let shown = failure.to_string();
            assert!(
                shown.contains(&format!(
                    "run it with sudo: sudo ./injixo-cloud-link service {}",
                    action.word()
                )),
                "{shown}"
            );
        }
        assert!(require_root(1000, ServiceAction::Status, &invocation()).is_ok());
    }

    #[test]
    fn suggests_the_next_instance_name() {
        assert_eq!(
            next_instance_name("com.injixo.cloud-link"),
            "com.injixo.cloud-link.instance.1"
        );
        assert_eq!(
            next_instance_name("com.injixo.cloud-link.instance.1"),
            "com.injixo.cloud-link.instance.2"
        );
    }

    #[test]
    fn pasted_commands_find_the_same_instance() {
        let custom = Invocation {
            program: "/opt/my icl/injixo-cloud-link".to_owned(),
            config: Some(PathBuf::from("/etc/icl/it's.toml")),
        };
        assert_eq!(
            custom.sudo("pin"),
            "sudo '/opt/my icl/injixo-cloud-link' --config '/etc/icl/it'\\''s.toml' pin"
        );
        assert_eq!(
            invocation().sudo("service start"),
            "sudo ./injixo-cloud-link service start"
        );
    }
}
