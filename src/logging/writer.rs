//! The log file writer behind `tracing_appender::non_blocking`, and the file
//! operations around it (rotation at start, keepDays clean-up).
//!
//! `RotatingFile` runs on the appender's worker thread and receives every
//! record as one `write` call, in the order the records were queued. It
//! rotates itself, between two records, so a record always lands in a file
//! of the day it carries — even when records of the old day were still queued
//! when midnight passed, and when the clock was set back to an earlier day.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, NaiveDate};

use super::rotation::{self, CURRENT_LOG_FILE_NAME};
use super::{Clock, LogError};

/// After a failed rotation, how long the writer keeps appending to the
/// current file before it tries again (a rename per record would be a storm
/// of failing system calls while e.g. a virus scanner holds the file).
const ROTATION_RETRY_INTERVAL: Duration = Duration::from_secs(60);
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Lets other parts of the daemon ask the log writer to rotate, and tells
/// them where the logs are.
#[derive(Debug, Clone)]
pub struct RotationHandle {
    shared: Arc<RotationShared>,
}

#[derive(Debug)]
struct RotationShared {
    log_dir: PathBuf,
    rotation_requested: AtomicBool,
}

impl RotationHandle {
    fn new(log_dir: PathBuf) -> Self {
        Self {
            shared: Arc::new(RotationShared {
                log_dir,
                rotation_requested: AtomicBool::new(false),
            }),
        }
    }

    /// Rotates before the next record is written. Records queued before this
    /// call but not yet written also go to the new file; day changes are
    /// handled by the records' own dates and do not need this.
    pub fn request(&self) {
        self.shared.rotation_requested.store(true, Ordering::SeqCst);
    }

    pub fn log_dir(&self) -> &Path {
        &self.shared.log_dir
    }

    pub fn current_path(&self) -> PathBuf {
        self.shared.log_dir.join(CURRENT_LOG_FILE_NAME)
    }

    fn take_request(&self) -> bool {
        self.shared.rotation_requested.swap(false, Ordering::SeqCst)
    }
}

/// Counts records into the queue and out of it, and signals the writer's
/// end, so shutdown can wait until every queued record is on disk.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) queued: AtomicU64,
    pub(super) written: AtomicU64,
    closed: Mutex<bool>,
    closed_changed: Condvar,
}

impl Progress {
    fn mark_closed(&self) {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.closed_changed.notify_all();
    }

    pub(super) fn wait_closed(&self, timeout: Duration) -> bool {
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        let (closed, _) = self
            .closed_changed
            .wait_timeout_while(closed, timeout, |closed| !*closed)
            .unwrap_or_else(|e| e.into_inner());
        *closed
    }
}

pub(super) struct RotatingFile {
    handle: RotationHandle,
    clock: Arc<dyn Clock>,
    progress: Arc<Progress>,
    file: BufWriter<File>,
    /// The day of the first record in the file; `None` while it is empty.
    file_day: Option<NaiveDate>,
    /// False after the file was renamed but a new one could not be created:
    /// the handle then still points at the rotated file, and records keep
    /// going there rather than being lost.
    file_is_current: bool,
    at_record_start: bool,
    retry_rotation_at: Option<Instant>,
    write_error_reported: bool,
}

impl RotatingFile {
    /// Opens (appending) the current log in the handle's folder.
    pub(super) fn open(
        handle: RotationHandle,
        clock: Arc<dyn Clock>,
        progress: Arc<Progress>,
    ) -> Result<Self, LogError> {
        let path = handle.current_path();
        let file = open_for_append(&path).map_err(|source| LogError::Open {
            path: path.clone(),
            source,
        })?;
        let file_day = day_of_existing_log(&path).unwrap_or(None);
        Ok(Self {
            handle,
            clock,
            progress,
            file: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            file_day,
            file_is_current: true,
            at_record_start: true,
            retry_rotation_at: None,
            write_error_reported: false,
        })
    }

    fn rotate_if_due(&mut self, record: &[u8]) {
        let requested = self.handle.take_request();
        let record_day = rotation::record_date(record);
        let Some(file_day) = self.file_day else {
            // An empty file is already the right file for any day.
            self.file_day = record_day;
            return;
        };
        let new_day = rotation::starts_new_file(file_day, record_day);
        let retry_due = self
            .retry_rotation_at
            .is_some_and(|at| Instant::now() >= at);
        let waiting_for_retry = self.retry_rotation_at.is_some() && !retry_due;
        if requested || ((new_day || retry_due) && !waiting_for_retry) {
            self.rotate(file_day, record_day);
        }
    }

    fn rotate(&mut self, file_day: NaiveDate, next_record_day: Option<NaiveDate>) {
        let dir = self.handle.log_dir().to_path_buf();
        let current = self.handle.current_path();
        if let Err(error) = self.file.flush() {
            self.report_rotation_failure(&format!("cannot write {}: {error}", current.display()));
            return;
        }
        if self.file_is_current {
            let existing_names = match file_names_in(&dir) {
                Ok(names) => names,
                Err(error) => {
                    // Without the listing the next free name is unknown, and
                    // a guess could overwrite an older rotated log.
                    self.report_rotation_failure(&format!(
                        "cannot list {}: {error}",
                        dir.display()
                    ));
                    return;
                }
            };
            let rotated = dir.join(rotation::rotated_file_name(file_day, existing_names));
            // The open handle moves with the file (Windows allows this
            // because std opens files with FILE_SHARE_DELETE).
            if let Err(error) = fs::rename(&current, &rotated) {
                self.report_rotation_failure(&format!(
                    "cannot rename {} to {}: {error}",
                    current.display(),
                    rotated.display()
                ));
                return;
            }
            self.file_is_current = false;
        }
        match open_for_append(&current) {
            Ok(file) => {
                self.file = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
                self.file_is_current = true;
                self.file_day = next_record_day.or_else(|| Some(self.clock.now().date_naive()));
                self.retry_rotation_at = None;
            }
            Err(error) => self.report_rotation_failure(&format!(
                "cannot create {} (logging continues in the rotated file): {error}",
                current.display()
            )),
        }
    }

    fn report_rotation_failure(&mut self, what: &str) {
        // The log file is the one place this cannot be reported reliably.
        eprintln!("injixo-cloud-link: log rotation failed: {what}; retrying in a minute");
        self.retry_rotation_at = Some(Instant::now() + ROTATION_RETRY_INTERVAL);
    }

    fn write_record_part(&mut self, part: &[u8]) {
        match self.file.write_all(part) {
            Ok(()) => self.write_error_reported = false,
            Err(error) if !self.write_error_reported => {
                self.write_error_reported = true;
                eprintln!(
                    "injixo-cloud-link: cannot write the log file {}: {error}",
                    self.handle.current_path().display()
                );
            }
            Err(_) => {}
        }
    }
}

impl Write for RotatingFile {
    /// Always consumes the whole buffer: an error here would make the
    /// appender worker drop the record and the rest of its batch silently.
    fn write(&mut self, record: &[u8]) -> io::Result<usize> {
        self.progress.written.fetch_add(1, Ordering::SeqCst);
        if record.is_empty() {
            return Ok(0);
        }
        if self.at_record_start {
            self.rotate_if_due(record);
        }
        self.write_record_part(record);
        self.at_record_start = record.ends_with(b"\n");
        Ok(record.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Err(error) = self.file.flush() {
            if !self.write_error_reported {
                self.write_error_reported = true;
                eprintln!(
                    "injixo-cloud-link: cannot write the log file {}: {error}",
                    self.handle.current_path().display()
                );
            }
        }
        Ok(())
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        let _ = self.flush();
        self.progress.mark_closed();
    }
}

pub(super) fn new_handle(log_dir: PathBuf) -> RotationHandle {
    RotationHandle::new(log_dir)
}

/// Opens the log for appending, never readable by other users (Unix): a log
/// holds file names, masked connection strings and, with `verbose`, rows of
/// customer data, and the install folder is usually world-readable. A log
/// left readable by an older version is narrowed too; the group bits are the
/// admin's to choose (e.g. `chgrp adm`), so they are kept.
fn open_for_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = options.mode(0o640).open(path)?;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o007 != 0 {
            file.set_permissions(fs::Permissions::from_mode(mode & 0o770))?;
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

fn file_names_in(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// The day an existing, non-empty log belongs to: the date of its first
/// record, else (a foreign or damaged first line) its modification day.
/// `Ok(None)` for an empty file.
fn day_of_existing_log(path: &Path) -> io::Result<Option<NaiveDate>> {
    let mut file = File::open(path)?;
    let mut start = [0u8; 11];
    let mut filled = 0;
    while filled < start.len() {
        match file.read(&mut start[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    if filled == 0 {
        return Ok(None);
    }
    if let Some(day) = rotation::record_date(&start[..filled]) {
        return Ok(Some(day));
    }
    let modified: DateTime<Local> = file.metadata()?.modified()?.into();
    Ok(Some(modified.date_naive()))
}

/// Renames a non-empty log left by a previous run to its dated name, so this
/// run starts a fresh file. An empty one is simply reused.
pub(super) fn rotate_leftover_log(dir: &Path) -> io::Result<Option<PathBuf>> {
    let current = dir.join(CURRENT_LOG_FILE_NAME);
    let day = match day_of_existing_log(&current) {
        Ok(Some(day)) => day,
        Ok(None) => return Ok(None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let rotated = dir.join(rotation::rotated_file_name(day, file_names_in(dir)?));
    fs::rename(&current, &rotated)?;
    Ok(Some(rotated))
}

/// What a keepDays clean-up did.
#[derive(Debug, Default)]
pub struct ExpiredLogs {
    pub deleted: Vec<PathBuf>,
    pub not_deleted: Vec<(PathBuf, io::Error)>,
}

/// Deletes the rotated logs `keep_days` no longer keeps. Never touches the
/// current log or anything not named exactly like our rotated logs.
pub fn delete_expired_logs(
    dir: &Path,
    today: NaiveDate,
    keep_days: u32,
) -> io::Result<ExpiredLogs> {
    let names = file_names_in(dir)?;
    let mut outcome = ExpiredLogs::default();
    for name in rotation::expired_file_names(names.iter().map(String::as_str), today, keep_days) {
        let path = dir.join(name);
        if !path.symlink_metadata().is_ok_and(|meta| meta.is_file()) {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => outcome.deleted.push(path),
            Err(error) => outcome.not_deleted.push((path, error)),
        }
    }
    Ok(outcome)
}
