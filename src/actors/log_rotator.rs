//! LogRotatorActor: keeps the midnight schedule of the log and applies
//! `[log] keepDays`.
//!
//! The rotation itself happens in the log writer, between records, by their
//! dates (see `crate::logging`). At local midnight this actor logs one line
//! dated with the new day, so the writer rotates even when nothing else is
//! logging, and the new file starts with a line saying why it exists.
//!
//! It also watches the wall clock against the monotonic one, and warns once
//! per step of more than a minute: lines before and after a step carry
//! times that do not follow each other, and the admin reading them needs to
//! know why. After a step the midnight timer is set again from the new time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, SpawnHandle};
use chrono::{DateTime, FixedOffset};

use crate::actors::supervisor::Shutdown;
use crate::logging::clock_step::ClockStepDetector;
use crate::logging::{delete_expired_logs, Clock, RotationHandle, SystemClock};

/// The longest the actor sleeps before it looks at the clock again, so a
/// clock set forward (or a machine waking from sleep, which suspends the
/// monotonic timer) is noticed within this time rather than a day late.
const MAX_SLEEP: Duration = Duration::from_secs(15 * 60);

/// How often the wall clock is compared with the monotonic clock. Short, so
/// that a step corrected a few seconds later is still seen both ways; two
/// clock reads are all it costs.
const CLOCK_CHECK_EVERY: Duration = Duration::from_secs(2);

pub struct LogRotatorActor {
    rotation: RotationHandle,
    keep_days: Option<u32>,
    clock: Arc<dyn Clock>,
    next_midnight: Option<DateTime<FixedOffset>>,
    wake_up: Option<SpawnHandle>,
    clock_steps: ClockStepDetector,
}

impl LogRotatorActor {
    pub fn new(rotation: RotationHandle, keep_days: Option<u32>) -> Self {
        Self::with_clock(rotation, keep_days, Arc::new(SystemClock))
    }

    /// Use the same clock as the logger (`Logging::clock`), so the midnight
    /// line carries the day this actor thinks has begun.
    pub fn with_clock(
        rotation: RotationHandle,
        keep_days: Option<u32>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            rotation,
            keep_days,
            clock,
            next_midnight: None,
            wake_up: None,
            clock_steps: ClockStepDetector::default(),
        }
    }

    fn schedule_wake_up(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now();
        // Recomputed at every wake-up rather than kept, so a clock set back
        // by days does not leave the actor waiting for a far midnight.
        let midnight = self.clock.next_midnight(now);
        self.next_midnight = Some(midnight);
        let until_midnight = (midnight - now).to_std().unwrap_or(Duration::ZERO);
        // Timers may fire a little early; never less than a millisecond apart.
        let sleep = until_midnight.clamp(Duration::from_millis(1), MAX_SLEEP);
        self.wake_up = Some(ctx.run_later(sleep, |actor, ctx| actor.wake_up(ctx)));
    }

    fn wake_up(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now();
        if self.next_midnight.is_some_and(|midnight| now >= midnight) {
            tracing::info!("day ended: rotating the log; the new file starts with this line");
            self.delete_expired_logs(now);
        }
        self.schedule_wake_up(ctx);
    }

    fn check_clock(&mut self, ctx: &mut Context<Self>) {
        let Some(step) = self.clock_steps.observe(self.clock.now(), Instant::now()) else {
            return;
        };
        let cause = if step.forward() {
            "set forward, or the machine was suspended"
        } else {
            "set back"
        };
        tracing::warn!(
            "{step} ({cause}); log lines around here do not follow each other in time, \
             and each day's lines go to that day's log file"
        );
        if let Some(wake_up) = self.wake_up.take() {
            ctx.cancel_future(wake_up);
        }
        self.schedule_wake_up(ctx);
    }

    fn delete_expired_logs(&self, now: DateTime<FixedOffset>) {
        let Some(keep_days) = self.keep_days else {
            return;
        };
        let dir = self.rotation.log_dir();
        match delete_expired_logs(dir, now.date_naive(), keep_days) {
            Ok(outcome) => {
                for path in outcome.deleted {
                    tracing::info!(
                        "deleted old log {} (keepDays = {keep_days})",
                        path.display()
                    );
                }
                for (path, error) in outcome.not_deleted {
                    tracing::warn!(
                        keep_days,
                        "cannot delete old log {}: {error}",
                        path.display()
                    );
                }
            }
            Err(error) => {
                tracing::warn!(
                    "cannot list the log folder {} for keepDays: {error}",
                    dir.display()
                );
            }
        }
    }
}

impl Actor for LogRotatorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Logs may have expired while the daemon was not running.
        self.delete_expired_logs(self.clock.now());
        self.schedule_wake_up(ctx);
        self.check_clock(ctx);
        ctx.run_interval(CLOCK_CHECK_EVERY, |actor, ctx| actor.check_clock(ctx));
    }
}

impl Handler<Shutdown> for LogRotatorActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        // Nothing is in flight: the log writer itself is flushed when the
        // process drops `Logging`, after every actor has stopped.
        if let Some(wake_up) = self.wake_up.take() {
            ctx.cancel_future(wake_up);
        }
        ctx.stop();
    }
}
