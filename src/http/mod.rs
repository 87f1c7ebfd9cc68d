//! The client's HTTP stack: awc over rustls, through the proxy of
//! `https_proxy` when there is one, with errors described for a person.
//!
//! - [`HttpClientFactory`] (Send + Sync + Clone) holds the TLS roots (read
//!   again after a certificate failure, at most once a minute), the proxy
//!   settings and the User-Agent; each arbiter asks it for its own
//!   [`awc::Client`], which is `!Send`.
//! - [`send`], [`send_json`], [`send_form`] send one request with its own
//!   timeout and return a [`Response`] (2xx or 304, body read) or an
//!   [`HttpError`] that says whether a retry makes sense.
//!
//! ```no_run
//! # async fn f() -> Result<(), injixo_cloud_link::http::HttpError> {
//! use injixo_cloud_link::http::{self, HttpClientFactory, API_TIMEOUT};
//! use injixo_cloud_link::protocol::{self, AssignmentResponse};
//! let factory = HttpClientFactory::from_env(env!("CARGO_PKG_VERSION")).unwrap();
//! let client = factory.client();
//! let req = client.get(format!("https://www.injixo.com{}", protocol::paths::ASSIGNMENT));
//! let assignment: AssignmentResponse = http::send(req, API_TIMEOUT, ()).await?.json()?;
//! # Ok(()) }
//! ```
//!
//! Plain `http://` is refused except to loopback, both in [`send`] and in
//! the connector under the awc client, so a URL the cloud hands out at run
//! time cannot make the client speak clear text over a network.

mod connector;
pub mod error;
pub mod proxy;
pub mod tls;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::body::MessageBody;
use awc::http::header::{AsHeaderName, HeaderMap, USER_AGENT};
use awc::http::{StatusCode, Uri};
use awc::{ClientRequest, SendClientRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::{HttpError, ProxyConfigError, ProxyError, ProxyUrlError, SetupError};
pub use proxy::{NoProxy, ProxyCredentials, ProxySettings, ProxyUrl};
pub use tls::TrustedRoots;

/// The timeout of an API call (protocol §1–4), connection included.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);

/// The limit for a TCP connection (through the proxy tunnel, when there is
/// one), and separately for the TLS handshake after it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest answer body read into memory. API answers are small; this
/// only stops a broken or hostile server from filling the memory.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// The slowest uplink an upload must still finish on (≈ 0.5 Mbit/s).
const UPLOAD_MIN_BYTES_PER_SEC: u64 = 64 * 1024;

/// The timeout for uploading `bytes`: an API call's plus the time the
/// slowest supported uplink needs for the bytes.
pub fn upload_timeout(bytes: u64) -> Duration {
    API_TIMEOUT + Duration::from_secs(bytes.div_ceil(UPLOAD_MIN_BYTES_PER_SEC))
}

/// Builds awc clients: one per arbiter, since `awc::Client` is `!Send`.
/// Cheap to clone; the TLS configuration is built once, and its verifier
/// ([`tls::ReloadingVerifier`]) reads the trusted roots again after a
/// certificate failure, so clients made at start trust a CA installed later.
#[derive(Clone)]
pub struct HttpClientFactory {
    tls: Arc<rustls::ClientConfig>,
    proxy: Arc<ProxySettings>,
    user_agent: Arc<str>,
}

impl HttpClientFactory {
    /// The settings of a running service: the OS trust store plus the
    /// bundled roots, and the proxy of `https_proxy` / `http_proxy` /
    /// `no_proxy` (either case).
    pub fn from_env(version: &str) -> Result<Self, SetupError> {
        Self::new(version, ProxySettings::from_env()?, &TrustedRoots::system())
    }

    /// Explicit settings (tests, or settings from a configuration file).
    pub fn new(
        version: &str,
        proxy: ProxySettings,
        roots: &TrustedRoots,
    ) -> Result<Self, SetupError> {
        let tls = roots.client_config()?;
        match proxy.https_proxy() {
            Some(p) => tracing::info!("HTTPS goes through proxy {p}"),
            None => tracing::debug!("no HTTPS proxy"),
        }
        if !proxy.no_proxy().ignored().is_empty() {
            tracing::warn!(
                "no_proxy: ignored entries that are neither a host, an IP nor a CIDR block: {}",
                proxy.no_proxy().ignored().join(", ")
            );
        }
        Ok(HttpClientFactory {
            tls,
            proxy: Arc::new(proxy),
            user_agent: crate::protocol::user_agent(version).into(),
        })
    }

    /// A client for the current arbiter. Its defaults: [`API_TIMEOUT`] per
    /// request, no redirects (the protocol has none; a redirect is a captive
    /// portal or a misconfiguration, better reported than followed), the
    /// protocol's User-Agent.
    pub fn client(&self) -> awc::Client {
        let connector = awc::Connector::new()
            .connector(connector::TunnelConnector::new(
                self.proxy.clone(),
                self.user_agent.clone(),
            ))
            .timeout(CONNECT_TIMEOUT)
            .handshake_timeout(CONNECT_TIMEOUT)
            .rustls_0_23(self.tls.clone());
        awc::Client::builder()
            .connector(connector)
            .timeout(API_TIMEOUT)
            .disable_redirects()
            .add_default_header((USER_AGENT, &*self.user_agent))
            .finish()
    }

    pub fn proxy(&self) -> &ProxySettings {
        &self.proxy
    }

    pub fn user_agent(&self) -> &str {
        &self.user_agent
    }
}

impl fmt::Debug for HttpClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientFactory")
            .field("proxy", &self.proxy)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// A successful answer (2xx, or 304 Not Modified), body read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    target: String,
}

impl Response {
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let content_type = self.header(awc::http::header::CONTENT_TYPE);
            let detail = match content_type {
                Some(t) if !t.to_ascii_lowercase().contains("json") => {
                    format!("{e} (the answer is {t}, not JSON: a proxy or captive portal page?)")
                }
                Some(_) => e.to_string(),
                None => format!("{e} (the answer has no content type)"),
            };
            HttpError::Decode {
                target: self.target.clone(),
                detail,
            }
        })
    }

    /// A header's value, when it is text.
    pub fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The server as `host:port`.
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// Sends `req` with `body` (`()` for none), allowing `timeout` for the whole
/// exchange: connection, request, answer and its body.
pub async fn send<B: MessageBody + 'static>(
    req: ClientRequest,
    timeout: Duration,
    body: B,
) -> Result<Response, HttpError> {
    exchange(req, timeout, move |r| r.send_body(body)).await
}

/// Sends `value` as a JSON body.
pub async fn send_json<T: Serialize>(
    req: ClientRequest,
    timeout: Duration,
    value: &T,
) -> Result<Response, HttpError> {
    let body = serde_json::to_vec(value).map_err(|e| HttpError::InvalidRequest {
        detail: format!("cannot encode the JSON body: {e}"),
    })?;
    let req = req.insert_header((awc::http::header::CONTENT_TYPE, "application/json"));
    exchange(req, timeout, move |r| r.send_body(body)).await
}

/// Sends `value` as an `application/x-www-form-urlencoded` body.
pub async fn send_form<T: Serialize>(
    req: ClientRequest,
    timeout: Duration,
    value: &T,
) -> Result<Response, HttpError> {
    exchange(req, timeout, move |r| r.send_form(value)).await
}

async fn exchange(
    req: ClientRequest,
    timeout: Duration,
    send: impl FnOnce(ClientRequest) -> SendClientRequest,
) -> Result<Response, HttpError> {
    let started = Instant::now();
    let uri = req.get_uri().clone();
    check_url(&uri)?;
    let target = target_of(&uri);
    let method = req.get_method().clone();
    let resp = send(req.timeout(timeout))
        .await
        .map_err(|e| HttpError::from_send_error(e, &target, timeout))?;
    // awc's request timeout stops at the answer's head; the body gets
    // what is left of the same budget.
    let left = timeout.saturating_sub(started.elapsed());
    let mut resp = resp.timeout(left);
    let status = resp.status();
    let body = resp
        .body()
        .limit(MAX_BODY)
        .await
        .map_err(|e| HttpError::from_payload_error(e, &target, timeout))?;
    tracing::debug!(
        "{method} {} -> {status} in {} ms",
        display_url(&uri),
        started.elapsed().as_millis()
    );
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        Ok(Response {
            status,
            headers: resp.headers().clone(),
            body: body.to_vec(),
            target,
        })
    } else {
        Err(HttpError::from_status(
            &target,
            status,
            resp.headers(),
            &body,
        ))
    }
}

/// Refuses a URL the client must not use: anything but `https://`, except
/// plain `http://` to loopback (the emulator in tests, a local S3).
pub fn check_url(uri: &Uri) -> Result<(), HttpError> {
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(HttpError::InvalidRequest {
            detail: format!("no host in the URL {}", display_url(uri)),
        });
    };
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("http") && is_loopback_host(host) => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("http") => Err(HttpError::InsecureUrl {
            url: display_url(uri),
        }),
        _ => Err(HttpError::InvalidRequest {
            detail: format!("unsupported URL scheme in {}", display_url(uri)),
        }),
    }
}

/// `localhost`, 127.0.0.0/8 or ::1 (brackets allowed).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host:port` of a URL (the scheme's port when none is given): what error
/// messages name.
pub fn target_of(uri: &Uri) -> String {
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("http") => 80,
        _ => 443,
    });
    proxy::authority(uri.host().unwrap_or(""), port)
}

/// A URL as messages show it: without user info and query, since a
/// pre-signed upload URL carries its signature in the query.
pub fn display_url(uri: &Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or(""),
        target_of(uri),
        uri.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://www.injixo.com/x",
            "http://127.0.0.1:8080/x",
            "http://127.8.9.10/x",
            "http://localhost:1/x",
            "http://LOCALHOST./x",
            "http://[::1]:8080/x",
        ] {
            assert!(check_url(&uri(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "http://www.injixo.com/x",
            "http://10.0.0.1/x",
            "http://[::2]/x",
            "http://localhost.evil.example/x",
            "http://128.0.0.1/x",
        ] {
            let e = check_url(&uri(refused)).unwrap_err();
            assert!(
                matches!(e, HttpError::InsecureUrl { .. }),
                "{refused}: {e:?}"
            );
        }
        let e = check_url(&uri("ftp://127.0.0.1/x")).unwrap_err();
        assert!(matches!(e, HttpError::InvalidRequest { .. }), "{e:?}");
        assert!(check_url(&uri("/relative")).is_err());
    }

    #[test]
    fn messages_show_urls_without_query_or_user_info() {
        let u = uri("http://user:pw@s3.example:8080/b/k?X-Amz-Signature=abc");
        assert_eq!(display_url(&u), "http://s3.example:8080/b/k");
        let e = check_url(&u).unwrap_err().to_string();
        assert!(!e.contains("abc") && !e.contains("pw"), "{e}");
        assert_eq!(
            target_of(&uri("https://www.injixo.com/")),
            "www.injixo.com:443"
        );
        assert_eq!(target_of(&uri("http://[::1]/")), "[::1]:80");
    }

    #[test]
    fn upload_timeouts_grow_with_size() {
        assert_eq!(upload_timeout(0), API_TIMEOUT);
        assert_eq!(upload_timeout(1), API_TIMEOUT + Duration::from_secs(1));
        assert_eq!(
            upload_timeout(100 * 1024 * 1024),
            API_TIMEOUT + Duration::from_secs(1600)
        );
    }

    #[test]
    fn the_factory_is_send_sync_and_clone() {
        fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
        assert_send_sync_clone::<HttpClientFactory>();
        assert_send_sync_clone::<ProxySettings>();
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HttpError>();
        assert_send_sync::<SetupError>();
    }
}
