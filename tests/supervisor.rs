//! The supervisor restarts a child that panics or stops on its own, with
//! backoff, while the other children and the system keep running; StopAll
//! stops the children in reverse order, then the system.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use injixo_cloud_link::actors::supervisor::{ChildSpec, Shutdown, StopAll, Supervisor};
use injixo_cloud_link::backoff::Backoff;

/// Fails (by panic or by stopping) on each of its first `failures` runs.
struct Flaky {
    run: usize,
    failures: usize,
    panics: bool,
    started_at: Arc<Mutex<Vec<Instant>>>,
}

impl Actor for Flaky {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.started_at.lock().unwrap().push(Instant::now());
        if self.run <= self.failures {
            let panics = self.panics;
            ctx.run_later(Duration::from_millis(5), move |_, ctx| {
                if panics {
                    panic!("flaky actor fails on purpose");
                } else {
                    ctx.stop();
                }
            });
        }
    }
}

impl Handler<Shutdown> for Flaky {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Answers pings and records the order in which it was shut down.
struct Steady {
    name: &'static str,
    shutdowns: Arc<Mutex<Vec<&'static str>>>,
}

impl Actor for Steady {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "usize")]
struct Ping;

impl Handler<Ping> for Steady {
    type Result = usize;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> usize {
        42
    }
}

impl Handler<Shutdown> for Steady {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        self.shutdowns.lock().unwrap().push(self.name);
        ctx.stop();
    }
}

fn flaky_spec(failures: usize, panics: bool, starts: Arc<Mutex<Vec<Instant>>>) -> ChildSpec {
    let mut run = 0;
    ChildSpec::new("flaky", move || {
        run += 1;
        Flaky {
            run,
            failures,
            panics,
            started_at: Arc::clone(&starts),
        }
    })
}

async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

fn test_policy() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(1))
}

#[test]
fn a_panicking_actor_is_restarted_with_backoff_and_the_rest_keeps_running() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let shutdowns = Arc::new(Mutex::new(Vec::new()));
    let steady_addr: Arc<Mutex<Option<Addr<Steady>>>> = Arc::default();
    let system = System::new();
    system.block_on({
        let starts = Arc::clone(&starts);
        let shutdowns = Arc::clone(&shutdowns);
        let steady_addr = Arc::clone(&steady_addr);
        async move {
            let steady_spec = ChildSpec::new("steady", move || Steady {
                name: "steady",
                shutdowns: Arc::clone(&shutdowns),
            });
            let supervisor =
                Supervisor::new(vec![steady_spec, flaky_spec(3, true, Arc::clone(&starts))])
                    .with_restart_policy(test_policy())
                    .without_signal_handlers()
                    .start();

            wait_until("three restarts", Duration::from_secs(10), || {
                starts.lock().unwrap().len() >= 4
            })
            .await;
            // The fourth run does not fail: no further restart.
            actix_rt::time::sleep(Duration::from_millis(600)).await;
            assert_eq!(starts.lock().unwrap().len(), 4);

            // Backoff doubled between restarts: 100, 200, 400 ms at least.
            let at = starts.lock().unwrap().clone();
            for (i, minimum) in [100u64, 200, 400].into_iter().enumerate() {
                let gap = at[i + 1] - at[i];
                assert!(
                    gap >= Duration::from_millis(minimum),
                    "restart {} came after {gap:?}, expected at least {minimum} ms",
                    i + 1
                );
            }
            assert!(supervisor.connected(), "the supervisor itself survived");
            let _ = steady_addr;
        }
    });
}

#[test]
fn an_actor_that_stops_on_its_own_is_restarted() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let system = System::new();
    system.block_on({
        let starts = Arc::clone(&starts);
        async move {
            let _supervisor = Supervisor::new(vec![flaky_spec(1, false, Arc::clone(&starts))])
                .with_restart_policy(test_policy())
                .without_signal_handlers()
                .start();
            wait_until("a restart", Duration::from_secs(10), || {
                starts.lock().unwrap().len() >= 2
            })
            .await;
        }
    });
}

#[test]
fn other_children_keep_answering_while_one_is_restarted() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let shutdowns = Arc::new(Mutex::new(Vec::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let system = System::new();
    system.block_on({
        let starts = Arc::clone(&starts);
        let shutdowns = Arc::clone(&shutdowns);
        let answered = Arc::clone(&answered);
        async move {
            let steady = Steady {
                name: "steady",
                shutdowns,
            }
            .start();
            let _supervisor = Supervisor::new(vec![flaky_spec(2, true, Arc::clone(&starts))])
                .with_restart_policy(test_policy())
                .without_signal_handlers()
                .start();
            while starts.lock().unwrap().len() < 3 {
                assert_eq!(steady.send(Ping).await.unwrap(), 42);
                answered.fetch_add(1, Ordering::SeqCst);
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    assert!(answered.load(Ordering::SeqCst) > 0);
}

#[test]
fn stop_all_shuts_children_down_in_reverse_order_then_the_system() {
    let shutdowns = Arc::new(Mutex::new(Vec::new()));
    let system = System::new();
    system.block_on({
        let shutdowns = Arc::clone(&shutdowns);
        async move {
            let spec = |name: &'static str| {
                let shutdowns = Arc::clone(&shutdowns);
                ChildSpec::new(name, move || Steady {
                    name,
                    shutdowns: Arc::clone(&shutdowns),
                })
            };
            let supervisor = Supervisor::new(vec![spec("first"), spec("second"), spec("third")])
                .without_signal_handlers()
                .start();
            supervisor
                .send(StopAll {
                    reason: "test".into(),
                })
                .await
                .unwrap();
        }
    });
    // run() returns only once the supervisor stopped the system.
    system.run().unwrap();
    assert_eq!(*shutdowns.lock().unwrap(), vec!["third", "second", "first"]);
}
