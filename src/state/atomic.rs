//! Crash-safe file replacement: a reader (or the client after a power loss)
//! sees the old content or the new, never a mix or a truncated file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// fsync, rename over `path`, fsync of the folder. On Unix the file is created
/// with mode 0600 (owner only), so secrets are never readable by others, not
/// even for an instant.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_restricted(path, bytes, false)
}

/// [`write_atomic`] for a file that holds secrets (the credentials): on
/// Windows it is readable by SYSTEM and Administrators only, set before the
/// secret is written. On Unix every state file is owner-only already.
pub fn write_secret_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    write_atomic_restricted(path, &json_bytes(value)?, true)
}

fn write_atomic_restricted(path: &Path, bytes: &[u8], secret: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no folder"))?;
    fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file =
            owner_only(OpenOptions::new().write(true).create(true).truncate(true)).open(&tmp)?;
        if secret {
            restrict_secret(&tmp)?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    write_atomic(path, &json_bytes(value)?)
}

fn json_bytes<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The ACL of a secret's file on Windows (`super::acl`).
#[cfg(windows)]
fn restrict_secret(file: &Path) -> io::Result<()> {
    super::acl::restrict_to_system_and_administrators(file)
}

/// Unix: the 0600 mode every state file is created with covers secrets.
#[cfg(not(windows))]
fn restrict_secret(_file: &Path) -> io::Result<()> {
    Ok(())
}

/// Files the client creates in its state folder are readable by their owner
/// only (Unix mode 0600).
#[cfg(unix)]
pub fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600)
}

#[cfg(not(unix))]
pub fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    // Windows: files inherit the install folder's ACL (the MSI's); the
    // credentials get their own (`write_secret_json_atomic`).
    options
}

/// Makes a rename durable: without it a power loss can undo the rename.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    // NTFS journals metadata; a directory cannot be opened for fsync there.
    Ok(())
}

/// Reading or writing a state file failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is damaged ({detail}); it was moved aside to {moved_to}")]
    Damaged {
        path: PathBuf,
        detail: String,
        moved_to: PathBuf,
    },
}

/// Reads a JSON state file; a missing file is `None`, a damaged one is moved
/// aside to `<name>.damaged-<timestamp>` and reported.
pub fn load_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(Some(value)),
        Err(e) => {
            let moved_to = path.with_extension(format!(
                "json.damaged-{}",
                Utc::now().format("%Y%m%dT%H%M%S")
            ));
            std::fs::rename(path, &moved_to).map_err(|source| StateError::Write {
                path: path.to_path_buf(),
                source,
            })?;
            Err(StateError::Damaged {
                path: path.to_path_buf(),
                detail: e.to_string(),
                moved_to,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("x.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.json");
        write_atomic(&path, b"{}").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
