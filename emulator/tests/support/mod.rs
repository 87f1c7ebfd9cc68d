//! Shared helpers of the emulator's tests: start the built binary on a free
//! port, talk to it over real HTTP, and pair a device the way a client does.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use injixo_cloud_link_protocol::emulator::{ConnectRequest, CreatedIntegration, ImportRecord};
use injixo_cloud_link_protocol::{
    paths, CreateUploadRequest, DeviceAuthorizationResponse, TokenResponse, UploadSource,
    UploadTarget, CLIENT_ID, DEVICE_CODE_GRANT,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running emulator; killed when dropped.
pub struct Emulator {
    child: Child,
    pub base_url: String,
    pub address: SocketAddr,
    log_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Emulator {
    pub fn start(args: &[&str]) -> Emulator {
        Self::try_start(args).unwrap_or_else(|e| panic!("emulator did not start: {e}"))
    }

    pub fn try_start(args: &[&str]) -> Result<Emulator, String> {
        let log_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let log_path = log_dir.path().join("emulator.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_injixo-cloud-emulator"));
        if !args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .args(args)
            .env_remove("EMULATOR_S3_ACCESS_KEY")
            .env_remove("EMULATOR_S3_SECRET_KEY")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot spawn the emulator: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = sender.send(first);
            // Keep draining so the emulator never blocks on a full pipe.
            for _ in lines {}
        });
        let first_line = match receiver.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("no `listening on` line ({other:?}); log:\n{log}"));
            }
        };
        let base_url = first_line
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {first_line:?}"))?
            .to_owned();
        let address = base_url
            .split("://")
            .nth(1)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("no address in {first_line:?}"))?;
        Ok(Emulator {
            child,
            base_url,
            address,
            log_path,
            _log_dir: log_dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Everything the emulator logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the process and waits for it, e.g. before a restart on the same data dir.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(20))
        .disable_redirects()
        .finish()
}

pub async fn send_json(
    request: awc::ClientRequest,
    body: &Value,
) -> (StatusCode, awc::http::header::HeaderMap, Value) {
    let mut response = request.send_json(body).await.expect("request sent");
    let headers = response.headers().clone();
    let bytes = response.body().limit(10 << 20).await.expect("body read");
    (response.status(), headers, parse(&bytes))
}

pub async fn send_form(request: awc::ClientRequest, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut response = request.send_form(&form).await.expect("request sent");
    let bytes = response.body().await.expect("body read");
    (response.status(), parse(&bytes))
}

pub async fn send(
    request: awc::ClientRequest,
) -> (StatusCode, awc::http::header::HeaderMap, Vec<u8>) {
    let mut response = request.send().await.expect("request sent");
    let headers = response.headers().clone();
    let bytes = response.body().limit(10 << 20).await.expect("body read");
    (response.status(), headers, bytes.to_vec())
}

fn parse(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    }
}

pub fn typed<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("unexpected body {value}: {e}"))
}

/// Asserts the protocol's error shape and returns the error code.
pub fn error_code(body: &Value) -> String {
    let code = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"));
    assert!(body["message"].is_string(), "no message in {body}");
    code.to_owned()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub async fn create_csv_integration(emulator: &Emulator, name: &str) -> String {
    let (status, _, body) = send_json(
        client().post(emulator.url("/_emulator/integrations")),
        &json!({"name": name, "kind": "csv", "csv": {"pattern": "*.csv"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    typed::<CreatedIntegration>(body).id
}

pub async fn start_authorization(
    emulator: &Emulator,
    instance: &str,
) -> DeviceAuthorizationResponse {
    let (status, body) = send_form(
        client().post(emulator.url(paths::DEVICE_AUTHORIZATION)),
        &[
            ("client_id", CLIENT_ID),
            ("instance", instance),
            ("hostname", "test-host"),
            ("os", "linux"),
            ("version", "0.1.0"),
            ("installation_id", "7d1a0c1e-0000-4000-8000-000000000001"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    typed(body)
}

pub async fn connect(
    emulator: &Emulator,
    pin: &str,
    integration_id: &str,
) -> (StatusCode, awc::http::header::HeaderMap, Value) {
    let request = ConnectRequest {
        pin: pin.to_owned(),
        integration_id: integration_id.to_owned(),
    };
    send_json(
        client().post(emulator.url("/_emulator/connect")),
        &serde_json::to_value(request).unwrap(),
    )
    .await
}

pub async fn poll_token(emulator: &Emulator, device_code: &str) -> (StatusCode, Value) {
    send_form(
        client().post(emulator.url(paths::TOKEN)),
        &[
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", CLIENT_ID),
            ("device_code", device_code),
        ],
    )
    .await
}

pub async fn refresh(emulator: &Emulator, refresh_token: &str) -> (StatusCode, Value) {
    send_form(
        client().post(emulator.url(paths::TOKEN)),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Device authorization, PIN typed for `integration_id`, first token.
pub async fn pair(emulator: &Emulator, integration_id: &str, instance: &str) -> TokenResponse {
    let authorization = start_authorization(emulator, instance).await;
    let (status, _, body) = connect(emulator, &authorization.user_code, integration_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = poll_token(emulator, &authorization.device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    typed(body)
}

pub fn bearer(request: awc::ClientRequest, tokens: &TokenResponse) -> awc::ClientRequest {
    request.bearer_auth(&tokens.access_token)
}

pub fn upload_request(key: &str, body: &[u8], rows: u64) -> CreateUploadRequest {
    CreateUploadRequest {
        idempotency_key: key.to_owned(),
        source: UploadSource::Csv,
        file_name: "stats.csv".to_owned(),
        content_type: "text/csv".to_owned(),
        content_encoding: None,
        size: body.len() as u64,
        sha256: sha256_hex(body),
        metadata: [("rows".to_owned(), json!(rows))].into_iter().collect(),
    }
}

/// `POST /uploads`, expecting 201.
pub async fn create_upload(
    emulator: &Emulator,
    tokens: &TokenResponse,
    request: &CreateUploadRequest,
) -> UploadTarget {
    let (status, _, body) = send_json(
        bearer(client().post(emulator.url(paths::UPLOADS)), tokens),
        &serde_json::to_value(request).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    typed(body)
}

/// The PUT a well-behaved client makes: the returned headers plus Content-Length.
pub async fn put_body(target: &UploadTarget, body: &[u8]) -> (StatusCode, Vec<u8>) {
    let mut request = client().put(&target.url);
    for (name, value) in &target.headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    let mut response = request.send_body(body.to_vec()).await.expect("PUT sent");
    let bytes = response.body().await.expect("PUT answer read");
    (response.status(), bytes.to_vec())
}

pub async fn commit(
    emulator: &Emulator,
    tokens: &TokenResponse,
    upload_id: &str,
) -> (StatusCode, Value) {
    let (status, _, body) = send_json(
        bearer(
            client().post(emulator.url(&paths::commit(upload_id))),
            tokens,
        ),
        &Value::Null,
    )
    .await;
    (status, body)
}

/// Create, PUT and commit; returns the import id.
pub async fn upload(
    emulator: &Emulator,
    tokens: &TokenResponse,
    key: &str,
    body: &[u8],
    rows: u64,
) -> String {
    let target = create_upload(emulator, tokens, &upload_request(key, body, rows)).await;
    let (status, answer) = put_body(&target, body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (status, answer) = commit(emulator, tokens, &target.upload_id).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["import_id"].as_str().expect("import_id").to_owned()
}

pub async fn imports(emulator: &Emulator, integration_id: Option<&str>) -> Vec<ImportRecord> {
    let path = match integration_id {
        Some(id) => format!("/_emulator/imports?integration_id={id}"),
        None => "/_emulator/imports".to_owned(),
    };
    let (status, _, body) = send(client().get(emulator.url(&path))).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).expect("imports parse")
}

pub async fn content(emulator: &Emulator, import_id: &str) -> (StatusCode, Vec<u8>) {
    let (status, _, body) =
        send(client().get(emulator.url(&format!("/_emulator/imports/{import_id}/content")))).await;
    (status, body)
}

/// A request written byte by byte, for what HTTP clients refuse to send
/// (chunked PUT to S3, no Content-Length). Returns status line and body.
pub fn raw_http(address: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).expect("write request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Path and query of a URL, for [`raw_http`].
pub fn path_and_query(url: &str) -> String {
    let rest = url.split("://").nth(1).expect("absolute URL");
    rest[rest.find('/').expect("a path")..].to_owned()
}

/// Polls `check` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nobody listens on right now, for servers that cannot take port 0.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn require_file(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} not found at {}: run scripts/setup to install it",
        path.display()
    );
}
