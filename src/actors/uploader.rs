//! UploaderActor: delivers the spool's items to the cloud (protocol §3) and
//! tells the importers, through a [`DeliveryListener`], once the cloud has
//! confirmed each one (or refused it for good).
//!
//! Each item goes through three steps: `POST /uploads`, the PUT of its gzip
//! bytes to the pre-signed URL (a `SizedStream` read from the file, never
//! chunked), and the commit. Only the commit's answer makes an item
//! delivered; only then is it deleted. Every step is idempotent on the
//! cloud's side, so an attempt abandoned anywhere (a crash, a shutdown, a
//! lost answer) is simply made again.
//!
//! Trouble reaching the cloud (network, 408, 429, 5xx) pauses all uploads
//! with one shared backoff (full jitter, `Retry-After` as a lower bound):
//! the cloud is one resource, and a thousand spooled items must not each
//! find that out on their own. Its pause grows with how long the cloud has
//! been failing, not with how many requests failed
//! (`backoff::SharedBackoff`), so uploads resume about one outage-length
//! after the cloud is back at the latest. Trouble with one item (its URL refused
//! again, its upload lost by the cloud, its file unreadable) waits by that
//! item's own attempts and holds back no other. The retry bookkeeping is
//! saved in each item's sidecar so that a restart does not start hammering
//! again.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use awc::body::SizedStream;
use awc::http::{Method, StatusCode, Uri};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tracing::{debug, error, info, warn};

use crate::actors::pairing::{GetAccessToken, PairingActor, Unauthorized};
use crate::actors::slot::Slot;
use crate::actors::supervisor::Shutdown;
use crate::backoff::{Backoff, FailureLog, SharedBackoff};
use crate::http::{self, HttpClientFactory, HttpError, API_TIMEOUT};
use crate::protocol::{
    paths, CommitResponse, CreateUploadRequest, CreateUploadResponse, SpoolState,
    UploadAlreadyCommitted, UploadTarget,
};
use crate::spool::{Rejection, Spool, SpoolError, SpooledItem};
use crate::status::StatusBoard;

/// Uploads at a time: enough to hide one upload's round trips behind
/// another's, few enough not to saturate a customer's uplink.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// The spool is read again this often, so that an item whose `Enqueued` was
/// lost (an importer that crashed after its commit) still goes out.
pub const RESCAN_EVERY: Duration = Duration::from_secs(30);
/// While unpaired, how often the uploader asks for a token again.
const LINK_POLL: Duration = Duration::from_secs(2);
/// A persisted next attempt further out than this (a clock that jumped) is
/// not waited for after a restart.
const MAX_PERSISTED_WAIT: Duration = Duration::from_secs(300);
/// Backoff steps restored at start from the items' attempts: enough to
/// resume at minutes, not to park the client for hours.
const MAX_RESTORED_FAILURES: u32 = 9;
const CHUNK: usize = 64 * 1024;

pub struct UploaderSettings {
    pub spool: Spool,
    pub http: HttpClientFactory,
    pub cloud_url: url::Url,
    pub pairing: Slot<PairingActor>,
    pub board: StatusBoard,
    /// Uploads at a time (at least 1); [`DEFAULT_CONCURRENCY`] normally.
    pub concurrency: usize,
    pub listener: DeliveryListener,
}

/// What became of an item; sent to the [`DeliveryListener`] after the item
/// left the spool.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The cloud confirmed the commit. `already`: the cloud had this
    /// idempotency key committed before, so nothing was sent; it then names
    /// only the earlier upload, and `import_id` holds that upload's id.
    Committed {
        item: SpooledItem,
        import_id: String,
        already: bool,
    },
    /// Refused for good (a 4xx other than 401/403/408/429, or data damaged
    /// on disk); the item is in `state/rejected/` with a reason file.
    Rejected { item: SpooledItem, reason: String },
}

impl Delivery {
    /// The item delivered or rejected (its `origin` names the importer).
    pub fn item(&self) -> &SpooledItem {
        match self {
            Delivery::Committed { item, .. } | Delivery::Rejected { item, .. } => item,
        }
    }
}

/// Called on the uploader's thread: must return at once (send a message,
/// update a map), never block.
pub type DeliveryListener = Arc<dyn Fn(&Delivery) + Send + Sync>;

/// An importer committed `0` to the spool: upload it soon.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Enqueued(pub SpooledItem);

/// Where an item's upload stands; kept in memory only, since every step
/// can be repeated safely.
#[derive(Debug, Clone)]
enum Stage {
    Create,
    Put(UploadTarget),
    Commit { upload_id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Put,
    Commit,
}

struct Entry {
    item: SpooledItem,
    stage: Stage,
    due: Instant,
    /// When its latest attempt started: a failure of an attempt that began
    /// before the cloud-wide backoff's last recorded failure joins that pause.
    started: Instant,
    /// An attempt or a file operation on this item is under way.
    busy: bool,
    /// 403s on the PUT in a row: the first gets a new URL at once.
    url_refusals: u32,
    /// Refused for good but could not be moved aside: left alone until the
    /// next start rather than refused again and again.
    parked: bool,
}

type Key = (DateTime<Utc>, String);

fn key_of(item: &SpooledItem) -> Key {
    (item.created_at, item.id.clone())
}

enum Failure {
    Http {
        step: Step,
        /// `METHOD url` as a log may show it (no query).
        what: String,
        error: HttpError,
    },
    Local(SpoolError),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Http { error, .. } => error.to_string(),
            Failure::Local(e) => crate::report::chain(e),
        }
    }
}

enum Outcome {
    Delivered {
        import_id: String,
        already: bool,
    },
    Failed {
        resume: Stage,
        failure: Box<Failure>,
        token: String,
    },
    Unpaired,
}

enum Verdict {
    Retry {
        stage: Stage,
        delay: Duration,
        /// Cloud-wide trouble: hold back every item, not just this one.
        pause_all: bool,
    },
    Reject,
}

pub struct UploaderActor {
    settings: UploaderSettings,
    api: Option<Rc<UploadApi>>,
    api_timeout: Duration,
    entries: BTreeMap<Key, Entry>,
    in_flight: usize,
    /// Cloud-wide trouble (network, 401, 408, 429, 5xx): one backoff that
    /// pauses every upload, growing with the time the cloud has been failing.
    backoff: SharedBackoff<Instant>,
    failures: FailureLog,
    sidecar_failures: FailureLog,
    paused_until: Option<Instant>,
    waiting_for_link: bool,
    wake: Option<SpawnHandle>,
    /// Ids removed while a rescan is under way; its listing may still hold them.
    scan: Option<HashSet<String>>,
    first_scan: bool,
    stopping: bool,
}

impl UploaderActor {
    pub fn new(settings: UploaderSettings) -> Self {
        UploaderActor {
            settings,
            api: None,
            api_timeout: API_TIMEOUT,
            entries: BTreeMap::new(),
            in_flight: 0,
            backoff: SharedBackoff::new(Backoff::requests()),
            failures: FailureLog::default(),
            sidecar_failures: FailureLog::default(),
            paused_until: None,
            waiting_for_link: false,
            wake: None,
            scan: None,
            first_scan: true,
            stopping: false,
        }
    }

    /// The timeout of the API calls, and the base of the PUT's (which grows
    /// with the size); tests shorten it.
    pub fn with_api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// The retry delays (protocol §5's by default); tests shorten them.
    pub fn with_retry_policy(mut self, backoff: Backoff) -> Self {
        self.backoff = SharedBackoff::new(backoff);
        self
    }

    fn concurrency(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    fn show_usage(&self) {
        let usage = self.settings.spool.usage();
        self.settings.board.update(|s| {
            s.spool = SpoolState {
                files: usage.files,
                bytes: usage.bytes,
            }
        });
    }

    fn add(&mut self, item: SpooledItem) {
        let now = Instant::now();
        let wait = item
            .next_attempt_at
            .and_then(|at| (at - Utc::now()).to_std().ok())
            .map_or(Duration::ZERO, |d| d.min(MAX_PERSISTED_WAIT));
        self.entries.entry(key_of(&item)).or_insert(Entry {
            item,
            stage: Stage::Create,
            due: now + wait,
            started: now,
            busy: false,
            url_refusals: 0,
            parked: false,
        });
    }

    fn forget(&mut self, key: &Key) -> Option<Entry> {
        if let Some(removed) = &mut self.scan {
            removed.insert(key.1.clone());
        }
        self.entries.remove(key)
    }

    // ---- scheduling --------------------------------------------------------

    /// Starts what may start now, and sets the timer for the next.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        if let Some(wake) = self.wake.take() {
            ctx.cancel_future(wake);
        }
        let now = Instant::now();
        let paused = self.paused_until.filter(|until| *until > now);
        if paused.is_none() {
            while self.in_flight < self.concurrency() {
                let next = self
                    .entries
                    .iter()
                    .find(|(_, e)| !e.busy && !e.parked && e.due <= now)
                    .map(|(key, _)| key.clone());
                let Some(key) = next else { break };
                self.start(key, ctx);
            }
        }
        if self.in_flight >= self.concurrency() {
            return; // a finishing upload pumps again
        }
        let earliest = self
            .entries
            .values()
            .filter(|e| !e.busy && !e.parked)
            .map(|e| e.due)
            .min();
        let at = match (paused, earliest) {
            (Some(until), Some(due)) => until.max(due),
            (None, Some(due)) => due,
            (_, None) => return,
        };
        self.wake = Some(
            ctx.run_later(at.saturating_duration_since(now), |act, ctx| {
                act.wake = None;
                act.pump(ctx)
            }),
        );
    }

    fn start(&mut self, key: Key, ctx: &mut Context<Self>) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        entry.busy = true;
        entry.started = Instant::now();
        self.in_flight += 1;
        let api = Rc::clone(self.api.as_ref().expect("created in started()"));
        let attempt = attempt(
            api,
            self.settings.pairing.clone(),
            self.settings.spool.clone(),
            entry.item.clone(),
            entry.stage.clone(),
        );
        ctx.spawn(attempt.into_actor(self).map(move |outcome, act, ctx| {
            act.in_flight -= 1;
            act.finished(key, outcome, ctx);
            act.pump(ctx);
        }));
    }

    fn rescan(&mut self, ctx: &mut Context<Self>) {
        if self.scan.is_some() || self.stopping {
            return;
        }
        self.scan = Some(HashSet::new());
        let spool = self.settings.spool.clone();
        let listing = async move {
            actix_rt::task::spawn_blocking(move || spool.pending())
                .await
                .unwrap_or_else(|e| {
                    Err(SpoolError::Io {
                        path: Default::default(),
                        source: io::Error::other(e.to_string()),
                    })
                })
        };
        ctx.spawn(listing.into_actor(self).map(|listing, act, ctx| {
            let removed = act.scan.take().unwrap_or_default();
            match listing {
                Ok(items) => {
                    if std::mem::take(&mut act.first_scan) {
                        act.resume_backoff(&items);
                    }
                    for item in items {
                        if !removed.contains(&item.id) {
                            act.add(item);
                        }
                    }
                }
                Err(e) => warn!(
                    "cannot read the spool: {}; trying again in {} s",
                    crate::report::chain(&e),
                    RESCAN_EVERY.as_secs()
                ),
            }
            act.show_usage();
            act.pump(ctx);
        }));
    }

    /// After a restart, continue the backoff where the last run left it.
    fn resume_backoff(&mut self, items: &[SpooledItem]) {
        let failures = items.iter().map(|i| i.attempts).max().unwrap_or(0);
        self.backoff.restore(failures.min(MAX_RESTORED_FAILURES));
    }

    // ---- outcomes ----------------------------------------------------------

    fn finished(&mut self, key: Key, outcome: Outcome, ctx: &mut Context<Self>) {
        if !matches!(outcome, Outcome::Unpaired) && self.waiting_for_link {
            self.waiting_for_link = false;
            info!("the client is linked: uploads go ahead");
        }
        match outcome {
            Outcome::Delivered { import_id, already } => {
                self.cloud_answered();
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.url_refusals = 0;
                }
                self.delivered(key, import_id, already, ctx);
            }
            Outcome::Unpaired => {
                if !self.waiting_for_link {
                    self.waiting_for_link = true;
                    info!(
                        "uploads wait until the client is linked to the cloud ({} item{} spooled)",
                        self.entries.len(),
                        if self.entries.len() == 1 { "" } else { "s" }
                    );
                }
                if let Some(entry) = self.entries.get_mut(&key) {
                    entry.busy = false;
                }
                // One item asks again, not every spooled item on its own.
                let until = Instant::now() + LINK_POLL;
                self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
            }
            Outcome::Failed {
                resume,
                failure,
                token,
            } => self.failed(key, resume, *failure, &token, ctx),
        }
    }

    fn cloud_answered(&mut self) {
        self.backoff.reset();
        self.paused_until = None;
        if let Some(failures) = self.failures.recovered() {
            info!(
                "uploads work again (after {failures} failed attempt{})",
                if failures == 1 { "" } else { "s" }
            );
        }
    }

    fn delivered(&mut self, key: Key, import_id: String, already: bool, ctx: &mut Context<Self>) {
        let Some(entry) = self.entries.get(&key) else {
            return;
        };
        let item = entry.item.clone();
        let spool = self.settings.spool.clone();
        let removal = {
            let item = item.clone();
            blocking(move || spool.remove(&item))
        };
        ctx.spawn(removal.into_actor(self).map(move |removed, act, _ctx| {
            if let Err(e) = removed {
                // Delivered all the same: a copy left behind is answered
                // "already committed" when it is tried again.
                warn!(
                    "{} is delivered, but removing it from the spool failed: {}",
                    item.file_name,
                    crate::report::chain(&e)
                );
            }
            act.forget(&key);
            act.show_usage();
            if already {
                info!(
                    "{} ({}) was already in the cloud (upload {import_id}); not sent again",
                    item.file_name,
                    describe_size(&item)
                );
            } else {
                info!(
                    "uploaded {} ({}) as import {import_id}",
                    item.file_name,
                    describe_size(&item)
                );
            }
            (act.settings.listener)(&Delivery::Committed {
                item,
                import_id,
                already,
            });
        }));
    }

    fn failed(
        &mut self,
        key: Key,
        resume: Stage,
        failure: Failure,
        token: &str,
        ctx: &mut Context<Self>,
    ) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let status = match &failure {
            Failure::Http { error, .. } => error.status(),
            Failure::Local(_) => None,
        };
        let now = Instant::now();
        let started = entry.started;
        // Trouble with this item only waits by the item's own attempts, so
        // that it cannot slow down the others.
        let own_delay = self
            .backoff
            .policy()
            .delay_after(entry.item.attempts.saturating_add(1), rand::random());
        let verdict = match &failure {
            Failure::Http {
                step: Step::Put, ..
            } if status == Some(StatusCode::FORBIDDEN) => {
                entry.url_refusals += 1;
                // Expired or refused URL: a new one at once, unless that
                // keeps happening (a clock far off, a proxy rewriting URLs).
                let delay = if entry.url_refusals == 1 {
                    Duration::ZERO
                } else {
                    own_delay
                };
                Verdict::Retry {
                    stage: Stage::Create,
                    delay,
                    pause_all: false,
                }
            }
            Failure::Http { step, .. }
                if *step != Step::Put && status == Some(StatusCode::UNAUTHORIZED) =>
            {
                if let Some(pairing) = self.settings.pairing.get() {
                    pairing.do_send(Unauthorized {
                        token: token.to_owned(),
                    });
                }
                Verdict::Retry {
                    stage: resume,
                    delay: self.backoff.fail(started, now, rand::random()),
                    pause_all: true,
                }
            }
            // The cloud lost the upload (or never saw the bytes): the data
            // is not at fault, so start over rather than reject it.
            Failure::Http {
                step: Step::Commit, ..
            } if matches!(
                status,
                Some(StatusCode::NOT_FOUND) | Some(StatusCode::CONFLICT)
            ) =>
            {
                Verdict::Retry {
                    stage: Stage::Create,
                    delay: own_delay,
                    pause_all: false,
                }
            }
            Failure::Http { error, .. } if error.is_retryable() => {
                let jittered = self.backoff.fail(started, now, rand::random());
                let jittered = error.retry_cap().map_or(jittered, |cap| jittered.min(cap));
                Verdict::Retry {
                    stage: resume,
                    delay: jittered.max(error.retry_after().unwrap_or_default()),
                    pause_all: true,
                }
            }
            // Only the cloud refuses for good; a request this client would
            // not send (a plain-http URL to a remote host, a malformed
            // header) is the cloud's configuration to fix, not the data's.
            Failure::Http { .. } if status.is_some_and(|s| s.is_client_error()) => Verdict::Reject,
            Failure::Http { .. } => Verdict::Retry {
                stage: resume,
                delay: own_delay,
                pause_all: false,
            },
            Failure::Local(SpoolError::Damaged { .. }) => Verdict::Reject,
            Failure::Local(_) => Verdict::Retry {
                stage: resume,
                delay: own_delay,
                pause_all: false,
            },
        };
        match verdict {
            Verdict::Reject => self.reject(key, failure, ctx),
            Verdict::Retry {
                stage,
                delay,
                pause_all,
            } => self.retry(key, stage, delay, pause_all, &failure, ctx),
        }
    }

    fn retry(
        &mut self,
        key: Key,
        stage: Stage,
        delay: Duration,
        pause_all: bool,
        failure: &Failure,
        ctx: &mut Context<Self>,
    ) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let described = failure.describe();
        entry.stage = stage;
        entry.item.attempts = entry.item.attempts.saturating_add(1);
        entry.item.last_error = Some(described.clone());
        entry.item.next_attempt_at =
            Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
        let line = format!(
            "upload of {} failed: {described}; retrying in {} (attempt {})",
            entry.item.file_name,
            describe_delay(delay),
            entry.item.attempts
        );
        let item = entry.item.clone();
        if self.failures.failed(&described) {
            warn!("{line}");
        } else {
            debug!("{line}");
        }
        if pause_all {
            let until = Instant::now() + delay;
            self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        }
        let spool = self.settings.spool.clone();
        // The item stays busy until its sidecar is written, so that no
        // later removal can race with the write.
        ctx.spawn(blocking(move || spool.update(&item)).into_actor(self).map(
            move |saved, act, ctx| {
                if let Err(e) = saved {
                    let described = crate::report::chain(&e);
                    if act.sidecar_failures.failed(&described) {
                        warn!(
                            "cannot save the retry state of a spooled item: {described}; \
                                 the item is kept and retried all the same"
                        );
                    }
                } else {
                    act.sidecar_failures.recovered();
                }
                if let Some(entry) = act.entries.get_mut(&key) {
                    entry.busy = false;
                    entry.due = Instant::now() + delay;
                }
                act.pump(ctx);
            },
        ));
    }

    fn reject(&mut self, key: Key, failure: Failure, ctx: &mut Context<Self>) {
        let Some(entry) = self.entries.get(&key) else {
            return;
        };
        let item = entry.item.clone();
        let (refused, status, message) = match &failure {
            Failure::Http { what, error, .. } => (
                what.clone(),
                error
                    .status()
                    .map_or_else(|| "none".to_owned(), |s| s.to_string()),
                error.to_string(),
            ),
            Failure::Local(e) => (
                "nothing: the spooled data cannot be sent".to_owned(),
                "none".to_owned(),
                crate::report::chain(e),
            ),
        };
        let why = Rejection {
            refused: refused.clone(),
            status,
            message: message.clone(),
            at: Utc::now(),
        };
        let spool = self.settings.spool.clone();
        let moving = {
            let item = item.clone();
            blocking(move || spool.reject(&item, &why))
        };
        let reason = format!("{refused} was refused: {message}");
        ctx.spawn(moving.into_actor(self).map(move |moved, act, ctx| {
            match moved {
                Ok(paths) => {
                    error!(
                        "{} is rejected and will not be uploaded: {reason}; moved to {} \
                         (the reason is in {})",
                        item.file_name,
                        paths.data.display(),
                        paths.reason.display()
                    );
                    act.forget(&key);
                    act.show_usage();
                    (act.settings.listener)(&Delivery::Rejected { item, reason });
                }
                Err(e) => {
                    error!(
                        "{} is rejected ({reason}), but it cannot be moved to {}: {}; it stays \
                         in the spool and is tried again after the next start",
                        item.file_name,
                        act.settings.spool.settings().rejected_dir.display(),
                        crate::report::chain(&e)
                    );
                    if let Some(entry) = act.entries.get_mut(&key) {
                        entry.busy = false;
                        entry.parked = true;
                    }
                }
            }
            act.pump(ctx);
        }));
    }
}

impl Actor for UploaderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.api = Some(Rc::new(UploadApi {
            client: self.settings.http.client(),
            base: self
                .settings
                .cloud_url
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
            api_timeout: self.api_timeout,
        }));
        self.show_usage();
        self.rescan(ctx);
        ctx.run_interval(RESCAN_EVERY, |act, ctx| act.rescan(ctx));
    }
}

impl Handler<Enqueued> for UploaderActor {
    type Result = ();

    fn handle(&mut self, Enqueued(item): Enqueued, ctx: &mut Context<Self>) {
        self.add(item);
        self.show_usage();
        self.pump(ctx);
    }
}

impl Handler<Shutdown> for UploaderActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        // Uploads under way are dropped with the context: each is made again
        // from the spool at the next start, and the cloud keeps one import
        // per idempotency key.
        self.stopping = true;
        if self.in_flight > 0 {
            info!(
                "stopping uploads; {} in progress will be resumed at the next start",
                self.in_flight
            );
        }
        ctx.stop();
    }
}

// ---- one attempt --------------------------------------------------------------

/// Takes `item` from `stage` as far as it goes: to the commit's answer, or
/// to the first failure (and the stage to resume from).
async fn attempt(
    api: Rc<UploadApi>,
    pairing: Slot<PairingActor>,
    spool: Spool,
    item: SpooledItem,
    mut stage: Stage,
) -> Outcome {
    let token = match pairing.get() {
        Some(pairing) => pairing.send(GetAccessToken).await.ok().flatten(),
        None => None,
    };
    let Some(token) = token.map(|t| t.token) else {
        return Outcome::Unpaired;
    };
    let failed = |resume: Stage, failure: Failure| Outcome::Failed {
        resume,
        failure: Box::new(failure),
        token: token.clone(),
    };
    loop {
        stage = match stage {
            Stage::Create => match api.create(&token, &item).await {
                Ok(CreateUploadResponse::Created(target)) => Stage::Put(target),
                Ok(CreateUploadResponse::AlreadyCommitted(earlier)) => {
                    return Outcome::Delivered {
                        import_id: earlier.upload_id,
                        already: true,
                    }
                }
                Err(error) => {
                    return failed(
                        Stage::Create,
                        Failure::Http {
                            step: Step::Create,
                            what: format!("POST {}", api.display(paths::UPLOADS)),
                            error,
                        },
                    )
                }
            },
            // Any failed PUT asks for a new URL: the old one may be expiring.
            Stage::Put(target) => match api.put(&spool, &item, &target).await {
                Ok(()) => Stage::Commit {
                    upload_id: target.upload_id,
                },
                Err(failure) => return failed(Stage::Create, failure),
            },
            Stage::Commit { upload_id } => match api.commit(&token, &upload_id).await {
                Ok(answer) => {
                    return Outcome::Delivered {
                        import_id: answer.import_id,
                        already: false,
                    }
                }
                Err(error) => {
                    let path = paths::commit(&upload_id);
                    return failed(
                        Stage::Commit { upload_id },
                        Failure::Http {
                            step: Step::Commit,
                            what: format!("POST {}", api.display(&path)),
                            error,
                        },
                    );
                }
            },
        }
    }
}

/// The upload calls of protocol §3 (the rest of the API is in `cloud.rs`).
struct UploadApi {
    client: awc::Client,
    base: String,
    api_timeout: Duration,
}

impl UploadApi {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn display(&self, path: &str) -> String {
        match self.url(path).parse::<Uri>() {
            Ok(uri) => http::display_url(&uri),
            Err(_) => path.to_owned(),
        }
    }

    async fn create(
        &self,
        token: &str,
        item: &SpooledItem,
    ) -> Result<CreateUploadResponse, HttpError> {
        let request = CreateUploadRequest {
            idempotency_key: item.idempotency_key.clone(),
            source: item.source,
            file_name: item.file_name.clone(),
            content_type: item.content_type.clone(),
            content_encoding: Some("gzip".to_owned()),
            size: item.size,
            sha256: item.sha256.clone(),
            metadata: item.metadata.clone(),
        };
        let post = self
            .client
            .post(self.url(paths::UPLOADS))
            .bearer_auth(token);
        let answer = http::send_json(post, self.api_timeout, &request).await?;
        if answer.status == StatusCode::OK {
            Ok(CreateUploadResponse::AlreadyCommitted(
                answer.json::<UploadAlreadyCommitted>()?,
            ))
        } else {
            Ok(CreateUploadResponse::Created(
                answer.json::<UploadTarget>()?,
            ))
        }
    }

    async fn put(
        &self,
        spool: &Spool,
        item: &SpooledItem,
        target: &UploadTarget,
    ) -> Result<(), Failure> {
        let uri: Uri = target.url.parse().map_err(|e| Failure::Http {
            step: Step::Put,
            what: format!("{} <upload URL>", target.method),
            // The parse error never quotes the URL, so no signature leaks.
            error: HttpError::InvalidRequest {
                detail: format!("the upload URL from the cloud is not a URL: {e}"),
            },
        })?;
        let what = format!("{} {}", target.method, http::display_url(&uri));
        let http_failure = |error: HttpError| Failure::Http {
            step: Step::Put,
            what: what.clone(),
            error,
        };
        let method = Method::from_bytes(target.method.as_bytes()).map_err(|_| {
            http_failure(HttpError::InvalidRequest {
                detail: format!("unknown upload method {:?}", target.method),
            })
        })?;
        let file = open_data(spool, item).await.map_err(Failure::Local)?;
        let mut request = self.client.request(method, uri);
        for (name, value) in &target.headers {
            // The length is the body's: awc sets it from the SizedStream.
            if !name.eq_ignore_ascii_case("content-length") {
                request = request.insert_header((name.as_str(), value.as_str()));
            }
        }
        let timeout = http::upload_timeout(item.size) - API_TIMEOUT + self.api_timeout;
        let body = SizedStream::new(item.size, Box::pin(file_chunks(file, item.size)));
        http::send(request, timeout, body)
            .await
            .map(drop)
            .map_err(http_failure)
    }

    async fn commit(&self, token: &str, upload_id: &str) -> Result<CommitResponse, HttpError> {
        let post = self
            .client
            .post(self.url(&paths::commit(upload_id)))
            .bearer_auth(token);
        http::send(post, self.api_timeout, ()).await?.json()
    }
}

/// Opens the item's data and checks it is the size its sidecar promises.
async fn open_data(spool: &Spool, item: &SpooledItem) -> Result<File, SpoolError> {
    let path = spool.data_path(&item.id);
    let (id, size) = (item.id.clone(), item.size);
    blocking(move || {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SpoolError::Damaged {
                    id,
                    detail: format!("its data file {} is missing", path.display()),
                })
            }
            Err(source) => return Err(SpoolError::Io { path, source }),
        };
        let len = file
            .metadata()
            .map_err(|source| SpoolError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        if len != size {
            return Err(SpoolError::Damaged {
                id,
                detail: format!(
                    "its data file {} has {len} bytes, its record says {size}",
                    path.display()
                ),
            });
        }
        Ok(file)
    })
    .await
}

/// The file's first `size` bytes in chunks, each read on a blocking thread.
/// Ends in an error if the file is shorter, so the PUT can never complete
/// with fewer bytes than its `Content-Length`.
fn file_chunks(file: File, size: u64) -> impl Stream<Item = Result<Bytes, io::Error>> {
    futures_util::stream::unfold((Some(file), 0u64), move |(file, sent)| async move {
        let mut file = file?;
        if sent >= size {
            return None;
        }
        let want = CHUNK.min(usize::try_from(size - sent).unwrap_or(CHUNK));
        let read = actix_rt::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; want];
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buffer[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buffer.truncate(filled);
            Ok((file, buffer))
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
        match read {
            Ok((file, buffer)) if !buffer.is_empty() => {
                let sent = sent + buffer.len() as u64;
                Some((Ok(Bytes::from(buffer)), (Some(file), sent)))
            }
            Ok(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the spooled file is shorter than its record says",
                )),
                (None, sent),
            )),
            Err(e) => Some((Err(e), (None, sent))),
        }
    })
}

/// Runs file I/O on the blocking pool, off the actor's thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    actix_rt::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| {
            Err(SpoolError::Io {
                path: Default::default(),
                source: io::Error::other(format!("the file operation failed: {e}")),
            })
        })
}

/// `1.2 MB, 3,412 rows` (rows when the importer recorded them).
fn describe_size(item: &SpooledItem) -> String {
    let size = describe_bytes(item.uncompressed_size);
    match item.metadata.get("rows").and_then(|r| r.as_u64()) {
        Some(rows) => format!(
            "{size}, {} row{}",
            thousands(rows),
            if rows == 1 { "" } else { "s" }
        ),
        None => size,
    }
}

fn describe_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn describe_delay(delay: Duration) -> String {
    let secs = delay.as_secs_f64();
    if secs < 1.0 {
        "less than a second".to_owned()
    } else if secs < 120.0 {
        format!("{} s", secs.round() as u64)
    } else {
        format!("{} min", (secs / 60.0).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts_read_well() {
        assert_eq!(describe_bytes(999), "999 bytes");
        assert_eq!(describe_bytes(1_234_567), "1.2 MB");
        assert_eq!(describe_bytes(999_999), "1.0 MB");
        assert_eq!(describe_bytes(5_000_000_000), "5.0 GB");
        assert_eq!(thousands(3412), "3,412");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(describe_delay(Duration::from_millis(7600)), "8 s");
        assert_eq!(describe_delay(Duration::from_secs(300)), "5 min");
        assert_eq!(describe_delay(Duration::ZERO), "less than a second");
    }
}
