//! `--data-dir`: the state as one JSON file plus one file per stored object.
//!
//! Every write goes to a temporary file that is fsynced and then renamed over
//! the old one, so a crash leaves either the old or the new state, never half.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::state::State;

const STATE_FILE: &str = "state.json";
const OBJECTS_DIR: &str = "objects";

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} is not a state file of this emulator: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_error<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

pub struct DataDir {
    dir: PathBuf,
    /// Generation of the snapshot on disk: a slower writer holding an older
    /// snapshot must not overwrite a newer one.
    written_generation: Mutex<u64>,
}

impl DataDir {
    pub fn open(dir: &Path) -> Result<Self, PersistError> {
        fs::create_dir_all(dir.join(OBJECTS_DIR)).map_err(io_error("create", dir))?;
        Ok(DataDir {
            dir: dir.to_owned(),
            written_generation: Mutex::new(0),
        })
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.dir.join(OBJECTS_DIR)
    }

    pub fn load(&self) -> Result<Option<State>, PersistError> {
        let path = self.dir.join(STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| PersistError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path)(e)),
        }
    }

    /// Writes a snapshot taken at `generation` unless a newer one is on disk.
    pub fn save(&self, generation: u64, snapshot: &[u8]) -> Result<(), PersistError> {
        let mut written = self
            .written_generation
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *written >= generation {
            return Ok(());
        }
        write_atomically(&self.dir.join(STATE_FILE), snapshot)?;
        *written = generation;
        Ok(())
    }
}

/// temp file, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), PersistError> {
    let temp = temp_path(path);
    let mut file = File::create(&temp).map_err(io_error("create", &temp))?;
    file.write_all(contents).map_err(io_error("write", &temp))?;
    file.sync_all().map_err(io_error("fsync", &temp))?;
    drop(file);
    commit_temp_file(&temp, path)
}

/// Renames a written and fsynced temp file into place and makes the rename durable.
pub fn commit_temp_file(temp: &Path, path: &Path) -> Result<(), PersistError> {
    fs::rename(temp, path).map_err(io_error("rename", temp))?;
    if let Some(parent) = path.parent() {
        // Directory fsync is what makes the rename itself survive a power cut.
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert!(data.load().unwrap().is_none());
        let state = State::default();
        let key = state.url_signing_key().to_owned();
        data.save(1, &serde_json::to_vec(&state).unwrap()).unwrap();
        let loaded = data.load().unwrap().unwrap();
        assert_eq!(loaded.url_signing_key(), key);
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn an_older_snapshot_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        data.save(2, b"{\"new\":1}").unwrap();
        data.save(1, b"{\"old\":1}").unwrap();
        let on_disk = fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert_eq!(on_disk, "{\"new\":1}");
    }

    #[test]
    fn a_corrupt_state_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"not json").unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert!(matches!(data.load(), Err(PersistError::Corrupt { .. })));
    }
}
