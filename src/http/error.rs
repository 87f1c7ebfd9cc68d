//! Errors of the HTTP stack, described for the person reading the log.
//!
//! Every message is complete on its own: target `host:port`, the OS error
//! with its code, and a hint. They carry no `source()` on purpose, so that
//! `report::chain` does not repeat the cause, and a log line with `{err}`
//! alone tells the whole story. No message carries a password or a query
//! string (pre-signed upload URLs have their signature there): targets are
//! `host:port`, URLs are shown without their query, proxies as `host:port`.

use std::io;
use std::time::Duration;

use awc::error::{ConnectError, PayloadError, SendRequestError};
use awc::http::{header::HeaderMap, StatusCode};

use crate::protocol::ErrorBody;

/// The longest `Retry-After` honoured: protocol §5 caps backoff at about
/// five minutes, and a broken server must not park the client for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A request that did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No TCP connection to the server (DNS, refused, unreachable, timeout).
    #[error("cannot connect to {target}: {cause}; {hint}")]
    Connect {
        target: String,
        cause: io::Error,
        hint: String,
    },

    /// The proxy did not open the tunnel.
    #[error(transparent)]
    Proxy(ProxyError),

    /// The TLS handshake failed: an untrusted or wrong certificate, usually.
    #[error("TLS with {target} failed: {detail}")]
    Tls {
        target: String,
        detail: String,
        /// The server's certificate was refused: a matter of the trust
        /// store, which the client reads again (see [`HttpError::retry_cap`]).
        certificate_refused: bool,
    },

    /// No complete answer within the request's timeout.
    #[error("no complete answer from {target} within {after:?}")]
    Timeout { target: String, after: Duration },

    /// Plain `http://` to a host that is not loopback. Refused before any
    /// connection: the data must never cross a network in clear text.
    #[error(
        "refusing plain http:// to {url}: only https:// is allowed, \
         except to loopback (localhost, 127.0.0.0/8, ::1)"
    )]
    InsecureUrl { url: String },

    /// The request could not be built: a malformed URL or header.
    #[error("invalid request: {detail}")]
    InvalidRequest { detail: String },

    /// The server answered with an error status (or an unexpected one).
    #[error("{target} answered {status}{}{}", describe_body(body.as_ref()), describe_redirect(location.as_deref()))]
    Status {
        target: String,
        status: StatusCode,
        body: Option<ErrorBody>,
        retry_after: Option<Duration>,
        /// Where a 3xx answer points (without its query), for the message:
        /// redirects are never followed.
        location: Option<String>,
    },

    /// The connection broke while the request or the answer was under way.
    #[error("the exchange with {target} failed: {detail}")]
    Exchange { target: String, detail: String },

    /// A 2xx answer whose body is not what the protocol promises (or an
    /// HTML page from a proxy or captive portal).
    #[error("the answer from {target} is not the expected JSON: {detail}")]
    Decode { target: String, detail: String },
}

fn describe_redirect(location: Option<&str>) -> String {
    match location {
        Some(to) => format!(
            ", a redirect to {to} that the client does not follow (the protocol has \
             none: a proxy, captive portal or wrong [cloud] url?)"
        ),
        None => String::new(),
    }
}

fn describe_body(body: Option<&ErrorBody>) -> String {
    match body {
        Some(b) if b.message.is_empty() => format!(": {}", b.error),
        Some(b) => format!(": {} ({})", b.message, b.error),
        None => String::new(),
    }
}

impl From<ProxyError> for HttpError {
    fn from(e: ProxyError) -> Self {
        HttpError::Proxy(e)
    }
}

impl HttpError {
    /// Whether sending the same request again later may succeed (protocol
    /// §5): network, proxy and TLS trouble, 408, 429 and 5xx are; the other
    /// 4xx, and requests we refuse to send, are not. Only a non-retryable
    /// error may reject an upload for good, so anything that is not the
    /// request's own fault (a proxy's HTML page, a 3xx from a captive
    /// portal, a certificate a firewall substitutes) counts as retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            HttpError::Status { status, .. } => {
                let code = status.as_u16();
                !(400..500).contains(&code) || code == 408 || code == 429
            }
            HttpError::InsecureUrl { .. } | HttpError::InvalidRequest { .. } => false,
            _ => true,
        }
    }

    /// The longest a retry of this request should wait, whatever the
    /// backoff has grown to. A refused certificate is fixed on this machine
    /// (an admin installs the CA of a TLS-inspecting proxy), and the trust
    /// store is read again at the first refusal a minute or more after the
    /// last read. Retrying at least every 15 s makes that refusal come soon
    /// after the minute, so the client resumes about a minute after the
    /// fix; it costs the cloud nothing, since no request gets through a
    /// refused handshake (a TLS-inspecting proxy sees one handshake).
    pub fn retry_cap(&self) -> Option<Duration> {
        matches!(
            self,
            HttpError::Tls {
                certificate_refused: true,
                ..
            }
        )
        .then_some(super::tls::TRUST_RELOAD_INTERVAL / 4)
    }

    /// The delay the server asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The status code, for an answer with an error status.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of the body (`{"error": "<code>"}`), e.g.
    /// `authorization_pending` from the token endpoint.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            HttpError::Status { body: Some(b), .. } => Some(&b.error),
            _ => None,
        }
    }

    /// An error status answer: the body is kept when it is protocol §5's
    /// `{"error", "message"}`, and `Retry-After` is read (capped).
    pub fn from_status(target: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let retry_after = headers
            .get(awc::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::backoff::retry_after(v, MAX_RETRY_AFTER));
        let location = status.is_redirection().then(|| {
            headers
                .get(awc::http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<awc::http::Uri>().ok())
                .filter(|uri| uri.host().is_some())
                .map_or_else(
                    || "an address it does not name".to_owned(),
                    |uri| super::display_url(&uri),
                )
        });
        HttpError::Status {
            target: target.to_owned(),
            status,
            body: serde_json::from_slice(body).ok(),
            retry_after,
            location,
        }
    }

    /// Describes what awc reports for a request to `target` (`host:port`)
    /// that had `timeout` to complete. `https` tells whether a connection
    /// that closes early was a TLS handshake.
    pub fn from_send_error(err: SendRequestError, target: &str, timeout: Duration) -> Self {
        let target = target.to_owned();
        match err {
            SendRequestError::Url(e) => HttpError::InvalidRequest {
                detail: e.to_string(),
            },
            SendRequestError::Http(e) => HttpError::InvalidRequest {
                detail: e.to_string(),
            },
            SendRequestError::Connect(e) => Self::from_connect_error(e, target),
            SendRequestError::Timeout => HttpError::Timeout {
                target,
                after: timeout,
            },
            SendRequestError::Send(e) if e.kind() == io::ErrorKind::TimedOut => {
                HttpError::Timeout {
                    target,
                    after: timeout,
                }
            }
            SendRequestError::Send(e) => HttpError::Exchange {
                target,
                detail: format!("sending the request: {e}"),
            },
            SendRequestError::Response(e) => HttpError::Exchange {
                target,
                detail: format!("reading the answer: {e}"),
            },
            SendRequestError::Body(e) => HttpError::Exchange {
                target,
                detail: format!("sending the body: {e}"),
            },
            other => HttpError::Exchange {
                target,
                detail: other.to_string(),
            },
        }
    }

    /// Describes a failure to read the answer's body.
    pub fn from_payload_error(err: PayloadError, target: &str, timeout: Duration) -> Self {
        match err {
            PayloadError::Io(e) if e.kind() == io::ErrorKind::TimedOut => HttpError::Timeout {
                target: target.to_owned(),
                after: timeout,
            },
            PayloadError::Overflow => HttpError::Exchange {
                target: target.to_owned(),
                detail: format!(
                    "the answer's body is larger than {} MiB, the most the client reads; \
                     it stopped reading",
                    super::MAX_BODY >> 20
                ),
            },
            other => HttpError::Exchange {
                target: target.to_owned(),
                detail: format!("reading the answer's body: {other}"),
            },
        }
    }

    fn from_connect_error(err: ConnectError, target: String) -> Self {
        let port = target.rsplit(':').next().unwrap_or("443").to_owned();
        match err {
            ConnectError::Io(e) => Self::from_connect_io(e, target, &port),
            ConnectError::Resolver(e) => {
                // actix-tls boxes the resolver's io::Error without Send;
                // keep its text (it names the failure) in a fresh one.
                let cause = match e.downcast::<io::Error>() {
                    Ok(io) => *io,
                    Err(other) => io::Error::other(other.to_string()),
                };
                HttpError::Connect {
                    target,
                    cause,
                    hint: hint_dns(),
                }
            }
            ConnectError::NoRecords => HttpError::Connect {
                target,
                cause: io::Error::new(io::ErrorKind::NotFound, "no DNS records for the host"),
                hint: hint_dns(),
            },
            ConnectError::Timeout => HttpError::Connect {
                target,
                cause: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no connection within {:?} (TCP, proxy tunnel or TLS handshake)",
                        super::CONNECT_TIMEOUT
                    ),
                ),
                hint: format!(
                    "is outbound TCP {port} allowed? A firewall that drops packets \
                     looks like this; if this network needs a proxy, set https_proxy"
                ),
            },
            ConnectError::SslIsNotSupported => HttpError::Tls {
                target,
                detail: "TLS is not configured in this build".into(),
                certificate_refused: false,
            },
            other => HttpError::Exchange {
                target,
                detail: other.to_string(),
            },
        }
    }

    fn from_connect_io(e: io::Error, target: String, port: &str) -> Self {
        // Our connector reports proxy failures and refused URLs inside an
        // io::Error, the only error type awc lets a connector return.
        let e = match e.downcast::<HttpError>() {
            Ok(ours) => return ours,
            Err(e) => e,
        };
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return HttpError::Tls {
                target,
                detail: describe_tls(tls),
                certificate_refused: matches!(tls, rustls::Error::InvalidCertificate(_)),
            };
        }
        // TCP connects never end in EOF; a TLS handshake cut short does.
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return HttpError::Tls {
                target,
                detail: "the server closed the connection during the TLS handshake \
                         (a firewall or proxy may be interfering)"
                    .into(),
                certificate_refused: false,
            };
        }
        let hint = match e.kind() {
            io::ErrorKind::ConnectionRefused => format!(
                "nothing accepts connections there: is outbound TCP {port} allowed? \
                 If this network needs a proxy, set https_proxy"
            ),
            io::ErrorKind::TimedOut => format!(
                "is outbound TCP {port} allowed? A firewall that drops packets looks \
                 like this; if this network needs a proxy, set https_proxy"
            ),
            io::ErrorKind::NetworkUnreachable | io::ErrorKind::HostUnreachable => {
                "no route to the host: check the network connection, or set https_proxy \
                 if the internet is reached through a proxy"
                    .into()
            }
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                "the connection was cut: a firewall or proxy may block it (check https_proxy)"
                    .into()
            }
            io::ErrorKind::PermissionDenied => {
                "the operating system refused the connection (local firewall or policy)".into()
            }
            _ => "check the network, DNS and https_proxy".into(),
        };
        HttpError::Connect {
            target,
            cause: e,
            hint,
        }
    }
}

fn hint_dns() -> String {
    "check DNS (can this machine resolve the name?); if the internet is reached \
     only through a proxy, set https_proxy"
        .into()
}

fn describe_tls(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    const TRUST: &str = "if a proxy or firewall inspects TLS, add its CA certificate to the \
                         operating system's trust store (or point SSL_CERT_FILE at a PEM \
                         bundle that holds it): the client reads the store again before a \
                         retry, at most once a minute, and needs no restart";
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            format!("the server's certificate is not trusted (unknown issuer); {TRUST}")
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            format!("the server's certificate is not valid for this host name ({e}); {TRUST}")
        }
        rustls::Error::InvalidCertificate(C::Expired)
        | rustls::Error::InvalidCertificate(C::ExpiredContext { .. })
        | rustls::Error::InvalidCertificate(C::NotValidYet)
        | rustls::Error::InvalidCertificate(C::NotValidYetContext { .. }) => format!(
            "the server's certificate is outside its validity period ({e}); \
             check this machine's clock"
        ),
        rustls::Error::InvalidCertificate(_) => format!("{e}; {TRUST}"),
        other => other.to_string(),
    }
}

/// The proxy did not open the tunnel. Names the proxy as `host:port`, never
/// with its credentials.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(
        "cannot reach proxy {proxy}: {cause}; check https_proxy (http_proxy for \
         http:// targets) and that the proxy runs"
    )]
    Unreachable { proxy: String, cause: io::Error },

    #[error("cannot resolve proxy {proxy}: {detail}; check DNS and https_proxy")]
    Resolve { proxy: String, detail: String },

    #[error(
        "proxy rejected the credentials ({status} {reason} from {proxy}); \
         check user and password in https_proxy"
    )]
    CredentialsRejected {
        proxy: String,
        status: u16,
        reason: String,
    },

    #[error(
        "proxy requires credentials ({status} {reason} from {proxy}); set \
         https_proxy=http://user:password@{proxy} (percent-encode special characters)"
    )]
    CredentialsRequired {
        proxy: String,
        status: u16,
        reason: String,
    },

    /// A non-2xx answer to CONNECT: a 4xx is the proxy's policy, a 5xx
    /// means it could not reach the target itself.
    #[error(
        "proxy {} the tunnel to {target}: {status} {reason} (proxy {proxy})",
        if *status >= 500 { "could not open" } else { "refused" }
    )]
    Refused {
        proxy: String,
        target: String,
        status: u16,
        reason: String,
    },

    #[error("proxy {proxy} sent an unreadable answer to CONNECT: {detail}")]
    Malformed { proxy: String, detail: String },

    #[error("the connection to proxy {proxy} failed during CONNECT: {cause}")]
    Handshake { proxy: String, cause: io::Error },
}

/// A proxy URL that cannot be used. Shows the URL with its password hidden.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    #[error(
        "unsupported proxy scheme {scheme}:// in {url}: only http:// proxies are \
         supported (the connection to the cloud is TLS inside the tunnel either way)"
    )]
    UnsupportedScheme { scheme: String, url: String },

    #[error("not a usable proxy URL {url:?}: {reason}; expected http://[user:password@]host:port")]
    Invalid { url: String, reason: String },
}

/// A proxy variable of the environment that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {error}")]
pub struct ProxyConfigError {
    /// The variable's name as it was found (`https_proxy` or `HTTPS_PROXY`, ...).
    pub variable: &'static str,
    pub error: ProxyUrlError,
}

/// The HTTP stack cannot be set up: the process cannot talk to the cloud
/// until the configuration or the machine is fixed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Proxy(#[from] ProxyConfigError),

    #[error(
        "no trusted root certificates ({detail}); install the operating system's CA \
         certificates (ca-certificates), or set SSL_CERT_FILE to a PEM bundle"
    )]
    NoTrustedRoots { detail: String },

    #[error("TLS set-up failed: {0}")]
    Tls(rustls::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> HttpError {
        HttpError::Status {
            target: "h:443".into(),
            status: StatusCode::from_u16(code).unwrap(),
            body: None,
            retry_after: None,
            location: None,
        }
    }

    #[test]
    fn a_redirect_names_its_target_without_query_and_is_not_followed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            awc::http::header::LOCATION,
            "http://portal.example/login?token=s3cret".parse().unwrap(),
        );
        let e = HttpError::from_status("h:443", StatusCode::FOUND, &headers, b"");
        let text = e.to_string();
        assert!(
            text.contains(
                "a redirect to http://portal.example:80/login that the client does not follow"
            ),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        assert!(e.is_retryable(), "a captive portal goes away");
        let e = HttpError::from_status("h:443", StatusCode::NOT_FOUND, &headers, b"");
        assert!(!e.to_string().contains("redirect"), "{e}");
        let e = HttpError::from_payload_error(PayloadError::Overflow, "h:443", Duration::ZERO);
        assert!(e.to_string().contains("larger than 8 MiB"), "{e}");
        assert!(e.is_retryable());
    }

    #[test]
    fn retryable_follows_protocol_section_5() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code).is_retryable(), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 410, 411, 413, 422] {
            assert!(!status(code).is_retryable(), "{code}");
        }
        let connect = HttpError::Connect {
            target: "h:443".into(),
            cause: io::Error::from(io::ErrorKind::ConnectionRefused),
            hint: String::new(),
        };
        assert!(connect.is_retryable());
        assert!(HttpError::Proxy(ProxyError::Malformed {
            proxy: "p:1".into(),
            detail: String::new()
        })
        .is_retryable());
        assert!(!HttpError::InsecureUrl {
            url: "http://x/".into()
        }
        .is_retryable());
    }

    #[test]
    fn only_a_refused_certificate_caps_the_retry_delay() {
        let eof = HttpError::from_send_error(
            SendRequestError::Connect(ConnectError::Io(io::Error::from(
                io::ErrorKind::UnexpectedEof,
            ))),
            "h:443",
            Duration::from_secs(30),
        );
        assert!(matches!(eof, HttpError::Tls { .. }), "{eof:?}");
        assert_eq!(eof.retry_cap(), None);
        assert_eq!(status(503).retry_cap(), None);
        let expired = HttpError::from_send_error(
            SendRequestError::Connect(ConnectError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
            ))),
            "h:443",
            Duration::from_secs(30),
        );
        assert_eq!(expired.retry_cap(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn status_errors_keep_the_body_and_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(
            awc::http::header::RETRY_AFTER,
            awc::http::header::HeaderValue::from_static("7"),
        );
        let e = HttpError::from_status(
            "h:443",
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
            br#"{"error":"maintenance","message":"back soon"}"#,
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.error_code(), Some("maintenance"));
        assert_eq!(
            e.to_string(),
            "h:443 answered 503 Service Unavailable: back soon (maintenance)"
        );

        headers.insert(
            awc::http::header::RETRY_AFTER,
            awc::http::header::HeaderValue::from_static("86400"),
        );
        let e = HttpError::from_status("h:443", StatusCode::TOO_MANY_REQUESTS, &headers, b"<html>");
        assert_eq!(e.retry_after(), Some(MAX_RETRY_AFTER));
        assert_eq!(e.error_code(), None);
        assert_eq!(e.to_string(), "h:443 answered 429 Too Many Requests");
    }

    /// The OS's code for "connection refused": ECONNREFUSED (111 on Linux),
    /// WSAECONNREFUSED (10061) on Windows. The hints go by `io::ErrorKind`, which std
    /// derives from either.
    #[cfg(unix)]
    const CONNECTION_REFUSED: i32 = libc::ECONNREFUSED;
    #[cfg(windows)]
    const CONNECTION_REFUSED: i32 = 10061;

    #[test]
    fn refused_connections_name_target_os_error_and_hint() {
        let e = HttpError::from_send_error(
            SendRequestError::Connect(ConnectError::Io(io::Error::from_raw_os_error(
                CONNECTION_REFUSED,
            ))),
            "www.injixo.com:443",
            Duration::from_secs(30),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("cannot connect to www.injixo.com:443: "),
            "{text}"
        );
        assert!(
            text.contains(&format!("(os error {CONNECTION_REFUSED})")),
            "{text}"
        );
        assert!(text.contains("is outbound TCP 443 allowed?"), "{text}");
    }

    #[test]
    fn our_errors_come_back_out_of_awc() {
        let inner = HttpError::Proxy(ProxyError::Refused {
            proxy: "p:3128".into(),
            target: "h:443".into(),
            status: 403,
            reason: "Forbidden".into(),
        });
        let e = HttpError::from_send_error(
            SendRequestError::Connect(ConnectError::Io(io::Error::other(inner))),
            "h:443",
            Duration::from_secs(30),
        );
        assert!(matches!(
            e,
            HttpError::Proxy(ProxyError::Refused { status: 403, .. })
        ));

        let e = HttpError::from_send_error(
            SendRequestError::Connect(ConnectError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ))),
            "h:443",
            Duration::from_secs(30),
        );
        assert!(matches!(e, HttpError::Tls { .. }), "{e:?}");
        assert!(e.to_string().contains("not trusted"), "{e}");
        assert!(e.to_string().contains("needs no restart"), "{e}");
        assert_eq!(e.retry_cap(), Some(Duration::from_secs(15)));
    }
}
