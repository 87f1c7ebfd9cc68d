//! DbPollActor: the database importer. For a database integration it runs
//! each import of the assignment on its schedule: it plans the time windows
//! (`db::planner`), reads each window's rows over ODBC into a spool item on a
//! thread of the import's own (ODBC is blocking), hands the item to the
//! uploader, and advances the import's watermark only when the cloud
//! confirmed the commit of every window up to it. Each tick first asks the
//! database for its time (`db::clock`) and plans on it, not on this
//! computer's clock.

use std::collections::HashMap;
use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::actors::config::AssignmentNews;
use crate::actors::slot::Slot;
use crate::actors::supervisor::Shutdown;
use crate::actors::uploader::{Delivery, Enqueued, UploaderActor};
use crate::backoff::{Backoff, FailureLog};
use crate::config::Config;
use crate::db::clock::{self, ClockSample, SkewLog};
use crate::db::connection_string;
use crate::db::odbc::{self, ClockRead, ConnectOptions, DbConnection, DbError, ReadLimits};
use crate::db::planner::{
    self, backfill_progress, bind_parameters, earliest_new_stamp, next_run, plan, pull_back,
    CommitTracker, ImportSchedule, QueryShape, Window, DEFAULT_MAX_WINDOWS_PER_PLAN,
};
use crate::db::watermark::WatermarkStore;
use crate::protocol::{DatabaseImport, Integration, IntegrationKind, UploadSource};
use crate::spool::{BackgroundWriter, NewItem, Spool, SpoolError, SpooledItem};
use crate::state::StateDir;
use crate::status::StatusBoard;

/// Spool items of database imports carry this origin prefix and the import id.
pub const ORIGIN_PREFIX: &str = "db:";

pub struct DbPollSettings {
    pub config: Arc<Config>,
    pub spool: Spool,
    pub uploader: Slot<UploaderActor>,
    pub assignment: Slot<crate::actors::config::ConfigActor>,
    pub board: StatusBoard,
    pub state: StateDir,
}

/// Work for an import's ODBC thread.
enum Job {
    /// Ask the database for its time (connecting first if needed).
    Clock(oneshot::Sender<Result<ClockRead, ReadFailure>>),
    Read(Box<ReadJob>),
}

/// One read, done on the import's ODBC thread.
struct ReadJob {
    sql: String,
    params: Option<(chrono::NaiveDateTime, chrono::NaiveDateTime)>,
    import: DatabaseImport,
    integration_id: String,
    /// `None` for a snapshot.
    window: Option<Window>,
    read_at: DateTime<Utc>,
    file_name: String,
    metadata: std::collections::BTreeMap<String, serde_json::Value>,
    reply: oneshot::Sender<Result<ReadOutcome, ReadFailure>>,
}

struct ReadOutcome {
    /// The window read (`None` for a snapshot).
    window: Option<Window>,
    /// `None` when the window had no rows: nothing to upload.
    item: Option<SpooledItem>,
    rows: u64,
    first_rows: Vec<Vec<String>>,
    columns: Vec<String>,
    truncation: Option<String>,
    /// From the query's start to the item in the spool.
    elapsed: Duration,
}

enum ReadFailure {
    Db(DbError),
    SpoolFull,
    Spool(String),
}

/// One import of the assignment.
struct Runner {
    import: DatabaseImport,
    shape: QueryShape,
    schedule: ImportSchedule,
    jobs: mpsc::Sender<Job>,
    tracker: CommitTracker,
    /// The database's time at the last tick, and when that was on the
    /// monotonic clock: tells a database clock that went back.
    last_sample: Option<(DateTime<Utc>, std::time::Instant)>,
    skew_log: SkewLog,
    /// The database could not tell its time and that was logged.
    clock_unknown_logged: bool,
    /// Idempotency key → window, for the uploads in flight.
    in_flight: HashMap<String, Window>,
    busy: bool,
    last_run: Option<DateTime<Utc>>,
    again_soon: bool,
    failures: FailureLog,
    backoff: Backoff,
    timer: Option<SpawnHandle>,
}

pub struct DbPollActor {
    settings: DbPollSettings,
    integration: Option<Integration>,
    tz: Tz,
    watermarks: Option<WatermarkStore>,
    runners: HashMap<String, Runner>,
}

impl DbPollActor {
    pub fn new(settings: DbPollSettings) -> Self {
        DbPollActor {
            settings,
            integration: None,
            tz: chrono_tz::UTC,
            watermarks: None,
            runners: HashMap::new(),
        }
    }

    fn importer_id(import_id: &str) -> String {
        format!("{ORIGIN_PREFIX}{import_id}")
    }

    fn set_status(
        &self,
        import_id: &str,
        state: String,
        error: Option<Option<String>>,
        success: bool,
    ) {
        let id = Self::importer_id(import_id);
        self.settings.board.update(|s| {
            let entry = s.importers.entry(id).or_default();
            entry.state = state;
            if let Some(error) = error {
                entry.last_error = error;
            }
            if success {
                entry.last_success_at = Some(Utc::now());
            }
        });
    }

    fn stop_all(&mut self, ctx: &mut Context<Self>) {
        for (id, runner) in self.runners.drain() {
            if let Some(timer) = runner.timer {
                ctx.cancel_future(timer);
            }
            let key = Self::importer_id(&id);
            self.settings.board.update(|s| {
                s.importers.remove(&key);
            });
            // Dropping `jobs` ends the import's ODBC thread after its read.
        }
        self.watermarks = None;
    }

    fn apply_assignment(&mut self, integration: Option<&Integration>, ctx: &mut Context<Self>) {
        let database = integration
            .filter(|i| i.kind == IntegrationKind::Database)
            .and_then(|i| i.database.clone().map(|db| (i.clone(), db)));
        let Some((integration, database)) = database else {
            if self.integration.take().is_some() {
                info!(
                    "database import stopped: the assignment is no longer a database integration"
                );
            }
            self.stop_all(ctx);
            return;
        };
        if self.integration.as_ref() == Some(&integration) {
            return;
        }
        self.stop_all(ctx);
        let tz = match planner::parse_time_zone(&database.time_zone) {
            Ok(tz) => tz,
            Err(e) => {
                error!("{e}; database import waits for a corrected assignment");
                return;
            }
        };
        let store = match WatermarkStore::open(
            &self.settings.state.root().join("watermarks"),
            &integration.id,
        ) {
            Ok(store) => store,
            Err(e) => {
                error!(
                    "{}; database import waits (retrying with the next assignment)",
                    crate::report::chain(&e)
                );
                return;
            }
        };
        let local = &self.settings.config.database;
        let connection = match connection_string::effective_checked(
            &database.connection_string,
            local.connection_string.as_deref(),
            local.uid.as_deref(),
            local.password.as_deref(),
        ) {
            Ok(connection) => connection,
            Err(e) => {
                error!(
                    "database import for integration {} ({}): {e}; it waits for a corrected assignment",
                    integration.name, integration.id
                );
                for import in &database.imports {
                    self.set_status(
                        &import.id,
                        "failing".to_owned(),
                        Some(Some(e.to_string())),
                        false,
                    );
                }
                return;
            }
        };
        info!(
            "database import for integration {} ({}): {} import(s), time zone {}, connection {}",
            integration.name,
            integration.id,
            database.imports.len(),
            database.time_zone,
            connection_string::mask(&connection)
        );
        for import in &database.imports {
            let shape = match planner::query_shape(import) {
                Ok(shape) => shape,
                Err(e) => {
                    error!("{e}");
                    self.set_status(
                        &import.id,
                        "failing".to_owned(),
                        Some(Some(e.to_string())),
                        false,
                    );
                    continue;
                }
            };
            let jobs = spawn_odbc_thread(
                import.id.clone(),
                connection.clone(),
                self.settings.spool.clone(),
            );
            let tracker = CommitTracker::new(store.cursor(&import.id).and_then(|c| c.watermark));
            self.runners.insert(
                import.id.clone(),
                Runner {
                    import: import.clone(),
                    shape,
                    schedule: ImportSchedule::from_import(import),
                    jobs,
                    tracker,
                    last_sample: None,
                    skew_log: SkewLog::default(),
                    clock_unknown_logged: false,
                    in_flight: HashMap::new(),
                    busy: false,
                    last_run: store.get(&import.id).and_then(|p| p.last_run_at),
                    again_soon: false,
                    failures: FailureLog::default(),
                    backoff: Backoff::requests(),
                    timer: None,
                },
            );
            self.set_status(&import.id, "scheduled".to_owned(), None, false);
        }
        self.tz = tz;
        self.watermarks = Some(store);
        self.integration = Some(integration);
        let ids: Vec<String> = self.runners.keys().cloned().collect();
        for id in ids {
            self.schedule(&id, ctx);
        }
    }

    fn schedule(&mut self, import_id: &str, ctx: &mut Context<Self>) {
        let Some(runner) = self.runners.get_mut(import_id) else {
            return;
        };
        if let Some(timer) = runner.timer.take() {
            ctx.cancel_future(timer);
        }
        let now = Utc::now();
        let due = if runner.again_soon {
            now
        } else {
            next_run(&runner.schedule, runner.last_run, now)
        };
        let delay = (due - now).to_std().unwrap_or(Duration::ZERO);
        let id = import_id.to_owned();
        runner.timer = Some(ctx.run_later(delay, move |act, ctx| act.tick(&id, ctx)));
    }

    /// One run of an import: ask the database for its time; `clock_read` goes on.
    fn tick(&mut self, import_id: &str, ctx: &mut Context<Self>) {
        let (Some(integration), Some(store)) = (self.integration.clone(), self.watermarks.as_mut())
        else {
            return;
        };
        let Some(runner) = self.runners.get_mut(import_id) else {
            return;
        };
        runner.timer = None;
        if runner.busy || !runner.tracker.is_settled() {
            // The previous run's uploads are not all confirmed yet.
            runner.again_soon = false;
            self.schedule(import_id, ctx);
            return;
        }
        // The schedule runs on this computer's clock (timers are monotonic;
        // `next_run` bounds a step of the wall clock); the windows on the
        // database's.
        let now = Utc::now();
        runner.last_run = Some(now);
        runner.again_soon = false;
        let _ = store.record_run(import_id, now);
        let (reply, answer) = oneshot::channel();
        if runner.jobs.send(Job::Clock(reply)).is_err() {
            error!("the database thread of import {import_id} is gone; the supervisor restarts the importer");
            ctx.stop();
            return;
        }
        runner.busy = true;
        let id = import_id.to_owned();
        ctx.spawn(answer.into_actor(self).map(move |result, act, ctx| {
            let result = result.unwrap_or(Err(ReadFailure::Spool(
                "the database thread stopped".to_owned(),
            )));
            act.clock_read(id, integration.id, result, ctx);
        }));
    }

    /// The database's time, or this computer's where it cannot tell; logs a
    /// skew beyond a minute and shows it in the status.
    fn database_now(&mut self, import_id: &str, read: ClockRead) -> (DateTime<Utc>, bool) {
        let tz = self.tz;
        let Some(runner) = self.runners.get_mut(import_id) else {
            return (Utc::now(), false);
        };
        let sample = match read {
            ClockRead::Answer(answer) => clock::sample(&answer, tz).ok_or_else(|| {
                format!(
                    "it answered {:?}, which is no date and time",
                    answer.text.trim()
                )
            }),
            ClockRead::Unknown { tried } => Err(tried),
        };
        let skew_ms = match sample {
            Ok(sample) => {
                if let Some(notice) = runner.skew_log.observe(sample) {
                    match notice {
                        clock::SkewNotice::Large(_) => warn!("import {import_id}: {notice}"),
                        clock::SkewNotice::Normal(_) => info!("import {import_id}: {notice}"),
                    }
                }
                runner.clock_unknown_logged = false;
                Some(sample.skew().num_milliseconds())
            }
            Err(ref why) => {
                if !runner.clock_unknown_logged {
                    runner.clock_unknown_logged = true;
                    warn!(
                        "import {import_id}: the database does not tell its time ({why}); its \
                         windows follow this computer's clock, so keep it in step with the \
                         database server's"
                    );
                }
                None
            }
        };
        let id = Self::importer_id(import_id);
        self.settings.board.update(|s| {
            s.importers.entry(id).or_default().clock_skew_ms = skew_ms;
        });
        match sample {
            Ok(ClockSample { database, .. }) => (database, true),
            Err(_) => (Utc::now(), false),
        }
    }

    /// The tick goes on with the database's time: plan, then read.
    fn clock_read(
        &mut self,
        import_id: String,
        integration_id: String,
        result: Result<ClockRead, ReadFailure>,
        ctx: &mut Context<Self>,
    ) {
        let read = match result {
            Ok(read) => read,
            Err(failure) => return self.read_failed(import_id, failure, ctx),
        };
        let (now, from_database) = self.database_now(&import_id, read);
        let tz = self.tz;
        let (Some(store), Some(runner)) =
            (self.watermarks.as_mut(), self.runners.get_mut(&import_id))
        else {
            return;
        };
        let monotonic = std::time::Instant::now();
        let earliest_new = runner
            .last_sample
            .map(|(database, at)| {
                let passed =
                    chrono::Duration::from_std(monotonic - at).unwrap_or(chrono::Duration::MAX);
                earliest_new_stamp(database, passed, now)
            })
            .filter(|_| from_database);
        runner.last_sample = from_database.then_some((now, monotonic));
        let reads: Vec<Option<Window>> = match runner.shape {
            QueryShape::Snapshot => vec![None],
            QueryShape::Windowed => {
                let mut cursor = store.cursor(&import_id);
                if let Some(pulled) =
                    cursor.and_then(|c| pull_back(&runner.schedule, c, now, earliest_new))
                {
                    warn!("import {import_id}: {pulled}");
                    if let Err(e) = store.pull_back(&import_id, pulled.after) {
                        warn!("cannot save the pulled-back watermark of import {import_id}: {e}; it is pulled back again at the next run");
                    }
                    cursor = Some(pulled.after);
                    runner.tracker = CommitTracker::new(pulled.after.watermark);
                }
                let planned = plan(
                    &runner.schedule,
                    cursor,
                    now,
                    tz,
                    DEFAULT_MAX_WINDOWS_PER_PLAN,
                );
                let query_sha = hex::encode(Sha256::digest(runner.import.query.as_bytes()));
                if let Err(e) = store.begin(&import_id, planned.origin, Some(&query_sha)) {
                    warn!("cannot save the start of import {import_id}: {e}");
                }
                runner.again_soon = planned.truncated;
                runner.tracker.start_batch(&planned.windows);
                if let Some(cursor) = store.cursor(&import_id) {
                    if let Some(progress) = backfill_progress(&runner.schedule, cursor, now, tz) {
                        info!("back-fill {import_id}: {progress}");
                        let state = format!("back-fill: {progress}");
                        let id = Self::importer_id(&import_id);
                        self.settings.board.update(|s| {
                            s.importers.entry(id).or_default().progress = Some(state);
                        });
                    }
                }
                planned.windows.into_iter().map(Some).collect()
            }
        };
        self.read_next(import_id, integration_id, reads, ctx);
    }

    fn read_next(
        &mut self,
        import_id: String,
        integration_id: String,
        mut reads: Vec<Option<Window>>,
        ctx: &mut Context<Self>,
    ) {
        let tz = self.tz;
        let Some(runner) = self.runners.get_mut(&import_id) else {
            return;
        };
        if reads.is_empty() {
            runner.busy = false;
            let settled = runner.tracker.is_settled();
            self.set_status(&import_id, "idle".to_owned(), None, false);
            if settled {
                self.schedule(&import_id, ctx);
            }
            return;
        }
        runner.busy = true;
        let window = reads.remove(0);
        let (reply, answer) = oneshot::channel();
        let import = runner.import.clone();
        let file_name = match &window {
            Some(w) => format!(
                "{}_{}_{}.csv",
                import.id,
                w.start.format("%Y%m%dT%H%M%SZ"),
                w.end.format("%Y%m%dT%H%M%SZ")
            ),
            None => format!("{}_{}.csv", import.id, Utc::now().format("%Y%m%dT%H%M%SZ")),
        };
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("import_id".to_owned(), import.id.clone().into());
        metadata.insert(
            "import_type".to_owned(),
            serde_json::to_value(import.import_type).unwrap_or_default(),
        );
        metadata.insert("time_zone".to_owned(), tz.name().into());
        if let Some(w) = &window {
            metadata.insert("window_start".to_owned(), w.start.to_rfc3339().into());
            metadata.insert("window_end".to_owned(), w.end.to_rfc3339().into());
        }
        let job = ReadJob {
            sql: import.query.clone(),
            params: window.as_ref().map(|w| bind_parameters(w, tz)),
            import,
            integration_id: integration_id.clone(),
            window,
            read_at: Utc::now(),
            file_name,
            metadata,
            reply,
        };
        if runner.jobs.send(Job::Read(Box::new(job))).is_err() {
            runner.busy = false;
            error!("the database thread of import {import_id} is gone; the supervisor restarts the importer");
            ctx.stop();
            return;
        }
        self.set_status(&import_id, "reading".to_owned(), None, false);
        ctx.spawn(answer.into_actor(self).map(move |result, act, ctx| {
            let result = result.unwrap_or(Err(ReadFailure::Spool(
                "the database thread stopped".to_owned(),
            )));
            act.read_done(import_id, integration_id, result, reads, ctx);
        }));
    }

    fn read_done(
        &mut self,
        import_id: String,
        integration_id: String,
        result: Result<ReadOutcome, ReadFailure>,
        reads: Vec<Option<Window>>,
        ctx: &mut Context<Self>,
    ) {
        let Some(runner) = self.runners.get_mut(&import_id) else {
            return;
        };
        match result {
            Ok(outcome) => {
                runner.backoff.reset();
                if let Some(n) = runner.failures.recovered() {
                    info!(
                        "import {import_id} reads the database again (after {n} failed attempts)"
                    );
                }
                debug!(
                    "import {import_id}: {} row(s) in {:.2} s, columns {}",
                    outcome.rows,
                    outcome.elapsed.as_secs_f64(),
                    outcome.columns.join(", ")
                );
                for row in &outcome.first_rows {
                    debug!("import {import_id} row: {}", row.join(" | "));
                }
                if let Some(warning) = &outcome.truncation {
                    warn!("import {import_id}: {warning}");
                }
                match (outcome.item, outcome.window) {
                    (Some(item), window) => {
                        if let Some(window) = window {
                            runner
                                .in_flight
                                .insert(item.idempotency_key.clone(), window);
                        }
                        if let Some(uploader) = self.settings.uploader.get() {
                            uploader.do_send(Enqueued(item));
                        }
                    }
                    // An empty window needs no upload: nothing can be lost
                    // by counting it as committed at once.
                    (None, Some(window)) => self.window_committed(&import_id, &window),
                    (None, None) => {}
                }
                self.read_next(import_id, integration_id, reads, ctx);
            }
            Err(failure) => self.read_failed(import_id, failure, ctx),
        }
    }

    /// A read (or the clock before it) failed: the batch is abandoned and
    /// the import tried again after a backoff.
    fn read_failed(&mut self, import_id: String, failure: ReadFailure, ctx: &mut Context<Self>) {
        let Some(runner) = self.runners.get_mut(&import_id) else {
            return;
        };
        runner.busy = false;
        // The rest of this batch will not be read: abandon it, so
        // the next run plans again from the watermark (windows of it
        // still being uploaded are read again; the cloud keeps one
        // import per key).
        runner.tracker.start_batch(&[]);
        runner.in_flight.clear();
        let (message, transient) = match &failure {
            ReadFailure::Db(e) => (format!("{e} ({})", e.hint()), e.is_transient()),
            ReadFailure::SpoolFull => (
                "the spool is full; waiting for uploads to make room".to_owned(),
                true,
            ),
            ReadFailure::Spool(e) => (e.clone(), true),
        };
        let delay = runner
            .backoff
            .fail_with_jitter(rand::random())
            .max(Duration::from_secs(1));
        if runner.failures.failed(&message) {
            if transient {
                warn!(
                    "import {import_id}: {message}; retrying in {}",
                    crate::report::human_duration(delay)
                );
            } else {
                error!(
                    "import {import_id}: {message}; retrying in {}",
                    crate::report::human_duration(delay)
                );
            }
        }
        self.set_status(&import_id, "failing".to_owned(), Some(Some(message)), false);
        let id = import_id.clone();
        if let Some(runner) = self.runners.get_mut(&import_id) {
            runner.timer = Some(ctx.run_later(delay, move |act, ctx| act.tick(&id, ctx)));
        }
    }

    /// The cloud confirmed `window` (or it was empty): advance the watermark
    /// to the end of the highest contiguous confirmed window.
    fn window_committed(&mut self, import_id: &str, window: &Window) {
        let Some(runner) = self.runners.get_mut(import_id) else {
            return;
        };
        if let Some(watermark) = runner.tracker.committed(window) {
            if let Some(store) = self.watermarks.as_mut() {
                if let Err(e) = store.advance(import_id, watermark) {
                    warn!("cannot save the watermark of import {import_id}: {e}; the window is read again after a restart");
                }
            }
        }
    }

    fn delivered(&mut self, delivery: &Delivery, ctx: &mut Context<Self>) {
        let item = delivery.item();
        let Some(import_id) = item.origin.strip_prefix(ORIGIN_PREFIX).map(str::to_owned) else {
            return;
        };
        let Some(runner) = self.runners.get_mut(&import_id) else {
            return;
        };
        let window = runner
            .in_flight
            .remove(&item.idempotency_key)
            .or_else(|| window_from_metadata(item));
        match delivery {
            Delivery::Committed { .. } => {
                let Some(window) = window else {
                    // A snapshot: nothing to advance.
                    self.set_status(&import_id, "idle".to_owned(), Some(None), true);
                    return;
                };
                self.window_committed(&import_id, &window);
                self.set_status(&import_id, "idle".to_owned(), Some(None), true);
                let Some(runner) = self.runners.get(&import_id) else {
                    return;
                };
                if runner.tracker.is_settled() && !runner.busy {
                    self.schedule(&import_id, ctx);
                }
            }
            Delivery::Rejected { reason, .. } => {
                // The watermark stays before this window; it is read again
                // next time, so nothing is lost while someone looks.
                self.set_status(
                    &import_id,
                    "failing".to_owned(),
                    Some(Some(format!("upload rejected: {reason}"))),
                    false,
                );
            }
        }
    }
}

/// The window an item covers, from its metadata.
fn window_from_metadata(item: &SpooledItem) -> Option<Window> {
    let start = item.metadata.get("window_start")?.as_str()?;
    let end = item.metadata.get("window_end")?.as_str()?;
    Window::new(
        DateTime::parse_from_rfc3339(start)
            .ok()?
            .with_timezone(&Utc),
        DateTime::parse_from_rfc3339(end).ok()?.with_timezone(&Utc),
    )
}

/// The import's own thread: keeps its connection open, reconnects when it
/// died, and reads one job at a time (ODBC calls block).
fn spawn_odbc_thread(import_id: String, connection: String, spool: Spool) -> mpsc::Sender<Job> {
    let (sender, receiver) = mpsc::channel::<Job>();
    let name = format!("odbc-{import_id}");
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let options = ConnectOptions::default();
        let mut open: Option<DbConnection> = None;
        for job in receiver {
            match job {
                Job::Clock(reply) => {
                    let _ = reply.send(ask_clock(&mut open, &connection, &options));
                }
                Job::Read(job) => {
                    let result = read_job(&mut open, &connection, &options, &spool, &job);
                    let _ = job.reply.send(result);
                }
            }
        }
    });
    if let Err(e) = spawned {
        error!("cannot start the database thread of import {import_id}: {e}");
    }
    sender
}

/// The open connection, reopened when it died.
fn connected<'a>(
    open: &'a mut Option<DbConnection>,
    connection: &str,
    options: &ConnectOptions,
) -> Result<&'a DbConnection, ReadFailure> {
    if open.as_ref().is_some_and(DbConnection::is_dead) {
        *open = None;
    }
    if open.is_none() {
        *open = Some(DbConnection::connect(connection, options).map_err(ReadFailure::Db)?);
    }
    Ok(open.as_ref().expect("connected above"))
}

fn ask_clock(
    open: &mut Option<DbConnection>,
    connection: &str,
    options: &ConnectOptions,
) -> Result<ClockRead, ReadFailure> {
    let result = connected(open, connection, options)?.clock();
    if matches!(
        result,
        Err(DbError::ConnectionLost { .. } | DbError::Unreachable { .. })
    ) {
        *open = None;
    }
    result.map_err(ReadFailure::Db)
}

fn read_job(
    open: &mut Option<DbConnection>,
    connection: &str,
    options: &ConnectOptions,
    spool: &Spool,
    job: &ReadJob,
) -> Result<ReadOutcome, ReadFailure> {
    let conn = connected(open, connection, options)?;
    let started = std::time::Instant::now();
    let writer = match spool.begin(&job.file_name) {
        Ok(writer) => writer,
        Err(SpoolError::Full { .. }) => return Err(ReadFailure::SpoolFull),
        Err(e) => return Err(ReadFailure::Spool(crate::report::chain(&e))),
    };
    // Hashing, gzip and the file on a second thread: a large read then
    // costs about the driver's fetch time rather than fetch + compression.
    let hashing = HashingWriter {
        inner: writer,
        hash: Sha256::new(),
    };
    let mut background = BackgroundWriter::spawn(format!("spool-{}", job.import.id), hashing)
        .map_err(|e| ReadFailure::Spool(format!("cannot start the spool writer thread: {e}")))?;
    let summary = match odbc::read_to_csv(
        conn,
        &job.sql,
        job.params,
        job.import.import_type,
        &mut background,
        &ReadLimits::default(),
    ) {
        Ok(summary) => summary,
        Err(e) => {
            if matches!(
                e,
                DbError::ConnectionLost { .. } | DbError::Unreachable { .. }
            ) {
                *open = None;
            }
            // Dropping the background writer drops the item writer, which
            // removes its temporary file.
            return Err(ReadFailure::Db(e));
        }
    };
    let hashing = background
        .finish()
        .map_err(|e| ReadFailure::Db(DbError::Write(e)))?;
    let writer = hashing.inner;
    let content_sha = hex::encode(hashing.hash.finalize());
    let truncation = summary.warning();
    if summary.rows == 0 {
        writer.abort();
        return Ok(ReadOutcome {
            window: job.window,
            item: None,
            rows: 0,
            first_rows: Vec::new(),
            columns: summary.columns,
            truncation,
            elapsed: started.elapsed(),
        });
    }
    let key = match &job.window {
        Some(window) => {
            planner::window_key(&job.integration_id, &job.import.id, window, &content_sha)
        }
        None => planner::snapshot_key(
            &job.integration_id,
            &job.import.id,
            job.read_at,
            &content_sha,
        ),
    };
    let mut metadata = job.metadata.clone();
    metadata.insert("rows".to_owned(), summary.rows.into());
    metadata.insert("columns".to_owned(), summary.columns.len().into());
    metadata.insert("column_names".to_owned(), summary.columns.clone().into());
    metadata.insert("encoding".to_owned(), "utf-8".into());
    metadata.insert("delimiter".to_owned(), ",".into());
    let item = writer
        .commit(NewItem {
            source: UploadSource::Database,
            idempotency_key: key,
            file_name: job.file_name.clone(),
            content_type: "text/csv".to_owned(),
            metadata,
            origin: format!("{ORIGIN_PREFIX}{}", job.import.id),
            local: Default::default(),
        })
        .map_err(|e| match e {
            SpoolError::Full { .. } => ReadFailure::SpoolFull,
            e => ReadFailure::Spool(crate::report::chain(&e)),
        })?;
    Ok(ReadOutcome {
        window: job.window,
        item: Some(item),
        rows: summary.rows,
        first_rows: summary.first_rows,
        columns: summary.columns,
        truncation,
        elapsed: started.elapsed(),
    })
}

/// Hashes the CSV bytes on their way into the spool: the window's
/// idempotency key covers its content.
struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Actor for DbPollActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(config) = self.settings.assignment.get() {
            ctx.spawn(
                config
                    .send(crate::actors::config::GetAssignment)
                    .into_actor(self)
                    .map(|answer, act, ctx| {
                        if let Ok(Some(integration)) = answer {
                            act.apply_assignment(Some(&integration), ctx);
                        }
                    }),
            );
        }
    }
}

impl Handler<AssignmentNews> for DbPollActor {
    type Result = ();

    fn handle(&mut self, AssignmentNews(integration): AssignmentNews, ctx: &mut Context<Self>) {
        self.apply_assignment(integration.as_ref(), ctx);
    }
}

/// The uploader finished one of this importer's items.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DbDelivered(pub Delivery);

impl Handler<DbDelivered> for DbPollActor {
    type Result = ();

    fn handle(&mut self, DbDelivered(delivery): DbDelivered, ctx: &mut Context<Self>) {
        self.delivered(&delivery, ctx);
    }
}

impl Handler<Shutdown> for DbPollActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        // A read in progress is abandoned; its window is read again at the
        // next start (the watermark did not move).
        self.stop_all(ctx);
        ctx.stop();
    }
}
