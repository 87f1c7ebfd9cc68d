//! Whose state folder is this? The install guide's way to a second instance
//! is to copy the files of the running instance's folder, `state/` included,
//! and give the copy its own `[app] name`. Taken as is, the copy would run
//! with the original's link: both would import into one integration, and the
//! first token refresh (refresh tokens rotate) would unlink one of them.
//!
//! So `installation.json` records the folder it was created in. At start, a
//! state folder whose recorded folder still holds the same installation is
//! a copy: its content is set aside (never deleted) and the copy pairs as a
//! new client. A folder that was moved (the recorded one is gone, or holds
//! another installation) keeps its link.

use std::io;
use std::path::{Path, PathBuf};

use chrono::Utc;
use tracing::{info, warn};

use super::atomic::write_json_atomic;
use super::atomic::{load_json, StateError};
use super::credentials::InstallationId;
use super::instance_lock::{create_private_dir, LOCK_FILE_NAME};
use super::StateDir;

/// What a state folder turned out to be at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// No installation yet: a first start.
    Fresh,
    /// Created in this folder.
    Ours,
    /// Written before folders were recorded; from now on it is this folder's.
    Adopted,
    /// The folder was moved or renamed from `from`, which no longer holds it.
    Moved { from: PathBuf },
    /// Copied from `from`, which still runs (or can run) with it; the copied
    /// content was moved to `set_aside`.
    Copied { from: PathBuf, set_aside: PathBuf },
}

/// The decision, from what was read: the folder recorded in this state's
/// installation, this folder, and the installation id the recorded folder
/// holds now (if it still exists and holds one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ours,
    Adopt,
    Moved,
    Copied,
}

pub fn judge(
    recorded: Option<&Path>,
    here: &Path,
    our_id: &str,
    id_at_recorded: Option<&str>,
) -> Verdict {
    match recorded {
        None => Verdict::Adopt,
        Some(recorded) if recorded == here => Verdict::Ours,
        Some(_) if id_at_recorded == Some(our_id) => Verdict::Copied,
        Some(_) => Verdict::Moved,
    }
}

/// Makes the state folder of `install_dir` this folder's own (see the
/// module comment) and logs what it found. Called with the instance lock
/// held, before anything reads the credentials.
pub fn claim(state: &StateDir, install_dir: &Path) -> Result<Origin, StateError> {
    let path = state.installation();
    let Some(mut installation) = load_json::<InstallationId>(&path)? else {
        return Ok(Origin::Fresh);
    };
    let here = std::fs::canonicalize(install_dir).unwrap_or_else(|_| install_dir.to_path_buf());
    let recorded = installation.install_dir.clone();
    let id_at_recorded = recorded.as_deref().and_then(installation_id_in);
    let verdict = judge(
        recorded.as_deref(),
        &here,
        &installation.installation_id,
        id_at_recorded.as_deref(),
    );
    let write_error = |source| StateError::Write {
        path: path.clone(),
        source,
    };
    match (verdict, recorded) {
        (Verdict::Ours, _) => Ok(Origin::Ours),
        (Verdict::Adopt, _) => {
            installation.install_dir = Some(here);
            write_json_atomic(&path, &installation).map_err(write_error)?;
            Ok(Origin::Adopted)
        }
        (Verdict::Moved, from) => {
            let from = from.expect("a move has a recorded folder");
            installation.install_dir = Some(here.clone());
            write_json_atomic(&path, &installation).map_err(write_error)?;
            info!(
                "the install folder moved from {} to {}; keeping its link and state",
                from.display(),
                here.display()
            );
            Ok(Origin::Moved { from })
        }
        (Verdict::Copied, from) => {
            let from = from.expect("a copy has a recorded folder");
            let set_aside = set_aside(state, &here).map_err(|source| StateError::Write {
                path: state.root().to_path_buf(),
                source,
            })?;
            warn!(
                "the state folder was copied from {} (another instance, which keeps its link); \
                 its copy was moved to {} and this instance starts unlinked: link it to its \
                 own integration with a PIN",
                from.display(),
                set_aside.display()
            );
            Ok(Origin::Copied { from, set_aside })
        }
    }
}

/// The installation id held by the install folder `dir` now, read without
/// touching its files (a damaged one is simply no answer).
fn installation_id_in(dir: &Path) -> Option<String> {
    let bytes = std::fs::read(StateDir::of_install_dir(dir).installation()).ok()?;
    let installation: InstallationId = serde_json::from_slice(&bytes).ok()?;
    Some(installation.installation_id)
}

/// Moves everything in the state folder but the lock we hold into
/// `<install>/state.copied-<timestamp>/`.
fn set_aside(state: &StateDir, install_dir: &Path) -> io::Result<PathBuf> {
    let target = install_dir.join(format!(
        "state.copied-{}",
        Utc::now().format("%Y%m%dT%H%M%S")
    ));
    // It holds the other instance's credentials: as private as `state/`.
    create_private_dir(&target)?;
    for entry in std::fs::read_dir(state.root())? {
        let entry = entry?;
        if entry.file_name() == LOCK_FILE_NAME {
            continue;
        }
        std::fs::rename(entry.path(), target.join(entry.file_name()))?;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_follows_the_recorded_folder() {
        let (a, b) = (Path::new("/opt/a"), Path::new("/opt/b"));
        assert_eq!(judge(None, a, "id1", None), Verdict::Adopt);
        assert_eq!(judge(Some(a), a, "id1", Some("id1")), Verdict::Ours);
        assert_eq!(judge(Some(a), b, "id1", Some("id1")), Verdict::Copied);
        assert_eq!(judge(Some(a), b, "id1", None), Verdict::Moved);
        assert_eq!(judge(Some(a), b, "id1", Some("id2")), Verdict::Moved);
    }

    /// An install folder whose state holds an installation and a link.
    fn linked_folder(root: &Path, name: &str) -> (PathBuf, StateDir) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let dir = std::fs::canonicalize(dir).unwrap();
        let state = StateDir::of_install_dir(&dir);
        InstallationId::load_or_create(&state.installation(), Some(&dir)).unwrap();
        std::fs::write(state.credentials(), "{}").unwrap();
        (dir, state)
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }

    #[test]
    fn a_copy_sets_the_original_state_aside_and_the_original_keeps_it() {
        let root = tempfile::tempdir().unwrap();
        let (original, original_state) = linked_folder(root.path(), "a");
        let copy = root.path().join("b");
        copy_dir(original_state.root(), &copy.join("state"));
        std::fs::write(copy.join("state").join(LOCK_FILE_NAME), "").unwrap();
        let copy_state = StateDir::of_install_dir(&copy);

        let origin = claim(&copy_state, &copy).unwrap();
        let Origin::Copied { from, set_aside } = origin else {
            panic!("{origin:?}")
        };
        assert_eq!(from, original);
        assert!(
            !copy_state.credentials().exists(),
            "the copy starts unlinked"
        );
        assert!(!copy_state.installation().exists());
        assert!(copy_state.root().join(LOCK_FILE_NAME).exists());
        assert!(
            set_aside.join("credentials.json").exists(),
            "set aside, not lost"
        );
        assert!(set_aside.starts_with(std::fs::canonicalize(&copy).unwrap()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&set_aside).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "private like state/");
        }

        // The copy's new installation is its own from then on.
        let id = InstallationId::load_or_create(&copy_state.installation(), Some(&copy)).unwrap();
        assert_eq!(claim(&copy_state, &copy).unwrap(), Origin::Ours);
        assert_ne!(
            Some(id.installation_id),
            installation_id_in(&original),
            "a new identity"
        );
        assert_eq!(claim(&original_state, &original).unwrap(), Origin::Ours);
        assert!(original_state.credentials().exists());
    }

    #[test]
    fn a_moved_folder_keeps_its_link_and_records_its_new_place() {
        let root = tempfile::tempdir().unwrap();
        let (original, _) = linked_folder(root.path(), "a");
        let moved = root.path().join("b");
        std::fs::rename(&original, &moved).unwrap();
        let moved = std::fs::canonicalize(moved).unwrap();
        let state = StateDir::of_install_dir(&moved);

        assert_eq!(
            claim(&state, &moved).unwrap(),
            Origin::Moved { from: original }
        );
        assert!(state.credentials().exists());
        assert_eq!(claim(&state, &moved).unwrap(), Origin::Ours);
    }

    #[test]
    fn state_of_older_versions_is_adopted_and_a_fresh_folder_is_fresh() {
        let root = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(root.path()).unwrap();
        let state = StateDir::of_install_dir(&dir);
        assert_eq!(claim(&state, &dir).unwrap(), Origin::Fresh);
        InstallationId::load_or_create(&state.installation(), None).unwrap();
        assert_eq!(claim(&state, &dir).unwrap(), Origin::Adopted);
        assert_eq!(claim(&state, &dir).unwrap(), Origin::Ours);
    }
}
