//! PairingActor: the link to the cloud. It pairs by PIN (RFC 8628 device
//! grant), keeps the tokens fresh, hands them to the other actors, ends the
//! link when the cloud removed it, and sends the heartbeat.
//!
//! While the client is unpaired there is always a valid PIN in the log: a
//! PIN that expires is replaced at once by a new one (the most common
//! complaint about device-code flows is a client that looks hung).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use futures_util::FutureExt;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::actors::supervisor::Shutdown;
use crate::backoff::{Backoff, FailureLog};
use crate::cloud::{CloudApi, RefreshOutcome, TokenPoll};
use crate::control::PinAnswer;
use crate::http::{HttpClientFactory, HttpError};
use crate::pairing::{banner, describe_integration, PinOffer};
use crate::protocol::{self, DeviceAuthorizationRequest, SLOW_DOWN_STEP_SECS};
use crate::state::{Credentials, InstallationId, StateDir};
use crate::status::{LinkStatus, StatusBoard};

/// A PIN handed out by `pin` must stay valid at least this long.
const PIN_MIN_VALIDITY_SECS: i64 = 60;
/// How long `pin` waits for a new PIN from the cloud.
const PIN_WAIT: Duration = Duration::from_secs(30);
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(60);
/// How often credentials that could not be saved are tried again.
const SAVE_RETRY_EVERY: Duration = Duration::from_secs(5);

/// What the PairingActor tells the rest of the client.
#[derive(Debug, Clone)]
pub enum PairingEvent {
    PinOffered(PinAnswer),
    Linked {
        integration_id: String,
        integration_name: Option<String>,
        /// Set when a re-link PIN moved the client from another integration.
        moved_from: Option<String>,
    },
    /// The cloud ended the link; pairing starts again.
    Unlinked,
}

pub type PairingListener = Arc<dyn Fn(&PairingEvent) + Send + Sync>;

pub struct PairingSettings {
    pub http: HttpClientFactory,
    pub cloud_url: url::Url,
    pub state: StateDir,
    pub instance: String,
    pub board: StatusBoard,
    pub listener: PairingListener,
    /// The `pin` command pairing in the foreground sends no heartbeat.
    pub heartbeat: bool,
}

/// An access token for one API call, and whose it is.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub integration_id: String,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"***")
            .field("integration_id", &self.integration_id)
            .finish()
    }
}

/// The current access token, `None` while unpaired.
#[derive(Debug, Message)]
#[rtype(result = "Option<AccessToken>")]
pub struct GetAccessToken;

/// A call made with `token` was answered 401: refresh once; if the refresh
/// is refused, pair again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unauthorized {
    pub token: String,
}

/// A PIN valid for at least a minute (a re-link PIN when linked).
#[derive(Debug, Message)]
#[rtype(result = "Result<PinAnswer, String>")]
pub struct RequestPin;

struct Authorization {
    device_code: String,
    offer: PinOffer,
    interval: Duration,
}

pub struct PairingActor {
    settings: PairingSettings,
    api: Option<Rc<CloudApi>>,
    installation_id: String,
    credentials: Option<Credentials>,
    authorization: Option<Authorization>,
    /// The pending step of the device flow (a request or a timer).
    flow: Option<SpawnHandle>,
    refresh_timer: Option<SpawnHandle>,
    refreshing: bool,
    /// The credentials in memory could not be saved (a full disk): saving
    /// is retried, because a refresh token the cloud rotated exists nowhere
    /// else, and without it a restart needs a new PIN.
    unsaved: bool,
    save_retry: Option<SpawnHandle>,
    backoff: Backoff,
    failures: FailureLog,
    pin_waiters: Vec<oneshot::Sender<Result<PinAnswer, String>>>,
}

impl PairingActor {
    pub fn new(settings: PairingSettings) -> Self {
        PairingActor {
            settings,
            api: None,
            installation_id: String::new(),
            credentials: None,
            authorization: None,
            flow: None,
            refresh_timer: None,
            refreshing: false,
            unsaved: false,
            save_retry: None,
            backoff: Backoff::requests(),
            failures: FailureLog::default(),
            pin_waiters: Vec::new(),
        }
    }

    fn api(&self) -> Rc<CloudApi> {
        Rc::clone(self.api.as_ref().expect("created in started()"))
    }

    fn cloud_url(&self) -> String {
        self.settings.cloud_url.as_str().to_owned()
    }

    fn linked_description(&self) -> Option<String> {
        self.credentials
            .as_ref()
            .map(|c| describe_integration(&c.integration_id, c.integration_name.as_deref()))
    }

    // ---- device flow ------------------------------------------------------

    fn begin_authorization(&mut self, ctx: &mut Context<Self>) {
        if let Some(flow) = self.flow.take() {
            ctx.cancel_future(flow);
        }
        let relink = self.credentials.is_some();
        let request = DeviceAuthorizationRequest {
            client_id: protocol::CLIENT_ID.to_owned(),
            instance: self.settings.instance.clone(),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            os: std::env::consts::OS.to_owned(),
            version: crate::protocol::VERSION.to_owned(),
            installation_id: self.installation_id.clone(),
        };
        let api = self.api();
        let step = async move { api.device_authorization(&request).await }
            .into_actor(self)
            .map(move |result, act, ctx| match result {
                Ok(answer) => {
                    act.cloud_answered();
                    let offer = PinOffer {
                        pin: answer.user_code,
                        verification_uri: answer.verification_uri,
                        expires_at: Utc::now()
                            + chrono::Duration::seconds(answer.expires_in.min(86_400) as i64),
                        relink,
                    };
                    act.authorization = Some(Authorization {
                        device_code: answer.device_code,
                        offer,
                        interval: Duration::from_secs(answer.interval.clamp(1, 60)),
                    });
                    act.show_pin();
                    act.schedule_poll(ctx);
                }
                Err(e) => {
                    act.cloud_failed("pairing", &e);
                    let delay = act.retry_delay(&e);
                    act.flow = Some(ctx.run_later(delay, |act, ctx| act.begin_authorization(ctx)));
                }
            });
        self.flow = Some(ctx.spawn(step));
    }

    fn show_pin(&mut self) {
        let Some(auth) = &self.authorization else {
            return;
        };
        let linked_to = self.linked_description();
        for line in banner(&auth.offer, linked_to.as_deref(), Utc::now()) {
            info!("{line}");
        }
        let answer = PinAnswer {
            offer: auth.offer.clone(),
            linked_to,
        };
        let offer = auth.offer.clone();
        self.settings.board.update(|s| match &mut s.link {
            LinkStatus::Linked { relink_pin, .. } => *relink_pin = Some(offer),
            other => *other = LinkStatus::Pairing { pin: offer },
        });
        for waiter in self.pin_waiters.drain(..) {
            let _ = waiter.send(Ok(answer.clone()));
        }
        (self.settings.listener)(&PairingEvent::PinOffered(answer));
    }

    fn schedule_poll(&mut self, ctx: &mut Context<Self>) {
        let interval = self
            .authorization
            .as_ref()
            .map_or(Duration::from_secs(5), |a| a.interval);
        self.flow = Some(ctx.run_later(interval, |act, ctx| act.poll_token(ctx)));
    }

    fn poll_token(&mut self, ctx: &mut Context<Self>) {
        let Some(auth) = &self.authorization else {
            return;
        };
        // A PIN entered just before it expired still yields a token, so the
        // cloud's `expired_token` decides; the local clock only guards
        // against a cloud that never says so.
        let grace = chrono::Duration::from_std(auth.interval * 2).unwrap_or_default();
        if Utc::now() > auth.offer.expires_at + grace {
            self.pin_expired(ctx);
            return;
        }
        let api = self.api();
        let device_code = auth.device_code.clone();
        let step = async move { api.poll_token(&device_code).await }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok(TokenPoll::Pending) => {
                    act.cloud_answered();
                    act.schedule_poll(ctx);
                }
                Ok(TokenPoll::SlowDown) => {
                    act.cloud_answered();
                    if let Some(auth) = &mut act.authorization {
                        auth.interval += Duration::from_secs(SLOW_DOWN_STEP_SECS);
                    }
                    act.schedule_poll(ctx);
                }
                Ok(TokenPoll::Expired) | Ok(TokenPoll::Denied) => {
                    act.cloud_answered();
                    act.pin_expired(ctx);
                }
                Ok(TokenPoll::Granted(token)) => {
                    act.cloud_answered();
                    act.authorization = None;
                    act.flow = None;
                    let credentials = Credentials::linked(*token, &act.cloud_url(), Utc::now());
                    act.linked(credentials, ctx);
                }
                Err(e) => {
                    act.cloud_failed("pairing", &e);
                    let delay = act.retry_delay(&e).max(
                        act.authorization
                            .as_ref()
                            .map_or(Duration::ZERO, |a| a.interval),
                    );
                    act.flow = Some(ctx.run_later(delay, |act, ctx| act.poll_token(ctx)));
                }
            });
        self.flow = Some(ctx.spawn(step));
    }

    fn pin_expired(&mut self, ctx: &mut Context<Self>) {
        let relink = self.credentials.is_some();
        self.authorization = None;
        if relink {
            // Only an unpaired client must always offer a PIN; a re-link PIN
            // that nobody used simply lapses.
            info!("the re-link PIN expired unused; the client stays on its current link");
            self.settings.board.update(|s| {
                if let LinkStatus::Linked { relink_pin, .. } = &mut s.link {
                    *relink_pin = None;
                }
            });
        } else {
            info!("the PIN expired; here is a new one");
            self.begin_authorization(ctx);
        }
    }

    /// Pairing (or re-linking) succeeded.
    fn linked(&mut self, mut credentials: Credentials, ctx: &mut Context<Self>) {
        let moved_from = self.linked_description();
        let api = self.api();
        let token = credentials.access_token.clone();
        // The token answer names the integration by id only; the assignment
        // has its name, which is what the admin recognises.
        let step = async move { api.integration_name(&token).await }
            .into_actor(self)
            .map(move |name, act, ctx| {
                credentials.integration_name = name;
                let described = describe_integration(
                    &credentials.integration_id,
                    credentials.integration_name.as_deref(),
                );
                match &moved_from {
                    Some(old) => info!("moved from {old} to {described}"),
                    None => info!("linked to {described}"),
                }
                act.save_credentials(&credentials, ctx);
                act.settings.board.update(|s| {
                    s.link = LinkStatus::Linked {
                        integration_id: credentials.integration_id.clone(),
                        integration_name: credentials.integration_name.clone(),
                        linked_at: credentials.linked_at,
                        relink_pin: None,
                    }
                });
                let event = PairingEvent::Linked {
                    integration_id: credentials.integration_id.clone(),
                    integration_name: credentials.integration_name.clone(),
                    moved_from,
                };
                act.credentials = Some(credentials);
                act.schedule_refresh(ctx);
                if act.settings.heartbeat {
                    // The cloud's page shows the client as seen at once.
                    act.send_heartbeat(ctx);
                }
                (act.settings.listener)(&event);
            });
        ctx.spawn(step);
    }

    /// Saves `credentials`; when that fails, logs it once and tries again
    /// every [`SAVE_RETRY_EVERY`] with the credentials current by then.
    fn save_credentials(&mut self, credentials: &Credentials, ctx: &mut Context<Self>) {
        match credentials.store(&self.settings.state.credentials()) {
            Ok(()) => {
                if std::mem::take(&mut self.unsaved) {
                    info!("saved the credentials: the state folder can be written again");
                }
            }
            Err(e) => {
                if !self.unsaved {
                    error!(
                        "cannot save the credentials: {}; retrying every {} s (a restart before \
                         they are saved needs a new PIN)",
                        crate::report::chain(&e),
                        SAVE_RETRY_EVERY.as_secs()
                    );
                }
                self.unsaved = true;
                if self.save_retry.is_none() {
                    self.save_retry = Some(ctx.run_later(SAVE_RETRY_EVERY, |act, ctx| {
                        act.save_retry = None;
                        match act.credentials.clone() {
                            Some(current) if act.unsaved => act.save_credentials(&current, ctx),
                            _ => act.unsaved = false,
                        }
                    }));
                }
            }
        }
    }

    /// The cloud removed the link: forget it and pair again.
    fn unlink(&mut self, reason: &str, ctx: &mut Context<Self>) {
        let old = self.linked_description().unwrap_or_default();
        warn!("the link to {old} ended ({reason}); pairing again, a new PIN follows");
        if let Err(e) = Credentials::delete(&self.settings.state.credentials()) {
            error!(
                "cannot delete the old credentials: {}",
                crate::report::chain(&e)
            );
        }
        self.credentials = None;
        self.authorization = None;
        if let Some(timer) = self.refresh_timer.take() {
            ctx.cancel_future(timer);
        }
        self.settings
            .board
            .update(|s| s.link = LinkStatus::Unpaired);
        (self.settings.listener)(&PairingEvent::Unlinked);
        self.begin_authorization(ctx);
    }

    // ---- tokens -----------------------------------------------------------

    fn schedule_refresh(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.refresh_timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(credentials) = &self.credentials else {
            return;
        };
        let now = Utc::now();
        let delay = (credentials.refresh_at(now) - now)
            .to_std()
            .unwrap_or(Duration::ZERO);
        self.refresh_timer = Some(ctx.run_later(delay, |act, ctx| act.refresh(ctx)));
    }

    fn refresh(&mut self, ctx: &mut Context<Self>) {
        let Some(credentials) = &self.credentials else {
            return;
        };
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        let api = self.api();
        let refresh_token = credentials.refresh_token.clone();
        let step = async move { api.refresh(&refresh_token).await }
            .into_actor(self)
            .map(|result, act, ctx| {
                act.refreshing = false;
                match result {
                    Ok(RefreshOutcome::Granted(token)) => {
                        act.cloud_answered();
                        let Some(old) = &act.credentials else { return };
                        let fresh = old.refreshed(*token, Utc::now());
                        act.save_credentials(&fresh, ctx);
                        act.credentials = Some(fresh);
                        act.schedule_refresh(ctx);
                    }
                    Ok(RefreshOutcome::InvalidGrant) => {
                        act.cloud_answered();
                        act.unlink("the cloud refused to refresh the token: the integration was deleted or another installation was connected to it", ctx);
                    }
                    Err(e) => {
                        act.cloud_failed("token refresh", &e);
                        let delay = act.retry_delay(&e);
                        act.refresh_timer = Some(ctx.run_later(delay, |act, ctx| act.refresh(ctx)));
                    }
                }
            });
        ctx.spawn(step);
    }

    // ---- heartbeat --------------------------------------------------------

    fn send_heartbeat(&mut self, ctx: &mut Context<Self>) {
        let Some(credentials) = &self.credentials else {
            return;
        };
        let token = credentials.access_token.clone();
        let heartbeat = crate::cloud::heartbeat_of(&self.settings.board.snapshot());
        let api = self.api();
        let sent_with = token.clone();
        let step = async move { api.heartbeat(&token, &heartbeat).await }
            .into_actor(self)
            .map(move |result, act, ctx| match result {
                Ok(()) => act.cloud_answered(),
                Err(e) if crate::cloud::is_unauthorized(&e) => act.on_unauthorized(&sent_with, ctx),
                Err(e) => act.cloud_failed("heartbeat", &e),
            });
        ctx.spawn(step);
    }

    fn on_unauthorized(&mut self, token: &str, ctx: &mut Context<Self>) {
        let current = self.credentials.as_ref().map(|c| c.access_token.as_str());
        if current == Some(token) {
            self.refresh(ctx);
        }
    }

    // ---- connectivity bookkeeping ----------------------------------------

    fn cloud_answered(&mut self) {
        self.backoff.reset();
        if let Some(failures) = self.failures.recovered() {
            info!(
                "the cloud {} answers again (after {failures} failed attempt{})",
                self.settings.cloud_url.as_str().trim_end_matches('/'),
                if failures == 1 { "" } else { "s" }
            );
        }
        self.settings.board.update(|s| {
            s.cloud.reachable = Some(true);
            s.cloud.last_contact_at = Some(Utc::now());
            s.cloud.last_error = None;
        });
    }

    /// The jittered backoff delay after `e`, within the error's own cap.
    fn retry_delay(&mut self, e: &HttpError) -> Duration {
        let delay = self.backoff.fail_with_jitter(rand::random());
        e.retry_cap().map_or(delay, |cap| delay.min(cap))
    }

    fn cloud_failed(&mut self, what: &str, e: &HttpError) {
        let described = e.to_string();
        if self.failures.failed(&described) {
            let longest = e.retry_cap().unwrap_or(self.backoff.cap());
            warn!(
                "{what}: {}; retrying with growing delays (up to {}) until it works",
                crate::report::chain(e),
                crate::report::human_duration(longest)
            );
        }
        self.settings.board.update(|s| {
            s.cloud.reachable = Some(false);
            s.cloud.last_error = Some(described);
        });
    }
}

impl Actor for PairingActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.api = Some(Rc::new(CloudApi::new(
            &self.settings.http,
            self.settings.cloud_url.clone(),
        )));
        let state = &self.settings.state;
        match InstallationId::load_or_create(&state.installation(), state.install_dir()) {
            Ok(id) => self.installation_id = id.installation_id,
            Err(e) => {
                // Pairing still works; the cloud just cannot recognise a
                // reinstall of this machine.
                error!(
                    "{}; using a temporary installation id",
                    crate::report::chain(&e)
                );
                self.installation_id = uuid::Uuid::new_v4().to_string();
            }
        }
        let credentials = match Credentials::load(&state.credentials()) {
            Ok(c) => c,
            Err(e) => {
                error!("{}; pairing again", crate::report::chain(&e));
                None
            }
        };
        let configured = self.cloud_url();
        self.credentials = match credentials {
            // Trailing slashes do not make another cloud: the URL is a base,
            // and links saved before the configuration dropped them stay.
            Some(c) if c.cloud_url.trim_end_matches('/') != configured.trim_end_matches('/') => {
                warn!(
                    "the saved link was made with the cloud {}, but [cloud] url is now {}; pairing again",
                    c.cloud_url, configured
                );
                None
            }
            other => other,
        };
        match &self.credentials {
            Some(c) => {
                info!(
                    "linked to {}",
                    describe_integration(&c.integration_id, c.integration_name.as_deref())
                );
                let linked = LinkStatus::Linked {
                    integration_id: c.integration_id.clone(),
                    integration_name: c.integration_name.clone(),
                    linked_at: c.linked_at,
                    relink_pin: None,
                };
                self.settings.board.update(|s| s.link = linked);
                self.schedule_refresh(ctx);
            }
            None => self.begin_authorization(ctx),
        }
        if self.settings.heartbeat {
            ctx.run_later(Duration::from_secs(2), |act, ctx| act.send_heartbeat(ctx));
            ctx.run_interval(HEARTBEAT_EVERY, |act, ctx| act.send_heartbeat(ctx));
        }
    }
}

impl Handler<GetAccessToken> for PairingActor {
    type Result = Option<AccessToken>;

    fn handle(&mut self, _: GetAccessToken, _: &mut Context<Self>) -> Option<AccessToken> {
        self.credentials.as_ref().map(|c| AccessToken {
            token: c.access_token.clone(),
            integration_id: c.integration_id.clone(),
        })
    }
}

impl Handler<Unauthorized> for PairingActor {
    type Result = ();

    fn handle(&mut self, msg: Unauthorized, ctx: &mut Context<Self>) {
        self.on_unauthorized(&msg.token, ctx);
    }
}

impl Handler<RequestPin> for PairingActor {
    type Result = ResponseFuture<Result<PinAnswer, String>>;

    fn handle(&mut self, _: RequestPin, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(auth) = &self.authorization {
            if auth.offer.seconds_left(Utc::now()) >= PIN_MIN_VALIDITY_SECS {
                let answer = PinAnswer {
                    offer: auth.offer.clone(),
                    linked_to: self.linked_description(),
                };
                return Box::pin(async move { Ok(answer) });
            }
        }
        let (sender, receiver) = oneshot::channel();
        self.pin_waiters.push(sender);
        self.begin_authorization(ctx);
        Box::pin(
            actix_rt::time::timeout(PIN_WAIT, receiver).map(|result| match result {
                Ok(Ok(answer)) => answer,
                _ => {
                    Err("the cloud did not hand out a PIN in time; see the log for why".to_owned())
                }
            }),
        )
    }
}

impl Handler<Shutdown> for PairingActor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) {
        // Nothing in flight needs saving: credentials are stored the moment
        // they arrive.
        ctx.stop();
    }
}
