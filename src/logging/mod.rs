//! Logging: `injixo-cloud-link.log` in the install folder, rotated at every
//! start and at local midnight into `injixo-cloud-link.<date>.<n>.log`, plus
//! the console when the daemon runs in a terminal.
//!
//! Records go through `tracing_appender::non_blocking` (never lossy) to
//! [`writer::RotatingFile`], which rotates between records by their dates;
//! the LogRotatorActor (an actor above this module) makes sure a record exists
//! at midnight and deletes expired logs when `[log] keepDays` is set.

pub mod clock_step;
pub mod event_filter;
#[cfg(windows)]
mod event_log;
mod format;
pub mod rotation;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Local};
use tracing::Subscriber;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_log::AsLog;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

pub use rotation::CURRENT_LOG_FILE_NAME;
pub use writer::{delete_expired_logs, ExpiredLogs, RotationHandle};

use format::LineFormat;
use writer::{Progress, RotatingFile};

/// Developers' override of the log filter, in `EnvFilter` syntax.
pub const LOG_FILTER_ENV_VAR: &str = "INJIXO_CLOUD_LINK_LOG";

/// The importers' targets that `verbose = true` logs at DEBUG.
pub const VERBOSE_TARGETS: [&str; 4] = [
    "injixo_cloud_link::actors::folder_watch",
    "injixo_cloud_link::actors::db_poll",
    "injixo_cloud_link::csv",
    "injixo_cloud_link::db",
];

/// At shutdown, how long the writer may make no progress before the
/// remaining queued records are given up (a hung disk must not keep the
/// service from stopping).
const SHUTDOWN_STALL_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub install_dir: PathBuf,
    pub verbose: bool,
    /// Also log to stderr (with colours); the caller sets it when stderr is a terminal.
    pub console: bool,
    /// `[log] keepDays`: delete rotated logs older than this many days; `None` keeps all.
    pub keep_days: Option<u32>,
    /// Windows: also send starts, stops, warnings and errors to the Event
    /// Log under this source name (a service); `None` elsewhere.
    pub event_log: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot create the log folder {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot open log file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot install the logger: another global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// The source of "now" for log timestamps and the midnight schedule, so
/// tests can run a day change without waiting for one.
pub trait Clock: Send + Sync + 'static {
    /// The local time, with its UTC offset.
    fn now(&self) -> DateTime<FixedOffset>;
    /// The start of the local day after `now` (see [`rotation::next_local_midnight`]).
    fn next_midnight(&self, now: DateTime<FixedOffset>) -> DateTime<FixedOffset>;
}

/// The machine's clock and time zone, through `chrono::Local` (the `time`
/// crate's local offset is unsound in multithreaded processes).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<FixedOffset> {
        Local::now().fixed_offset()
    }

    fn next_midnight(&self, now: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        rotation::next_local_midnight(&now.with_timezone(&Local)).fixed_offset()
    }
}

/// Keeps the log writer alive. Hold it for the whole process; dropping it
/// writes every record logged before the drop, then closes the file.
#[must_use = "dropping Logging stops writing the log file"]
pub struct Logging {
    path: PathBuf,
    rotation: RotationHandle,
    clock: Arc<dyn Clock>,
    progress: Arc<Progress>,
    worker_guard: Option<WorkerGuard>,
}

impl Logging {
    pub fn rotation(&self) -> RotationHandle {
        self.rotation.clone()
    }

    /// The current log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    /// Blocks until every record logged before this call is written to the
    /// file (not necessarily synced to disk), or the writer makes no progress
    /// for `stall_limit`. Returns whether everything was written.
    pub fn wait_until_written(&self, stall_limit: Duration) -> bool {
        // Records logged meanwhile by other threads are not waited for, so
        // a chatty thread cannot keep shutdown waiting for ever.
        let target = self.progress.queued.load(Ordering::SeqCst);
        let mut last_written = self.progress.written.load(Ordering::SeqCst);
        let mut last_progress = Instant::now();
        loop {
            let written = self.progress.written.load(Ordering::SeqCst);
            if written >= target {
                return true;
            }
            if written != last_written {
                last_written = written;
                last_progress = Instant::now();
            } else if last_progress.elapsed() >= stall_limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Logging {
    fn drop(&mut self) {
        // The appender's own guard waits at most a second for the worker; a
        // long backlog would be cut off when the process exits. So drain
        // first, while the queue is still open, then let the guard stop the
        // worker and wait for the file to be flushed and closed.
        let drained = self.wait_until_written(SHUTDOWN_STALL_LIMIT);
        drop(self.worker_guard.take());
        let closed = drained && self.progress.wait_closed(SHUTDOWN_STALL_LIMIT);
        if !closed {
            let lost = self
                .progress
                .queued
                .load(Ordering::SeqCst)
                .saturating_sub(self.progress.written.load(Ordering::SeqCst));
            eprintln!(
                "injixo-cloud-link: the log writer did not finish; up to {lost} records may be missing from {}",
                self.path.display()
            );
        }
    }
}

/// Rotates a log left by the previous run, then installs the global
/// subscriber (and the `log` crate bridge for dependencies).
///
/// Call only while holding the instance lock: a second instance must never
/// rotate the first one's log.
pub fn init(settings: &LogSettings) -> Result<Logging, LogError> {
    let (subscriber, logging) = build(settings)?;
    tracing::subscriber::set_global_default(subscriber).map_err(|_| LogError::AlreadyInstalled)?;
    // Not fatal: only dependencies' `log` records would be missing, while
    // failing here would drop `Logging` and silence the installed subscriber.
    let max_level = tracing::level_filters::LevelFilter::current().as_log();
    if let Err(error) = tracing_log::LogTracer::builder()
        .with_max_level(max_level)
        .init()
    {
        eprintln!("injixo-cloud-link: dependencies' log records are not logged: {error}");
    }
    Ok(logging)
}

/// Like [`init`] but without installing anything globally: for tests, with
/// `tracing::subscriber::with_default`.
pub fn build(
    settings: &LogSettings,
) -> Result<(impl Subscriber + Send + Sync + 'static, Logging), LogError> {
    build_with_clock(settings, Arc::new(SystemClock))
}

/// [`build`] with the timestamps taken from `clock`.
pub fn build_with_clock(
    settings: &LogSettings,
    clock: Arc<dyn Clock>,
) -> Result<(impl Subscriber + Send + Sync + 'static, Logging), LogError> {
    let dir = settings.install_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| LogError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    if let Err(error) = writer::rotate_leftover_log(&dir) {
        // Not fatal: the previous run's log is appended to instead.
        eprintln!(
            "injixo-cloud-link: cannot rotate the previous log {}: {error}; appending to it",
            dir.join(CURRENT_LOG_FILE_NAME).display()
        );
    }

    let rotation = writer::new_handle(dir);
    let progress = Arc::new(Progress::default());
    let file = RotatingFile::open(rotation.clone(), Arc::clone(&clock), Arc::clone(&progress))?;
    let (non_blocking, worker_guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("injixo-cloud-link-log-writer")
        .finish(file);
    let file_writer = CountingWriter {
        inner: non_blocking,
        progress: Arc::clone(&progress),
    };

    let file_layer = tracing_subscriber::fmt::layer()
        .event_format(LineFormat::new(Arc::clone(&clock)))
        .with_ansi(false)
        .with_writer(file_writer);
    let console_layer = settings.console.then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(LineFormat::new(Arc::clone(&clock)))
            .with_ansi(true)
            .with_writer(io::stderr)
    });
    #[cfg(windows)]
    let event_log = settings
        .event_log
        .as_deref()
        .and_then(event_log::EventLogLayer::open);
    #[cfg(not(windows))]
    let event_log: Option<tracing_subscriber::layer::Identity> = None;
    let subscriber = tracing_subscriber::registry()
        .with(log_filter(settings.verbose))
        .with(file_layer)
        .with(console_layer)
        .with(event_log);

    let logging = Logging {
        path: rotation.current_path(),
        rotation,
        clock,
        progress,
        worker_guard: Some(worker_guard),
    };
    Ok((subscriber, logging))
}

/// The built-in filter text: INFO for the daemon, WARN for dependencies,
/// DEBUG for the importers when `verbose`.
pub fn default_filter_directives(verbose: bool) -> String {
    let mut directives = String::from("warn,injixo_cloud_link=info");
    if verbose {
        for target in VERBOSE_TARGETS {
            directives.push_str(&format!(",{target}=debug"));
        }
    }
    directives
}

fn log_filter(verbose: bool) -> EnvFilter {
    let default = default_filter_directives(verbose);
    if let Ok(custom) = std::env::var(LOG_FILTER_ENV_VAR) {
        if !custom.trim().is_empty() {
            match EnvFilter::builder().parse(&custom) {
                Ok(filter) => return filter,
                Err(error) => eprintln!(
                    "injixo-cloud-link: ignoring {LOG_FILTER_ENV_VAR}={custom:?} ({error}); using {default:?}"
                ),
            }
        }
    }
    EnvFilter::builder()
        .parse(&default)
        .expect("the built-in log filter is valid")
}

/// Counts the records handed to the non-blocking queue, so shutdown knows
/// how many the writer still owes.
#[derive(Clone)]
struct CountingWriter {
    inner: NonBlocking,
    progress: Arc<Progress>,
}

impl io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.progress.queued.fetch_add(1, Ordering::SeqCst);
        Ok(written)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<'a> MakeWriter<'a> for CountingWriter {
    type Writer = CountingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_adds_debug_for_the_importers_only() {
        assert_eq!(
            default_filter_directives(false),
            "warn,injixo_cloud_link=info"
        );
        let verbose = default_filter_directives(true);
        for target in VERBOSE_TARGETS {
            assert!(verbose.contains(&format!("{target}=debug")), "{verbose}");
        }
        assert!(verbose.starts_with("warn,injixo_cloud_link=info,"));
        EnvFilter::builder().parse(&verbose).unwrap();
    }

    #[test]
    fn open_error_names_the_path_and_the_os_error() {
        let error = LogError::Open {
            path: PathBuf::from("/x/injixo-cloud-link.log"),
            source: io::Error::from_raw_os_error(13),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("cannot open log file /x/injixo-cloud-link.log: "),
            "{text}"
        );
        assert!(text.contains("os error 13"), "{text}");
    }
}
