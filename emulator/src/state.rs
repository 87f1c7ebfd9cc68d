//! The emulated cloud's state and every rule of the protocol that does not
//! need HTTP: pairing, tokens, assignment, uploads, imports.
//!
//! Pure data plus logic: the caller passes the current time, so the unit
//! tests below can step through expiries without sleeping.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use injixo_cloud_link_protocol::emulator::{
    ClientRecord, ConnectResponse, ImportRecord, RealtimeRecord,
};
use injixo_cloud_link_protocol::{
    CreateUploadRequest, DatabaseSettings, Heartbeat, Integration, IntegrationKind, RealtimeBatch,
    RealtimeEvent, TokenErrorCode, MAX_BATCH_EVENTS, SLOW_DOWN_STEP_SECS,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Wrong PIN entries one source address may make per minute.
pub const WRONG_PINS_PER_SOURCE_PER_MINUTE: usize = 5;
/// Wrong PIN entries against one integration per hour, from all sources.
pub const WRONG_PINS_PER_INTEGRATION_PER_HOUR: usize = 20;
/// A live PIN is locked after this many wrong entries were made while it lived:
/// a guesser gets at most this many chances at any one PIN.
pub const WRONG_ENTRIES_PER_PIN: u32 = 5;
/// Expired authorizations are kept this long so that a late poll still gets
/// `expired_token` (start again) rather than `invalid_grant`.
const EXPIRED_AUTHORIZATION_GRACE_SECS: i64 = 3600;

/// Lifetimes and limits, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub pin_ttl: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub poll_interval_secs: u64,
    pub upload_url_ttl: Duration,
    pub max_upload_size: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pin_ttl: Duration::seconds(300),
            access_token_ttl: Duration::seconds(3600),
            refresh_token_ttl: Duration::days(30),
            poll_interval_secs: 5,
            upload_url_ttl: Duration::seconds(900),
            // S3's limit for a single PUT.
            max_upload_size: 5 * 1024 * 1024 * 1024,
        }
    }
}

/// The device's self-description from the device authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub instance: String,
    pub hostname: String,
    pub os: String,
    pub version: String,
    pub installation_id: String,
}

/// One RFC 8628 device authorization, from its PIN to the first token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeviceAuthorization {
    device_code_hash: String,
    pin: String,
    device: DeviceInfo,
    expires_at: DateTime<Utc>,
    interval_secs: u64,
    last_poll_at: Option<DateTime<Utc>>,
    wrong_entries: u32,
    /// Set when a person connected the PIN to an integration; the next poll
    /// gets the tokens.
    approved: Option<Approval>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Approval {
    integration_id: String,
    client_id: String,
}

impl DeviceAuthorization {
    fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    fn is_locked(&self) -> bool {
        self.wrong_entries >= WRONG_ENTRIES_PER_PIN
    }

    fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.is_expired(now) && !self.is_locked() && self.approved.is_none()
    }
}

/// The client connected to an integration (at most one).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Client {
    client_id: String,
    device: DeviceInfo,
    connected_at: DateTime<Utc>,
    last_heartbeat: Option<DateTime<Utc>>,
    heartbeat: Option<Heartbeat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    kind: TokenKind,
    integration_id: String,
    client_id: String,
    expires_at: DateTime<Utc>,
}

/// An upload slot handed out by `POST /uploads`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub upload_id: String,
    pub integration_id: String,
    pub request: CreateUploadRequest,
    /// Where the bytes live in the object store.
    pub object_key: String,
    pub url_expires_at: DateTime<Utc>,
    /// The PUT arrived and matched the declared size and sha256.
    pub stored: bool,
}

/// Who an access token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub integration_id: String,
    pub client_id: String,
}

/// Tokens in clear text, returned once and never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub integration_id: String,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("integration_id", &self.integration_id)
            .finish_non_exhaustive()
    }
}

/// A new device authorization; `device_code` in clear text, only this once.
#[derive(Debug, Clone)]
pub struct NewAuthorization {
    pub device_code: String,
    pub pin: String,
    pub expires_in: u64,
    pub interval: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("there is no integration {0}")]
    UnknownIntegration(String),
    #[error("this PIN is not known: check the PIN shown by the client")]
    UnknownPin,
    #[error("this PIN has expired: restart the client to get a new one")]
    ExpiredPin,
    #[error(
        "this PIN was locked after too many wrong entries: restart the client to get a new one"
    )]
    LockedPin,
    #[error("this PIN was already used for another integration")]
    PinAlreadyUsed,
    #[error("too many wrong PINs: try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("the PIN must be 6 digits")]
    MalformedPin,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct TokenError {
    pub code: TokenErrorCode,
    pub message: &'static str,
}

impl TokenError {
    fn new(code: TokenErrorCode, message: &'static str) -> Self {
        TokenError { code, message }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the access token is unknown, expired or revoked")]
    InvalidToken,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrationError {
    #[error("there is no integration {0}")]
    Unknown(String),
    #[error("invalid integration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("invalid upload request: {0}")]
    Invalid(String),
    #[error("the upload is larger than the {0} bytes one PUT may carry")]
    TooLarge(u64),
    #[error("there is no upload {0}")]
    UnknownUpload(String),
    #[error("nothing was uploaded to upload {0} yet: PUT the bytes first")]
    NotUploaded(String),
}

/// What `POST /uploads` decided.
#[derive(Debug, Clone)]
pub enum UploadDecision {
    Created(Box<Upload>),
    AlreadyCommitted { upload_id: String },
}

/// What a commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed {
        import_id: String,
    },
    /// The key was committed before; counted, nothing stored.
    Duplicate {
        import_id: String,
    },
}

impl CommitOutcome {
    pub fn import_id(&self) -> &str {
        match self {
            CommitOutcome::Committed { import_id } | CommitOutcome::Duplicate { import_id } => {
                import_id
            }
        }
    }
}

/// A committed import plus where its bytes are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Import {
    pub record: ImportRecord,
    pub upload_id: String,
    pub object_key: String,
}

/// Sliding windows of wrong PIN entries. Not persisted: a restart forgives.
#[derive(Debug, Default)]
struct PinGuard {
    by_source: HashMap<IpAddr, VecDeque<DateTime<Utc>>>,
    by_integration: HashMap<String, VecDeque<DateTime<Utc>>>,
}

impl PinGuard {
    fn retry_after(
        &mut self,
        source: IpAddr,
        integration_id: &str,
        now: DateTime<Utc>,
    ) -> Option<u64> {
        let by_source = self.by_source.entry(source).or_default();
        let source_wait = window_wait(
            by_source,
            now,
            Duration::minutes(1),
            WRONG_PINS_PER_SOURCE_PER_MINUTE,
        );
        let by_integration = self
            .by_integration
            .entry(integration_id.to_owned())
            .or_default();
        let integration_wait = window_wait(
            by_integration,
            now,
            Duration::hours(1),
            WRONG_PINS_PER_INTEGRATION_PER_HOUR,
        );
        source_wait.max(integration_wait)
    }

    fn record_wrong_entry(&mut self, source: IpAddr, integration_id: &str, now: DateTime<Utc>) {
        self.by_source.entry(source).or_default().push_back(now);
        self.by_integration
            .entry(integration_id.to_owned())
            .or_default()
            .push_back(now);
    }
}

/// Drops entries older than `window`; when `limit` remain, the seconds until
/// the oldest leaves the window.
fn window_wait(
    entries: &mut VecDeque<DateTime<Utc>>,
    now: DateTime<Utc>,
    window: Duration,
    limit: usize,
) -> Option<u64> {
    while entries.front().is_some_and(|t| now - *t >= window) {
        entries.pop_front();
    }
    if entries.len() < limit {
        return None;
    }
    let oldest = *entries.front()?;
    let wait = (oldest + window - now).num_milliseconds();
    // Round up so that a client honouring Retry-After is never early.
    Some(((wait + 999) / 1000).max(1) as u64)
}

/// The whole emulated cloud. Serialized as is into `--data-dir`.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    next_integration: u64,
    next_import: u64,
    integrations: BTreeMap<String, Integration>,
    authorizations: Vec<DeviceAuthorization>,
    /// Keyed by integration id.
    clients: BTreeMap<String, Client>,
    /// Keyed by the sha256 of the token: a leaked state file reveals no token.
    tokens: HashMap<String, TokenRecord>,
    uploads: BTreeMap<String, Upload>,
    imports: Vec<Import>,
    /// Key of the HMAC over the emulator's own upload URLs; kept with the
    /// state so URLs handed out before a restart still work after it.
    url_signing_key: String,
    #[serde(skip)]
    pin_guard: PinGuard,
    /// Real-time batches (§7). Kept in memory only, even with `--data-dir`:
    /// rewriting the state file for every batch of a feed would be the
    /// emulator's bottleneck, and no test restarts the emulator mid-feed.
    #[serde(skip)]
    realtime: RealtimeStore,
}

#[derive(Debug, Default)]
struct RealtimeStore {
    records: Vec<RealtimeRecord>,
    /// (integration, key) → index in `records`.
    by_key: HashMap<(String, String), usize>,
}

/// What `POST .../realtime/events` did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealtimeOutcome {
    Accepted(usize),
    Duplicate,
}

impl Default for State {
    fn default() -> Self {
        State {
            next_integration: 1,
            next_import: 1,
            integrations: BTreeMap::new(),
            authorizations: Vec::new(),
            clients: BTreeMap::new(),
            tokens: HashMap::new(),
            uploads: BTreeMap::new(),
            imports: Vec::new(),
            url_signing_key: random_token(),
            pin_guard: PinGuard::default(),
            realtime: RealtimeStore::default(),
        }
    }
}

/// 32 random bytes, URL-safe base64: opaque, unguessable.
pub fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_id(prefix: &str) -> String {
    let bytes: [u8; 8] = rand::rng().random();
    format!("{prefix}{}", hex::encode(bytes))
}

pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(data.as_ref()))
}

/// `42****`: enough to tell PINs apart in a log, not enough to use one.
pub fn mask_pin(pin: &str) -> String {
    let shown: String = pin.chars().take(2).collect();
    format!("{shown}****")
}

pub fn is_valid_pin(pin: &str) -> bool {
    pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit())
}

impl State {
    pub fn url_signing_key(&self) -> &str {
        &self.url_signing_key
    }

    // ---------------------------------------------------------------- integrations

    pub fn create_integration(
        &mut self,
        integration: Integration,
    ) -> Result<String, IntegrationError> {
        let mut integration = validate_integration(integration)?;
        let id = format!("int_{}", self.next_integration);
        self.next_integration += 1;
        integration.id = id.clone();
        self.integrations.insert(id.clone(), integration);
        Ok(id)
    }

    pub fn replace_integration(
        &mut self,
        id: &str,
        integration: Integration,
    ) -> Result<Integration, IntegrationError> {
        let slot = self
            .integrations
            .get_mut(id)
            .ok_or_else(|| IntegrationError::Unknown(id.to_owned()))?;
        let mut integration = validate_integration(integration)?;
        integration.id = id.to_owned();
        *slot = integration.clone();
        Ok(integration)
    }

    /// Removes the integration and ends its client's link. Its imports stay
    /// for inspection.
    pub fn delete_integration(&mut self, id: &str) -> Result<(), IntegrationError> {
        self.integrations
            .remove(id)
            .ok_or_else(|| IntegrationError::Unknown(id.to_owned()))?;
        self.clients.remove(id);
        self.revoke_tokens_of(id);
        self.authorizations.retain(|a| {
            a.approved
                .as_ref()
                .is_none_or(|approval| approval.integration_id != id)
        });
        Ok(())
    }

    pub fn integration(&self, id: &str) -> Option<&Integration> {
        self.integrations.get(id)
    }

    pub fn integrations(&self) -> impl Iterator<Item = &Integration> {
        self.integrations.values()
    }

    /// The assignment and its strong ETag, which changes with any setting.
    pub fn assignment(&self, integration_id: &str) -> Option<(Integration, String)> {
        let integration = self.integrations.get(integration_id)?.clone();
        let canonical = serde_json::to_vec(&integration).expect("an integration serializes");
        let etag = format!("\"{}\"", &sha256_hex(canonical)[..32]);
        Some((integration, etag))
    }

    fn revoke_tokens_of(&mut self, integration_id: &str) {
        self.tokens
            .retain(|_, t| t.integration_id != integration_id);
    }

    // ---------------------------------------------------------------- pairing

    pub fn start_device_authorization(
        &mut self,
        device: DeviceInfo,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> NewAuthorization {
        self.authorizations
            .retain(|a| now < a.expires_at + Duration::seconds(EXPIRED_AUTHORIZATION_GRACE_SECS));
        let pin = loop {
            let candidate = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
            // Unique among every stored PIN, which includes all live ones, so
            // a PIN always names exactly one device.
            if !self.authorizations.iter().any(|a| a.pin == candidate) {
                break candidate;
            }
        };
        let device_code = random_token();
        self.authorizations.push(DeviceAuthorization {
            device_code_hash: sha256_hex(&device_code),
            pin: pin.clone(),
            device,
            expires_at: now + settings.pin_ttl,
            interval_secs: settings.poll_interval_secs,
            last_poll_at: None,
            wrong_entries: 0,
            approved: None,
        });
        NewAuthorization {
            device_code,
            pin,
            expires_in: settings.pin_ttl.num_seconds().max(0) as u64,
            interval: settings.poll_interval_secs,
        }
    }

    /// A person typed `pin` for `integration_id` (web form or control API).
    pub fn connect(
        &mut self,
        pin: &str,
        integration_id: &str,
        source: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<ConnectResponse, ConnectError> {
        if !self.integrations.contains_key(integration_id) {
            return Err(ConnectError::UnknownIntegration(integration_id.to_owned()));
        }
        if let Some(retry_after_secs) = self.pin_guard.retry_after(source, integration_id, now) {
            return Err(ConnectError::TooManyAttempts { retry_after_secs });
        }
        let pin = pin.trim();
        let found = if is_valid_pin(pin) {
            self.authorizations.iter().position(|a| a.pin == pin)
        } else {
            None
        };
        let Some(index) = found else {
            self.record_wrong_entry(source, integration_id, now);
            return Err(if is_valid_pin(pin) {
                ConnectError::UnknownPin
            } else {
                ConnectError::MalformedPin
            });
        };
        let authorization = &self.authorizations[index];
        if let Some(approval) = &authorization.approved {
            // A second click on Connect for the same integration is harmless.
            return if approval.integration_id == integration_id {
                Ok(ConnectResponse {
                    integration_id: integration_id.to_owned(),
                    instance: authorization.device.instance.clone(),
                    hostname: authorization.device.hostname.clone(),
                })
            } else {
                Err(ConnectError::PinAlreadyUsed)
            };
        }
        if authorization.is_expired(now) {
            return Err(ConnectError::ExpiredPin);
        }
        if authorization.is_locked() {
            return Err(ConnectError::LockedPin);
        }
        let client_id = random_id("cl_");
        let device = authorization.device.clone();
        self.authorizations[index].approved = Some(Approval {
            integration_id: integration_id.to_owned(),
            client_id: client_id.clone(),
        });
        // One integration, one client: the previous one loses its link now.
        self.revoke_tokens_of(integration_id);
        self.clients.insert(
            integration_id.to_owned(),
            Client {
                client_id,
                device: device.clone(),
                connected_at: now,
                last_heartbeat: None,
                heartbeat: None,
            },
        );
        Ok(ConnectResponse {
            integration_id: integration_id.to_owned(),
            instance: device.instance,
            hostname: device.hostname,
        })
    }

    fn record_wrong_entry(&mut self, source: IpAddr, integration_id: &str, now: DateTime<Utc>) {
        self.pin_guard
            .record_wrong_entry(source, integration_id, now);
        // Any wrong entry could have been a guess at any live PIN.
        for authorization in &mut self.authorizations {
            if authorization.is_live(now) {
                authorization.wrong_entries += 1;
            }
        }
    }

    /// The token endpoint with the device code grant.
    pub fn poll_device_code(
        &mut self,
        device_code: &str,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, TokenError> {
        let hash = sha256_hex(device_code);
        let Some(index) = self
            .authorizations
            .iter()
            .position(|a| a.device_code_hash == hash)
        else {
            return Err(TokenError::new(
                TokenErrorCode::InvalidGrant,
                "unknown device code",
            ));
        };
        if let Some(approval) = self.authorizations[index].approved.clone() {
            self.authorizations.remove(index);
            let still_connected = self
                .clients
                .get(&approval.integration_id)
                .is_some_and(|c| c.client_id == approval.client_id);
            if !still_connected {
                return Err(TokenError::new(
                    TokenErrorCode::AccessDenied,
                    "the integration was deleted or connected to another client",
                ));
            }
            return Ok(self.issue_tokens(
                &approval.integration_id,
                &approval.client_id,
                settings,
                now,
            ));
        }
        let authorization = &mut self.authorizations[index];
        if authorization.is_expired(now) {
            return Err(TokenError::new(
                TokenErrorCode::ExpiredToken,
                "the PIN expired: start a new authorization",
            ));
        }
        if authorization.is_locked() {
            return Err(TokenError::new(
                TokenErrorCode::ExpiredToken,
                "the PIN was locked after too many wrong entries: start a new authorization",
            ));
        }
        let too_early = authorization
            .last_poll_at
            .is_some_and(|last| now - last < Duration::seconds(authorization.interval_secs as i64));
        authorization.last_poll_at = Some(now);
        if too_early {
            authorization.interval_secs += SLOW_DOWN_STEP_SECS;
            return Err(TokenError::new(
                TokenErrorCode::SlowDown,
                "polled faster than the interval: add 5 s to it",
            ));
        }
        Err(TokenError::new(
            TokenErrorCode::AuthorizationPending,
            "waiting for the PIN to be entered",
        ))
    }

    /// The token endpoint with the refresh token grant. Rotates the refresh token.
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<IssuedTokens, TokenError> {
        let invalid = || {
            TokenError::new(
                TokenErrorCode::InvalidGrant,
                "the link was removed or the refresh token is not valid",
            )
        };
        let hash = sha256_hex(refresh_token);
        let record = self.tokens.get(&hash).cloned().ok_or_else(invalid)?;
        if record.kind != TokenKind::Refresh || now >= record.expires_at {
            return Err(invalid());
        }
        self.tokens.remove(&hash);
        let still_connected = self
            .clients
            .get(&record.integration_id)
            .is_some_and(|c| c.client_id == record.client_id);
        if !still_connected {
            return Err(invalid());
        }
        Ok(self.issue_tokens(&record.integration_id, &record.client_id, settings, now))
    }

    fn issue_tokens(
        &mut self,
        integration_id: &str,
        client_id: &str,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> IssuedTokens {
        self.tokens.retain(|_, t| now < t.expires_at);
        let access_token = random_token();
        let refresh_token = random_token();
        for (token, kind, ttl) in [
            (&access_token, TokenKind::Access, settings.access_token_ttl),
            (
                &refresh_token,
                TokenKind::Refresh,
                settings.refresh_token_ttl,
            ),
        ] {
            self.tokens.insert(
                sha256_hex(token),
                TokenRecord {
                    kind,
                    integration_id: integration_id.to_owned(),
                    client_id: client_id.to_owned(),
                    expires_at: now + ttl,
                },
            );
        }
        IssuedTokens {
            access_token,
            refresh_token,
            expires_in: settings.access_token_ttl.num_seconds().max(0) as u64,
            integration_id: integration_id.to_owned(),
        }
    }

    /// Checks a Bearer token.
    pub fn authenticate(
        &self,
        access_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        let record = self
            .tokens
            .get(&sha256_hex(access_token))
            .ok_or(AuthError::InvalidToken)?;
        let connected = self
            .clients
            .get(&record.integration_id)
            .is_some_and(|c| c.client_id == record.client_id);
        if record.kind != TokenKind::Access || now >= record.expires_at || !connected {
            return Err(AuthError::InvalidToken);
        }
        Ok(Principal {
            integration_id: record.integration_id.clone(),
            client_id: record.client_id.clone(),
        })
    }

    // ---------------------------------------------------------------- heartbeat

    pub fn record_heartbeat(
        &mut self,
        principal: &Principal,
        heartbeat: Heartbeat,
        now: DateTime<Utc>,
    ) {
        if let Some(client) = self.clients.get_mut(&principal.integration_id) {
            if client.client_id == principal.client_id {
                client.device.version = heartbeat.version.clone();
                client.device.hostname = heartbeat.hostname.clone();
                client.device.os = heartbeat.os.clone();
                client.last_heartbeat = Some(now);
                client.heartbeat = Some(heartbeat);
            }
        }
    }

    pub fn clients(&self) -> Vec<ClientRecord> {
        self.clients
            .iter()
            .map(|(integration_id, c)| ClientRecord {
                integration_id: integration_id.clone(),
                instance: c.device.instance.clone(),
                hostname: c.device.hostname.clone(),
                version: c.device.version.clone(),
                os: c.device.os.clone(),
                installation_id: c.device.installation_id.clone(),
                connected_at: c.connected_at,
                last_heartbeat: c.last_heartbeat,
                heartbeat: c.heartbeat.clone(),
            })
            .collect()
    }

    pub fn client_of(&self, integration_id: &str) -> Option<ClientRecord> {
        self.clients()
            .into_iter()
            .find(|c| c.integration_id == integration_id)
    }

    // ---------------------------------------------------------------- uploads

    pub fn create_upload(
        &mut self,
        principal: &Principal,
        request: CreateUploadRequest,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<UploadDecision, UploadError> {
        validate_upload_request(&request)?;
        if request.size > settings.max_upload_size {
            return Err(UploadError::TooLarge(settings.max_upload_size));
        }
        if let Some(import) =
            self.committed_import(&principal.integration_id, &request.idempotency_key)
        {
            return Ok(UploadDecision::AlreadyCommitted {
                upload_id: import.upload_id.clone(),
            });
        }
        let upload_id = random_id("up_");
        let object_key = format!(
            "{}/{}/{}",
            principal.integration_id,
            upload_id,
            object_name(&request.file_name)
        );
        let upload = Upload {
            upload_id: upload_id.clone(),
            integration_id: principal.integration_id.clone(),
            request,
            object_key,
            url_expires_at: now + settings.upload_url_ttl,
            stored: false,
        };
        self.uploads.insert(upload_id, upload.clone());
        Ok(UploadDecision::Created(Box::new(upload)))
    }

    pub fn upload(&self, upload_id: &str) -> Option<&Upload> {
        self.uploads.get(upload_id)
    }

    pub fn mark_stored(&mut self, upload_id: &str) -> Result<(), UploadError> {
        let upload = self
            .uploads
            .get_mut(upload_id)
            .ok_or_else(|| UploadError::UnknownUpload(upload_id.to_owned()))?;
        upload.stored = true;
        Ok(())
    }

    fn committed_import(&self, integration_id: &str, key: &str) -> Option<&Import> {
        self.imports
            .iter()
            .find(|i| i.record.integration_id == integration_id && i.record.idempotency_key == key)
    }

    pub fn commit(
        &mut self,
        principal: &Principal,
        upload_id: &str,
        now: DateTime<Utc>,
    ) -> Result<CommitOutcome, UploadError> {
        let upload = self
            .uploads
            .get(upload_id)
            .filter(|u| u.integration_id == principal.integration_id)
            .ok_or_else(|| UploadError::UnknownUpload(upload_id.to_owned()))?
            .clone();
        let key = &upload.request.idempotency_key;
        if let Some(import) = self.imports.iter_mut().find(|i| {
            i.record.integration_id == upload.integration_id && &i.record.idempotency_key == key
        }) {
            import.record.duplicates += 1;
            return Ok(CommitOutcome::Duplicate {
                import_id: import.record.import_id.clone(),
            });
        }
        if !upload.stored {
            return Err(UploadError::NotUploaded(upload_id.to_owned()));
        }
        let import_id = format!("imp_{}", self.next_import);
        self.next_import += 1;
        let request = upload.request;
        self.imports.push(Import {
            record: ImportRecord {
                import_id: import_id.clone(),
                integration_id: upload.integration_id,
                idempotency_key: request.idempotency_key,
                source: request.source,
                file_name: request.file_name,
                content_type: request.content_type,
                content_encoding: request.content_encoding,
                size: request.size,
                sha256: request.sha256,
                metadata: request.metadata,
                committed_at: now,
                duplicates: 0,
            },
            upload_id: upload.upload_id,
            object_key: upload.object_key,
        });
        Ok(CommitOutcome::Committed { import_id })
    }

    pub fn imports(&self, integration_id: Option<&str>) -> Vec<ImportRecord> {
        self.imports
            .iter()
            .filter(|i| integration_id.is_none_or(|id| i.record.integration_id == id))
            .map(|i| i.record.clone())
            .collect()
    }

    // ---------------------------------------------------------------- real-time (§7)

    /// Stores a batch once per idempotency key, checking it as the cloud
    /// would: events in sequence order, each with an agent, an activity and
    /// an RFC 3339 timestamp with offset.
    pub fn store_realtime(
        &mut self,
        principal: &Principal,
        batch: RealtimeBatch,
        now: DateTime<Utc>,
    ) -> Result<RealtimeOutcome, String> {
        let key = (
            principal.integration_id.clone(),
            batch.idempotency_key.clone(),
        );
        if let Some(&index) = self.realtime.by_key.get(&key) {
            self.realtime.records[index].duplicates += 1;
            return Ok(RealtimeOutcome::Duplicate);
        }
        if batch.idempotency_key.trim().is_empty() {
            return Err("idempotency_key must not be empty".into());
        }
        if batch.events.is_empty() || batch.events.len() > MAX_BATCH_EVENTS {
            return Err(format!(
                "a batch holds 1 to {MAX_BATCH_EVENTS} events, this one {}",
                batch.events.len()
            ));
        }
        for pair in batch.events.windows(2) {
            if pair[1].sequence <= pair[0].sequence {
                return Err(format!(
                    "sequence {} follows {}: events must be in sequence order",
                    pair[1].sequence, pair[0].sequence
                ));
            }
        }
        for event in &batch.events {
            if event.agentidentifier.trim().is_empty() || event.activity.trim().is_empty() {
                return Err(format!(
                    "event {} has no agentidentifier or activity",
                    event.sequence
                ));
            }
            for (name, value) in [
                ("timestamp", &event.timestamp),
                ("received_at", &event.received_at),
            ] {
                if DateTime::parse_from_rfc3339(value).is_err() {
                    return Err(format!(
                        "event {}: {name} {value:?} is not RFC 3339",
                        event.sequence
                    ));
                }
            }
        }
        let accepted = batch.events.len();
        self.realtime
            .by_key
            .insert(key, self.realtime.records.len());
        self.realtime.records.push(RealtimeRecord {
            integration_id: principal.integration_id.clone(),
            idempotency_key: batch.idempotency_key,
            feed: batch.feed,
            stored_at: now,
            events: batch.events,
            duplicates: 0,
        });
        Ok(RealtimeOutcome::Accepted(accepted))
    }

    pub fn realtime(&self, integration_id: Option<&str>) -> Vec<RealtimeRecord> {
        self.realtime
            .records
            .iter()
            .filter(|r| integration_id.is_none_or(|id| r.integration_id == id))
            .cloned()
            .collect()
    }

    /// The last `n` events of an integration, newest first (for the page).
    pub fn latest_realtime_events(&self, integration_id: &str, n: usize) -> Vec<RealtimeEvent> {
        self.realtime
            .records
            .iter()
            .rev()
            .filter(|r| r.integration_id == integration_id)
            .flat_map(|r| r.events.iter().rev())
            .take(n)
            .cloned()
            .collect()
    }

    pub fn import(&self, import_id: &str) -> Option<&Import> {
        self.imports
            .iter()
            .find(|i| i.record.import_id == import_id)
    }
}

fn validate_integration(mut integration: Integration) -> Result<Integration, IntegrationError> {
    if integration.name.trim().is_empty() {
        return Err(IntegrationError::Invalid("name must not be empty".into()));
    }
    match integration.kind {
        IntegrationKind::Csv => {
            integration.csv.get_or_insert_with(Default::default);
            integration.database = None;
        }
        IntegrationKind::Database => {
            let Some(DatabaseSettings { imports, .. }) = &integration.database else {
                return Err(IntegrationError::Invalid(
                    "kind \"database\" needs a \"database\" object".into(),
                ));
            };
            for import in imports {
                let parameters = import.query.matches('?').count();
                if parameters != 0 && parameters != 2 {
                    return Err(IntegrationError::Invalid(format!(
                        "query of import {:?} has {parameters} `?` parameters; it needs none or two",
                        import.id
                    )));
                }
            }
            integration.csv = None;
        }
    }
    Ok(integration)
}

fn validate_upload_request(request: &CreateUploadRequest) -> Result<(), UploadError> {
    let invalid = |m: &str| Err(UploadError::Invalid(m.to_owned()));
    if request.idempotency_key.trim().is_empty() || request.idempotency_key.len() > 512 {
        return invalid("idempotency_key must hold 1 to 512 characters");
    }
    if request.file_name.trim().is_empty() {
        return invalid("file_name must not be empty");
    }
    if request.content_type.trim().is_empty() {
        return invalid("content_type must not be empty");
    }
    let is_hex_sha256 = request.sha256.len() == 64
        && request
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_hex_sha256 {
        return invalid("sha256 must be 64 lower-case hex digits");
    }
    match request.content_encoding.as_deref() {
        None | Some("gzip") => Ok(()),
        Some(other) => invalid(&format!(
            "content_encoding {other:?} is not supported (only \"gzip\")"
        )),
    }
}

/// A file name made safe as the last segment of an object key.
fn object_name(file_name: &str) -> String {
    let cleaned: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if cleaned.trim_matches('.').is_empty() {
        "object".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use injixo_cloud_link_protocol::{CsvSettings, UploadSource};

    use super::*;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn csv_integration(name: &str) -> Integration {
        Integration {
            id: String::new(),
            name: name.into(),
            kind: IntegrationKind::Csv,
            realtime: None,
            csv: Some(CsvSettings::default()),
            database: None,
        }
    }

    fn device(instance: &str) -> DeviceInfo {
        DeviceInfo {
            instance: instance.into(),
            hostname: "host-1".into(),
            os: "linux".into(),
            version: "0.1.0".into(),
            installation_id: "6f1c".into(),
        }
    }

    /// An integration with a connected client and its tokens.
    fn paired(state: &mut State, settings: &Settings) -> (String, IssuedTokens) {
        let id = state.create_integration(csv_integration("CSV")).unwrap();
        let auth = state.start_device_authorization(device("a"), settings, t0());
        state.connect(&auth.pin, &id, HOME, t0()).unwrap();
        let tokens = state
            .poll_device_code(&auth.device_code, settings, t0())
            .unwrap();
        (id, tokens)
    }

    fn upload_request(key: &str, body: &[u8]) -> CreateUploadRequest {
        CreateUploadRequest {
            idempotency_key: key.into(),
            source: UploadSource::Csv,
            file_name: "stats.csv".into(),
            content_type: "text/csv".into(),
            content_encoding: None,
            size: body.len() as u64,
            sha256: sha256_hex(body),
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn pins_are_six_digits_and_unique_among_live_ones() {
        let mut state = State::default();
        let settings = Settings::default();
        let pins: Vec<String> = (0..300)
            .map(|_| {
                state
                    .start_device_authorization(device("a"), &settings, t0())
                    .pin
            })
            .collect();
        assert!(pins.iter().all(|p| is_valid_pin(p)));
        let mut unique = pins.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), pins.len());
    }

    #[test]
    fn device_code_flow_goes_pending_slow_down_then_success() {
        let mut state = State::default();
        let settings = Settings::default();
        let id = state.create_integration(csv_integration("CSV")).unwrap();
        let auth = state.start_device_authorization(device("a"), &settings, t0());
        let poll = |state: &mut State, at| state.poll_device_code(&auth.device_code, &settings, at);

        assert_eq!(
            poll(&mut state, t0()).unwrap_err().code,
            TokenErrorCode::AuthorizationPending
        );
        let early = t0() + Duration::seconds(2);
        assert_eq!(
            poll(&mut state, early).unwrap_err().code,
            TokenErrorCode::SlowDown
        );
        // The interval is now 10 s: 6 s after the last poll is still too early.
        let still_early = early + Duration::seconds(6);
        assert_eq!(
            poll(&mut state, still_early).unwrap_err().code,
            TokenErrorCode::SlowDown
        );
        let patient = still_early + Duration::seconds(15);
        assert_eq!(
            poll(&mut state, patient).unwrap_err().code,
            TokenErrorCode::AuthorizationPending
        );

        state.connect(&auth.pin, &id, HOME, patient).unwrap();
        let tokens = poll(&mut state, patient).unwrap();
        assert_eq!(tokens.integration_id, id);
        assert!(state.authenticate(&tokens.access_token, patient).is_ok());
        // The device code is spent.
        assert_eq!(
            poll(&mut state, patient + Duration::seconds(60))
                .unwrap_err()
                .code,
            TokenErrorCode::InvalidGrant
        );
    }

    #[test]
    fn an_expired_pin_gives_expired_token_and_cannot_be_connected() {
        let mut state = State::default();
        let settings = Settings::default();
        let id = state.create_integration(csv_integration("CSV")).unwrap();
        let auth = state.start_device_authorization(device("a"), &settings, t0());
        let later = t0() + settings.pin_ttl;
        assert_eq!(
            state.connect(&auth.pin, &id, HOME, later),
            Err(ConnectError::ExpiredPin)
        );
        let err = state
            .poll_device_code(&auth.device_code, &settings, later)
            .unwrap_err();
        assert_eq!(err.code, TokenErrorCode::ExpiredToken);
    }

    #[test]
    fn wrong_pins_are_rate_limited_per_source() {
        let mut state = State::default();
        let id = state.create_integration(csv_integration("CSV")).unwrap();
        for _ in 0..WRONG_PINS_PER_SOURCE_PER_MINUTE {
            assert_eq!(
                state.connect("000000", &id, HOME, t0()),
                Err(ConnectError::UnknownPin)
            );
        }
        let limited = state.connect("000000", &id, HOME, t0() + Duration::seconds(10));
        assert_eq!(
            limited,
            Err(ConnectError::TooManyAttempts {
                retry_after_secs: 50
            })
        );
        // Another address is not affected.
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(
            state.connect("000000", &id, other, t0()),
            Err(ConnectError::UnknownPin)
        );
        // A minute later the source may try again.
        let after = t0() + Duration::seconds(61);
        assert_eq!(
            state.connect("000000", &id, HOME, after),
            Err(ConnectError::UnknownPin)
        );
    }

    #[test]
    fn wrong_pins_are_rate_limited_per_integration() {
        let mut state = State::default();
        let id = state.create_integration(csv_integration("CSV")).unwrap();
        for n in 0..WRONG_PINS_PER_INTEGRATION_PER_HOUR {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, n as u8));
            assert_eq!(
                state.connect("000000", &id, source, t0()),
                Err(ConnectError::UnknownPin)
            );
        }
        let fresh_source = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1));
        assert!(matches!(
            state.connect("000000", &id, fresh_source, t0() + Duration::minutes(5)),
            Err(ConnectError::TooManyAttempts {
                retry_after_secs: 3300
            })
        ));
    }

    #[test]
    fn a_pin_dies_after_five_wrong_entries_while_it_lives() {
        let mut state = State::default();
        let settings = Settings::default();
        let id = state.create_integration(csv_integration("CSV")).unwrap();
        let auth = state.start_device_authorization(device("a"), &settings, t0());
        for n in 0..WRONG_ENTRIES_PER_PIN {
            // Different sources, so the per-source limit does not kick in first.
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + n as u8));
            let wrong = if auth.pin == "999999" {
                "999998"
            } else {
                "999999"
            };
            assert_eq!(
                state.connect(wrong, &id, source, t0()),
                Err(ConnectError::UnknownPin)
            );
        }
        assert_eq!(
            state.connect(&auth.pin, &id, HOME, t0()),
            Err(ConnectError::LockedPin)
        );
        let err = state
            .poll_device_code(&auth.device_code, &settings, t0())
            .unwrap_err();
        assert_eq!(err.code, TokenErrorCode::ExpiredToken);
    }

    #[test]
    fn refresh_rotates_and_a_new_connection_revokes_the_old_client() {
        let mut state = State::default();
        let settings = Settings::default();
        let (id, first) = paired(&mut state, &settings);
        let rotated = state
            .refresh(&first.refresh_token, &settings, t0())
            .unwrap();
        assert_ne!(rotated.refresh_token, first.refresh_token);
        let reused = state
            .refresh(&first.refresh_token, &settings, t0())
            .unwrap_err();
        assert_eq!(reused.code, TokenErrorCode::InvalidGrant);

        let second = state.start_device_authorization(device("b"), &settings, t0());
        state.connect(&second.pin, &id, HOME, t0()).unwrap();
        assert_eq!(
            state.authenticate(&rotated.access_token, t0()),
            Err(AuthError::InvalidToken)
        );
        let refused = state
            .refresh(&rotated.refresh_token, &settings, t0())
            .unwrap_err();
        assert_eq!(refused.code, TokenErrorCode::InvalidGrant);
        let tokens = state
            .poll_device_code(&second.device_code, &settings, t0())
            .unwrap();
        assert!(state.authenticate(&tokens.access_token, t0()).is_ok());
        assert_eq!(state.client_of(&id).unwrap().instance, "b");
    }

    #[test]
    fn a_device_overtaken_before_its_poll_is_denied() {
        let mut state = State::default();
        let settings = Settings::default();
        let id = state.create_integration(csv_integration("CSV")).unwrap();
        let first = state.start_device_authorization(device("a"), &settings, t0());
        let second = state.start_device_authorization(device("b"), &settings, t0());
        state.connect(&first.pin, &id, HOME, t0()).unwrap();
        state.connect(&second.pin, &id, HOME, t0()).unwrap();
        let err = state
            .poll_device_code(&first.device_code, &settings, t0())
            .unwrap_err();
        assert_eq!(err.code, TokenErrorCode::AccessDenied);
        assert!(state
            .poll_device_code(&second.device_code, &settings, t0())
            .is_ok());
    }

    #[test]
    fn deleting_the_integration_revokes_its_tokens() {
        let mut state = State::default();
        let settings = Settings::default();
        let (id, tokens) = paired(&mut state, &settings);
        state.delete_integration(&id).unwrap();
        assert_eq!(
            state.authenticate(&tokens.access_token, t0()),
            Err(AuthError::InvalidToken)
        );
        assert!(state
            .refresh(&tokens.refresh_token, &settings, t0())
            .is_err());
        assert!(state.client_of(&id).is_none());
    }

    #[test]
    fn access_tokens_expire_and_are_stored_hashed() {
        let mut state = State::default();
        let settings = Settings::default();
        let (_, tokens) = paired(&mut state, &settings);
        let later = t0() + settings.access_token_ttl;
        assert_eq!(
            state.authenticate(&tokens.access_token, later),
            Err(AuthError::InvalidToken)
        );
        let saved = serde_json::to_string(&state).unwrap();
        assert!(!saved.contains(&tokens.access_token));
        assert!(!saved.contains(&tokens.refresh_token));
    }

    #[test]
    fn the_etag_changes_with_the_integration() {
        let mut state = State::default();
        let id = state.create_integration(csv_integration("CSV")).unwrap();
        let (_, before) = state.assignment(&id).unwrap();
        assert_eq!(state.assignment(&id).unwrap().1, before);
        state
            .replace_integration(&id, csv_integration("Renamed"))
            .unwrap();
        let (integration, after) = state.assignment(&id).unwrap();
        assert_ne!(before, after);
        assert_eq!(integration.name, "Renamed");
        assert!(after.starts_with('"') && after.ends_with('"'));
    }

    #[test]
    fn a_database_query_needs_none_or_two_parameters() {
        let mut state = State::default();
        let mut integration: Integration = serde_json::from_value(serde_json::json!({
            "name": "DB", "kind": "database",
            "database": {"connection_string": "DSN=x", "time_zone": "UTC",
              "imports": [{"id": "i", "type": "interval", "query": "SELECT ? "}]}}))
        .unwrap();
        assert!(matches!(
            state.create_integration(integration.clone()),
            Err(IntegrationError::Invalid(_))
        ));
        integration.database.as_mut().unwrap().imports[0].query =
            "SELECT 1 WHERE a >= ? AND a < ?".into();
        assert!(state.create_integration(integration).is_ok());
    }

    #[test]
    fn commits_are_idempotent_and_duplicates_are_counted() {
        let mut state = State::default();
        let settings = Settings::default();
        let (id, tokens) = paired(&mut state, &settings);
        let principal = state.authenticate(&tokens.access_token, t0()).unwrap();
        let body = b"a;b\n1;2\n";
        let create = |state: &mut State| match state
            .create_upload(&principal, upload_request("k1", body), &settings, t0())
            .unwrap()
        {
            UploadDecision::Created(upload) => *upload,
            other => panic!("expected a new upload, got {other:?}"),
        };
        // Two uploads of one key race each other.
        let first = create(&mut state);
        let second = create(&mut state);
        assert_eq!(
            state.commit(&principal, &first.upload_id, t0()),
            Err(UploadError::NotUploaded(first.upload_id.clone()))
        );
        state.mark_stored(&first.upload_id).unwrap();
        state.mark_stored(&second.upload_id).unwrap();
        let committed = state.commit(&principal, &first.upload_id, t0()).unwrap();
        assert!(matches!(committed, CommitOutcome::Committed { .. }));
        let again = state.commit(&principal, &second.upload_id, t0()).unwrap();
        assert_eq!(
            again,
            CommitOutcome::Duplicate {
                import_id: committed.import_id().to_owned()
            }
        );

        let imports = state.imports(Some(&id));
        assert_eq!(imports.len(), 1);
        assert_eq!(imports[0].duplicates, 1);
        match state
            .create_upload(&principal, upload_request("k1", body), &settings, t0())
            .unwrap()
        {
            UploadDecision::AlreadyCommitted { upload_id } => {
                assert_eq!(upload_id, first.upload_id)
            }
            other => panic!("expected already committed, got {other:?}"),
        }
    }

    #[test]
    fn upload_requests_are_validated() {
        let mut state = State::default();
        let settings = Settings::default();
        let (_, tokens) = paired(&mut state, &settings);
        let principal = state.authenticate(&tokens.access_token, t0()).unwrap();
        let mut bad_hash = upload_request("k", b"x");
        bad_hash.sha256 = "ABC".into();
        assert!(matches!(
            state.create_upload(&principal, bad_hash, &settings, t0()),
            Err(UploadError::Invalid(_))
        ));
        let mut brotli = upload_request("k", b"x");
        brotli.content_encoding = Some("br".into());
        assert!(matches!(
            state.create_upload(&principal, brotli, &settings, t0()),
            Err(UploadError::Invalid(_))
        ));
        let mut huge = upload_request("k", b"x");
        huge.size = settings.max_upload_size + 1;
        assert!(matches!(
            state.create_upload(&principal, huge, &settings, t0()),
            Err(UploadError::TooLarge(_))
        ));
    }

    #[test]
    fn another_integrations_upload_cannot_be_committed() {
        let mut state = State::default();
        let settings = Settings::default();
        let (_, tokens) = paired(&mut state, &settings);
        let principal = state.authenticate(&tokens.access_token, t0()).unwrap();
        let stranger = Principal {
            integration_id: "int_99".into(),
            client_id: "cl_x".into(),
        };
        let UploadDecision::Created(upload) = state
            .create_upload(&principal, upload_request("k", b"x"), &settings, t0())
            .unwrap()
        else {
            panic!("expected a new upload")
        };
        assert!(matches!(
            state.commit(&stranger, &upload.upload_id, t0()),
            Err(UploadError::UnknownUpload(_))
        ));
    }

    #[test]
    fn masked_pins_hide_four_digits() {
        assert_eq!(mask_pin("424242"), "42****");
        assert_eq!(object_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(object_name(".."), "object");
    }
}
