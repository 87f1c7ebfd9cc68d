//! What the client already did with CSV files, across restarts:
//! - **imported** content, by the sha256 of the file's original bytes: the
//!   same content under any name is not imported twice, while a file name
//!   with new content is. Recorded only once the cloud has confirmed the
//!   commit (the uploader's Delivered notification), never before.
//! - **refused** files (not text, too large), by path together with size and
//!   mtime: a refused file is not read again until it changes.
//! - **handled versions**: the path, size and mtime of each file last
//!   imported (or found to be a duplicate), so that after a restart the files
//!   left in the folder (they are never moved or deleted) are not all read
//!   and hashed again to learn that they are known.
//!
//! Stored as an append-only JSON-lines file in the state folder, indexed in
//! memory, so a record costs one appended line whatever the ledger's size.
//! Superseded lines (refusals replaced or cleared) are dropped by a rewrite
//! when the ledger is opened and has grown well past its live entries.

use crate::state::atomic::owner_only;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::atomic::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot open the CSV ledger {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write to the CSV ledger {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Something wrong with the file that [`Ledger::open`] worked around. Worth a
/// log line; never a reason not to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerWarning {
    /// The last line was cut by a crash or power loss: the entry it was
    /// writing is lost, which at worst means one file is uploaded again (and
    /// deduplicated by the cloud through the upload's idempotency key).
    #[error("CSV ledger {path}: ignored a cut last line ({bytes} bytes), probably from a crash")]
    TornLastLine { path: PathBuf, bytes: usize },
    #[error("CSV ledger {path}: ignored unreadable line {line}: {reason}")]
    BadLine {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// Compaction failed; the ledger works on, uncompacted.
    #[error("CSV ledger {path}: could not compact: {reason}")]
    CompactionFailed { path: PathBuf, reason: String },
}

/// An import the cloud confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Imported {
    /// The name the content was first imported under.
    pub file_name: String,
    pub import_id: String,
    pub imported_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    NotText,
    TooLarge,
    /// A symbolic link whose owner does not own the file it points to.
    ForeignLink,
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefusalReason::NotText => "not a text file",
            RefusalReason::TooLarge => "too large",
            RefusalReason::ForeignLink => "a link to another user's file",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    size: u64,
    mtime_ns: i64,
    reason: RefusalReason,
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
enum Line {
    Imported {
        sha256: String,
        #[serde(flatten)]
        imported: Imported,
    },
    Refused {
        path: String,
        size: u64,
        /// Nanoseconds since the Unix epoch: exact, so that the comparison
        /// with a new `stat` is exact.
        mtime_ns: i64,
        reason: RefusalReason,
    },
    RefusalCleared {
        path: String,
    },
    Version {
        path: String,
        size: u64,
        mtime_ns: i64,
    },
    VersionCleared {
        path: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    size: u64,
    mtime_ns: i64,
}

/// Rewrite on open once the file holds this many lines more than live entries
/// (and at least twice as many): a bounded, rare cost.
const COMPACT_SLACK: u64 = 1000;

#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    /// The append handle. `None` only between closing it for a compaction
    /// and reopening it (and after a failed reopen: the next append tries
    /// again).
    file: Option<File>,
    imported: HashMap<String, Imported>,
    refusals: HashMap<String, Refusal>,
    versions: HashMap<String, Version>,
    lines: u64,
}

impl Ledger {
    /// The file's name in the state folder.
    pub const FILE_NAME: &'static str = "csv-ledger.jsonl";

    /// Opens (or creates) `<state_dir>/csv-ledger.jsonl`.
    pub fn open_in(state_dir: &Path) -> Result<(Ledger, Vec<LedgerWarning>), LedgerError> {
        Ledger::open(&state_dir.join(Ledger::FILE_NAME))
    }

    /// Opens (or creates) the ledger at `path` and loads it. Damaged lines are
    /// skipped and reported as warnings; only an I/O error fails the open.
    pub fn open(path: &Path) -> Result<(Ledger, Vec<LedgerWarning>), LedgerError> {
        let open_error = |source| LedgerError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(open_error)?;
        }
        let mut file = owner_only(OpenOptions::new().read(true).append(true).create(true))
            .open(path)
            .map_err(open_error)?;
        let mut ledger = Ledger {
            path: path.to_owned(),
            file: None,
            imported: HashMap::new(),
            refusals: HashMap::new(),
            versions: HashMap::new(),
            lines: 0,
        };
        let mut warnings = Vec::new();
        let good_len = ledger.load(&mut file, &mut warnings).map_err(open_error)?;
        // The next append must start on a line of its own, not glue onto a
        // cut line (which would spoil the new entry too).
        let len = file.metadata().map_err(open_error)?.len();
        if good_len < len {
            file.set_len(good_len).map_err(open_error)?;
        }
        // The only handle: compaction must be able to close it.
        ledger.file = Some(file);
        if ledger.needs_compaction() {
            if let Err(error) = ledger.compact() {
                warnings.push(LedgerWarning::CompactionFailed {
                    path: path.to_owned(),
                    reason: error.to_string(),
                });
            }
        }
        Ok((ledger, warnings))
    }

    /// Reads every line; returns the length of the file up to the end of its
    /// last complete line (a complete line without its final newline gets
    /// one).
    fn load(&mut self, file: &mut File, warnings: &mut Vec<LedgerWarning>) -> io::Result<u64> {
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::new(&*file);
        let mut buffer = Vec::new();
        let mut offset = 0u64;
        let mut good_len = 0u64;
        let mut missing_newline = false;
        let mut line_number = 0u64;
        loop {
            buffer.clear();
            let read = reader.read_until(b'\n', &mut buffer)?;
            if read == 0 {
                break;
            }
            line_number += 1;
            offset += read as u64;
            let complete = buffer.ends_with(b"\n");
            let text = buffer.strip_suffix(b"\n").unwrap_or(&buffer);
            if text.iter().all(u8::is_ascii_whitespace) {
                good_len = offset;
                continue;
            }
            match serde_json::from_slice::<Line>(text) {
                Ok(line) => {
                    self.apply(line);
                    self.lines += 1;
                    good_len = offset;
                    missing_newline = !complete;
                }
                Err(_) if !complete => warnings.push(LedgerWarning::TornLastLine {
                    path: self.path.clone(),
                    bytes: read,
                }),
                Err(error) => {
                    warnings.push(LedgerWarning::BadLine {
                        path: self.path.clone(),
                        line: line_number,
                        reason: error.to_string(),
                    });
                    good_len = offset;
                }
            }
        }
        drop(reader);
        if missing_newline {
            (&*file).write_all(b"\n")?;
            good_len += 1;
        }
        Ok(good_len)
    }

    fn apply(&mut self, line: Line) {
        match line {
            Line::Imported { sha256, imported } => {
                self.imported.entry(sha256).or_insert(imported);
            }
            Line::Refused {
                path,
                size,
                mtime_ns,
                reason,
            } => {
                self.refusals.insert(
                    path,
                    Refusal {
                        size,
                        mtime_ns,
                        reason,
                    },
                );
            }
            Line::RefusalCleared { path } => {
                self.refusals.remove(&path);
            }
            Line::Version {
                path,
                size,
                mtime_ns,
            } => {
                self.versions.insert(path, Version { size, mtime_ns });
            }
            Line::VersionCleared { path } => {
                self.versions.remove(&path);
            }
        }
    }

    fn live_entries(&self) -> u64 {
        (self.imported.len() + self.refusals.len() + self.versions.len()) as u64
    }

    fn needs_compaction(&self) -> bool {
        let live = self.live_entries();
        self.lines > live.saturating_mul(2) && self.lines - live >= COMPACT_SLACK
    }

    /// Rewrites the file with only the live entries (temp, fsync, rename), and
    /// appends to the new file from then on. On failure the old file stays,
    /// complete, and appends go on there.
    pub fn compact(&mut self) -> io::Result<()> {
        let mut lines: Vec<Line> = Vec::with_capacity(self.live_entries() as usize);
        let mut imported: Vec<_> = self.imported.iter().collect();
        imported.sort_by(|a, b| (a.1.imported_at, a.0).cmp(&(b.1.imported_at, b.0)));
        lines.extend(
            imported
                .into_iter()
                .map(|(sha256, imported)| Line::Imported {
                    sha256: sha256.clone(),
                    imported: imported.clone(),
                }),
        );
        let mut refusals: Vec<_> = self.refusals.iter().collect();
        refusals.sort_by(|a, b| a.0.cmp(b.0));
        lines.extend(refusals.into_iter().map(|(path, refusal)| Line::Refused {
            path: path.clone(),
            size: refusal.size,
            mtime_ns: refusal.mtime_ns,
            reason: refusal.reason,
        }));
        let mut versions: Vec<_> = self.versions.iter().collect();
        versions.sort_by(|a, b| a.0.cmp(b.0));
        lines.extend(versions.into_iter().map(|(path, version)| Line::Version {
            path: path.clone(),
            size: version.size,
            mtime_ns: version.mtime_ns,
        }));
        let mut bytes = Vec::new();
        for line in &lines {
            serde_json::to_writer(&mut bytes, line).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        // Windows does not replace a file that is open: the rename fails with
        // "Access is denied" (os error 5) although std opens files with
        // FILE_SHARE_DELETE. So the append handle is closed for the rename and
        // reopened after it, on the new file, or on the old one if the rename
        // failed. Closing loses nothing: every line appended went out to the
        // OS in full (`append`), and the new file holds them all and is
        // fsynced before it replaces the old one (`write_atomic`), so a crash
        // at any point leaves one complete ledger.
        self.file = None;
        let replaced = write_atomic(&self.path, &bytes);
        if replaced.is_ok() {
            self.lines = lines.len() as u64;
        }
        let reopened = self.append_handle().map(drop);
        replaced.and(reopened)
    }

    /// The append handle, reopened if a compaction closed it.
    fn append_handle(&mut self) -> io::Result<&mut File> {
        let file = match self.file.take() {
            Some(file) => file,
            None => owner_only(OpenOptions::new().append(true)).open(&self.path)?,
        };
        Ok(self.file.insert(file))
    }

    /// Appends one line. Each line goes out in a single write on an
    /// O_APPEND file and is flushed to the OS, so a crash of the process loses
    /// nothing. It is not fsynced: after a power loss the last lines may be
    /// missing (or cut, which `open` tolerates), and the files they recorded
    /// are uploaded again — which the cloud deduplicates by the upload's
    /// idempotency key (the content's sha256). Call [`sync`](Self::sync) after
    /// a batch for a stronger guarantee.
    fn append(&mut self, line: &Line) -> Result<(), LedgerError> {
        let mut bytes = serde_json::to_vec(line).expect("ledger lines serialise");
        bytes.push(b'\n');
        let write_error = |path: &Path, source| LedgerError::Write {
            path: path.to_owned(),
            source,
        };
        let file = match self.append_handle() {
            Ok(file) => file,
            Err(source) => return Err(write_error(&self.path, source)),
        };
        let length_before = file.metadata().map(|m| m.len());
        let written = file.write_all(&bytes).and_then(|()| file.flush());
        if let Err(source) = written {
            // A full disk can take part of the line: cut it off, or the next
            // append would glue onto it and both entries would be lost.
            if let Ok(length) = length_before {
                let _ = file.set_len(length);
            }
            return Err(write_error(&self.path, source));
        }
        self.lines += 1;
        Ok(())
    }

    /// Makes the lines written so far durable (fsync).
    pub fn sync(&self) -> Result<(), LedgerError> {
        let synced = match &self.file {
            Some(file) => file.sync_data(),
            // Closed by a compaction that could not reopen it: the lines are
            // in the file all the same, and any handle syncs them.
            None => OpenOptions::new()
                .append(true)
                .open(&self.path)
                .and_then(|file| file.sync_data()),
        };
        synced.map_err(|source| LedgerError::Write {
            path: self.path.clone(),
            source,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The import of this content (lower-hex sha256), if the cloud confirmed one.
    pub fn imported(&self, sha256: &str) -> Option<&Imported> {
        self.imported.get(sha256)
    }

    pub fn is_imported(&self, sha256: &str) -> bool {
        self.imported.contains_key(sha256)
    }

    pub fn imported_count(&self) -> usize {
        self.imported.len()
    }

    /// Records a confirmed import. Call it only on the cloud's commit. Returns
    /// false (and writes nothing) if the content was already recorded: the
    /// first file name is kept.
    pub fn record_imported(
        &mut self,
        sha256: &str,
        file_name: &str,
        import_id: &str,
        imported_at: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        if self.imported.contains_key(sha256) {
            return Ok(false);
        }
        let imported = Imported {
            file_name: file_name.to_owned(),
            import_id: import_id.to_owned(),
            imported_at,
        };
        self.append(&Line::Imported {
            sha256: sha256.to_owned(),
            imported: imported.clone(),
        })?;
        self.imported.insert(sha256.to_owned(), imported);
        Ok(true)
    }

    /// Why the file at `path` was refused, if it was and has not changed
    /// since (same size and mtime).
    pub fn refusal(&self, path: &str, size: u64, mtime: SystemTime) -> Option<RefusalReason> {
        self.refusals
            .get(path)
            .filter(|refusal| refusal.size == size && refusal.mtime_ns == unix_nanos(mtime))
            .map(|refusal| refusal.reason)
    }

    pub fn refusal_count(&self) -> usize {
        self.refusals.len()
    }

    /// Remembers that the file at `path`, as it is now, is refused. Replaces
    /// an earlier refusal of the same path.
    pub fn record_refusal(
        &mut self,
        path: &str,
        size: u64,
        mtime: SystemTime,
        reason: RefusalReason,
    ) -> Result<(), LedgerError> {
        let refusal = Refusal {
            size,
            mtime_ns: unix_nanos(mtime),
            reason,
        };
        if self.refusals.get(path) == Some(&refusal) {
            return Ok(());
        }
        self.append(&Line::Refused {
            path: path.to_owned(),
            size,
            mtime_ns: refusal.mtime_ns,
            reason,
        })?;
        self.refusals.insert(path.to_owned(), refusal);
        Ok(())
    }

    /// Forgets the refusal of `path` (the file changed and was imported, or is
    /// gone). Returns whether there was one.
    pub fn clear_refusal(&mut self, path: &str) -> Result<bool, LedgerError> {
        if !self.refusals.contains_key(path) {
            return Ok(false);
        }
        self.append(&Line::RefusalCleared {
            path: path.to_owned(),
        })?;
        self.refusals.remove(path);
        Ok(true)
    }

    /// Whether the file at `path`, with this size and mtime, was handled
    /// already (see [`record_version`](Self::record_version)).
    pub fn is_known_version(&self, path: &str, size: u64, mtime: SystemTime) -> bool {
        self.versions.get(path)
            == Some(&Version {
                size,
                mtime_ns: unix_nanos(mtime),
            })
    }

    /// Remembers that the file at `path`, as it is now, was handled (imported,
    /// or a duplicate of imported content). Only the latest version of a path
    /// is kept. Like imports, record it only once the cloud confirmed.
    pub fn record_version(
        &mut self,
        path: &str,
        size: u64,
        mtime: SystemTime,
    ) -> Result<(), LedgerError> {
        let version = Version {
            size,
            mtime_ns: unix_nanos(mtime),
        };
        if self.versions.get(path) == Some(&version) {
            return Ok(());
        }
        self.append(&Line::Version {
            path: path.to_owned(),
            size,
            mtime_ns: version.mtime_ns,
        })?;
        self.versions.insert(path.to_owned(), version);
        Ok(())
    }

    /// Forgets the handled version of `path` (the file is gone). Returns
    /// whether there was one.
    pub fn clear_version(&mut self, path: &str) -> Result<bool, LedgerError> {
        if !self.versions.contains_key(path) {
            return Ok(false);
        }
        self.append(&Line::VersionCleared {
            path: path.to_owned(),
        })?;
        self.versions.remove(path);
        Ok(true)
    }

    pub fn version_count(&self) -> usize {
        self.versions.len()
    }
}

/// Nanoseconds since the Unix epoch, which an i64 holds for the years 1678 to
/// 2262; mtimes outside (bogus clocks) saturate, still comparing equal to
/// themselves.
fn unix_nanos(time: SystemTime) -> i64 {
    let nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_590_393_600 + secs, 0).unwrap()
    }

    /// The smallest step of file times: `SystemTime` and NTFS count in
    /// 100 ns on Windows (1 ns added to a time is lost there).
    const MTIME_STEP_NS: u64 = if cfg!(windows) { 100 } else { 1 };

    /// A file time `steps` smallest steps after a fixed moment.
    fn mtime(steps: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(1_590_393_600_000_000_000 + steps * MTIME_STEP_NS)
    }

    fn sha(n: u32) -> String {
        format!("{n:064x}")
    }

    fn open(dir: &Path) -> (Ledger, Vec<LedgerWarning>) {
        Ledger::open_in(dir).unwrap()
    }

    #[test]
    fn records_imports_and_finds_them_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty());
        assert!(!ledger.is_imported(&sha(1)));
        assert!(ledger
            .record_imported(&sha(1), "interval.csv", "imp_1", at(0))
            .unwrap());
        // Same content under another name: the first name stays.
        assert!(!ledger
            .record_imported(&sha(1), "copy.csv", "imp_2", at(5))
            .unwrap());
        assert!(ledger
            .record_imported(&sha(2), "interval.csv", "imp_3", at(10))
            .unwrap());
        drop(ledger);

        let (ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(ledger.imported_count(), 2);
        assert_eq!(
            ledger.imported(&sha(1)),
            Some(&Imported {
                file_name: "interval.csv".into(),
                import_id: "imp_1".into(),
                imported_at: at(0),
            })
        );
        assert_eq!(ledger.imported(&sha(2)).unwrap().import_id, "imp_3");
        let text = std::fs::read_to_string(ledger.path()).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn ledger_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (ledger, _) = open(dir.path());
        let mode = std::fs::metadata(ledger.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn torn_last_line_is_ignored_and_later_appends_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = open(dir.path());
        ledger
            .record_imported(&sha(1), "a.csv", "imp_1", at(0))
            .unwrap();
        let path = ledger.path().to_owned();
        drop(ledger);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"entry":"imported","sha256":"00"#)
            .unwrap();
        drop(file);

        let (mut ledger, warnings) = open(dir.path());
        assert_eq!(
            warnings,
            vec![LedgerWarning::TornLastLine {
                path: path.clone(),
                bytes: 32
            }]
        );
        assert!(warnings[0].to_string().contains("cut last line"));
        assert_eq!(ledger.imported_count(), 1);
        ledger
            .record_imported(&sha(2), "b.csv", "imp_2", at(1))
            .unwrap();
        drop(ledger);

        let (ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(ledger.is_imported(&sha(1)) && ledger.is_imported(&sha(2)));
    }

    #[test]
    fn complete_last_line_without_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = open(dir.path());
        ledger
            .record_imported(&sha(1), "a.csv", "imp_1", at(0))
            .unwrap();
        let path = ledger.path().to_owned();
        drop(ledger);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.trim_end()).unwrap();

        let (mut ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty());
        ledger
            .record_imported(&sha(2), "b.csv", "imp_2", at(1))
            .unwrap();
        drop(ledger);
        let (ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty());
        assert_eq!(ledger.imported_count(), 2);
    }

    #[test]
    fn damaged_line_in_the_middle_is_skipped_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(Ledger::FILE_NAME);
        let good = serde_json::to_string(&Line::Imported {
            sha256: sha(1),
            imported: Imported {
                file_name: "a.csv".into(),
                import_id: "imp_1".into(),
                imported_at: at(0),
            },
        })
        .unwrap();
        std::fs::write(&path, format!("garbage\n\n{good}\n")).unwrap();
        let (ledger, warnings) = open(dir.path());
        assert!(matches!(
            warnings[..],
            [LedgerWarning::BadLine { line: 1, .. }]
        ));
        assert!(ledger.is_imported(&sha(1)));
    }

    #[test]
    fn refusals_are_keyed_by_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = open(dir.path());
        ledger
            .record_refusal("in/report.csv", 100, mtime(1), RefusalReason::NotText)
            .unwrap();
        assert_eq!(
            ledger.refusal("in/report.csv", 100, mtime(1)),
            Some(RefusalReason::NotText)
        );
        // Changed (one step later, or another size): read it again.
        assert_eq!(ledger.refusal("in/report.csv", 100, mtime(2)), None);
        assert_eq!(ledger.refusal("in/report.csv", 101, mtime(1)), None);
        assert_eq!(ledger.refusal("in/other.csv", 100, mtime(1)), None);

        ledger
            .record_refusal("in/big.csv", 9 << 30, mtime(5), RefusalReason::TooLarge)
            .unwrap();
        ledger
            .record_refusal("in/report.csv", 200, mtime(3), RefusalReason::NotText)
            .unwrap();
        drop(ledger);

        let (mut ledger, _) = open(dir.path());
        assert_eq!(ledger.refusal("in/report.csv", 100, mtime(1)), None);
        assert_eq!(
            ledger.refusal("in/report.csv", 200, mtime(3)),
            Some(RefusalReason::NotText)
        );
        assert_eq!(
            ledger.refusal("in/big.csv", 9 << 30, mtime(5)),
            Some(RefusalReason::TooLarge)
        );
        assert!(ledger.clear_refusal("in/big.csv").unwrap());
        assert!(!ledger.clear_refusal("in/big.csv").unwrap());
        drop(ledger);
        let (ledger, _) = open(dir.path());
        assert_eq!(ledger.refusal_count(), 1);
        assert_eq!(RefusalReason::TooLarge.to_string(), "too large");
    }

    #[test]
    fn handled_versions_survive_a_restart_and_only_the_latest_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = open(dir.path());
        assert!(!ledger.is_known_version("in/a.csv", 10, mtime(1)));
        ledger.record_version("in/a.csv", 10, mtime(1)).unwrap();
        ledger.record_version("in/a.csv", 10, mtime(1)).unwrap();
        ledger.record_version("in/b.csv", 20, mtime(2)).unwrap();
        assert!(ledger.is_known_version("in/a.csv", 10, mtime(1)));
        ledger.record_version("in/a.csv", 12, mtime(3)).unwrap();
        assert!(ledger.clear_version("in/b.csv").unwrap());
        assert!(!ledger.clear_version("in/b.csv").unwrap());
        let path = ledger.path().to_owned();
        drop(ledger);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);

        let (ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(!ledger.is_known_version("in/a.csv", 10, mtime(1)));
        assert!(ledger.is_known_version("in/a.csv", 12, mtime(3)));
        assert!(!ledger.is_known_version("in/b.csv", 20, mtime(2)));
        assert_eq!(ledger.version_count(), 1);
    }

    #[test]
    fn mtimes_before_the_epoch_and_far_away_are_keys_too() {
        let before = UNIX_EPOCH - Duration::from_nanos(1_500);
        assert_eq!(unix_nanos(before), -1_500);
        assert_eq!(
            unix_nanos(mtime(7)),
            1_590_393_600_000_000_000 + 7 * MTIME_STEP_NS as i64
        );
        // The year 3058: past what i64 nanoseconds hold (2262), within what
        // Windows' SystemTime holds (30828).
        let far = UNIX_EPOCH + Duration::from_secs(1 << 35);
        assert_eq!(unix_nanos(far), i64::MAX);
    }

    #[test]
    fn compaction_on_open_drops_superseded_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = open(dir.path());
        for n in 0..10 {
            ledger
                .record_imported(
                    &sha(n),
                    &format!("{n}.csv"),
                    &format!("imp_{n}"),
                    at(n.into()),
                )
                .unwrap();
        }
        for n in 0..1500u64 {
            ledger
                .record_refusal("churn.csv", n, mtime(n), RefusalReason::TooLarge)
                .unwrap();
        }
        ledger
            .record_refusal("keep.csv", 1, mtime(1), RefusalReason::NotText)
            .unwrap();
        let path = ledger.path().to_owned();
        drop(ledger);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            1511
        );

        let (mut ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 12);
        assert_eq!(ledger.imported_count(), 10);
        assert_eq!(
            ledger.refusal("churn.csv", 1499, mtime(1499)),
            Some(RefusalReason::TooLarge)
        );
        // Appends go to the compacted file.
        ledger
            .record_imported(&sha(99), "new.csv", "imp_99", at(99))
            .unwrap();
        drop(ledger);
        let (ledger, _) = open(dir.path());
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 13);
        assert!(ledger.is_imported(&sha(99)));
        assert_eq!(
            ledger.refusal("keep.csv", 1, mtime(1)),
            Some(RefusalReason::NotText)
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    /// Compaction replaces the file the ledger appends to. Windows refuses to
    /// replace an open file, so this failed there ("Access is denied") while
    /// the ledger held its append handle across the rename.
    #[test]
    fn compacting_an_open_ledger_replaces_its_file_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = open(dir.path());
        ledger
            .record_imported(&sha(1), "a.csv", "imp_1", at(0))
            .unwrap();
        for n in 0..5u64 {
            ledger
                .record_refusal("churn.csv", n, mtime(n), RefusalReason::NotText)
                .unwrap();
        }
        let path = ledger.path().to_owned();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 6);

        ledger.compact().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        ledger
            .record_imported(&sha(2), "b.csv", "imp_2", at(1))
            .unwrap();
        ledger.sync().unwrap();
        ledger.compact().unwrap();
        ledger.record_version("a.csv", 3, mtime(3)).unwrap();
        drop(ledger);

        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
        let (ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(ledger.is_imported(&sha(1)) && ledger.is_imported(&sha(2)));
        assert_eq!(
            ledger.refusal("churn.csv", 4, mtime(4)),
            Some(RefusalReason::NotText)
        );
        assert!(ledger.is_known_version("a.csv", 3, mtime(3)));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn ten_thousand_imports_stay_cheap() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = open(dir.path());
        for n in 0..10_000 {
            ledger
                .record_imported(&sha(n), &format!("f{n}.csv"), "imp", at(0))
                .unwrap();
        }
        drop(ledger);
        let (ledger, warnings) = open(dir.path());
        assert!(warnings.is_empty());
        assert_eq!(ledger.imported_count(), 10_000);
        assert!(ledger.is_imported(&sha(9_999)));
    }
}
