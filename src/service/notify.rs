//! systemd's notification protocol (`Type=notify`): `READY=1` once the
//! actors run, `WATCHDOG=1` at half the interval systemd asks for, and
//! `STOPPING=1` when a graceful stop begins. Without `$NOTIFY_SOCKET` (not
//! started by systemd) every function does nothing. On Windows the same
//! moments go to the Service Control Manager (`super::windows`).
//!
//! The watchdog runs on the supervisor's arbiter: if that event loop hangs,
//! the pings stop and systemd restarts the service, which is the point.

use actix::{Actor, AsyncContext, Context};
use tracing::debug;

/// Tells systemd the service is up, and starts feeding its watchdog from
/// `ctx` (the supervisor's context) when one is configured.
pub fn ready<A>(ctx: &mut Context<A>)
where
    A: Actor<Context = Context<A>>,
{
    if !enabled() {
        return;
    }
    send(Message::Ready);
    let interval = super::unit::watchdog_ping_interval(watchdog());
    if let Some(every) = interval {
        debug!("systemd watchdog: a ping every {} ms", every.as_millis());
        ctx.run_interval(every, |_, _| send(Message::Watchdog));
    }
}

/// Tells systemd a graceful stop has begun, so it neither expects pings nor
/// counts the remaining shutdown as a hang.
pub fn stopping() {
    if enabled() {
        send(Message::Stopping);
    }
}

#[derive(Debug, Clone, Copy)]
enum Message {
    Ready,
    Watchdog,
    Stopping,
}

#[cfg(not(windows))]
fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// On Windows the same moments are reported to the Service Control Manager.
#[cfg(windows)]
fn enabled() -> bool {
    super::windows::running_as_service()
}

#[cfg(unix)]
fn watchdog() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled()
}

#[cfg(not(unix))]
fn watchdog() -> Option<std::time::Duration> {
    None
}

#[cfg(unix)]
fn send(message: Message) {
    use sd_notify::NotifyState;
    let state = match message {
        Message::Ready => NotifyState::Ready,
        Message::Watchdog => NotifyState::Watchdog,
        Message::Stopping => NotifyState::Stopping,
    };
    // A failed notification must not stop the client: systemd will act on
    // the missing message (start timeout, watchdog) and the log says why.
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!("cannot notify systemd ({message:?}): {e}");
    }
}

#[cfg(windows)]
fn send(message: Message) {
    match message {
        Message::Ready => {
            super::windows::report_running();
            super::windows::apply_recommended_configuration();
        }
        Message::Stopping => super::windows::report_stopping(),
        Message::Watchdog => {}
    }
}

#[cfg(not(any(unix, windows)))]
fn send(_: Message) {}
