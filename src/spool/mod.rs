//! The durable spool `<install>/state/spool/`: data waiting for upload.
//!
//! An item is two files: `<id>.gz`, the data gzip-compressed exactly as it
//! is PUT, and `<id>.json`, its sidecar ([`SpooledItem`]). The sidecar is
//! the commit point: it is written (atomically) only after the data file is
//! complete, fsynced and renamed into place, so a crash never leaves an item
//! that gets uploaded half. On [`Spool::open`], temporary files and data
//! files without a sidecar are removed, and a sidecar whose data is gone is
//! moved to `rejected/` with a reason: nothing is deleted that was committed.
//!
//! Every method does blocking file I/O: call it from a blocking thread
//! (`spawn_blocking`), never on an actor's thread for long.

mod background;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::protocol::UploadSource;
use crate::state::atomic::{sync_dir, write_atomic, write_json_atomic};

pub use background::BackgroundWriter;
pub use writer::ItemWriter;

/// 10 GiB: days of data for the largest sites, yet far below a server's disk.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024 * 1024;

const DATA_EXT: &str = "gz";
const SIDECAR_EXT: &str = "json";
const REASON_SUFFIX: &str = ".reason.txt";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// `<install>/state/spool`
    pub dir: PathBuf,
    /// `<install>/state/rejected`
    pub rejected_dir: PathBuf,
    /// New items are refused once the spooled data reaches this size.
    pub max_bytes: u64,
}

impl SpoolSettings {
    /// The standard folders below a state folder, with `max_bytes`.
    pub fn in_state_dir(state_dir: &Path, max_bytes: u64) -> Self {
        SpoolSettings {
            dir: state_dir.join("spool"),
            rejected_dir: state_dir.join("rejected"),
            max_bytes,
        }
    }
}

/// What an importer knows about the data it spools.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub source: UploadSource,
    pub idempotency_key: String,
    /// Shown to the cloud and in logs; never used as a local path.
    pub file_name: String,
    pub content_type: String,
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Opaque to the spool: which importer made the item (e.g. `csv`,
    /// `db:interval`), so that deliveries can be routed back to it.
    pub origin: String,
    /// The importer's own notes about the item (e.g. the local file it came
    /// from). Kept in the sidecar, never sent to the cloud: local paths are
    /// nobody's business but the admin's.
    pub local: BTreeMap<String, serde_json::Value>,
}

/// A committed item: the sidecar's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledItem {
    pub id: String,
    pub source: UploadSource,
    pub idempotency_key: String,
    pub file_name: String,
    pub content_type: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
    pub origin: String,
    /// The importer's own notes; never sent to the cloud.
    #[serde(default)]
    pub local: BTreeMap<String, serde_json::Value>,
    /// Bytes of the gzip data (what is PUT).
    pub size: u64,
    /// Lower-case hex sha256 of the gzip data.
    pub sha256: String,
    pub uncompressed_size: u64,
    pub created_at: DateTime<Utc>,
    /// Failed upload attempts so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolUsage {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the spool is full: {used} of {budget} bytes are waiting for upload \
         ([spool] maxBytes); new data waits until uploads make room"
    )]
    Full { used: u64, budget: u64 },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("spool item {id} is damaged: {detail}")]
    Damaged { id: String, detail: String },
}

impl SpoolError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
        move |source| SpoolError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Why an item was refused, for its `<id>.reason.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// What was refused, e.g. `POST https://host:443/api/cloud-link/v1/uploads`.
    pub refused: String,
    /// `422 Unprocessable Entity`, or `none` for a local problem.
    pub status: String,
    /// The cloud's message (or the local problem), for a person.
    pub message: String,
    pub at: DateTime<Utc>,
}

/// Where a rejected item went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedPaths {
    pub data: PathBuf,
    pub sidecar: PathBuf,
    pub reason: PathBuf,
}

/// The spool. Clone is cheap (shared state); usable from any thread.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: SpoolSettings,
    usage: Mutex<SpoolUsage>,
    /// Damaged sidecars already reported, so a rescan does not repeat it.
    warned: Mutex<HashSet<String>>,
}

impl Spool {
    /// Creates the folders, finishes or undoes what a crash interrupted, and
    /// counts what is spooled.
    pub fn open(settings: SpoolSettings) -> Result<Spool, SpoolError> {
        for dir in [&settings.dir, &settings.rejected_dir] {
            fs::create_dir_all(dir).map_err(SpoolError::io(dir))?;
        }
        let spool = Spool {
            inner: Arc::new(Inner {
                settings,
                usage: Mutex::new(SpoolUsage::default()),
                warned: Mutex::default(),
            }),
        };
        spool.recover()?;
        let mut usage = SpoolUsage::default();
        for item in spool.pending()? {
            usage.files += 1;
            usage.bytes += item.size;
        }
        *spool.usage_lock() = usage;
        Ok(spool)
    }

    pub fn settings(&self) -> &SpoolSettings {
        &self.inner.settings
    }

    /// Starts a new item. Refused with [`SpoolError::Full`] while the
    /// spooled data is at or over the budget; an item being written may
    /// overshoot it (the budget is checked here only, so that a started
    /// file is never cut off).
    pub fn begin(&self, file_name: &str) -> Result<ItemWriter, SpoolError> {
        let usage = self.usage();
        let budget = self.inner.settings.max_bytes;
        if usage.bytes >= budget {
            return Err(SpoolError::Full {
                used: usage.bytes,
                budget,
            });
        }
        ItemWriter::create(self.clone(), file_name)
    }

    /// The committed items, oldest first.
    pub fn pending(&self) -> Result<Vec<SpooledItem>, SpoolError> {
        let dir = &self.inner.settings.dir;
        let mut items = Vec::new();
        for name in list(dir)? {
            let Some(id) = committed_id(&name, SIDECAR_EXT) else {
                continue;
            };
            match self.load(id) {
                Ok(item) => items.push(item),
                // Delivered or rejected since the listing.
                Err(SpoolError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                // Written atomically, so unreadable means a disk problem or
                // a hand edit; `open` moves such sidecars aside.
                Err(e) => {
                    let mut warned = self.inner.warned.lock().unwrap_or_else(|p| p.into_inner());
                    if warned.insert(id.to_owned()) {
                        tracing::warn!("{e}; skipping it until the next start");
                    }
                }
            }
        }
        items.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(items)
    }

    pub fn usage(&self) -> SpoolUsage {
        *self.usage_lock()
    }

    /// Whether [`Spool::begin`] would accept a new item now.
    pub fn has_room(&self) -> bool {
        self.usage().bytes < self.inner.settings.max_bytes
    }

    /// The item's sidecar as it is on disk.
    pub fn load(&self, id: &str) -> Result<SpooledItem, SpoolError> {
        let path = self.sidecar_path(id);
        let bytes = fs::read(&path).map_err(SpoolError::io(&path))?;
        let item: SpooledItem =
            serde_json::from_slice(&bytes).map_err(|e| SpoolError::Damaged {
                id: id.to_owned(),
                detail: format!("{}: {e}", path.display()),
            })?;
        if item.id != id {
            return Err(SpoolError::Damaged {
                id: id.to_owned(),
                detail: format!("{} names item {}", path.display(), item.id),
            });
        }
        Ok(item)
    }

    /// The gzip data of an item, as it is PUT.
    pub fn data_path(&self, id: &str) -> PathBuf {
        self.inner.settings.dir.join(format!("{id}.{DATA_EXT}"))
    }

    fn sidecar_path(&self, id: &str) -> PathBuf {
        self.inner.settings.dir.join(format!("{id}.{SIDECAR_EXT}"))
    }

    /// Saves the retry bookkeeping of `item` (attempts, next attempt, last
    /// error). Atomic: a failure leaves the previous sidecar intact. Does
    /// nothing for an item that is no longer spooled, so that a late update
    /// cannot bring a delivered item back.
    pub fn update(&self, item: &SpooledItem) -> Result<(), SpoolError> {
        let path = self.sidecar_path(&item.id);
        if !path.exists() {
            return Ok(());
        }
        write_json_atomic(&path, item).map_err(SpoolError::io(&path))
    }

    /// Deletes a delivered item: the sidecar first, so that a crash halfway
    /// leaves an orphan data file (removed at the next open), never an item
    /// that would be uploaded again.
    pub fn remove(&self, item: &SpooledItem) -> Result<(), SpoolError> {
        let sidecar = self.sidecar_path(&item.id);
        match fs::remove_file(&sidecar) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(SpoolError::io(&sidecar)(e)),
        }
        self.forget(item.size);
        let data = self.data_path(&item.id);
        match fs::remove_file(&data) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(
                "cannot delete {}: {e}; it is removed at the next start",
                data.display()
            ),
        }
        let dir = &self.inner.settings.dir;
        sync_dir(dir).map_err(SpoolError::io(dir))
    }

    /// Moves an item the cloud refused for good to `rejected/`, with a
    /// `<id>.reason.txt` for the admin. The reason goes first and the
    /// sidecar last, so that an interrupted move is finished by `open`
    /// rather than taken for a damaged item.
    pub fn reject(&self, item: &SpooledItem, why: &Rejection) -> Result<RejectedPaths, SpoolError> {
        let rejected = &self.inner.settings.rejected_dir;
        fs::create_dir_all(rejected).map_err(SpoolError::io(rejected))?;
        let paths = self.rejected_paths(&item.id);
        let text = reason_text(item, why, &paths);
        write_atomic(&paths.reason, text.as_bytes()).map_err(SpoolError::io(&paths.reason))?;
        let data = self.data_path(&item.id);
        match fs::rename(&data, &paths.data) {
            Ok(()) => {}
            // Nothing to move: the reason says what is missing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(SpoolError::io(&data)(e)),
        }
        let sidecar = self.sidecar_path(&item.id);
        fs::rename(&sidecar, &paths.sidecar).map_err(SpoolError::io(&sidecar))?;
        sync_dir(rejected).map_err(SpoolError::io(rejected))?;
        let dir = &self.inner.settings.dir;
        sync_dir(dir).map_err(SpoolError::io(dir))?;
        self.forget(item.size);
        Ok(paths)
    }

    pub fn rejected_paths(&self, id: &str) -> RejectedPaths {
        let rejected = &self.inner.settings.rejected_dir;
        RejectedPaths {
            data: rejected.join(format!("{id}.{DATA_EXT}")),
            sidecar: rejected.join(format!("{id}.{SIDECAR_EXT}")),
            reason: rejected.join(format!("{id}{REASON_SUFFIX}")),
        }
    }

    // ---- internals ---------------------------------------------------------

    fn usage_lock(&self) -> MutexGuard<'_, SpoolUsage> {
        self.inner.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn committed(&self, size: u64) {
        let mut usage = self.usage_lock();
        usage.files += 1;
        usage.bytes += size;
    }

    fn forget(&self, size: u64) {
        let mut usage = self.usage_lock();
        usage.files = usage.files.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(size);
    }

    /// Undoes what a crash left half done. Runs before anything else uses
    /// the spool.
    fn recover(&self) -> Result<(), SpoolError> {
        let dir = &self.inner.settings.dir;
        let names = list(dir)?;
        let has = |name: &str| names.iter().any(|n| n == name);
        for name in &names {
            let path = dir.join(name);
            if name.starts_with('.') && name.ends_with(".tmp") {
                remove_logged(&path, "an unfinished item");
            } else if let Some(id) = committed_id(name, DATA_EXT) {
                if !has(&format!("{id}.{SIDECAR_EXT}")) {
                    remove_logged(&path, "data whose item was never committed");
                }
            } else if let Some(id) = committed_id(name, SIDECAR_EXT) {
                self.recover_sidecar(id, has(&format!("{id}.{DATA_EXT}")))?;
            }
        }
        sync_dir(dir).map_err(SpoolError::io(dir))
    }

    fn recover_sidecar(&self, id: &str, has_data: bool) -> Result<(), SpoolError> {
        let rejected = self.rejected_paths(id);
        let problem = match self.load(id) {
            Ok(_) if has_data => return Ok(()),
            Ok(item) if rejected.reason.exists() => {
                // A rejection was interrupted after its data moved.
                let sidecar = self.sidecar_path(id);
                fs::rename(&sidecar, &rejected.sidecar).map_err(SpoolError::io(&sidecar))?;
                tracing::info!(
                    "finished moving the rejected {} to {}",
                    item.file_name,
                    rejected.data.display()
                );
                return Ok(());
            }
            Ok(item) => (
                item,
                "its data file is missing from the spool (deleted by hand, or a disk problem)",
            ),
            Err(e) => {
                let sidecar = self.sidecar_path(id);
                let aside = rejected.sidecar;
                fs::rename(&sidecar, &aside).map_err(SpoolError::io(&sidecar))?;
                if has_data {
                    let data = self.data_path(id);
                    fs::rename(&data, &rejected.data).map_err(SpoolError::io(&data))?;
                }
                tracing::error!(
                    "{e}; moved it to {} and did not upload it: look at it, and copy the \
                     original file back into the import folder if it must be imported",
                    aside.display()
                );
                return Ok(());
            }
        };
        let (item, detail) = problem;
        let why = Rejection {
            refused: "nothing: the client found the item damaged at start".into(),
            status: "none".into(),
            message: detail.into(),
            at: Utc::now(),
        };
        // `open` counts the usage after this, so reject's bookkeeping is moot.
        let paths = self.reject(&item, &why)?;
        tracing::error!(
            "cannot upload {}: {detail}; moved its record to {}",
            item.file_name,
            paths.sidecar.display()
        );
        Ok(())
    }
}

/// `<id>` of a committed item's file `<id>.<ext>` (temporary files start
/// with a dot).
fn committed_id<'a>(name: &'a str, ext: &str) -> Option<&'a str> {
    let id = name.strip_suffix(ext)?.strip_suffix('.')?;
    (!id.is_empty() && !id.starts_with('.') && !id.ends_with(".reason")).then_some(id)
}

fn list(dir: &Path) -> Result<Vec<String>, SpoolError> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(SpoolError::io(dir))? {
        let entry = entry.map_err(SpoolError::io(dir))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn remove_logged(path: &Path, what: &str) {
    match fs::remove_file(path) {
        Ok(()) => tracing::info!(
            "removed {what} left by an interrupted run: {}",
            path.file_name().unwrap_or(OsStr::new("")).to_string_lossy()
        ),
        Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
    }
}

fn reason_text(item: &SpooledItem, why: &Rejection, paths: &RejectedPaths) -> String {
    let name = |p: &Path| {
        p.file_name()
            .unwrap_or(OsStr::new(""))
            .to_string_lossy()
            .into_owned()
    };
    format!(
        "injixo Cloud Link did not upload this data: it was refused for good.\n\
         \n\
         file:      {file}\n\
         item:      {id} ({source}, from {origin}, spooled {created})\n\
         refused:   {refused}\n\
         status:    {status}\n\
         message:   {message}\n\
         when:      {at}\n\
         \n\
         The data is {data} (gzip: `gunzip -k {data}` gives the original bytes),\n\
         its record is {sidecar}. Nothing here is retried: fix the cause, then put the\n\
         original file back into the import folder (or re-run the import).\n",
        file = item.file_name,
        id = item.id,
        source = serde_json::to_value(item.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        origin = item.origin,
        created = item.created_at.to_rfc3339(),
        refused = why.refused,
        status = why.status,
        message = why.message,
        at = why.at.to_rfc3339(),
        data = name(&paths.data),
        sidecar = name(&paths.sidecar),
    )
}

#[cfg(test)]
mod tests;
