//! Where each database import of an integration stands, across restarts:
//! `<state>/watermarks/<integration>.json`, rewritten atomically on every
//! change.
//!
//! ```json
//! {"imports": {"interval": {"origin": "2023-11-25T23:00:00Z",
//!   "watermark": "2026-11-25T16:14:00Z", "last_run_at": "2026-11-25T16:15:00Z",
//!   "query_sha256": "…"}}}
//! ```
//!
//! A watermark is written only after the cloud confirmed the commit of the
//! window it ends ([`super::planner::CommitTracker`]), and never moves
//! backwards: a late or repeated confirmation cannot undo progress, and a
//! crash between the commit and the write only means that window is read
//! again (same rows, same idempotency key, nothing duplicated). The one
//! exception is [`WatermarkStore::pull_back`], for a watermark in the future
//! of the database's clock: it reads more, never less.
//!
//! Blocking (small file writes with fsync): call it off the actor runtime, or
//! accept a few milliseconds per commit.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::planner::Cursor;
use crate::state::atomic::write_json_atomic;
use crate::state::{load_json, StateError};

#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    #[error("cannot read the watermarks file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the watermarks file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the watermarks file {path} is damaged ({detail}); it was moved aside to {moved_to}, \
         and the database imports of this integration start again from their back-fill \
         (the cloud ignores what it already has)"
    )]
    Damaged {
        path: PathBuf,
        detail: String,
        moved_to: PathBuf,
    },
    #[error("import `{import_id}` has no origin yet: record its first plan before its watermark")]
    NotBegun { import_id: String },
}

impl From<StateError> for WatermarkError {
    fn from(error: StateError) -> Self {
        match error {
            StateError::Read { path, source } => WatermarkError::Read { path, source },
            StateError::Write { path, source } => WatermarkError::Write { path, source },
            StateError::Damaged {
                path,
                detail,
                moved_to,
            } => WatermarkError::Damaged {
                path,
                detail,
                moved_to,
            },
        }
    }
}

/// What is remembered about one import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportProgress {
    /// Start of the import's first window (where its back-fill began);
    /// `None` for a snapshot import, which has no windows.
    #[serde(default)]
    pub origin: Option<DateTime<Utc>>,
    /// End of the confirmed, contiguous windows from the origin.
    #[serde(default)]
    pub watermark: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_run_at: Option<DateTime<Utc>>,
    /// Of the query the origin was planned for, so the caller can tell a
    /// changed query and decide to [`WatermarkStore::reset`].
    #[serde(default)]
    pub query_sha256: Option<String>,
}

impl ImportProgress {
    /// The planner's view; `None` before the first plan.
    pub fn cursor(&self) -> Option<Cursor> {
        Some(Cursor {
            origin: self.origin?,
            watermark: self.watermark,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct WatermarkFile {
    #[serde(default)]
    imports: BTreeMap<String, ImportProgress>,
}

/// The watermarks of one integration. One owner (the integration's importer)
/// at a time.
#[derive(Debug)]
pub struct WatermarkStore {
    path: PathBuf,
    file: WatermarkFile,
}

impl WatermarkStore {
    /// Opens `<dir>/<integration>.json`; a missing file is an empty store. A
    /// damaged file is moved aside and reported; opening again then gives an
    /// empty store.
    pub fn open(dir: &Path, integration_id: &str) -> Result<Self, WatermarkError> {
        let path = dir.join(file_name(integration_id));
        let file = load_json::<WatermarkFile>(&path)?.unwrap_or_default();
        Ok(WatermarkStore { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, import_id: &str) -> Option<&ImportProgress> {
        self.file.imports.get(import_id)
    }

    pub fn cursor(&self, import_id: &str) -> Option<Cursor> {
        self.get(import_id)?.cursor()
    }

    pub fn import_ids(&self) -> impl Iterator<Item = &str> {
        self.file.imports.keys().map(String::as_str)
    }

    /// Records the origin of an import's first plan (and its query's hash).
    /// Once set, the origin stays until [`reset`](Self::reset): a restart
    /// resumes the same back-fill.
    pub fn begin(
        &mut self,
        import_id: &str,
        origin: DateTime<Utc>,
        query_sha256: Option<&str>,
    ) -> Result<(), WatermarkError> {
        self.update(|imports| {
            let progress = imports.entry(import_id.to_owned()).or_default();
            if progress.origin.is_some() {
                return false;
            }
            progress.origin = Some(origin);
            progress.query_sha256 = query_sha256.map(str::to_owned);
            true
        })
        .map(|_| ())
    }

    /// Moves the watermark to `to` if that is later; returns whether it moved.
    /// Call it only with what [`super::planner::CommitTracker::committed`]
    /// returned, i.e. after the cloud confirmed the commit.
    pub fn advance(&mut self, import_id: &str, to: DateTime<Utc>) -> Result<bool, WatermarkError> {
        if self.cursor(import_id).is_none() {
            return Err(WatermarkError::NotBegun {
                import_id: import_id.to_owned(),
            });
        }
        self.update(|imports| {
            let Some(progress) = imports.get_mut(import_id) else {
                return false;
            };
            if progress.watermark.is_some_and(|current| current >= to) {
                return false;
            }
            progress.watermark = Some(to);
            true
        })
    }

    /// Moves an import's origin and watermark back to `to`: the one way a
    /// watermark goes backwards, for a watermark in the future of the
    /// database's clock ([`super::planner::pull_back`]). Returns whether it
    /// moved; never moves anything forward.
    pub fn pull_back(&mut self, import_id: &str, to: Cursor) -> Result<bool, WatermarkError> {
        self.update(|imports| {
            let Some(progress) = imports.get_mut(import_id) else {
                return false;
            };
            let origin = progress.origin.map(|o| o.min(to.origin));
            let watermark = match (progress.watermark, to.watermark) {
                (Some(current), Some(to)) => Some(current.min(to)),
                (current, _) => current,
            };
            let changed = (origin, watermark) != (progress.origin, progress.watermark);
            progress.origin = origin;
            progress.watermark = watermark;
            changed
        })
    }

    /// Remembers when the import last ran, for `next_run` after a restart.
    pub fn record_run(&mut self, import_id: &str, at: DateTime<Utc>) -> Result<(), WatermarkError> {
        self.update(|imports| {
            let progress = imports.entry(import_id.to_owned()).or_default();
            let changed = progress.last_run_at != Some(at);
            progress.last_run_at = Some(at);
            changed
        })
        .map(|_| ())
    }

    /// Forgets an import (its query changed, or it was removed): its next
    /// plan is a first plan again, back-fill included. Returns whether there
    /// was anything to forget.
    pub fn reset(&mut self, import_id: &str) -> Result<bool, WatermarkError> {
        self.update(|imports| imports.remove(import_id).is_some())
    }

    /// Applies `change` and writes the file if it reports a change; on a
    /// failed write the store keeps its previous state, matching the disk.
    fn update(
        &mut self,
        change: impl FnOnce(&mut BTreeMap<String, ImportProgress>) -> bool,
    ) -> Result<bool, WatermarkError> {
        let mut next = self.file.clone();
        if !change(&mut next.imports) {
            return Ok(false);
        }
        write_json_atomic(&self.path, &next).map_err(|source| WatermarkError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.file = next;
        Ok(true)
    }
}

/// The file name for an integration id. Ids come from the cloud and must
/// never become arbitrary paths: anything but a short `[A-Za-z0-9_-]` name
/// (or a name Windows reserves, such as `con`) is replaced by a hash.
pub fn file_name(integration_id: &str) -> String {
    const WINDOWS_RESERVED: &[&str] = &[
        "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
        "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
    ];
    let plain = !integration_id.is_empty()
        && integration_id.len() <= 64
        && integration_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !WINDOWS_RESERVED.contains(&integration_id.to_ascii_lowercase().as_str());
    if plain {
        format!("{integration_id}.json")
    } else {
        let digest = hex::encode(Sha256::digest(integration_id.as_bytes()));
        format!("integration-{}.json", &digest[..32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn only_pull_back_moves_a_watermark_backwards_and_it_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = WatermarkStore::open(dir.path(), "int_1").unwrap();
        let to = Cursor {
            origin: utc("2026-12-02T08:00:00Z"),
            watermark: Some(utc("2026-12-02T09:00:00Z")),
        };
        assert!(
            !store.pull_back("agent_status", to).unwrap(),
            "nothing to pull back"
        );
        store
            .begin("agent_status", utc("2026-12-02T09:30:00Z"), None)
            .unwrap();
        store
            .advance("agent_status", utc("2026-12-03T09:00:00Z"))
            .unwrap();
        assert!(!store
            .advance("agent_status", utc("2026-12-02T09:00:00Z"))
            .unwrap());
        assert!(store.pull_back("agent_status", to).unwrap());
        assert_eq!(store.cursor("agent_status"), Some(to));
        let later = Cursor {
            origin: utc("2026-12-02T08:30:00Z"),
            watermark: Some(utc("2026-12-02T09:30:00Z")),
        };
        assert!(
            !store.pull_back("agent_status", later).unwrap(),
            "never forward"
        );
        let reopened = WatermarkStore::open(dir.path(), "int_1").unwrap();
        assert_eq!(reopened.cursor("agent_status"), Some(to));
    }

    #[test]
    fn progress_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = WatermarkStore::open(dir.path(), "int_1").unwrap();
        assert_eq!(store.path(), dir.path().join("int_1.json"));
        assert_eq!(store.get("interval"), None);
        store
            .begin("interval", utc("2023-11-25T23:00:00Z"), Some("abc"))
            .unwrap();
        assert!(store
            .advance("interval", utc("2023-11-26T23:00:00Z"))
            .unwrap());
        store
            .record_run("interval", utc("2026-11-25T16:00:00Z"))
            .unwrap();

        let reopened = WatermarkStore::open(dir.path(), "int_1").unwrap();
        let expected = ImportProgress {
            origin: Some(utc("2023-11-25T23:00:00Z")),
            watermark: Some(utc("2023-11-26T23:00:00Z")),
            last_run_at: Some(utc("2026-11-25T16:00:00Z")),
            query_sha256: Some("abc".into()),
        };
        assert_eq!(reopened.get("interval"), Some(&expected));
        assert_eq!(
            reopened.cursor("interval"),
            Some(Cursor {
                origin: utc("2023-11-25T23:00:00Z"),
                watermark: Some(utc("2023-11-26T23:00:00Z")),
            })
        );
        assert_eq!(reopened.import_ids().collect::<Vec<_>>(), ["interval"]);
        // Written atomically: nothing but the file itself is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["int_1.json"]);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(reopened.path()).unwrap()).unwrap();
        assert_eq!(
            json["imports"]["interval"]["watermark"],
            "2023-11-26T23:00:00Z"
        );
    }

    #[test]
    fn a_watermark_never_moves_backwards() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = WatermarkStore::open(dir.path(), "int_1").unwrap();
        store
            .begin("interval", utc("2026-01-01T00:00:00Z"), None)
            .unwrap();
        assert!(store
            .advance("interval", utc("2026-01-03T00:00:00Z"))
            .unwrap());
        assert!(!store
            .advance("interval", utc("2026-01-02T00:00:00Z"))
            .unwrap());
        assert!(!store
            .advance("interval", utc("2026-01-03T00:00:00Z"))
            .unwrap());
        let reopened = WatermarkStore::open(dir.path(), "int_1").unwrap();
        assert_eq!(
            reopened.get("interval").unwrap().watermark,
            Some(utc("2026-01-03T00:00:00Z"))
        );
    }

    #[test]
    fn the_origin_is_kept_until_a_reset() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = WatermarkStore::open(dir.path(), "int_1").unwrap();
        store
            .begin("interval", utc("2026-01-01T00:00:00Z"), Some("q1"))
            .unwrap();
        store
            .begin("interval", utc("2026-02-01T00:00:00Z"), Some("q2"))
            .unwrap();
        let progress = store.get("interval").unwrap();
        assert_eq!(progress.origin, Some(utc("2026-01-01T00:00:00Z")));
        assert_eq!(progress.query_sha256.as_deref(), Some("q1"));
        assert!(store.reset("interval").unwrap());
        assert!(!store.reset("interval").unwrap());
        assert_eq!(store.get("interval"), None);
        let reopened = WatermarkStore::open(dir.path(), "int_1").unwrap();
        assert_eq!(reopened.get("interval"), None);
    }

    #[test]
    fn a_watermark_needs_an_origin_and_a_snapshot_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = WatermarkStore::open(dir.path(), "int_1").unwrap();
        let err = store
            .advance("interval", utc("2026-01-03T00:00:00Z"))
            .unwrap_err();
        assert!(matches!(err, WatermarkError::NotBegun { .. }), "{err}");
        assert!(err.to_string().contains("`interval`"));
        store
            .record_run("agents", utc("2026-01-03T00:00:10Z"))
            .unwrap();
        assert_eq!(store.cursor("agents"), None);
        assert!(store
            .advance("agents", utc("2026-01-03T00:00:00Z"))
            .is_err());
        let reopened = WatermarkStore::open(dir.path(), "int_1").unwrap();
        assert_eq!(
            reopened.get("agents").unwrap().last_run_at,
            Some(utc("2026-01-03T00:00:10Z"))
        );
    }

    #[test]
    fn a_damaged_file_is_moved_aside_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("int_1.json");
        std::fs::write(&path, b"{\"imports\": {\"interval\": ").unwrap();
        let err = WatermarkStore::open(dir.path(), "int_1").unwrap_err();
        let WatermarkError::Damaged { moved_to, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            std::fs::read(moved_to).unwrap(),
            b"{\"imports\": {\"interval\": "
        );
        let message = err.to_string();
        assert!(
            message.contains("int_1.json") && message.contains("moved aside"),
            "{message}"
        );
        let store = WatermarkStore::open(dir.path(), "int_1").unwrap();
        assert_eq!(store.import_ids().count(), 0);
    }

    #[test]
    fn integration_ids_from_the_cloud_never_become_paths() {
        assert_eq!(file_name("int_1"), "int_1.json");
        for hostile in [
            "../../etc/passwd",
            "a/b",
            "",
            "CON",
            "nul",
            "x.json",
            &"a".repeat(65),
        ] {
            let name = file_name(hostile);
            assert!(name.starts_with("integration-"), "{hostile} -> {name}");
            assert!(!name.contains('/') && !name.contains('\\') && !name.contains(".."));
        }
        assert_ne!(file_name("a/b"), file_name("a/c"));
        let dir = tempfile::tempdir().unwrap();
        let mut store = WatermarkStore::open(dir.path(), "../escape").unwrap();
        store
            .record_run("interval", utc("2026-01-01T00:00:00Z"))
            .unwrap();
        assert_eq!(store.path().parent(), Some(dir.path()));
        assert!(store.path().exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_failed_write_leaves_the_store_as_the_disk_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = WatermarkStore::open(dir.path(), "int_1").unwrap();
        // A non-empty folder in the file's place: the rename cannot replace it.
        std::fs::create_dir_all(store.path().join("occupied")).unwrap();
        let err = store
            .begin("interval", utc("2026-01-01T00:00:00Z"), None)
            .unwrap_err();
        assert!(matches!(err, WatermarkError::Write { .. }), "{err}");
        assert_eq!(store.get("interval"), None);
    }
}
