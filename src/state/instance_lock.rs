//! One running client per install folder. Two processes sharing a state
//! folder would upload the same spool items and race on the ledgers, so
//! `run` takes an exclusive OS lock on `state/injixo-cloud-link.lock` before
//! it touches anything else (even the log: a refused second start must not
//! rotate the first one's log).
//!
//! The OS releases the lock when the process dies, so a crash never leaves a
//! stale lock behind. The file's content (PID, start time) only serves the
//! error message of a refused start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE_NAME: &str = "injixo-cloud-link.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another injixo Cloud Link is already running from this folder ({holder}); \
         lock file {path}"
    )]
    Held { path: PathBuf, holder: String },
    #[error("cannot create or lock {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held for the life of the process; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock in `state_dir`, creating the folder if needed.
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, LockError> {
        let path = state_dir.join(LOCK_FILE_NAME);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        create_private_dir(state_dir).map_err(io)?;
        // Owner-only like every file in state/ (it only holds a pid, but one
        // rule for the whole folder is easier to check).
        let mut file = super::atomic::owner_only(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .open(&path)
        .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    holder: if holder.is_empty() {
                        "process unknown".to_owned()
                    } else {
                        holder.to_owned()
                    },
                    path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = format!(
            "pid {}, started {}",
            std::process::id(),
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S%:z")
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(holder.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(InstanceLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the state folder readable by its owner only (Unix), since it
/// holds credentials and the control socket.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = InstanceLock::acquire(&state).unwrap();
        let err = InstanceLock::acquire(&state).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("already running"), "{message}");
        drop(first);
        InstanceLock::acquire(&state).expect("released on drop");
    }
}
