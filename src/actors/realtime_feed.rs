//! RealtimeFeedActor: one real-time feed (protocol §7), from the ACD's
//! socket to the cloud.
//!
//! A shell over `realtime::*`: it opens the journal, starts the group-commit
//! thread, starts and stops the socket tasks as the assignment changes, runs
//! the delivery loop (the awc client is bound to this actor's thread) and
//! publishes the feed's status every second. Supervised like the importers:
//! a failing feed never stops them, the uploader or the heartbeat.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::actors::config::{AssignmentNews, ConfigActor, GetAssignment};
use crate::actors::pairing::{GetAccessToken, PairingActor, Unauthorized};
use crate::actors::slot::Slot;
use crate::actors::supervisor::Shutdown;
use crate::backoff::{Backoff, FailureLog};
use crate::cloud::CloudApi;
use crate::config::Config;
use crate::http::HttpClientFactory;
use crate::protocol::{FeedMode, Integration, RealtimeBatch, RealtimeSettings, REALTIME_FEED};
use crate::realtime::allow::AllowList;
use crate::realtime::delivery::{fate, BatchFate};
use crate::realtime::feed::{self, FeedContext, FeedShared, QUEUE_EVENTS};
use crate::realtime::journal::{self, Batch, JournalError, JournalReader, NewEvent};
use crate::realtime::parse::LineParser;
use crate::realtime::tally::Silence;
use crate::state::StateDir;
use crate::status::{FeedStatus, StatusBoard};

const STATUS_EVERY: Duration = Duration::from_secs(1);
/// A listening port that cannot be bound is tried again this often, so an
/// admin who frees it needs no restart.
const BIND_RETRY: Duration = Duration::from_secs(30);
/// While not linked, how often delivery asks for a token again.
const UNPAIRED_WAIT: Duration = Duration::from_secs(5);

pub struct RealtimeFeedSettings {
    pub config: Arc<Config>,
    pub http: HttpClientFactory,
    pub cloud_url: url::Url,
    pub pairing: Slot<PairingActor>,
    pub assignment: Slot<ConfigActor>,
    pub board: StatusBoard,
    pub state: StateDir,
}

pub struct RealtimeFeedActor {
    settings: RealtimeFeedSettings,
    shared: Arc<FeedShared>,
    /// `None` until the journal is open, and after shutdown.
    events: Option<mpsc::Sender<NewEvent>>,
    committer: Option<std::thread::JoinHandle<journal::JournalWriter>>,
    committed: Option<watch::Receiver<u64>>,
    reader: Option<Arc<Mutex<JournalReader>>>,
    /// The settings the sockets run with, and their tasks.
    running: Option<RealtimeSettings>,
    sockets: Vec<tokio::task::AbortHandle>,
    delivery: Option<SpawnHandle>,
    silence: Silence,
    /// The assignment, kept while the journal is not open yet.
    waiting: Option<Option<Integration>>,
}

impl RealtimeFeedActor {
    pub fn new(settings: RealtimeFeedSettings) -> Self {
        let silence = Duration::from_secs(settings.config.realtime.silence_minutes * 60);
        RealtimeFeedActor {
            settings,
            shared: Arc::new(FeedShared::default()),
            events: None,
            committer: None,
            committed: None,
            reader: None,
            running: None,
            sockets: Vec::new(),
            delivery: None,
            silence: Silence::new(silence),
            waiting: None,
        }
    }

    fn journal_dir(&self) -> PathBuf {
        self.settings
            .state
            .root()
            .join("realtime")
            .join(REALTIME_FEED)
    }

    fn open_journal(&mut self, ctx: &mut Context<Self>, attempt: u32) {
        let dir = self.journal_dir();
        let (writer, reader, recovered) = match journal::open(&dir) {
            Ok(opened) => opened,
            Err(JournalError::Busy(_)) if attempt < 50 => {
                // The previous run of this actor is committing its last group.
                ctx.run_later(Duration::from_millis(200), move |act, ctx| {
                    act.open_journal(ctx, attempt + 1)
                });
                return;
            }
            Err(e) => {
                error!(
                    "real-time feed: cannot open its journal: {}; the feed restarts after a pause",
                    crate::report::chain(&e)
                );
                ctx.stop();
                return;
            }
        };
        if recovered.torn_bytes > 0 {
            info!(
                "real-time feed: removed {} byte(s) of a line cut by the last stop; they were never committed",
                recovered.torn_bytes
            );
        }
        if let Some(detail) = &recovered.cursor_damaged {
            warn!("real-time feed: {detail}; delivering every event kept again (the cloud may see some twice)");
        }
        if recovered.undelivered > 0 {
            info!(
                "real-time feed: {} event(s) wait in the journal from before; delivering them first",
                recovered.undelivered
            );
        }
        let (events, queue) = mpsc::channel(QUEUE_EVENTS);
        let (committed_tx, committed_rx) = watch::channel(writer.committed());
        {
            let mut tally = self.shared.lock();
            tally.committed = writer.committed();
            tally.delivered = reader.delivered();
        }
        self.committer = Some(feed::spawn_committer(
            writer,
            queue,
            committed_tx,
            Arc::clone(&self.shared),
            self.settings.config.spool.max_bytes,
        ));
        self.events = Some(events);
        self.committed = Some(committed_rx);
        self.reader = Some(Arc::new(Mutex::new(reader)));
        self.start_delivery(ctx);
        if let Some(integration) = self.waiting.take() {
            self.apply_assignment(integration.as_ref());
        }
    }

    fn apply_assignment(&mut self, integration: Option<&Integration>) {
        if self.events.is_none() {
            self.waiting = Some(integration.cloned());
            return;
        }
        let wanted = integration.and_then(|i| i.realtime.clone());
        if wanted == self.running {
            return;
        }
        if self.running.is_some() {
            self.stop_sockets();
            info!(
                "real-time feed: {}",
                if wanted.is_some() {
                    "its settings changed; restarting it with the new ones (events already read are kept)"
                } else {
                    "the cloud no longer asks for it; stopped (events already read are still delivered)"
                }
            );
        }
        self.running = wanted.clone();
        if let Some(settings) = wanted {
            if let Err(problem) = self.start_sockets(&settings) {
                error!("real-time feed: cannot start: {problem}; waiting for corrected settings in the cloud");
                self.shared.lock().state = format!("failed: {problem}");
            }
        } else {
            self.shared.lock().state = "not configured".to_owned();
        }
        self.publish();
    }

    fn start_sockets(&mut self, settings: &RealtimeSettings) -> Result<(), String> {
        let parser = LineParser::new(&settings.format).map_err(|e| e.to_string())?;
        let events = self.events.clone().expect("the journal is open");
        let ctx = Arc::new(FeedContext {
            parser,
            shared: Arc::clone(&self.shared),
            events,
            verbose: self.settings.config.app.verbose,
        });
        let local = &self.settings.config.realtime;
        match settings.mode {
            FeedMode::Listen => {
                let port = settings.port.ok_or(
                    "a listening feed needs a `port` in the integration's realtime settings",
                )?;
                let allow = AllowList::parse(&local.allow_from).map_err(|e| e.to_string())?;
                let address = local.listen_address;
                let shared = Arc::clone(&self.shared);
                self.shared.lock().state = format!("starting to listen on port {port}");
                let task = tokio::spawn(async move {
                    let mut failures = FailureLog::default();
                    loop {
                        match feed::bind(address, port).await {
                            Ok(listener) => {
                                let at = std::net::SocketAddr::new(address, port);
                                if failures.recovered().is_some() {
                                    info!("real-time feed: port {port} is free again");
                                }
                                info!(
                                    "real-time feed: listening on {at} for the ACD's connection ({})",
                                    if allow.is_open() {
                                        "any address may connect; [realtime] allowFrom limits that".to_owned()
                                    } else {
                                        "only addresses in [realtime] allowFrom".to_owned()
                                    }
                                );
                                shared.lock().state = format!("listening on {at}");
                                feed::accept(listener, allow, ctx).await;
                                return;
                            }
                            Err(problem) => {
                                if failures.failed(&problem) {
                                    error!(
                                        "real-time feed: {problem}; the ACD cannot connect until it is free (or the cloud's settings name another port); trying again every {} s",
                                        BIND_RETRY.as_secs()
                                    );
                                }
                                shared.lock().state = format!("failed: {problem}");
                                tokio::time::sleep(BIND_RETRY).await;
                            }
                        }
                    }
                });
                self.sockets.push(task.abort_handle());
            }
            FeedMode::Connect => {
                if settings.servers.is_empty() {
                    return Err("a connecting feed needs `servers` (host:port) in the integration's realtime settings".to_owned());
                }
                self.shared.lock().state = format!("connecting to {}", settings.servers.join(", "));
                for server in &settings.servers {
                    let task =
                        tokio::spawn(feed::connect(server.trim().to_owned(), Arc::clone(&ctx)));
                    self.sockets.push(task.abort_handle());
                }
            }
        }
        Ok(())
    }

    fn stop_sockets(&mut self) {
        for task in self.sockets.drain(..) {
            task.abort();
        }
        self.shared.lock().peers.clear();
    }

    fn start_delivery(&mut self, ctx: &mut Context<Self>) {
        let (Some(reader), Some(committed)) = (self.reader.clone(), self.committed.clone()) else {
            return;
        };
        let delivery = Delivery {
            api: CloudApi::new(&self.settings.http, self.settings.cloud_url.clone()),
            pairing: self.settings.pairing.clone(),
            reader,
            committed,
            shared: Arc::clone(&self.shared),
            rejected_dir: self.settings.state.rejected(),
        };
        self.delivery = Some(ctx.spawn(delivery.run().into_actor(self)));
    }

    /// The feed's line in the status board, and the silence warning.
    fn publish(&mut self) {
        let now = Instant::now();
        let mut tally = self.shared.lock();
        let configured = self.running.is_some();
        let connected = !tally.peers.is_empty();
        if let Some(quiet) = self.silence.check(connected, tally.last_sign, now) {
            warn!(
                "real-time feed: connected but silent for {} min ({}); check the ACD's real-time export. Logged once until the feed speaks again",
                quiet.as_secs() / 60,
                tally.peers.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        let second = tally.second(now);
        let status = FeedStatus {
            state: tally.state.clone(),
            peers: tally.peers.iter().cloned().collect(),
            events_last_minute: tally.rate.last_minute(second),
            events_total: tally.events_total,
            last_event_at: tally.last_event_at,
            parse_errors: tally.problems.total(),
            undelivered: tally.committed.saturating_sub(tally.delivered),
            delivered_sequence: tally.delivered,
            warning: self.silence.is_silent().then(|| {
                format!(
                    "connected but silent for more than {} min",
                    self.settings.config.realtime.silence_minutes
                )
            }),
            last_error: tally.last_error.clone(),
        };
        drop(tally);
        let show = configured || status.undelivered > 0;
        self.settings.board.update(|s| {
            if show {
                s.feeds.insert(REALTIME_FEED.to_owned(), status);
            } else {
                s.feeds.remove(REALTIME_FEED);
            }
        });
    }
}

/// The delivery loop's parts; runs on the actor's thread (awc is `!Send`).
struct Delivery {
    api: CloudApi,
    pairing: Slot<PairingActor>,
    reader: Arc<Mutex<JournalReader>>,
    committed: watch::Receiver<u64>,
    shared: Arc<FeedShared>,
    rejected_dir: PathBuf,
}

impl Delivery {
    async fn run(mut self) {
        let mut backoff = Backoff::requests();
        let mut failures = FailureLog::default();
        let mut unpaired_logged = false;
        loop {
            let committed = *self.committed.borrow_and_update();
            let reader = Arc::clone(&self.reader);
            let next = actix_rt::task::spawn_blocking(move || {
                reader
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .next_batch(committed)
            })
            .await
            .expect("the journal read does not panic");
            let batch = match next {
                Ok(Some(batch)) => batch,
                Ok(None) => {
                    if self.committed.changed().await.is_err() {
                        // The committer is gone (shutdown): nothing more comes.
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    let message = crate::report::chain(&e);
                    if failures.failed(&message) {
                        error!("real-time feed: cannot read its journal: {message}; trying again every 5 s");
                    }
                    actix_rt::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let token = match self.pairing.get() {
                Some(pairing) => pairing.send(GetAccessToken).await.ok().flatten(),
                None => None,
            };
            let Some(token) = token.map(|t| t.token) else {
                if !unpaired_logged {
                    info!("real-time feed: not linked to the cloud yet; events are kept in the journal until it is");
                    unpaired_logged = true;
                }
                actix_rt::time::sleep(UNPAIRED_WAIT).await;
                continue;
            };
            unpaired_logged = false;
            let body = RealtimeBatch {
                idempotency_key: batch.idempotency_key.clone(),
                feed: REALTIME_FEED.to_owned(),
                events: batch.events.clone(),
            };
            let answer = self.api.realtime_events(&token, &body).await;
            match fate(answer.as_ref()) {
                BatchFate::Delivered { .. } => {
                    if let Some(n) = failures.recovered() {
                        info!(
                            "real-time feed: the cloud takes events again after {n} failed attempt(s); delivering the {} kept meanwhile, in order",
                            self.shared.lock().committed.saturating_sub(batch.first()) + 1
                        );
                    }
                    backoff.reset();
                    self.shared.lock().last_error = None;
                    self.acknowledge(batch).await;
                }
                BatchFate::Unauthorized => {
                    if let Some(pairing) = self.pairing.get() {
                        pairing.do_send(Unauthorized { token });
                    }
                    actix_rt::time::sleep(Duration::from_secs(1)).await;
                }
                BatchFate::Retry { at_least, at_most } => {
                    let error = answer
                        .err()
                        .map(|e| crate::report::chain(&e))
                        .unwrap_or_default();
                    let jittered = backoff.fail_with_jitter(rand::random::<f64>());
                    let delay = at_most
                        .map_or(jittered, |cap| jittered.min(cap))
                        .max(at_least.unwrap_or_default())
                        .max(Duration::from_millis(250));
                    if failures.failed(&error) {
                        warn!(
                            "real-time feed: cannot deliver events to the cloud ({error}); they are kept in the journal and sent in order when it answers (retrying with growing pauses up to 5 min)"
                        );
                    }
                    self.shared.lock().last_error = Some(error);
                    actix_rt::time::sleep(delay).await;
                }
                BatchFate::Rejected { reason } => {
                    error!(
                        "real-time feed: the cloud refused {} event(s) (sequences {}–{}) for good: {reason}; they were set aside in {} and the feed goes on",
                        batch.events.len(),
                        batch.first(),
                        batch.last(),
                        self.rejected_dir.display()
                    );
                    self.set_aside(&batch, &reason);
                    self.acknowledge(batch).await;
                }
            }
        }
    }

    async fn acknowledge(&self, batch: Batch) {
        let reader = Arc::clone(&self.reader);
        let last = batch.last();
        let result = actix_rt::task::spawn_blocking(move || {
            reader
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .acknowledge(&batch)
        })
        .await
        .expect("the journal write does not panic");
        match result {
            Ok(()) => self.shared.lock().delivered = last,
            // The batch stays pending: after a restart it is posted again
            // under the same key, and the cloud answers "duplicate".
            Err(e) => error!(
                "real-time feed: cannot record a delivery in the journal: {}; the batch is sent again later under the same key, which the cloud keeps once",
                crate::report::chain(&e)
            ),
        }
    }

    fn set_aside(&self, batch: &Batch, reason: &str) {
        let path = self
            .rejected_dir
            .join(format!("realtime-{}.json", batch.idempotency_key));
        let body = serde_json::json!({"reason": reason, "events": batch.events});
        if let Err(e) = crate::state::atomic::write_json_atomic(&path, &body) {
            error!("real-time feed: cannot write {}: {e}", path.display());
        }
    }
}

impl Actor for RealtimeFeedActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.open_journal(ctx, 0);
        ctx.run_interval(STATUS_EVERY, |act, _| act.publish());
        if let Some(config) = self.settings.assignment.get() {
            ctx.spawn(
                config
                    .send(GetAssignment)
                    .into_actor(self)
                    .map(|answer, act, _| {
                        if let Ok(integration) = answer {
                            act.apply_assignment(integration.as_ref());
                        }
                    }),
            );
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.stop_sockets();
    }
}

impl Handler<AssignmentNews> for RealtimeFeedActor {
    type Result = ();

    fn handle(&mut self, AssignmentNews(integration): AssignmentNews, _: &mut Context<Self>) {
        self.apply_assignment(integration.as_ref());
    }
}

impl Handler<Shutdown> for RealtimeFeedActor {
    type Result = ResponseActFuture<Self, ()>;

    /// Stops reading, commits what was read (nothing read is dropped by a
    /// graceful stop), then stops. Delivery stops where it is: the journal
    /// keeps the rest for the next start.
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.stop_sockets();
        if let Some(delivery) = self.delivery.take() {
            ctx.cancel_future(delivery);
        }
        self.events = None;
        let committer = self.committer.take();
        Box::pin(
            async move {
                if let Some(committer) = committer {
                    // The socket tasks drop their senders as the runtime
                    // reaps them; the committer then commits and ends.
                    let _ = actix_rt::task::spawn_blocking(move || committer.join()).await;
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                act.reader = None;
                ctx.stop();
            }),
        )
    }
}
