//! Supervisor: starts the daemon's actors, restarts one that fails, and
//! shuts them all down gracefully on SIGTERM / SIGINT.
//!
//! actix neither restarts an actor whose handler panicked nor tells anyone:
//! the task dies and its mailbox closes. So the supervisor watches each
//! child's mailbox (`Addr::connected`) and restarts a child whose mailbox
//! closed without being asked to, with exponential backoff. A process-wide
//! panic hook logs every panic and remembers the latest, so the restart line
//! can name its cause.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::prelude::*;
use tracing::{error, info, warn};

use crate::actors::slot::Slot;
use crate::backoff::{restart_delay, Backoff};
use crate::report::human_duration;

/// Asks a supervised actor to stop taking new work, finish or persist what is
/// in flight, and stop. The supervisor waits for the answer (bounded by the
/// shutdown deadline) before it stops the system.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Stops every child in reverse start order, then the actix system.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopAll {
    pub reason: String,
}

/// How often dead children are looked for. A restart waits at least 1 s
/// anyway, so this only bounds how late a failure is noticed.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// Whole graceful shutdown, children included; the service manager's own
/// stop timeout is longer.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(8);

/// How to (re)start one child.
pub struct ChildSpec {
    name: String,
    start: Box<dyn FnMut() -> ChildHandle>,
}

impl ChildSpec {
    /// A child made by `factory`, which is called again for every restart so
    /// that each run starts from fresh state.
    pub fn new<A, F>(name: impl Into<String>, mut factory: F) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<Shutdown>,
        A::Context: ToEnvelope<A, Shutdown>,
        F: FnMut() -> A + 'static,
    {
        ChildSpec {
            name: name.into(),
            start: Box::new(move || ChildHandle::of(factory().start())),
        }
    }

    /// Like [`ChildSpec::new`], and every (re)started actor's address is
    /// put in `slot`, where the actors that talk to it look it up.
    pub fn with_slot<A, F>(name: impl Into<String>, slot: Slot<A>, mut factory: F) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<Shutdown>,
        A::Context: ToEnvelope<A, Shutdown>,
        F: FnMut() -> A + 'static,
    {
        ChildSpec {
            name: name.into(),
            start: Box::new(move || {
                let addr = factory().start();
                slot.set(addr.clone());
                ChildHandle::of(addr)
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

struct ChildHandle {
    connected: Box<dyn Fn() -> bool>,
    shutdown: Recipient<Shutdown>,
}

impl ChildHandle {
    fn of<A>(addr: Addr<A>) -> Self
    where
        A: Actor + Handler<Shutdown>,
        A::Context: ToEnvelope<A, Shutdown>,
    {
        ChildHandle {
            shutdown: addr.clone().recipient(),
            connected: Box::new(move || addr.connected()),
        }
    }
}

struct Child {
    spec: ChildSpec,
    running: Option<ChildHandle>,
    started_at: Instant,
    backoff: Backoff,
    restarts: u32,
}

pub struct Supervisor {
    children: Vec<Child>,
    restart_policy: Backoff,
    shutting_down: bool,
    handle_signals: bool,
}

impl Supervisor {
    pub fn new(children: Vec<ChildSpec>) -> Self {
        let restart_policy = Backoff::restarts();
        Supervisor {
            children: children
                .into_iter()
                .map(|spec| Child {
                    spec,
                    running: None,
                    started_at: Instant::now(),
                    backoff: restart_policy.clone(),
                    restarts: 0,
                })
                .collect(),
            restart_policy,
            shutting_down: false,
            handle_signals: true,
        }
    }

    /// Replaces the 1 s..5 min restart backoff (tests use milliseconds).
    pub fn with_restart_policy(mut self, policy: Backoff) -> Self {
        for child in &mut self.children {
            child.backoff = policy.clone();
        }
        self.restart_policy = policy;
        self
    }

    /// Leaves SIGTERM / SIGINT alone (for tests that run in-process).
    pub fn without_signal_handlers(mut self) -> Self {
        self.handle_signals = false;
        self
    }

    fn start_child(&mut self, index: usize) {
        if self.shutting_down {
            return;
        }
        let child = &mut self.children[index];
        child.running = Some((child.spec.start)());
        child.started_at = Instant::now();
    }

    fn watch_children(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        for index in 0..self.children.len() {
            let child = &mut self.children[index];
            let Some(handle) = &child.running else {
                continue; // a restart is already scheduled
            };
            if (handle.connected)() {
                continue;
            }
            child.running = None;
            child.restarts += 1;
            let ran_for = child.started_at.elapsed();
            let delay = restart_delay(&mut child.backoff, ran_for);
            let cause = take_last_panic()
                .map(|p| format!("panicked: {p}"))
                .unwrap_or_else(|| "stopped without being asked to".to_owned());
            error!(
                "{} failed after running {}: {cause}; restarting it in {} (restart #{})",
                child.spec.name,
                human_duration(ran_for),
                human_duration(delay),
                child.restarts,
            );
            ctx.run_later(delay, move |supervisor, _| {
                supervisor.start_child(index);
                if !supervisor.shutting_down {
                    info!("{} restarted", supervisor.children[index].spec.name);
                }
            });
        }
    }

    fn listen_for_signals(&self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let on_signal = move |name: &'static str| {
            let me = me.clone();
            async move {
                me.do_send(StopAll {
                    reason: format!("{name} received"),
                });
            }
        };
        #[cfg(unix)]
        {
            use actix_rt::signal::unix::{signal, SignalKind};
            for (kind, name) in [
                (SignalKind::terminate(), "SIGTERM"),
                (SignalKind::interrupt(), "SIGINT"),
            ] {
                match signal(kind) {
                    Ok(mut stream) => {
                        let on_signal = on_signal.clone();
                        ctx.spawn(
                            async move {
                                while stream.recv().await.is_some() {
                                    on_signal(name).await;
                                }
                            }
                            .into_actor(self),
                        );
                    }
                    Err(e) => warn!("cannot listen for {name}: {e}; stop the client with SIGKILL"),
                }
            }
        }
        #[cfg(not(unix))]
        ctx.spawn(
            async move {
                while actix_rt::signal::ctrl_c().await.is_ok() {
                    on_signal("Ctrl-C").await;
                }
            }
            .into_actor(self),
        );
    }
}

/// The supervisor started last, for stop requests from outside the actor
/// system (see [`request_stop`]).
static RUNNING: Mutex<Option<Addr<Supervisor>>> = Mutex::new(None);

/// Asks the running supervisor to stop everything gracefully, exactly as
/// SIGTERM does; callable from any thread. The Windows service control
/// handler, which the system calls on a thread of its own, stops the client
/// through it. False when no supervisor runs.
pub fn request_stop(reason: &str) -> bool {
    let running = RUNNING.lock().ok().and_then(|r| r.clone());
    match running {
        Some(supervisor) if supervisor.connected() => {
            supervisor.do_send(StopAll {
                reason: reason.to_owned(),
            });
            true
        }
        _ => false,
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Ok(mut running) = RUNNING.lock() {
            *running = Some(ctx.address());
        }
        if self.handle_signals {
            self.listen_for_signals(ctx);
        }
        for index in 0..self.children.len() {
            self.start_child(index);
        }
        let names: Vec<&str> = self.children.iter().map(|c| c.spec.name()).collect();
        // Signal handlers are in place from here on: a stop is graceful.
        info!("running: {}", names.join(", "));
        crate::service::notify::ready(ctx);
        ctx.run_interval(WATCH_INTERVAL, |supervisor, ctx| {
            supervisor.watch_children(ctx)
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        if let Ok(mut running) = RUNNING.lock() {
            if running.as_ref() == Some(&ctx.address()) {
                *running = None;
            }
        }
    }
}

impl Handler<StopAll> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: StopAll, _: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            warn!(
                "{} while stopping: exiting now without waiting for in-flight work",
                msg.reason
            );
            System::current().stop();
            return Box::pin(fut::ready(()));
        }
        self.shutting_down = true;
        crate::service::notify::stopping();
        info!(
            "stopping ({}): finishing in-flight work, at most {} s",
            msg.reason,
            SHUTDOWN_DEADLINE.as_secs()
        );
        // Reverse start order: importers stop before what they feed.
        let stops: Vec<(String, Recipient<Shutdown>)> = self
            .children
            .iter()
            .rev()
            .filter_map(|c| {
                c.running
                    .as_ref()
                    .map(|h| (c.spec.name.clone(), h.shutdown.clone()))
            })
            .collect();
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        Box::pin(
            async move {
                for (name, recipient) in stops {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match actix_rt::time::timeout(left, recipient.send(Shutdown)).await {
                        Ok(_) => {}
                        Err(_) => warn!("{name} did not stop in time; stopping anyway"),
                    }
                }
            }
            .into_actor(self)
            .map(|_, _, _| {
                info!("all actors stopped");
                System::current().stop();
            }),
        )
    }
}

/// The latest panic seen by the hook, taken by the supervisor to explain a
/// restart.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn take_last_panic() -> Option<String> {
    LAST_PANIC.lock().ok()?.take()
}

/// Logs every panic (with thread and location) instead of printing it to a
/// stderr nobody reads on a service, and remembers it for the supervisor.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let described = format!("{message}{location}");
        error!("panic in thread '{thread}'{location}: {message}");
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(described);
        }
    }));
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    struct Probe {
        shut_down: Arc<AtomicBool>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<Shutdown> for Probe {
        type Result = ();
        fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
            self.shut_down.store(true, Ordering::SeqCst);
            ctx.stop();
        }
    }

    /// The path the Windows service's Stop takes: a request from a thread
    /// outside the actor system shuts the children down, then the system.
    #[test]
    fn a_stop_request_from_another_thread_stops_gracefully() {
        assert!(!request_stop("nothing runs yet"));
        let shut_down = Arc::new(AtomicBool::new(false));
        let system = System::new();
        system.block_on({
            let shut_down = Arc::clone(&shut_down);
            async move {
                Supervisor::new(vec![ChildSpec::new("probe", move || Probe {
                    shut_down: Arc::clone(&shut_down),
                })])
                .without_signal_handlers()
                .start();
            }
        });
        let requester = std::thread::spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !request_stop("a test asked") {
                assert!(Instant::now() < deadline, "the supervisor never ran");
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        system.run().unwrap();
        requester.join().unwrap();
        assert!(shut_down.load(Ordering::SeqCst), "the child was shut down");
        assert!(
            !request_stop("stopped"),
            "a stopped supervisor is forgotten"
        );
    }
}
