//! The state folder `<install>/state/`: what the client must remember across
//! restarts (credentials, installation id, cached assignment, and later the
//! spool and ledgers). Every file is written atomically and, on Unix, is
//! readable by the owner only.

#[cfg(windows)]
mod acl;
pub mod atomic;
pub mod credentials;
pub mod instance_lock;
pub mod origin;

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::report::Failure;

pub use atomic::{load_json, write_atomic, StateError};
pub use credentials::{Credentials, InstallationId};

/// Paths of the files in one state folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// `<install>/state`
    pub fn of_install_dir(install_dir: &Path) -> Self {
        StateDir::new(install_dir.join("state"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The install folder of a `<install>/state` folder.
    pub fn install_dir(&self) -> Option<&Path> {
        self.root.parent()
    }

    pub fn credentials(&self) -> PathBuf {
        self.root.join("credentials.json")
    }

    pub fn installation(&self) -> PathBuf {
        self.root.join("installation.json")
    }

    pub fn assignment(&self) -> PathBuf {
        self.root.join("assignment.json")
    }

    /// Items waiting for upload.
    pub fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// Items the cloud refused for good, each with a `.reason.txt`.
    pub fn rejected(&self) -> PathBuf {
        self.root.join("rejected")
    }

    /// The control channel's Unix domain socket.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// The control channel's named pipe on Windows. Pipes live in a
    /// namespace of their own, so the name is derived from this folder:
    /// each install folder, hence each instance, has its own.
    pub fn control_pipe_name(&self) -> String {
        let folder = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        // Windows paths are case-insensitive: one folder, one name.
        let key = folder.to_string_lossy().to_lowercase();
        let digest = sha2::Sha256::digest(key.as_bytes());
        format!(r"\\.\pipe\injixo-cloud-link-{}", &hex::encode(digest)[..16])
    }
}

/// Makes sure the state folder is this folder's own, not a copy of another
/// instance's ([`origin::claim`]), before anything reads it; a failure is
/// logged (a service has no console) and ends the command.
pub fn claim(state: &StateDir, install_dir: &Path) -> Result<(), Failure> {
    origin::claim(state, install_dir).map(drop).map_err(|e| {
        tracing::error!("cannot start: {}", crate::report::chain(&e));
        Failure::new(exitcode::CANTCREAT, e)
            .hint("the service's user must be able to write to the state folder")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_folder_has_its_own_control_pipe() {
        let first = StateDir::new("/opt/injixo-cloud-link/state").control_pipe_name();
        let second = StateDir::new("/opt/injixo-cloud-link-2/state").control_pipe_name();
        assert!(first.starts_with(r"\\.\pipe\injixo-cloud-link-"), "{first}");
        assert_eq!(first.len(), r"\\.\pipe\injixo-cloud-link-".len() + 16);
        assert_ne!(first, second);
        assert_eq!(
            StateDir::new("/OPT/Injixo-Cloud-Link/state").control_pipe_name(),
            first,
            "case does not matter"
        );
    }
}
