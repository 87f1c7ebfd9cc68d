//! The feed's sockets and its group commit: bytes from peers become events
//! in the journal.
//!
//! I/O, but no actor: `RealtimeFeedActor` starts these tasks and reads the
//! [`FeedShared`] tallies for status. Reading pushes back on the peer: an
//! event waits for room in a bounded queue before the next bytes are read,
//! so a flood faster than the disk slows the ACD's socket instead of
//! growing memory.

use std::collections::{BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::backoff::{Backoff, FailureLog};
use crate::realtime::allow::AllowList;
use crate::realtime::framing::{Frame, Framer, MAX_FRAME};
use crate::realtime::journal::{JournalWriter, NewEvent};
use crate::realtime::parse::{AgentState, Line, LineParser};
use crate::realtime::snapshot::SnapshotDiffer;
use crate::realtime::tally::{MinuteRate, Problems};

/// Events between the sockets and the group commit; a full queue stops the
/// reading (TCP flow control then slows the peer).
pub const QUEUE_EVENTS: usize = 8_192;
/// The group commit waits at least this long between two fsyncs (§ issue 13:
/// "at most every 100 ms"); the events read meanwhile share the next one.
pub const GROUP_COMMIT_EVERY: Duration = Duration::from_millis(100);
/// How many events after each (re)connect `verbose = true` logs.
const VERBOSE_EVENTS: u64 = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the feed has done, shared with the actor for status.
#[derive(Debug, Default)]
pub struct FeedShared(Mutex<FeedTally>);

#[derive(Debug)]
pub struct FeedTally {
    /// `listening on …`, `connecting`, `stopped`, `failed: …`.
    pub state: String,
    pub peers: BTreeSet<String>,
    pub events_total: u64,
    pub rate: MinuteRate,
    pub last_event_at: Option<DateTime<Utc>>,
    /// The last byte from any peer, or the last (re)connect: for the silence
    /// warning.
    pub last_sign: Instant,
    pub problems: Problems,
    pub committed: u64,
    /// The last sequence the cloud accepted.
    pub delivered: u64,
    /// Why the last delivery attempt failed, while it does.
    pub last_error: Option<String>,
    started: Instant,
}

impl Default for FeedTally {
    fn default() -> Self {
        FeedTally {
            state: "starting".to_owned(),
            peers: BTreeSet::new(),
            events_total: 0,
            rate: MinuteRate::default(),
            last_event_at: None,
            last_sign: Instant::now(),
            problems: Problems::default(),
            committed: 0,
            delivered: 0,
            last_error: None,
            started: Instant::now(),
        }
    }
}

impl FeedTally {
    pub fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs()
    }
}

impl FeedShared {
    pub fn lock(&self) -> MutexGuard<'_, FeedTally> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What every connection of one feed shares.
pub struct FeedContext {
    pub parser: LineParser,
    pub shared: Arc<FeedShared>,
    pub events: mpsc::Sender<NewEvent>,
    pub verbose: bool,
}

/// Reads one peer until it closes or fails; the reason is returned for the
/// caller's log line.
pub async fn read_peer<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: &str,
    ctx: &FeedContext,
) -> String {
    let mut framer = Framer::new(ctx.parser.framing());
    let mut snapshot = SnapshotDiffer::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let mut shown = 0u64;
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return format!("the connection failed ({e})"),
        };
        ctx.shared.lock().last_sign = Instant::now();
        for frame in framer.push(&buffer[..n]) {
            if !ctx.frame(frame, peer, &mut snapshot, &mut shown).await {
                return "the client stopped".to_owned();
            }
        }
    }
    if let Some(frame) = framer.finish_stream() {
        ctx.frame(frame, peer, &mut snapshot, &mut shown).await;
    }
    "the peer closed the connection".to_owned()
}

impl FeedContext {
    /// One frame; `false` when the journal is gone (the feed stops).
    async fn frame(
        &self,
        frame: Frame,
        peer: &str,
        snapshot: &mut SnapshotDiffer,
        shown: &mut u64,
    ) -> bool {
        let received_at = Utc::now();
        let line = match frame {
            Frame::TooLong(length) => {
                self.problem(
                    "line too long",
                    peer,
                    &format!("a line of {length} bytes (the limit is {MAX_FRAME}); it was skipped"),
                );
                return true;
            }
            Frame::Line(line) => line,
        };
        let states = match self.parser.parse(&line, received_at) {
            Ok(Line::Blank) => return true,
            Ok(Line::RefreshMarker) => snapshot.refresh(
                received_at
                    .with_timezone(&self.parser.zone())
                    .fixed_offset(),
            ),
            Ok(Line::State(state)) => match self.parser.kind() {
                crate::protocol::FeedFormatKind::Snapshot => {
                    snapshot.line(state).into_iter().collect()
                }
                _ => vec![state],
            },
            Err(problem) => {
                let example: String = String::from_utf8_lossy(&line).chars().take(120).collect();
                self.problem(problem.kind(), peer, &format!("{problem}: {example:?}"));
                return true;
            }
        };
        for state in states {
            if self.verbose && *shown < VERBOSE_EVENTS {
                *shown += 1;
                info!(
                    "real-time feed from {peer}: agent {} is {}{} since {} ({} of the first {VERBOSE_EVENTS} after connecting, verbose = true)",
                    state.agent,
                    state.activity,
                    state.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
                    state.timestamp.to_rfc3339(),
                    *shown,
                );
            }
            if self
                .events
                .send(new_event(state, received_at))
                .await
                .is_err()
            {
                return false;
            }
            let mut tally = self.shared.lock();
            let now = Instant::now();
            let second = tally.second(now);
            tally.events_total += 1;
            tally.rate.add(second, 1);
            tally.last_event_at = Some(received_at);
        }
        true
    }

    fn problem(&self, kind: &'static str, peer: &str, detail: &str) {
        if self.shared.lock().problems.record(kind) {
            warn!(
                "real-time feed from {peer}: skipped a line ({detail}); further lines with this problem are only counted (see `status`), the feed goes on"
            );
        }
    }
}

fn new_event(state: AgentState, received_at: DateTime<Utc>) -> NewEvent {
    NewEvent {
        agentidentifier: state.agent,
        activity: state.activity,
        reason: state.reason,
        timestamp: state
            .timestamp
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        received_at: received_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// Binds the listening socket, with a clear error when the port is taken.
pub async fn bind(address: IpAddr, port: u16) -> Result<TcpListener, String> {
    let at = SocketAddr::new(address, port);
    TcpListener::bind(at).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            match crate::realtime::port_owner::describe(port) {
                Some(owner) => format!("port {port} is in use by {owner}"),
                None => format!("port {port} is in use by another program"),
            }
        } else {
            format!("cannot listen on {at}: {e}")
        }
    })
}

/// Accepts peers until the task is aborted. The connections' tasks belong
/// to it (a `JoinSet`): aborting it closes them too, so new settings or a
/// stop never leave a peer being read with the old ones (nor keep the
/// group commit waiting for their queue senders).
pub async fn accept(listener: TcpListener, allow: AllowList, ctx: Arc<FeedContext>) {
    let mut refused: HashSet<IpAddr> = HashSet::new();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        // Finished connections are reaped here, so the set stays small.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: wait, do not spin.
                warn!("real-time feed: accepting a connection failed ({e}); trying again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if !allow.allows(peer.ip()) {
            if refused.insert(peer.ip()) {
                warn!(
                    "real-time feed: refused a connection from {}: it is not in [realtime] allowFrom; add it there (an address or a range such as 10.1.0.0/16) to accept it. Further attempts from it are refused without a log line",
                    peer.ip()
                );
            }
            continue;
        }
        let ctx = Arc::clone(&ctx);
        connections.spawn(async move {
            let name = peer.to_string();
            ctx.shared.lock().peers.insert(name.clone());
            info!("real-time feed: {name} connected");
            let _ = stream.set_nodelay(true);
            let why = read_peer(stream, &name, &ctx).await;
            ctx.shared.lock().peers.remove(&name);
            info!("real-time feed: {name} disconnected ({why}); waiting for it to connect again");
        });
    }
}

/// Connects to `server` and reads it, again after every drop, until the
/// task is aborted. Logs each change of state once, not each retry.
pub async fn connect(server: String, ctx: Arc<FeedContext>) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut failures = FailureLog::default();
    loop {
        let attempt =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server.as_str())).await;
        let stream = match attempt {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                retry(&server, &e.to_string(), &mut failures, &mut backoff).await;
                continue;
            }
            Err(_) => {
                retry(
                    &server,
                    "no answer within 10 s",
                    &mut failures,
                    &mut backoff,
                )
                .await;
                continue;
            }
        };
        let after = failures
            .recovered()
            .map(|n| format!(" after {n} failed attempt(s)"))
            .unwrap_or_default();
        info!("real-time feed: connected to {server}{after}");
        let _ = stream.set_nodelay(true);
        let connected_at = Instant::now();
        {
            let mut tally = ctx.shared.lock();
            tally.peers.insert(server.clone());
            tally.last_sign = connected_at;
        }
        let why = read_peer(stream, &server, &ctx).await;
        ctx.shared.lock().peers.remove(&server);
        if connected_at.elapsed() > Duration::from_secs(60) {
            backoff.reset();
        }
        let delay = backoff
            .fail_with_jitter(rand::random::<f64>())
            .max(Duration::from_millis(200));
        info!(
            "real-time feed: {server} dropped ({why}); connecting again in {:.1} s",
            delay.as_secs_f64()
        );
        tokio::time::sleep(delay).await;
    }
}

async fn retry(server: &str, why: &str, failures: &mut FailureLog, backoff: &mut Backoff) {
    let delay = backoff
        .fail_with_jitter(rand::random::<f64>())
        .max(Duration::from_millis(200));
    if failures.failed(why) {
        warn!(
            "real-time feed: cannot connect to {server} ({why}); trying again with growing pauses (up to 1 min), logged again only when something changes"
        );
    }
    tokio::time::sleep(delay).await;
}

/// The group commit, on its own thread: takes the queued events, appends
/// them to the journal with one fsync at most every [`GROUP_COMMIT_EVERY`],
/// and publishes the last committed sequence. Ends when every sender is
/// gone, after committing what is left; gives the writer back.
/// `max_bytes`: the journal's ceiling (`[spool] maxBytes`); above it the
/// commit waits, so reading stops and TCP slows the ACD, as a full spool
/// pauses the importers.
pub fn spawn_committer(
    mut writer: JournalWriter,
    mut events: mpsc::Receiver<NewEvent>,
    committed: watch::Sender<u64>,
    shared: Arc<FeedShared>,
    max_bytes: u64,
) -> std::thread::JoinHandle<JournalWriter> {
    std::thread::Builder::new()
        .name("realtime-commit".to_owned())
        .spawn(move || {
            let mut last_commit = Instant::now() - GROUP_COMMIT_EVERY;
            let mut group = Vec::new();
            let mut failing = FailureLog::default();
            while let Some(first) = events.blocking_recv() {
                group.push(first);
                let wait = GROUP_COMMIT_EVERY.saturating_sub(last_commit.elapsed());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                while let Ok(event) = events.try_recv() {
                    group.push(event);
                }
                if writer.bytes() >= max_bytes {
                    warn!(
                        "real-time feed: its journal holds {} MiB of events the cloud has not taken yet, the limit of [spool] maxBytes; reading from the ACD is paused until the cloud takes some (the ACD's socket waits; nothing read is dropped)",
                        writer.bytes() >> 20
                    );
                    while writer.bytes() >= max_bytes {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    info!("real-time feed: the journal has room again; reading resumes");
                }
                // Until the disk takes the group, nothing more is read (the
                // queue fills, the sockets wait): nothing read is dropped.
                loop {
                    match writer.append(&group) {
                        Ok(sequence) => {
                            if let Some(n) = failing.recovered() {
                                info!("real-time feed: the journal takes events again after {n} failed attempt(s); nothing was lost");
                            }
                            shared.lock().committed = sequence;
                            let _ = committed.send(sequence);
                            break;
                        }
                        Err(e) => {
                            let message = crate::report::chain(&e);
                            if failing.failed(&message) {
                                error!("real-time feed: cannot store {} event(s): {message}; holding them and reading no more until the disk takes them (retrying every second)", group.len());
                            }
                            std::thread::sleep(Duration::from_secs(1));
                        }
                    }
                }
                group.clear();
                last_commit = Instant::now();
            }
            writer
        })
        .expect("a thread can be started")
}
