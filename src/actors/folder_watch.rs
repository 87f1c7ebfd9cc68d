//! FolderWatchActor: the CSV importer. It watches the import folder, takes
//! each file once it is stable, skips content imported before (under any
//! name), spools the rest for the uploader, and records a checksum as
//! imported only when the cloud confirmed its commit.
//!
//! OS notifications are only a hint: they are lost on network shares and
//! under load, so the folder is also scanned at start and every 30 s, and
//! `[csv] poll = true` polls instead.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use chrono::Utc;
use tracing::{debug, error, info, warn};

use crate::actors::config::{AssignmentNews, ConfigActor, GetAssignment};
use crate::actors::slot::Slot;
use crate::actors::supervisor::Shutdown;
use crate::actors::uploader::{Delivery, Enqueued, UploaderActor};
use crate::config::{AfterImport, Config};
use crate::csv::folder::{FolderId, FolderWatch, WatchAction};
use crate::csv::removal::{removal_line, Fate};
use crate::csv::sniff::CodePageChoice;
use crate::csv::stability::TAIL_LEN;
use crate::csv::{
    ends_mid_line, FilePattern, Ledger, Observation, PipelineError, RefusalReason, Settling,
    Verdict,
};
use crate::protocol::{Integration, IntegrationKind};
use crate::spool::{NewItem, Spool, SpoolError};
use crate::state::StateDir;
use crate::status::{ImporterStatus, StatusBoard};

/// Also scan this often, whatever notifications say.
pub const RESCAN_EVERY: Duration = Duration::from_secs(30);
/// How often the importer looks for its folder while it is gone: it is
/// usually created again at once.
const FOLDER_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often a paused importer checks whether the spool has room again.
const ROOM_CHECK_EVERY: Duration = Duration::from_secs(5);
/// The importer's id in `status` and the heartbeat, and its spool origin.
pub const IMPORTER_ID: &str = "csv";

pub struct FolderWatchSettings {
    pub config: Arc<Config>,
    pub spool: Spool,
    pub uploader: Slot<UploaderActor>,
    pub assignment: Slot<ConfigActor>,
    pub board: StatusBoard,
    pub state: StateDir,
}

/// What one pass over a stable file came to.
enum Outcome {
    /// With the code page chosen for an 8-bit file another one would also
    /// read, for the log.
    Spooled(Box<crate::spool::SpooledItem>, Option<CodePageChoice>),
    /// The content was imported before, or is being uploaded, under `earlier`.
    Duplicate {
        earlier: String,
        when: String,
    },
    /// Not to be imported until the file changes.
    Refused {
        reason: RefusalReason,
        detail: String,
    },
    /// The file changed or vanished while it was read: look again later.
    Changed,
    SpoolFull {
        used: u64,
        budget: u64,
    },
    /// The disk (or quota) of the spool is full: nothing was spooled, the
    /// file is tried again once there is room.
    DiskFull {
        error: String,
    },
    Failed {
        error: String,
    },
}

pub struct FolderWatchActor {
    settings: FolderWatchSettings,
    pattern: Option<FilePattern>,
    ledger: Option<Arc<Mutex<Ledger>>>,
    watcher: Option<Box<dyn notify::Watcher>>,
    /// Which folder the watch is on, to re-arm it when the folder is
    /// replaced or comes back.
    folder_watch: FolderWatch,
    /// Looks for the folder every second while it is gone.
    folder_check: Option<SpawnHandle>,
    /// Counts the watches started: an event about the folder itself from a
    /// watch already replaced (they arrive late) is not news.
    watch_generation: u64,
    settling: Settling<PathBuf>,
    /// A timer is set to look at the file again at this instant (kept only
    /// for long waits, see `consider`).
    wake: HashMap<PathBuf, std::time::Instant>,
    /// File versions handled in this run: no need to read them again.
    handled: HashMap<PathBuf, Handled>,
    /// Content spooled but not yet committed: sha256 → file name.
    in_upload: Arc<Mutex<HashMap<String, String>>>,
    /// Files to read, each with the version that was found stable: a
    /// different one found when it is read has changed since and must
    /// settle again.
    queue: VecDeque<(PathBuf, Observation)>,
    queued: HashSet<PathBuf>,
    busy: bool,
    paused_for_room: bool,
    /// Waiting before the next try after the disk was full.
    paused_for_disk: bool,
    /// The disk-full warning was logged and no file was spooled since.
    disk_full_reported: bool,
    /// Paths matching the pattern that are not importable as they are (a
    /// folder, a pipe, a symbolic link loop), with the reason logged, so each
    /// is logged once until it changes.
    not_importable: HashMap<PathBuf, String>,
    /// Files whose last read failed, with the error logged: a repeat of the
    /// same error every scan is not logged again.
    failing: HashMap<PathBuf, String>,
    /// Confirmed imports the ledger could not record (a full disk): written
    /// when it works again, so a restart does not upload them again.
    unrecorded: Vec<Unrecorded>,
    folder_missing_warned: bool,
    rescan: Option<SpawnHandle>,
}

impl FolderWatchActor {
    pub fn new(settings: FolderWatchSettings) -> Self {
        let settle = Duration::from_secs(settings.config.csv.settle_seconds);
        let partial_line = Duration::from_secs(settings.config.csv.partial_line_seconds);
        FolderWatchActor {
            settings,
            pattern: None,
            ledger: None,
            watcher: None,
            folder_watch: FolderWatch::default(),
            folder_check: None,
            watch_generation: 0,
            settling: Settling::new(settle).with_partial_line_quiet(partial_line),
            wake: HashMap::new(),
            handled: HashMap::new(),
            in_upload: Arc::default(),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            busy: false,
            paused_for_room: false,
            paused_for_disk: false,
            disk_full_reported: false,
            not_importable: HashMap::new(),
            failing: HashMap::new(),
            unrecorded: Vec::new(),
            folder_missing_warned: false,
            rescan: None,
        }
    }

    fn folder(&self) -> &Path {
        &self.settings.config.app.import_directory
    }

    fn set_state(&self, state: &str, error: Option<String>) {
        let state = state.to_owned();
        self.settings.board.update(|s| {
            let entry = s.importers.entry(IMPORTER_ID.to_owned()).or_default();
            entry.state = state;
            if error.is_some() {
                entry.last_error = error;
            }
        });
    }

    /// A CSV assignment arrived or changed: (re)start watching with its
    /// pattern. Anything else stops this importer.
    fn apply_assignment(&mut self, integration: Option<&Integration>, ctx: &mut Context<Self>) {
        let pattern = integration
            .filter(|i| i.kind == IntegrationKind::Csv)
            .map(|i| i.csv.clone().unwrap_or_default().pattern);
        let Some(pattern) = pattern else {
            if self.pattern.take().is_some() {
                info!("CSV import stopped: the assignment is no longer a CSV integration");
            }
            self.stop_watching(ctx);
            self.settings.board.update(|s| {
                s.importers.remove(IMPORTER_ID);
            });
            return;
        };
        if self.pattern.as_ref().map(FilePattern::as_str) == Some(pattern.as_str()) {
            return;
        }
        let compiled = match FilePattern::new(&pattern) {
            Ok(p) => p,
            Err(e) => {
                error!("the integration's file pattern {pattern:?} is invalid ({e}); CSV import waits for a corrected assignment");
                self.set_state(
                    "failing",
                    Some(format!("invalid file pattern {pattern:?}: {e}")),
                );
                return;
            }
        };
        if self.ledger.is_none() {
            match Ledger::open_in(self.settings.state.root()) {
                Ok((ledger, warnings)) => {
                    for warning in warnings {
                        warn!("{warning}");
                    }
                    self.ledger = Some(Arc::new(Mutex::new(ledger)));
                }
                Err(e) => {
                    error!(
                        "cannot open the CSV ledger: {}; retrying in 30 s",
                        crate::report::chain(&e)
                    );
                    self.set_state("failing", Some(e.to_string()));
                    ctx.run_later(RESCAN_EVERY, move |act, ctx| {
                        act.pattern = None;
                        act.ask_for_assignment(ctx);
                    });
                    return;
                }
            }
        }
        self.pattern = Some(compiled);
        self.handled.clear();
        info!(
            "watching {} for files matching {pattern} ({}; full scan every {} s)",
            self.folder().display(),
            if self.settings.config.csv.poll {
                "polling"
            } else {
                "OS notifications"
            },
            RESCAN_EVERY.as_secs()
        );
        self.set_state("watching", None);
        self.check_folder(ctx);
        self.scan(ctx);
        if self.rescan.is_none() {
            self.rescan = Some(ctx.run_interval(RESCAN_EVERY, |act, ctx| {
                act.check_folder(ctx);
                act.scan(ctx);
            }));
        }
    }

    fn ask_for_assignment(&mut self, ctx: &mut Context<Self>) {
        let Some(config) = self.settings.assignment.get() else {
            return;
        };
        ctx.spawn(
            config
                .send(GetAssignment)
                .into_actor(self)
                .map(|answer, act, ctx| {
                    if let Ok(Some(integration)) = answer {
                        act.apply_assignment(Some(&integration), ctx);
                    }
                }),
        );
    }

    fn stop_watching(&mut self, ctx: &mut Context<Self>) {
        self.watcher = None;
        self.folder_watch = FolderWatch::default();
        for handle in [self.rescan.take(), self.folder_check.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_future(handle);
        }
        self.queue.clear();
        self.queued.clear();
    }

    /// Looks at the folder at the import path and (re)arms the watch when it
    /// is not on that folder; see `csv::folder`.
    fn check_folder(&mut self, ctx: &mut Context<Self>) {
        if self.pattern.is_none() {
            return;
        }
        let seen = std::fs::metadata(self.folder())
            .ok()
            .filter(std::fs::Metadata::is_dir)
            .map(|meta| FolderId::of(&meta));
        let folder = self.folder().display().to_string();
        match self.folder_watch.check(seen, self.folder_missing_warned) {
            WatchAction::Keep => return,
            WatchAction::Lost | WatchAction::Missing => {
                // Dropped: a watch on a removed folder never fires again.
                // Looked for every second: it is usually back at once.
                self.watcher = None;
                if self.folder_check.is_none() {
                    self.folder_check = Some(
                        ctx.run_interval(FOLDER_CHECK_EVERY, |act, ctx| act.check_folder(ctx)),
                    );
                }
                return;
            }
            WatchAction::Arm => {}
            WatchAction::Replaced => info!(
                "the import folder {folder} was replaced (removed and created again, or \
                 mounted over); watching the new one"
            ),
            WatchAction::Back => {
                info!("the import folder {folder} is back; watching it again");
                self.folder_missing_warned = false;
                self.set_state("watching", None);
            }
        }
        if let Some(handle) = self.folder_check.take() {
            ctx.cancel_future(handle);
        }
        self.watcher = None;
        self.start_watcher(ctx);
        if self.watcher.is_some() {
            if let Some(id) = seen {
                self.folder_watch.watching(id);
            }
        }
        // Files dropped between the replacement and the new watch.
        self.scan(ctx);
    }

    fn start_watcher(&mut self, ctx: &mut Context<Self>) {
        if !self.folder().is_dir() {
            return; // scan() warns and retries
        }
        let addr = ctx.address();
        self.watch_generation += 1;
        let generation = self.watch_generation;
        let on_event = move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let removed = event.kind.is_remove();
                for path in event.paths {
                    addr.do_send(FileEvent {
                        path,
                        removed,
                        generation,
                    });
                }
            }
        };
        let started: notify::Result<Box<dyn notify::Watcher>> = if self.settings.config.csv.poll {
            let config = notify::Config::default().with_poll_interval(Duration::from_secs(2));
            notify::PollWatcher::new(on_event, config)
                .map(|w| Box::new(w) as Box<dyn notify::Watcher>)
        } else {
            notify::recommended_watcher(on_event).map(|w| Box::new(w) as Box<dyn notify::Watcher>)
        };
        match started.and_then(|mut watcher| {
            watcher.watch(self.folder(), notify::RecursiveMode::NonRecursive)?;
            Ok(watcher)
        }) {
            Ok(watcher) => self.watcher = Some(watcher),
            Err(e) => warn!(
                "cannot watch {} for changes ({e}); relying on the scan every {} s",
                self.folder().display(),
                RESCAN_EVERY.as_secs()
            ),
        }
    }

    fn scan(&mut self, ctx: &mut Context<Self>) {
        if self.pattern.is_none() {
            return;
        }
        let entries = match std::fs::read_dir(self.folder()) {
            Ok(entries) => entries,
            Err(e) => {
                if !self.folder_missing_warned {
                    warn!(
                        "cannot read the import folder {}: {e}; checking again every {} s",
                        self.folder().display(),
                        RESCAN_EVERY.as_secs()
                    );
                    self.folder_missing_warned = true;
                    self.set_state("waiting for the import folder", Some(e.to_string()));
                }
                self.watcher = None;
                self.folder_watch.not_watching();
                return;
            }
        };
        if self.folder_missing_warned {
            info!(
                "the import folder {} is readable again",
                self.folder().display()
            );
            self.folder_missing_warned = false;
            self.set_state("watching", None);
        }
        for entry in entries.flatten() {
            self.consider(entry.path(), ctx);
        }
        // Forget files that are gone (a removal whose event was lost is
        // reported here).
        let gone: Vec<PathBuf> = self
            .handled
            .keys()
            .filter(|path| !path.exists())
            .cloned()
            .collect();
        for path in gone {
            self.gone(&path);
        }
        self.not_importable
            .retain(|path, _| path.symlink_metadata().is_ok());
        self.failing
            .retain(|path, _| path.symlink_metadata().is_ok());
        self.record_unrecorded();
    }

    /// Logs once (until the reason changes) why a path that matches the
    /// pattern is not imported.
    fn not_importable(&mut self, path: &Path, name: &str, reason: String) {
        if self.not_importable.get(path) != Some(&reason) {
            warn!("not importing {name}: {reason}; it is looked at again when it changes");
            self.not_importable.insert(path.to_owned(), reason);
        }
    }

    /// Looks at one path: is it ours to import, and is it stable yet?
    fn consider(&mut self, path: PathBuf, ctx: &mut Context<Self>) {
        let Some(pattern) = &self.pattern else {
            return;
        };
        if path.parent() != Some(self.folder()) {
            return; // not directly in the import folder
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return;
        };
        if !pattern.selects(name) {
            return;
        }
        let name = name.to_owned();
        // Follows symbolic links.
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if path.symlink_metadata().is_ok() {
                    self.settling.forget(&path);
                    let reason = "it is a symbolic link to a file that does not exist".into();
                    self.not_importable(&path, &name, reason);
                } else {
                    self.gone(&path);
                }
                return;
            }
            Err(e) => {
                // A symbolic link loop, or a folder on the way we may not enter.
                self.settling.forget(&path);
                self.not_importable(&path, &name, format!("cannot look at it: {e}"));
                return;
            }
        };
        if !meta.is_file() {
            let reason = format!(
                "it is {}, not a file",
                describe_file_type(&meta.file_type())
            );
            self.not_importable(&path, &name, reason);
            return;
        }
        if self.not_importable.remove(&path).is_some() {
            info!("{name} is a file now; it is imported once it is stable");
        }
        let observation = Observation {
            size: meta.len(),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        };
        if self.handled.get(&path).map(|h| h.observation) == Some(observation)
            || self.queued.contains(&path)
        {
            return;
        }
        if let Some(ledger) = &self.ledger {
            let ledger = lock(ledger);
            let key = path.to_string_lossy();
            let fate = if ledger
                .refusal(&key, observation.size, observation.mtime)
                .is_some()
            {
                Some(Fate::Refused)
            } else if ledger.is_known_version(&key, observation.size, observation.mtime) {
                Some(Fate::Imported)
            } else {
                None
            };
            if let Some(fate) = fate {
                self.handled.insert(path, Handled { observation, fate });
                return;
            }
        }
        // A file that cannot be read is not cut: the reader reports why.
        let mid_line = read_tail(&path, observation.size)
            .is_ok_and(|tail| ends_mid_line(&tail, observation.size));
        let now = std::time::Instant::now();
        match self
            .settling
            .observe(path.clone(), observation, mid_line, now)
        {
            Verdict::Stable => self.take(path, observation, ctx),
            Verdict::StableMidLine => {
                warn!(
                    "importing {name} although its last line has no line end: it stayed \
                     unchanged for {} s ([csv] partialLineSeconds), so it is taken as complete",
                    self.settling.partial_line_quiet().as_secs()
                );
                self.take(path, observation, ctx);
            }
            Verdict::Wait(until) => {
                let delay = until.saturating_duration_since(now);
                // A file waiting minutes for its line end is seen by every
                // scan and event meanwhile: one timer per deadline, not one
                // per look. Settle waits are too short to pile up, and 20,000
                // files at start need no bookkeeping for them.
                if delay > RESCAN_EVERY {
                    if self.wake.get(&path).is_some_and(|&set| set <= until) {
                        return;
                    }
                    self.wake.insert(path.clone(), until);
                }
                ctx.run_later(delay + Duration::from_millis(20), move |act, ctx| {
                    if act.wake.get(&path) == Some(&until) {
                        act.wake.remove(&path);
                    }
                    act.consider(path, ctx)
                });
            }
        }
    }

    /// Queues a stable file for reading, as the version `observation`.
    fn take(&mut self, path: PathBuf, observation: Observation, ctx: &mut Context<Self>) {
        self.queued.insert(path.clone());
        self.queue.push_back((path, observation));
        self.process_next(ctx);
    }

    /// `path` is no longer in the import folder: one line saying what that
    /// means for its data, and its state forgotten.
    fn gone(&mut self, path: &Path) {
        let fate = if self.queued.contains(path) {
            Fate::Reading
        } else if let Some(handled) = self.handled.remove(path) {
            self.settling.forget(&path.to_path_buf());
            handled.fate
        } else if self.settling.vanished(&path.to_path_buf()) {
            Fate::Settling
        } else {
            Fate::Untracked
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(line) = removal_line(&name, fate) {
            info!("{line}");
        }
    }

    fn process_next(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.paused_for_room || self.paused_for_disk {
            return;
        }
        let Some((path, approved)) = self.queue.pop_front() else {
            return;
        };
        let (Some(ledger), Some(_)) = (self.ledger.clone(), &self.pattern) else {
            return;
        };
        self.busy = true;
        let spool = self.settings.spool.clone();
        let in_upload = Arc::clone(&self.in_upload);
        let max_bytes = self.settings.config.csv.max_bytes;
        let work_path = path.clone();
        let work = actix_rt::task::spawn_blocking(move || {
            prepare_file(&work_path, approved, &spool, &ledger, &in_upload, max_bytes)
        });
        ctx.spawn(work.into_actor(self).map(move |joined, act, ctx| {
            act.busy = false;
            act.queued.remove(&path);
            let (outcome, observation) = match joined {
                Ok(result) => result,
                Err(e) => (
                    Outcome::Failed {
                        error: format!("the file reader crashed: {e}"),
                    },
                    None,
                ),
            };
            act.finish((path, approved), outcome, observation, ctx);
            act.process_next(ctx);
        }));
    }

    /// What became of reading `path`, queued as the version `approved`.
    fn finish(
        &mut self,
        (path, approved): (PathBuf, Observation),
        outcome: Outcome,
        observation: Option<Observation>,
        ctx: &mut Context<Self>,
    ) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !matches!(outcome, Outcome::Failed { .. } | Outcome::DiskFull { .. })
            && self.failing.remove(&path).is_some()
        {
            info!("{name} could be read this time");
        }
        // Only a file written whole into the spool proves there is room.
        if matches!(outcome, Outcome::Spooled(..) | Outcome::Duplicate { .. })
            && std::mem::take(&mut self.disk_full_reported)
        {
            info!("the spool's disk has room again; CSV import resumes");
            self.set_state("watching", None);
            self.record_unrecorded();
        }
        match outcome {
            Outcome::Spooled(item, code_page) => {
                if let Some(observation) = observation {
                    let fate = Fate::Imported;
                    self.handled.insert(path, Handled { observation, fate });
                }
                debug!("spooled {name} as item {}", item.id);
                if let Some(line) = code_page.and_then(|choice| choice.log_line(&name)) {
                    info!("{line}");
                }
                if item.metadata.get("counts_complete") == Some(&false.into()) {
                    warn!(
                        "{name} has a record longer than {} MiB (an unbalanced quote, or no \
                         line breaks): it is uploaded whole, but its rows and columns are \
                         counted only up to there",
                        crate::csv::MAX_RECORD_BYTES >> 20
                    );
                }
                if let Some(uploader) = self.settings.uploader.get() {
                    uploader.do_send(Enqueued(*item));
                }
            }
            Outcome::Duplicate { earlier, when } => {
                if let Some(observation) = observation {
                    let fate = Fate::Duplicate;
                    self.handled.insert(path, Handled { observation, fate });
                }
                info!("skipped {name}: same content as {earlier} ({when})");
            }
            Outcome::Refused { reason, detail } => {
                if let Some(o) = observation {
                    if let Some(ledger) = &self.ledger {
                        let key = path.to_string_lossy();
                        if let Err(e) = lock(ledger).record_refusal(&key, o.size, o.mtime, reason) {
                            warn!("cannot record the refusal of {name} in the ledger: {e}");
                        }
                    }
                    let fate = Fate::Refused;
                    self.handled.insert(
                        path,
                        Handled {
                            observation: o,
                            fate,
                        },
                    );
                }
                warn!("not importing {name}: {detail}; it is tried again when the file changes");
            }
            Outcome::Changed if path.symlink_metadata().is_err() => {
                self.settling.forget(&path);
                info!("{name} was removed while it was being read; nothing to import");
            }
            Outcome::Changed => {
                debug!("{name} changed since it was found stable; waiting for it to settle");
                self.settling.forget(&path);
                ctx.run_later(Duration::from_millis(200), move |act, ctx| {
                    act.consider(path, ctx)
                });
            }
            Outcome::SpoolFull { used, budget } => {
                if !self.paused_for_room {
                    warn!(
                        "the spool is full ({} of {} waiting for upload, [spool] maxBytes); CSV import pauses until uploads make room",
                        crate::config::format_byte_size(used),
                        crate::config::format_byte_size(budget)
                    );
                }
                self.paused_for_room = true;
                self.set_state("paused: spool full", None);
                self.queued.insert(path.clone());
                self.queue.push_front((path, approved));
                ctx.run_later(ROOM_CHECK_EVERY, |act, ctx| act.check_room(ctx));
            }
            Outcome::DiskFull { error } => {
                if !self.disk_full_reported {
                    warn!(
                        "the disk of the spool is full ({error}); CSV import pauses and tries \
                         {name} again every {} s until there is room",
                        ROOM_CHECK_EVERY.as_secs()
                    );
                    self.disk_full_reported = true;
                }
                self.paused_for_disk = true;
                self.set_state("paused: disk full", Some(error));
                self.queued.insert(path.clone());
                self.queue.push_front((path, approved));
                ctx.run_later(ROOM_CHECK_EVERY, |act, ctx| {
                    act.paused_for_disk = false;
                    act.process_next(ctx);
                });
            }
            Outcome::Failed { error } => {
                if self.failing.get(&path) == Some(&error) {
                    debug!("still cannot import {name}: {error}");
                } else {
                    warn!(
                        "cannot import {name}: {error}; trying again every {} s \
                         (logged again only if the error changes)",
                        RESCAN_EVERY.as_secs()
                    );
                }
                self.failing.insert(path.clone(), error.clone());
                self.settling.forget(&path);
                self.set_state("watching", Some(format!("{name}: {error}")));
            }
        }
    }

    /// Writes the ledger entries a full disk kept out, oldest first.
    fn record_unrecorded(&mut self) {
        let Some(ledger) = &self.ledger else {
            return;
        };
        let mut ledger = lock(ledger);
        while let Some(entry) = self.unrecorded.first() {
            if let Err(e) = entry.record(&mut ledger) {
                debug!("still cannot record {} as imported: {e}", entry.file_name);
                return;
            }
            info!("recorded {} as imported in the CSV ledger", entry.file_name);
            self.unrecorded.remove(0);
        }
    }

    fn check_room(&mut self, ctx: &mut Context<Self>) {
        if !self.paused_for_room {
            return;
        }
        if self.settings.spool.has_room() {
            info!("the spool has room again; CSV import resumes");
            self.paused_for_room = false;
            self.set_state("watching", None);
            self.process_next(ctx);
        } else {
            ctx.run_later(ROOM_CHECK_EVERY, |act, ctx| act.check_room(ctx));
        }
    }

    fn delivered(&mut self, delivery: &Delivery) {
        let Some(ledger) = &self.ledger else {
            return;
        };
        let item = delivery.item();
        lock(&self.in_upload).remove(&item.idempotency_key);
        let source = source_file(item);
        match delivery {
            Delivery::Committed { import_id, .. } => {
                let entry = Unrecorded {
                    sha256: item.idempotency_key.clone(),
                    file_name: item.file_name.clone(),
                    import_id: import_id.clone(),
                    at: Utc::now(),
                    source: source.clone(),
                };
                let recorded = if self.unrecorded.is_empty() {
                    entry.record(&mut lock(ledger))
                } else {
                    Err(crate::csv::LedgerError::Write {
                        path: lock(ledger).path().to_owned(),
                        source: std::io::Error::other("earlier entries are waiting"),
                    })
                };
                if let Err(e) = recorded {
                    // Kept until the ledger can be written (see scan). The
                    // cloud deduplicates by key: were the client stopped
                    // before, it would only cost a re-upload.
                    warn!(
                        "cannot record {} as imported yet: {e}; trying again every {} s",
                        item.file_name,
                        RESCAN_EVERY.as_secs()
                    );
                    self.unrecorded.push(entry);
                }
                self.settings.board.update(|s| {
                    let entry: &mut ImporterStatus =
                        s.importers.entry(IMPORTER_ID.to_owned()).or_default();
                    entry.last_success_at = Some(Utc::now());
                    entry.last_error = None;
                });
                if self.settings.config.csv.after_import == AfterImport::Move {
                    if let Some((path, size, mtime)) = source {
                        if move_imported(self.folder(), &path, size, mtime) {
                            // The move's own line says where it went.
                            self.handled.remove(&path);
                            self.settling.forget(&path);
                        }
                    }
                }
            }
            Delivery::Rejected { reason, .. } => {
                self.set_state(
                    "watching",
                    Some(format!(
                        "{}: rejected by the cloud: {reason}",
                        item.file_name
                    )),
                );
            }
        }
    }
}

/// A file version handled in this run, and what became of it.
#[derive(Debug, Clone, Copy)]
struct Handled {
    observation: Observation,
    fate: Fate,
}

/// The last bytes of a file of `size` bytes (up to [`TAIL_LEN`]), to tell
/// whether it ends mid-line.
fn read_tail(path: &Path, size: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let take = size.min(TAIL_LEN);
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(size - take))?;
    let mut tail = Vec::with_capacity(TAIL_LEN as usize);
    file.take(take).read_to_end(&mut tail)?;
    Ok(tail)
}

/// A confirmed import, as the ledger records it.
struct Unrecorded {
    sha256: String,
    file_name: String,
    import_id: String,
    at: chrono::DateTime<Utc>,
    source: Option<(PathBuf, u64, SystemTime)>,
}

impl Unrecorded {
    fn record(&self, ledger: &mut Ledger) -> Result<(), crate::csv::LedgerError> {
        ledger.record_imported(&self.sha256, &self.file_name, &self.import_id, self.at)?;
        if let Some((path, size, mtime)) = &self.source {
            ledger.record_version(&path.to_string_lossy(), *size, *mtime)?;
        }
        Ok(())
    }
}

/// A file type as the "not importing" line names it.
fn describe_file_type(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// ENOSPC or EDQUOT (and their Windows equivalents): waiting helps, giving
/// up on the file does not.
fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The local file an item came from, as the importer noted it in the item's
/// local (never uploaded) data.
fn source_file(item: &crate::spool::SpooledItem) -> Option<(PathBuf, u64, SystemTime)> {
    let path = item.local.get(LOCAL_PATH)?.as_str()?;
    let size = item.local.get(LOCAL_SIZE)?.as_u64()?;
    let nanos = item.local.get(LOCAL_MTIME_NS)?.as_u64()?;
    Some((
        PathBuf::from(path),
        size,
        SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos),
    ))
}

/// `afterImport = "move"`: into `imported/<date>/`, only if the file is still
/// the version that was imported (a newer version stays for its own import).
/// Returns whether it was moved.
fn move_imported(folder: &Path, path: &Path, size: u64, modified: SystemTime) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if meta.len() != size || meta.modified().ok() != Some(modified) {
        return false;
    }
    let target_dir = folder
        .join("imported")
        .join(chrono::Local::now().format("%Y-%m-%d").to_string());
    let Some(name) = path.file_name() else {
        return false;
    };
    let mut target = target_dir.join(name);
    let mut n = 1;
    while target.exists() {
        target = target_dir.join(format!("{}.{n}", name.to_string_lossy()));
        n += 1;
    }
    match std::fs::create_dir_all(&target_dir).and_then(|()| std::fs::rename(path, &target)) {
        Ok(()) => {
            info!("moved {} to {}", path.display(), target.display());
            true
        }
        Err(e) => {
            warn!(
                "cannot move {} to {}: {e}; it stays where it is",
                path.display(),
                target.display()
            );
            false
        }
    }
}

const LOCAL_PATH: &str = "path";
const LOCAL_SIZE: &str = "size";
const LOCAL_MTIME_NS: &str = "mtime_ns";

/// Reads a stable file once (off the actor runtime): checksum, sniffing,
/// counting and compression into a new spool item, unless its content was
/// imported before or is being uploaded.
fn prepare_file(
    path: &Path,
    approved: Observation,
    spool: &Spool,
    ledger: &Mutex<Ledger>,
    in_upload: &Mutex<HashMap<String, String>>,
    max_bytes: u64,
) -> (Outcome, Option<Observation>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return (Outcome::Changed, None);
    };
    let observed = Observation {
        size: meta.len(),
        mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
    };
    if approved != observed {
        // Written to since it was found stable (perhaps cut mid-line again).
        return (Outcome::Changed, None);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A second pass only when the whole file turned out to be in an encoding
    // written differently from what its first part suggested.
    let mut encoding = None;
    let (writer, prepared) = loop {
        let mut writer = match spool.begin(&name) {
            Ok(writer) => writer,
            Err(SpoolError::Full { used, budget }) => {
                return (Outcome::SpoolFull { used, budget }, Some(observed))
            }
            Err(SpoolError::Io { source, .. }) if is_disk_full(&source) => {
                let error = source.to_string();
                return (Outcome::DiskFull { error }, Some(observed));
            }
            Err(e) => {
                return (
                    Outcome::Failed {
                        error: crate::report::chain(&e),
                    },
                    Some(observed),
                )
            }
        };
        match crate::csv::pipeline::prepare_as(path, &mut writer, max_bytes, encoding) {
            Ok(prepared) => break (writer, prepared),
            Err(PipelineError::EncodingRevised {
                encoding: whole, ..
            }) if encoding.is_none() => {
                writer.abort();
                debug!("reading {name} again as {whole}");
                encoding = Some(whole);
            }
            Err(e) => {
                writer.abort();
                let outcome = match (e.refusal(), &e) {
                    (Some(reason), _) => Outcome::Refused {
                        reason,
                        detail: e.to_string(),
                    },
                    (None, PipelineError::Vanished { .. } | PipelineError::Changed { .. }) => {
                        return (Outcome::Changed, None)
                    }
                    (None, PipelineError::Sink(source)) if is_disk_full(source) => {
                        Outcome::DiskFull {
                            error: source.to_string(),
                        }
                    }
                    (None, _) => Outcome::Failed {
                        error: crate::report::chain(&e),
                    },
                };
                return (outcome, Some(observed));
            }
        }
    };
    if let Some(earlier) = lock(ledger).imported(&prepared.sha256) {
        writer.abort();
        let when = earlier
            .imported_at
            .with_timezone(&chrono::Local)
            .format("imported %Y-%m-%d %H:%M:%S")
            .to_string();
        return (
            Outcome::Duplicate {
                earlier: earlier.file_name.clone(),
                when,
            },
            Some(observed),
        );
    }
    {
        let mut in_upload = lock(in_upload);
        if let Some(earlier) = in_upload.get(&prepared.sha256) {
            writer.abort();
            return (
                Outcome::Duplicate {
                    earlier: earlier.clone(),
                    when: "being uploaded".to_owned(),
                },
                Some(observed),
            );
        }
        in_upload.insert(prepared.sha256.clone(), name.clone());
    }
    let mut local = std::collections::BTreeMap::new();
    local.insert(
        LOCAL_PATH.to_owned(),
        path.to_string_lossy().into_owned().into(),
    );
    local.insert(LOCAL_SIZE.to_owned(), observed.size.into());
    let mtime_ns = observed
        .mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    local.insert(LOCAL_MTIME_NS.to_owned(), mtime_ns.into());
    let item = NewItem {
        source: crate::protocol::UploadSource::Csv,
        idempotency_key: prepared.sha256.clone(),
        file_name: name.clone(),
        content_type: "text/csv".to_owned(),
        metadata: prepared.metadata(&name, observed.mtime),
        origin: IMPORTER_ID.to_owned(),
        local,
    };
    match writer.commit(item) {
        Ok(item) => (
            Outcome::Spooled(Box::new(item), prepared.code_page_choice),
            Some(observed),
        ),
        Err(e) => {
            lock(in_upload).remove(&prepared.sha256);
            let outcome = match e {
                SpoolError::Full { used, budget } => Outcome::SpoolFull { used, budget },
                SpoolError::Io { source, .. } if is_disk_full(&source) => Outcome::DiskFull {
                    error: source.to_string(),
                },
                e => Outcome::Failed {
                    error: crate::report::chain(&e),
                },
            };
            (outcome, Some(observed))
        }
    }
}

impl Actor for FolderWatchActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Content already waiting in the spool (from before a restart) is
        // "being uploaded": a scan must not spool it a second time.
        match self.settings.spool.pending() {
            Ok(items) => {
                let mut in_upload = lock(&self.in_upload);
                for item in items.into_iter().filter(|i| i.origin == IMPORTER_ID) {
                    in_upload.insert(item.idempotency_key, item.file_name);
                }
            }
            Err(e) => warn!("cannot list the spool: {}", crate::report::chain(&e)),
        }
        // After a restart by the supervisor, ConfigActor will not repeat
        // itself: ask it.
        self.ask_for_assignment(ctx);
    }
}

/// The path of a file event from the OS watcher, whether it was a removal,
/// and which watch (`watch_generation`) saw it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FileEvent {
    pub path: PathBuf,
    pub removed: bool,
    pub generation: u64,
}

impl Handler<FileEvent> for FolderWatchActor {
    type Result = ();

    fn handle(&mut self, event: FileEvent, ctx: &mut Context<Self>) {
        let FileEvent {
            path,
            removed,
            generation,
        } = event;
        if path == self.folder() {
            if generation != self.watch_generation {
                return; // about a folder no longer watched
            }
            // The watched folder itself was removed or renamed.
            if removed {
                self.folder_watch.removed();
            }
            self.check_folder(ctx);
        } else {
            self.consider(path, ctx);
        }
    }
}

impl Handler<AssignmentNews> for FolderWatchActor {
    type Result = ();

    fn handle(&mut self, AssignmentNews(integration): AssignmentNews, ctx: &mut Context<Self>) {
        self.apply_assignment(integration.as_ref(), ctx);
    }
}

/// The uploader finished one of this importer's items.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Delivered(pub Delivery);

impl Handler<Delivered> for FolderWatchActor {
    type Result = ();

    fn handle(&mut self, Delivered(delivery): Delivered, _: &mut Context<Self>) {
        self.delivered(&delivery);
    }
}

impl Handler<Shutdown> for FolderWatchActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        // A file being read is abandoned: its temporary spool file is
        // removed at the next start and the file is read again.
        self.stop_watching(ctx);
        ctx.stop();
    }
}
