//! Wire types of the Cloud Link protocol v1 (`docs/protocol.md`).
//!
//! Both the client (as `injixo_cloud_link::protocol`) and the cloud emulator
//! (`emulator/`) use these types, so the two sides cannot drift apart. A crate
//! of its own so that the emulator and the soak tool build without the
//! client's ODBC, actix and TLS stack. Data shapes and constants only: no
//! I/O, no HTTP client, no actor.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The client's version, sent at pairing, in heartbeats and as the
/// User-Agent's product version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The OAuth `client_id` of every Cloud Link client.
pub const CLIENT_ID: &str = "injixo-cloud-link";
/// RFC 8628 grant type for polling the token endpoint.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Grant type for refreshing an access token.
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";

/// API paths, relative to the configured cloud URL.
pub mod paths {
    pub const DEVICE_AUTHORIZATION: &str = "/api/cloud-link/v1/oauth/device_authorization";
    pub const TOKEN: &str = "/api/cloud-link/v1/oauth/token";
    pub const ASSIGNMENT: &str = "/api/cloud-link/v1/assignment";
    pub const UPLOADS: &str = "/api/cloud-link/v1/uploads";
    pub const HEARTBEAT: &str = "/api/cloud-link/v1/heartbeat";
    /// §7: batches of real-time agent-state changes.
    pub const REALTIME_EVENTS: &str = "/api/cloud-link/v1/realtime/events";

    /// The commit's route, as a server's router writes it.
    pub const COMMIT_ROUTE: &str = "/api/cloud-link/v1/uploads/{upload_id}/commit";

    /// `POST /api/cloud-link/v1/uploads/{upload_id}/commit`. The id comes
    /// from the cloud: it is one path segment, percent-encoded, so that a
    /// value like `../oauth/token` cannot aim the POST at another endpoint.
    pub fn commit(upload_id: &str) -> String {
        /// Everything but RFC 3986's unreserved characters.
        const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let segment = match upload_id {
            // "." and ".." are unreserved, yet a path resolver removes them.
            "." => "%2E".to_string(),
            ".." => "%2E%2E".to_string(),
            id => percent_encoding::utf8_percent_encode(id, SEGMENT).to_string(),
        };
        COMMIT_ROUTE.replace("{upload_id}", &segment)
    }
}

/// The `User-Agent` every request carries: `injixo-cloud-link/<version> (<os>; <arch>)`.
pub fn user_agent(version: &str) -> String {
    format!(
        "injixo-cloud-link/{version} ({}; {})",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

// ---------------------------------------------------------------------------
// §1 Pairing (RFC 8628)
// ---------------------------------------------------------------------------

/// Form body of `POST .../oauth/device_authorization`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorizationRequest {
    pub client_id: String,
    /// The `[app] name` of the instance.
    pub instance: String,
    pub hostname: String,
    pub os: String,
    pub version: String,
    /// A UUID the client creates once and keeps in its state folder.
    pub installation_id: String,
}

/// `200` answer of the device authorization endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    /// The 6-digit PIN the person types into the web page.
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    /// Minimum seconds between two polls of the token endpoint.
    pub interval: u64,
}

/// Form body of `POST .../oauth/token`, for both grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub grant_type: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl TokenRequest {
    pub fn device_code(device_code: impl Into<String>) -> Self {
        TokenRequest {
            grant_type: DEVICE_CODE_GRANT.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            device_code: Some(device_code.into()),
            refresh_token: None,
        }
    }

    pub fn refresh(refresh_token: impl Into<String>) -> Self {
        TokenRequest {
            grant_type: REFRESH_TOKEN_GRANT.to_owned(),
            client_id: CLIENT_ID.to_owned(),
            device_code: None,
            refresh_token: Some(refresh_token.into()),
        }
    }
}

/// `200` answer of the token endpoint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub integration_id: String,
}

// Tokens must never reach a log line, not even through `{:?}`.
impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"***")
            .field("integration_id", &self.integration_id)
            .finish()
    }
}

/// OAuth error codes of the token endpoint (`400 {"error": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenErrorCode {
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    AccessDenied,
    InvalidGrant,
    InvalidRequest,
    InvalidClient,
    UnsupportedGrantType,
}

/// Seconds added to the polling interval after each `slow_down` (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP_SECS: u64 = 5;

// ---------------------------------------------------------------------------
// §2 Assignment
// ---------------------------------------------------------------------------

/// `200` answer of `GET .../assignment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentResponse {
    pub integration: Integration,
}

/// What one integration imports. The emulator's control API takes the same
/// object without `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub kind: IntegrationKind,
    #[serde(default)]
    pub csv: Option<CsvSettings>,
    #[serde(default)]
    pub database: Option<DatabaseSettings>,
    /// §7: a real-time agent-state feed, on an integration of any kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime: Option<RealtimeSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    Csv,
    Database,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvSettings {
    /// Glob of the file names to import, matched case-insensitively.
    #[serde(default = "default_csv_pattern")]
    pub pattern: String,
}

fn default_csv_pattern() -> String {
    "*.csv".to_owned()
}

impl Default for CsvSettings {
    fn default() -> Self {
        CsvSettings {
            pattern: default_csv_pattern(),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSettings {
    /// `Driver={...};...` or `DSN=...;`. May hold a password: never log it
    /// unmasked.
    pub connection_string: String,
    /// IANA name of the database's time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub imports: Vec<DatabaseImport>,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("connection_string", &"<hidden>")
            .field("time_zone", &self.time_zone)
            .field("imports", &self.imports)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseImport {
    pub id: String,
    #[serde(rename = "type")]
    pub import_type: ImportType,
    pub query: String,
    #[serde(default = "default_every_seconds")]
    pub every_seconds: u64,
    #[serde(default = "default_reconcile_hours")]
    pub reconcile_hours: u64,
    #[serde(default)]
    pub backfill_days: u64,
}

fn default_every_seconds() -> u64 {
    900
}

fn default_reconcile_hours() -> u64 {
    24
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportType {
    Interval,
    Contact,
    AgentStatus,
}

impl ImportType {
    /// Column aliases a query of this type must return (product notes).
    pub fn required_columns(self) -> &'static [&'static str] {
        match self {
            ImportType::Interval => &[
                "queueidentifier",
                "queuename",
                "timestamp",
                "offered",
                "answered",
                "handlingtime",
                "channel",
            ],
            ImportType::Contact => &[
                "queueidentifier",
                "queuename",
                "timestamp",
                "answered",
                "duration",
                "channel",
            ],
            ImportType::AgentStatus => &["agentidentifier", "starttime", "endtime", "activity"],
        }
    }
}

/// Values the `channel` column may take.
pub const CHANNELS: &[&str] = &[
    "calls",
    "chats",
    "emails",
    "social_media",
    "documents",
    "cases",
];

// ---------------------------------------------------------------------------
// §3 Uploads
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadSource {
    Csv,
    Database,
}

/// Body of `POST .../uploads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateUploadRequest {
    pub idempotency_key: String,
    pub source: UploadSource,
    pub file_name: String,
    pub content_type: String,
    /// `gzip` when the bytes sent are gzip-compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// Size in bytes of the body of the PUT.
    pub size: u64,
    /// Lower-case hex sha256 of the body of the PUT.
    pub sha256: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

/// `201`: where to PUT the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadTarget {
    pub upload_id: String,
    pub url: String,
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub expires_in: u64,
}

/// `200`: this idempotency key is already committed; nothing more to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAlreadyCommitted {
    pub upload_id: String,
    pub status: CommitStatus,
}

/// Answer of `POST .../uploads`, told apart by status code (201 or 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateUploadResponse {
    Created(UploadTarget),
    AlreadyCommitted(UploadAlreadyCommitted),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitStatus {
    Committed,
}

/// `200` answer of `POST .../uploads/{id}/commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitResponse {
    pub import_id: String,
    pub status: CommitStatus,
}

// ---------------------------------------------------------------------------
// §4 Heartbeat
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub version: String,
    pub os: String,
    pub hostname: String,
    /// RFC 3339.
    pub started_at: String,
    pub state: ClientState,
    #[serde(default)]
    pub importers: Vec<ImporterHeartbeat>,
    #[serde(default)]
    pub spool: SpoolState,
    /// §7: the real-time feeds; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feeds: Vec<FeedHeartbeat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientState {
    Online,
    Limited,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImporterHeartbeat {
    pub id: String,
    pub state: String,
    #[serde(default)]
    pub last_success_at: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// A database import: the client's clock minus the database's at its
    /// last run, in milliseconds. Absent for other importers, from older
    /// clients, and when the database cannot tell its time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolState {
    pub files: u64,
    pub bytes: u64,
}

// ---------------------------------------------------------------------------
// §7 Real-time agent-state feeds
// ---------------------------------------------------------------------------

/// The `realtime` block of an integration: where the feed comes from and
/// how its lines read. Unknown fields are ignored (§7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealtimeSettings {
    pub mode: FeedMode,
    /// `listen`: the TCP port the ACD connects to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `connect`: the ACD servers, `host:port` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    pub format: FeedFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedMode {
    /// The ACD connects to the client (Avaya's Generic RTA).
    Listen,
    /// The client connects to each ACD server (Interactive Intelligence CIC).
    Connect,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedFormat {
    pub kind: FeedFormatKind,
    #[serde(default)]
    pub framing: Framing,
    #[serde(default)]
    pub encoding: FeedEncoding,
    /// `delimited` and `snapshot`: the field separator.
    #[serde(default = "default_feed_delimiter")]
    pub delimiter: String,
    /// `delimited` and `snapshot`: what each field is, in order; names other
    /// than `timestamp`, `agentidentifier`, `activity` and `reason` mark a
    /// field that is skipped.
    #[serde(default = "default_feed_fields")]
    pub fields: Vec<String>,
    /// chrono's `strftime` syntax; without it a timestamp is RFC 3339,
    /// `YYYY-MM-DD HH:MM:SS[.fff]` or seconds since 1970.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_format: Option<String>,
    /// IANA name of the zone of timestamps without an offset.
    #[serde(default = "default_feed_time_zone")]
    pub time_zone: String,
    /// `snapshot`: a line starting with this text starts a full refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_marker: Option<String>,
}

fn default_feed_delimiter() -> String {
    ";".to_owned()
}

fn default_feed_fields() -> Vec<String> {
    ["timestamp", "agentidentifier", "activity", "reason"]
        .map(str::to_owned)
        .to_vec()
}

fn default_feed_time_zone() -> String {
    "UTC".to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedFormatKind {
    Delimited,
    JsonLines,
    Snapshot,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    #[default]
    Lf,
    Crlf,
    StxEtx,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedEncoding {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "windows-1252")]
    Windows1252,
}

/// The activity of an agent missing from a snapshot refresh.
pub const LOGGED_OUT: &str = "logged_out";

/// The feed name of the `realtime` block (one feed per integration).
pub const REALTIME_FEED: &str = "realtime";

/// At most this many events in one batch (§7).
pub const MAX_BATCH_EVENTS: usize = 1_000;
/// At most this many bytes of JSON in one batch (§7).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One agent-state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealtimeEvent {
    /// One more than the previous event of this installation and feed.
    pub sequence: u64,
    pub agentidentifier: String,
    pub activity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339 with the offset of the feed's time zone.
    pub timestamp: String,
    /// RFC 3339 UTC with milliseconds: when the client read the line.
    pub received_at: String,
}

/// Body of `POST .../realtime/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealtimeBatch {
    pub idempotency_key: String,
    pub feed: String,
    pub events: Vec<RealtimeEvent>,
}

/// `202 {"accepted": N}` or `200 {"status": "duplicate"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealtimeAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The feed's state as the heartbeat reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedHeartbeat {
    pub feed: String,
    /// `listening`, `connected`, `connecting`, `stopped` or `failed`.
    pub state: String,
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default)]
    pub events_last_minute: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<String>,
    #[serde(default)]
    pub parse_errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

// ---------------------------------------------------------------------------
// §5 Errors
// ---------------------------------------------------------------------------

/// Every error body: `{"error": "<code>", "message": "<human text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub message: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: error.into(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// §6 The emulator's inspection and control API (development and tests only)
// ---------------------------------------------------------------------------

/// Bodies of the cloud emulator's `/_emulator/...` API. Tests of both sides
/// read them, so they live here with the protocol proper.
pub mod emulator {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use super::{Heartbeat, UploadSource};

    pub const INTEGRATIONS: &str = "/_emulator/integrations";
    pub const CONNECT: &str = "/_emulator/connect";
    pub const IMPORTS: &str = "/_emulator/imports";
    pub const CLIENTS: &str = "/_emulator/clients";
    pub const FAULTS: &str = "/_emulator/faults";
    pub const REALTIME: &str = "/_emulator/realtime";
    /// The page where a person types the PIN.
    pub const INTEGRATIONS_PAGE: &str = "/account/integrations";

    /// `GET /_emulator/imports/{import_id}/content`
    pub fn import_content(import_id: &str) -> String {
        format!("{IMPORTS}/{import_id}/content")
    }

    /// `201` answer of `POST /_emulator/integrations`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CreatedIntegration {
        pub id: String,
    }

    /// Body of `POST /_emulator/connect`: what the person types on the page.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ConnectRequest {
        pub pin: String,
        pub integration_id: String,
    }

    /// `200` answer of `POST /_emulator/connect`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ConnectResponse {
        pub integration_id: String,
        pub instance: String,
        pub hostname: String,
    }

    /// One committed import, as `GET /_emulator/imports` lists it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ImportRecord {
        pub import_id: String,
        pub integration_id: String,
        pub idempotency_key: String,
        pub source: UploadSource,
        pub file_name: String,
        #[serde(default)]
        pub content_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub content_encoding: Option<String>,
        /// Bytes as uploaded (compressed when `content_encoding` is set).
        pub size: u64,
        pub sha256: String,
        #[serde(default)]
        pub metadata: BTreeMap<String, serde_json::Value>,
        pub committed_at: DateTime<Utc>,
        /// Commits refused because this idempotency key was already committed.
        pub duplicates: u64,
    }

    /// One accepted batch of real-time events (`GET /_emulator/realtime`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RealtimeRecord {
        pub integration_id: String,
        pub idempotency_key: String,
        pub feed: String,
        pub stored_at: DateTime<Utc>,
        pub events: Vec<super::RealtimeEvent>,
        /// Posts refused as duplicates of this key.
        pub duplicates: u64,
    }

    /// The client connected to one integration (`GET /_emulator/clients`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ClientRecord {
        pub integration_id: String,
        pub instance: String,
        pub hostname: String,
        pub version: String,
        #[serde(default)]
        pub os: String,
        #[serde(default)]
        pub installation_id: String,
        pub connected_at: DateTime<Utc>,
        pub last_heartbeat: Option<DateTime<Utc>>,
        /// The latest heartbeat body, as the client sent it.
        pub heartbeat: Option<Heartbeat>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum FaultMode {
        /// Answer with `status` (and `Retry-After` when set) instead of the handler.
        Status,
        /// Drop the TCP connection with a reset before any answer.
        Reset,
        /// Wait `delay_ms`, then handle the request normally.
        Delay,
        /// Handle the request, then close the connection halfway through the body.
        Truncate,
    }

    /// Body of `POST /_emulator/faults`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct FaultRule {
        pub path_prefix: String,
        pub mode: FaultMode,
        #[serde(default = "default_fault_status")]
        pub status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry_after: Option<u64>,
        #[serde(default)]
        pub delay_ms: u64,
        /// How many requests the rule hits; `None`: every matching request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub count: Option<u64>,
        #[serde(default = "default_fault_probability")]
        pub probability: f64,
    }

    fn default_fault_status() -> u16 {
        503
    }

    fn default_fault_probability() -> f64 {
        1.0
    }

    impl FaultRule {
        pub fn new(path_prefix: impl Into<String>, mode: FaultMode) -> Self {
            FaultRule {
                path_prefix: path_prefix.into(),
                mode,
                status: default_fault_status(),
                retry_after: None,
                delay_ms: 0,
                count: None,
                probability: default_fault_probability(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_id_from_the_cloud_stays_one_path_segment() {
        assert_eq!(
            paths::commit("upl_1a2B-3.c~d"),
            "/api/cloud-link/v1/uploads/upl_1a2B-3.c~d/commit"
        );
        assert_eq!(
            paths::commit("../../oauth/token?x=1#"),
            "/api/cloud-link/v1/uploads/..%2F..%2Foauth%2Ftoken%3Fx%3D1%23/commit"
        );
        assert_eq!(
            paths::commit(".."),
            "/api/cloud-link/v1/uploads/%2E%2E/commit"
        );
        assert_eq!(
            paths::commit("ü b"),
            "/api/cloud-link/v1/uploads/%C3%BC%20b/commit"
        );
    }

    #[test]
    fn assignment_example_of_the_protocol_parses() {
        let body = r#"{"integration": {
          "id": "int_1", "name": "Avaya CMS interval data",
          "kind": "database", "csv": null,
          "database": {
            "connection_string": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Pwd=secret",
            "time_zone": "Europe/Berlin",
            "imports": [
              {"id": "interval", "type": "interval",
               "query": "SELECT 1 WHERE ts >= ? AND ts < ?",
               "every_seconds": 900, "reconcile_hours": 24, "backfill_days": 1095},
              {"id": "agent_status", "type": "agent_status", "query": "SELECT 2"}]}}}"#;
        let parsed: AssignmentResponse = serde_json::from_str(body).unwrap();
        let db = parsed.integration.database.as_ref().unwrap();
        assert_eq!(parsed.integration.kind, IntegrationKind::Database);
        assert_eq!(db.imports[1].import_type, ImportType::AgentStatus);
        assert_eq!(db.imports[1].every_seconds, 900);
        assert_eq!(db.imports[1].reconcile_hours, 24);
        assert!(!format!("{db:?}").contains("secret"));
    }

    #[test]
    fn token_debug_hides_secrets() {
        let t = TokenResponse {
            access_token: "at-123".into(),
            token_type: "Bearer".into(),
            expires_in: 3600,
            refresh_token: "rt-456".into(),
            integration_id: "int_1".into(),
        };
        let shown = format!("{t:?}");
        assert!(!shown.contains("at-123") && !shown.contains("rt-456"));
    }

    #[test]
    fn token_error_codes_use_the_oauth_spelling() {
        let e: TokenErrorCode = serde_json::from_str("\"authorization_pending\"").unwrap();
        assert_eq!(e, TokenErrorCode::AuthorizationPending);
        assert_eq!(
            serde_json::to_string(&TokenErrorCode::SlowDown).unwrap(),
            "\"slow_down\""
        );
    }

    #[test]
    fn fault_rule_defaults_fill_the_omitted_fields() {
        let rule: emulator::FaultRule =
            serde_json::from_str(r#"{"path_prefix": "/api", "mode": "status"}"#).unwrap();
        assert_eq!(rule.status, 503);
        assert_eq!(rule.count, None);
        assert_eq!(rule.probability, 1.0);
        assert_eq!(rule.mode, emulator::FaultMode::Status);
    }
}
