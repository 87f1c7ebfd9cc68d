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

/// `systemctl show -p ActiveState,UnitFileState,MainPID <unit>`.
pub fn show(unit: &str) -> io::Result<BTreeMap<String, String>> {
    let output = systemctl_checked(&["show", "-p", "ActiveState,UnitFileState,MainPID", unit])?;
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
