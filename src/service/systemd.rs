//! The unit files of an instance on disk, and `systemctl`.
//!
//! Test and packaging hooks: `INJIXO_CLOUD_LINK_SYSTEMD_DIR` replaces the
//! unit folder `/etc/systemd/system`, and `systemctl` is whatever `PATH`
//! finds first. service-manager always writes into `/etc/systemd/system`, so
//! with the folder replaced the unit is written here the way service-manager
//! writes it (0644, then `systemctl enable <path>`); with the default folder
//! service-manager writes it, from our own `contents`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use service_manager::{
    RestartPolicy, ServiceInstallCtx, ServiceLabel, ServiceManager, ServiceUninstallCtx,
    SystemdServiceManager,
};

use super::unit::{
    render_environment_file, render_proxy_drop_in, unit_install_dir, UnitError, PROXY_DROP_IN,
    PROXY_ENV_FILE, RESTART_SEC,
};

pub const UNIT_DIR_VAR: &str = "INJIXO_CLOUD_LINK_SYSTEMD_DIR";
pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";

/// Whose unit a unit file of our name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    No,
    /// It runs from this install folder.
    Ours,
    /// It runs from another folder (`None`: it does not say which).
    Other(Option<PathBuf>),
}

/// What an install needs besides the unit's text.
pub struct InstallRequest<'a> {
    pub label: ServiceLabel,
    pub unit: &'a str,
    pub contents: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub working_directory: PathBuf,
    /// Variables with credentials, for the root-only drop-in.
    pub secret_environment: &'a [(String, String)],
}

/// The unit folder.
#[derive(Debug, Clone)]
pub struct UnitDir {
    dir: PathBuf,
}

impl UnitDir {
    /// `$INJIXO_CLOUD_LINK_SYSTEMD_DIR`, else `/etc/systemd/system`.
    pub fn from_env() -> UnitDir {
        let dir = std::env::var_os(UNIT_DIR_VAR)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_UNIT_DIR));
        UnitDir { dir }
    }

    fn is_default(&self) -> bool {
        self.dir == Path::new(DEFAULT_UNIT_DIR)
    }

    pub fn unit_path(&self, unit: &str) -> PathBuf {
        self.dir.join(unit)
    }

    pub fn drop_in_dir(&self, unit: &str) -> PathBuf {
        self.dir.join(format!("{unit}.d"))
    }

    pub fn proxy_env_file(&self, unit: &str) -> PathBuf {
        self.drop_in_dir(unit).join(PROXY_ENV_FILE)
    }

    /// Whether `unit` exists, and for which install folder.
    pub fn installed(&self, unit: &str, install_dir: &Path) -> io::Result<Installed> {
        let text = match fs::read_to_string(self.unit_path(unit)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Installed::No),
            Err(e) => return Err(e),
        };
        Ok(match unit_install_dir(&text) {
            Some(dir) if same_folder(&dir, install_dir) => Installed::Ours,
            other => Installed::Other(other),
        })
    }

    /// Writes the credentials drop-in (or removes a stale one), then the
    /// unit, enables it and reloads systemd. Credentials first, so the unit
    /// never names a file that is not there yet.
    pub fn install(&self, request: InstallRequest) -> Result<(), InstallError> {
        self.write_secrets(request.unit, request.secret_environment)?;
        if self.is_default() {
            SystemdServiceManager::system()
                .install(ServiceInstallCtx {
                    label: request.label,
                    program: request.program,
                    args: request.args,
                    contents: Some(request.contents),
                    username: None,
                    working_directory: Some(request.working_directory),
                    environment: None,
                    autostart: true,
                    restart_policy: RestartPolicy::Always {
                        delay_secs: Some(RESTART_SEC),
                    },
                })
                .map_err(InstallError::Systemd)?;
        } else {
            let path = self.unit_path(request.unit);
            fs::create_dir_all(&self.dir).map_err(|e| InstallError::Write(self.dir.clone(), e))?;
            write_file(&path, request.contents.as_bytes(), 0o644)
                .map_err(|e| InstallError::Write(path.clone(), e))?;
            systemctl_checked(&["enable", &path.to_string_lossy()])
                .map_err(InstallError::Systemd)?;
        }
        Ok(())
    }

    /// Disables and removes the unit and its drop-in folder (only the
    /// files `install` writes; the folder only when then empty).
    pub fn uninstall(&self, label: ServiceLabel, unit: &str) -> Result<(), InstallError> {
        if self.is_default() {
            SystemdServiceManager::system()
                .uninstall(ServiceUninstallCtx { label })
                .map_err(InstallError::Systemd)?;
        } else {
            let path = self.unit_path(unit);
            systemctl_checked(&["disable", unit]).map_err(InstallError::Systemd)?;
            fs::remove_file(&path).map_err(|e| InstallError::Write(path.clone(), e))?;
        }
        self.remove_secrets(unit)
    }

    fn write_secrets(&self, unit: &str, secret: &[(String, String)]) -> Result<(), InstallError> {
        if secret.is_empty() {
            return self.remove_secrets(unit);
        }
        let dir = self.drop_in_dir(unit);
        let env_file = self.proxy_env_file(unit);
        fs::create_dir_all(&dir).map_err(|e| InstallError::Write(dir.clone(), e))?;
        let env_text = render_environment_file(secret)?;
        write_file(&env_file, env_text.as_bytes(), 0o600)
            .map_err(|e| InstallError::Write(env_file.clone(), e))?;
        let drop_in = dir.join(PROXY_DROP_IN);
        write_file(&drop_in, render_proxy_drop_in(&env_file)?.as_bytes(), 0o600)
            .map_err(|e| InstallError::Write(drop_in, e))
    }

    fn remove_secrets(&self, unit: &str) -> Result<(), InstallError> {
        let dir = self.drop_in_dir(unit);
        for name in [PROXY_DROP_IN, PROXY_ENV_FILE] {
            let path = dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(InstallError::Write(path, e)),
            }
        }
        // Drop-ins an admin added stay, and so does their folder.
        let _ = fs::remove_dir(&dir);
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot write {}", .0.display())]
    Write(PathBuf, #[source] io::Error),
    #[error("systemd refused")]
    Systemd(#[source] io::Error),
    #[error(transparent)]
    Unit(#[from] UnitError),
}

/// Creates or replaces `path` with `mode`: the mode is set on an existing
/// file too, so a drop-in made readable by hand becomes private again.
fn write_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.write_all(data)?;
    file.sync_all()
}

fn same_folder(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canonical(a) == canonical(b)
}

/// Runs `systemctl args…` (found on `PATH`), capturing its output.
pub fn systemctl(args: &[&str]) -> io::Result<Output> {
    Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
}

/// Like [`systemctl`]; a non-zero exit is an error quoting its stderr.
pub fn systemctl_checked(args: &[&str]) -> io::Result<Output> {
    let output = systemctl(args)?;
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(io::Error::other(format!(
        "`systemctl {}` failed ({}): {}",
        args.join(" "),
        output.status,
        stderr.trim()
    )))
}

/// The properties [`show`] asks for: the state, and how the last run ended.
pub const SHOWN_PROPERTIES: &str = "ActiveState,UnitFileState,MainPID,Result,ExecMainStatus";

/// `systemctl show -p <SHOWN_PROPERTIES> <unit>`.
pub fn show(unit: &str) -> io::Result<BTreeMap<String, String>> {
    let output = systemctl_checked(&["show", "-p", SHOWN_PROPERTIES, unit])?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// Whether systemd runs this machine (`sd_booted`): without it, units can
/// be installed and enabled but not started.
pub fn booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The exit code of a bad configuration (EX_CONFIG), which the unit's
/// `RestartPreventExitStatus=` keeps systemd from restarting.
const EXIT_CONFIG: &str = "78";

/// systemd's view of a unit in one line, from [`show`]'s properties: its
/// state and, when it is not running, why its last run ended. Without the
/// why, a unit that stopped for good on a bad configuration reads as
/// "failed" and nothing more.
pub fn describe(props: &BTreeMap<String, String>) -> String {
    let get = |k: &str| props.get(k).map(String::as_str).unwrap_or("unknown");
    let pid = match get("MainPID") {
        "0" | "unknown" => String::new(),
        pid => format!(", main PID {pid}"),
    };
    let mut line = format!("{}, {}{pid}", get("ActiveState"), get("UnitFileState"));
    let running = matches!(get("ActiveState"), "active" | "reloading" | "deactivating");
    let why = match (get("Result"), get("ExecMainStatus")) {
        _ if running => None,
        ("success" | "unknown", _) => None,
        ("exit-code", EXIT_CONFIG) => Some(format!(
            "the client ended with exit code {EXIT_CONFIG} (a configuration problem), so it is not restarted; \
             its log in the install folder says what to fix, then start the service again"
        )),
        ("exit-code", code) => Some(format!("the client ended with exit code {code}")),
        ("signal" | "core-dump", signal) => Some(format!("the client was killed by signal {signal}")),
        ("watchdog", _) => {
            Some("the watchdog killed the client: it stopped sending signs of life".to_owned())
        }
        ("timeout", _) => Some("systemd gave up waiting for the client to start or stop".to_owned()),
        ("start-limit-hit", _) => {
            Some("it was restarted too often, and systemd stopped trying".to_owned())
        }
        (result, _) => Some(format!("the last run ended with {result}")),
    };
    if let Some(why) = why {
        line.push_str(": ");
        line.push_str(&why);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_running_unit_shows_its_pid_and_no_reason() {
        let running = props(&[
            ("ActiveState", "active"),
            ("UnitFileState", "enabled"),
            ("MainPID", "42"),
            // Left from a restart: not a reason while it runs.
            ("Result", "watchdog"),
            ("ExecMainStatus", "0"),
        ]);
        assert_eq!(describe(&running), "active, enabled, main PID 42");
        let stopped = props(&[
            ("ActiveState", "inactive"),
            ("UnitFileState", "enabled"),
            ("MainPID", "0"),
            ("Result", "success"),
        ]);
        assert_eq!(describe(&stopped), "inactive, enabled");
    }

    #[test]
    fn a_failed_unit_says_why() {
        let failed = |result: &str, status: &str| {
            describe(&props(&[
                ("ActiveState", "failed"),
                ("UnitFileState", "enabled"),
                ("MainPID", "0"),
                ("Result", result),
                ("ExecMainStatus", status),
            ]))
        };
        let config = failed("exit-code", "78");
        assert!(
            config.starts_with("failed, enabled: the client ended with exit code 78 (a configuration problem), so it is not restarted;"),
            "{config}"
        );
        assert_eq!(
            failed("exit-code", "70"),
            "failed, enabled: the client ended with exit code 70"
        );
        assert!(failed("signal", "9").ends_with("killed by signal 9"));
        assert!(failed("watchdog", "6").contains("the watchdog killed the client"));
        assert!(failed("start-limit-hit", "1").contains("restarted too often"));
        assert!(failed("resources", "0").ends_with("ended with resources"));
        assert_eq!(describe(&BTreeMap::new()), "unknown, unknown");
    }
}
