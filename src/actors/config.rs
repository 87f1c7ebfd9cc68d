//! ConfigActor: owns what the client is configured to do. The local file is
//! read once at start (changes take effect after a restart, as in the
//! original); the cloud's assignment is polled about once a minute and a
//! change applies without a restart.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use tracing::{error, info, warn};

use crate::actors::pairing::{GetAccessToken, PairingActor, PairingEvent, Unauthorized};
use crate::actors::slot::Slot;
use crate::actors::supervisor::Shutdown;
use crate::assignment::{changes, summary, CachedAssignment};
use crate::backoff::FailureLog;
use crate::cloud::{is_unauthorized, AssignmentPoll, CloudApi};
use crate::config::Config;
use crate::http::HttpClientFactory;
use crate::protocol::Integration;
use crate::state::atomic::write_json_atomic;
use crate::state::load_json;
use crate::state::StateDir;
use crate::status::StatusBoard;

pub const ASSIGNMENT_EVERY: Duration = Duration::from_secs(60);

/// Told the current assignment whenever it is received, changes or ends
/// (`None`), so importers start, reconfigure or stop without a restart.
pub type AssignmentListener = Arc<dyn Fn(Option<&Integration>) + Send + Sync>;

pub struct ConfigSettings {
    pub config: Arc<Config>,
    pub http: HttpClientFactory,
    pub state: StateDir,
    pub pairing: Slot<PairingActor>,
    pub board: StatusBoard,
    pub listener: AssignmentListener,
}

pub struct ConfigActor {
    settings: ConfigSettings,
    api: Option<Rc<CloudApi>>,
    assignment: Option<CachedAssignment>,
    polling: bool,
    failures: FailureLog,
}

impl ConfigActor {
    pub fn new(settings: ConfigSettings) -> Self {
        ConfigActor {
            settings,
            api: None,
            assignment: None,
            polling: false,
            failures: FailureLog::default(),
        }
    }

    fn poll_assignment(&mut self, ctx: &mut Context<Self>) {
        if self.polling {
            return;
        }
        let (Some(pairing), Some(api)) = (self.settings.pairing.get(), self.api.clone()) else {
            return;
        };
        self.polling = true;
        let etag = self.assignment.as_ref().and_then(|a| a.etag.clone());
        let poll = async move {
            let token = pairing.send(GetAccessToken).await.ok().flatten()?;
            let result = api.assignment(&token.token, etag.as_deref()).await;
            Some((token, result))
        }
        .into_actor(self)
        .map(|outcome, act, _| {
            act.polling = false;
            let Some((token, result)) = outcome else {
                return; // not paired (yet)
            };
            match result {
                Ok(poll) => {
                    if let Some(n) = act.failures.recovered() {
                        info!("the assignment can be read again (after {n} failed attempts)");
                    }
                    if let AssignmentPoll::Changed { assignment, etag } = poll {
                        act.apply(assignment.integration, etag);
                    }
                }
                Err(e) if is_unauthorized(&e) => {
                    if let Some(pairing) = act.settings.pairing.get() {
                        pairing.do_send(Unauthorized { token: token.token });
                    }
                }
                Err(e) => {
                    let described = e.to_string();
                    if act.failures.failed(&described) {
                        warn!(
                            "cannot read the assignment: {}; keeping the last one and retrying every minute",
                            crate::report::chain(&e)
                        );
                    }
                }
            }
        });
        ctx.spawn(poll);
    }

    fn apply(&mut self, integration: Integration, etag: Option<String>) {
        match &self.assignment {
            None => info!("assignment received: {}", summary(&integration)),
            Some(old) if old.integration.id != integration.id => {
                info!("assignment received: {}", summary(&integration))
            }
            Some(old) => {
                let changed = changes(&old.integration, &integration);
                if !changed.is_empty() {
                    info!(
                        "assignment changed: {}; now {}",
                        changed.join("; "),
                        summary(&integration)
                    );
                }
            }
        }
        let cached = CachedAssignment {
            integration,
            etag,
            fetched_at: Utc::now(),
        };
        if let Err(e) = write_json_atomic(&self.settings.state.assignment(), &cached) {
            error!(
                "cannot save the assignment to {}: {e}; it is fetched again after a restart",
                self.settings.state.assignment().display()
            );
        }
        let described = summary(&cached.integration);
        self.settings
            .board
            .update(|s| s.assignment = Some(described));
        (self.settings.listener)(Some(&cached.integration));
        self.assignment = Some(cached);
    }

    fn forget_assignment(&mut self) {
        self.assignment = None;
        let _ = std::fs::remove_file(self.settings.state.assignment());
        self.settings.board.update(|s| s.assignment = None);
        (self.settings.listener)(None);
    }
}

impl Actor for ConfigActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.api = Some(Rc::new(CloudApi::new(
            &self.settings.http,
            self.settings.config.cloud.url.clone(),
        )));
        match load_json::<CachedAssignment>(&self.settings.state.assignment()) {
            Ok(cached) => {
                if let Some(cached) = &cached {
                    let described = summary(&cached.integration);
                    self.settings
                        .board
                        .update(|s| s.assignment = Some(described));
                    // Importers start from the cached assignment, so a
                    // restart without network keeps importing.
                    (self.settings.listener)(Some(&cached.integration));
                }
                self.assignment = cached;
            }
            Err(e) => warn!("{}; it is fetched again", crate::report::chain(&e)),
        }
        // The first poll waits for PairingActor to have loaded credentials.
        ctx.run_later(Duration::from_millis(500), |act, ctx| {
            act.poll_assignment(ctx)
        });
        ctx.run_interval(ASSIGNMENT_EVERY, |act, ctx| act.poll_assignment(ctx));
    }
}

/// The current assignment, if one was received.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<Integration>")]
pub struct GetAssignment;

impl Handler<GetAssignment> for ConfigActor {
    type Result = MessageResult<GetAssignment>;

    fn handle(&mut self, _: GetAssignment, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.assignment.as_ref().map(|a| a.integration.clone()))
    }
}

/// The current assignment, as ConfigActor's listener hands it to the
/// importers and feeds.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AssignmentNews(pub Option<Integration>);

/// PairingActor's news, forwarded by the daemon's wiring.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PairingNews(pub PairingEvent);

impl Handler<PairingNews> for ConfigActor {
    type Result = ();

    fn handle(&mut self, PairingNews(event): PairingNews, ctx: &mut Context<Self>) {
        match event {
            PairingEvent::Linked { integration_id, .. } => {
                if self
                    .assignment
                    .as_ref()
                    .is_some_and(|a| a.integration.id != integration_id)
                {
                    self.forget_assignment();
                }
                self.poll_assignment(ctx);
            }
            PairingEvent::Unlinked => self.forget_assignment(),
            PairingEvent::PinOffered(_) => {}
        }
    }
}

impl Handler<Shutdown> for ConfigActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
