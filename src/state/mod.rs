//! The state folder `<install>/state/`: what the client must remember across
//! restarts (credentials, installation id, cached assignment, and later the
//! spool and ledgers). Every file is written atomically and, on Unix, is
//! readable by the owner only.

pub mod atomic;
pub mod credentials;
pub mod origin;

use std::path::{Path, PathBuf};

pub use atomic::write_atomic;
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
}
