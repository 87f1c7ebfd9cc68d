//! The cloud API of protocol v1, as typed calls: pairing, tokens,
//! assignment, heartbeat. Thin over the HTTP stack; what to do with an answer
//! is the callers' (actors') business.
//!
//! A `CloudApi` holds an awc client, which is bound to the arbiter (thread)
//! that created it: create one per actor, in its `started`.

use std::time::Duration;

use awc::http::{header, StatusCode};

use crate::http::{self, HttpClientFactory, HttpError};
use crate::protocol::{
    paths, AssignmentResponse, ClientState, DeviceAuthorizationRequest,
    DeviceAuthorizationResponse, FeedHeartbeat, Heartbeat, ImporterHeartbeat, RealtimeAnswer,
    RealtimeBatch, TokenErrorCode, TokenRequest, TokenResponse,
};
use crate::status::ClientStatus;

/// API calls are small; a slow proxy still answers well within this.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// The token endpoint's answer while the person has not typed the PIN yet.
#[derive(Debug)]
pub enum TokenPoll {
    Granted(Box<TokenResponse>),
    Pending,
    SlowDown,
    Expired,
    Denied,
}

#[derive(Debug)]
pub enum RefreshOutcome {
    Granted(Box<TokenResponse>),
    /// The link was removed in the cloud.
    InvalidGrant,
}

#[derive(Debug)]
pub enum AssignmentPoll {
    NotModified,
    Changed {
        assignment: Box<AssignmentResponse>,
        etag: Option<String>,
    },
}

pub struct CloudApi {
    client: awc::Client,
    base: String,
}

impl CloudApi {
    pub fn new(http: &HttpClientFactory, base: url::Url) -> Self {
        CloudApi {
            client: http.client(),
            base: base.as_str().trim_end_matches('/').to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn device_authorization(
        &self,
        request: &DeviceAuthorizationRequest,
    ) -> Result<DeviceAuthorizationResponse, HttpError> {
        let request_builder = self.client.post(self.url(paths::DEVICE_AUTHORIZATION));
        http::send_form(request_builder, API_TIMEOUT, request)
            .await?
            .json()
    }

    pub async fn poll_token(&self, device_code: &str) -> Result<TokenPoll, HttpError> {
        let request = self.client.post(self.url(paths::TOKEN));
        match http::send_form(
            request,
            API_TIMEOUT,
            &TokenRequest::device_code(device_code),
        )
        .await
        {
            Ok(answer) => answer.json().map(|t| TokenPoll::Granted(Box::new(t))),
            Err(e) => match token_error(&e) {
                Some(TokenErrorCode::AuthorizationPending) => Ok(TokenPoll::Pending),
                Some(TokenErrorCode::SlowDown) => Ok(TokenPoll::SlowDown),
                Some(TokenErrorCode::ExpiredToken) => Ok(TokenPoll::Expired),
                Some(TokenErrorCode::AccessDenied) => Ok(TokenPoll::Denied),
                _ => Err(e),
            },
        }
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<RefreshOutcome, HttpError> {
        let request = self.client.post(self.url(paths::TOKEN));
        match http::send_form(request, API_TIMEOUT, &TokenRequest::refresh(refresh_token)).await {
            Ok(answer) => answer.json().map(|t| RefreshOutcome::Granted(Box::new(t))),
            Err(e) if token_error(&e) == Some(TokenErrorCode::InvalidGrant) => {
                Ok(RefreshOutcome::InvalidGrant)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn assignment(
        &self,
        access_token: &str,
        etag: Option<&str>,
    ) -> Result<AssignmentPoll, HttpError> {
        let mut request = self
            .client
            .get(self.url(paths::ASSIGNMENT))
            .bearer_auth(access_token);
        if let Some(etag) = etag {
            request = request.insert_header((header::IF_NONE_MATCH, etag));
        }
        let answer = http::send(request, API_TIMEOUT, ()).await?;
        if answer.status == StatusCode::NOT_MODIFIED {
            return Ok(AssignmentPoll::NotModified);
        }
        Ok(AssignmentPoll::Changed {
            assignment: Box::new(answer.json()?),
            etag: answer.header(header::ETAG).map(str::to_owned),
        })
    }

    /// The integration's name, for the "linked to" line; `None` when the
    /// assignment cannot be read right now (the line then shows the id).
    pub async fn integration_name(&self, access_token: &str) -> Option<String> {
        match self.assignment(access_token, None).await {
            Ok(AssignmentPoll::Changed { assignment, .. }) => Some(assignment.integration.name),
            _ => None,
        }
    }

    /// `POST .../realtime/events` (§7).
    pub async fn realtime_events(
        &self,
        access_token: &str,
        batch: &RealtimeBatch,
    ) -> Result<RealtimeAnswer, HttpError> {
        let request = self
            .client
            .post(self.url(paths::REALTIME_EVENTS))
            .bearer_auth(access_token);
        http::send_json(request, API_TIMEOUT, batch).await?.json()
    }

    pub async fn heartbeat(
        &self,
        access_token: &str,
        heartbeat: &Heartbeat,
    ) -> Result<(), HttpError> {
        let request = self
            .client
            .post(self.url(paths::HEARTBEAT))
            .bearer_auth(access_token);
        http::send_json(request, API_TIMEOUT, heartbeat)
            .await
            .map(drop)
    }
}

/// The call was refused because the access token is no longer valid.
pub fn is_unauthorized(error: &HttpError) -> bool {
    error.status() == Some(StatusCode::UNAUTHORIZED)
}

/// The OAuth error code of a 400 answer of the token endpoint.
fn token_error(error: &HttpError) -> Option<TokenErrorCode> {
    if error.status() != Some(StatusCode::BAD_REQUEST) {
        return None;
    }
    serde_json::from_value(serde_json::Value::String(error.error_code()?.to_owned())).ok()
}

/// The heartbeat of protocol §4, from the client's live status.
pub fn heartbeat_of(status: &ClientStatus) -> Heartbeat {
    let failing = status
        .importers
        .values()
        .any(|importer| importer.last_error.is_some());
    Heartbeat {
        version: status.version.clone(),
        os: std::env::consts::OS.to_owned(),
        hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        started_at: status
            .started_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        state: if failing {
            ClientState::Limited
        } else {
            ClientState::Online
        },
        importers: status
            .importers
            .iter()
            .map(|(id, importer)| ImporterHeartbeat {
                id: id.clone(),
                state: importer.state.clone(),
                last_success_at: importer.last_success_at.map(|t| t.to_rfc3339()),
                last_error: importer.last_error.clone(),
                clock_skew_ms: importer.clock_skew_ms,
            })
            .collect(),
        spool: status.spool.clone(),
        feeds: status
            .feeds
            .iter()
            .map(|(feed, s)| FeedHeartbeat {
                feed: feed.clone(),
                state: s.state.clone(),
                peers: s.peers.clone(),
                events_last_minute: s.events_last_minute,
                last_event_at: s.last_event_at.map(|t| t.to_rfc3339()),
                parse_errors: s.parse_errors,
                warning: s.warning.clone(),
            })
            .collect(),
    }
}
