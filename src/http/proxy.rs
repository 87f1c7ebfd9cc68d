//! Proxy settings: `https_proxy` / `http_proxy` / `no_proxy`, the redacted
//! form of a proxy URL, and the bytes of the CONNECT handshake. Pure: no
//! socket, no process state (the environment is read through a lookup
//! function), so every rule here is unit-tested. The connector
//! (`connector.rs`) does the socket work with these pieces.
//!
//! Written by hand because awc has no proxy support at all, and the crates
//! that parse proxy variables come with their own HTTP client (reqwest,
//! hyper-util); the parts a crate does well are delegated: URL syntax to
//! `url`, percent-decoding to `percent-encoding`, CIDR to `ipnet`, Basic
//! credentials to `base64`.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use ipnet::IpNet;
use percent_encoding::percent_decode_str;

use super::error::{ProxyConfigError, ProxyError, ProxyUrlError};

/// What a redacted password looks like in every message.
const REDACTED: &str = "***";

/// The longest CONNECT answer head we read; a proxy that sends more is broken.
pub const MAX_CONNECT_REPLY: usize = 16 * 1024;

// ---------------------------------------------------------------------------
// Proxy URL
// ---------------------------------------------------------------------------

/// `user:password` for `Proxy-Authorization: Basic`, percent-decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCredentials {
    user: String,
    password: String,
}

impl ProxyCredentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        ProxyCredentials {
            user: user.into(),
            password: password.into(),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The `Proxy-Authorization` header value. Carries the password: it goes
    /// on the wire to the proxy and nowhere else.
    pub fn basic_header(&self) -> String {
        let pair = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{REDACTED}", self.user)
    }
}

/// An HTTP proxy: `http://[user:password@]host[:port]`. `Display` and `Debug`
/// show it as `http://user:***@host:port`, so it can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// Without brackets for IPv6, lower case.
    host: String,
    port: u16,
    credentials: Option<ProxyCredentials>,
}

impl ProxyUrl {
    /// Parses a proxy variable's value. A value without a scheme is taken as
    /// `http://` (curl does the same, and `https_proxy=proxy:3128` is common
    /// in the wild); any scheme other than `http://` is an error, because
    /// the connection to the proxy itself is plain HTTP and the cloud's TLS
    /// runs end to end inside the tunnel. Without a port, 80 (the scheme's).
    pub fn parse(value: &str) -> Result<ProxyUrl, ProxyUrlError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(ProxyUrlError::Invalid {
                url: String::new(),
                reason: "empty".into(),
            });
        }
        let with_scheme = match value.split_once("://") {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => value.to_owned(),
            Some((scheme, _)) => {
                return Err(ProxyUrlError::UnsupportedScheme {
                    scheme: scheme.to_ascii_lowercase(),
                    url: redact_url(value),
                })
            }
            None => format!("http://{value}"),
        };
        let invalid = |reason: &str| ProxyUrlError::Invalid {
            url: redact_url(value),
            reason: reason.to_owned(),
        };
        // url's messages ("invalid port number") never echo the input, so
        // they are safe to show.
        let url = url::Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid("no host")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "a proxy URL has no path or query (PAC files are not supported): \
                 use http://host:port",
            ));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| invalid("user or password is not UTF-8 once percent-decoded"))
            };
            Some(ProxyCredentials {
                user: decode(url.username())?,
                password: decode(url.password().unwrap_or(""))?,
            })
        };
        Ok(ProxyUrl {
            host,
            port,
            credentials,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, IPv6 in brackets. Never carries credentials, so error
    /// messages use it.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }

    pub fn credentials(&self) -> Option<&ProxyCredentials> {
        self.credentials.as_ref()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("http://")?;
        if let Some(c) = &self.credentials {
            write!(f, "{}:{REDACTED}@", c.user)?;
        }
        f.write_str(&self.authority())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// `host:port` with IPv6 hosts in brackets; accepts a host with or without them.
pub fn authority(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Hides the password of a URL that may not even parse: everything between
/// the first `:` after the scheme and the last `@` becomes `***`. Errs on
/// the side of hiding too much (a `:port` before an `@` in a path).
pub fn redact_url(raw: &str) -> String {
    let (scheme, rest) = match raw.find("://") {
        Some(i) => raw.split_at(i + 3),
        None => ("", raw),
    };
    let Some(at) = rest.rfind('@') else {
        return raw.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{scheme}{}:{REDACTED}{}", &rest[..colon], &rest[at..]),
        None => raw.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// no_proxy
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    All,
    /// Matches the domain itself and every subdomain.
    Domain {
        suffix: String,
        port: Option<u16>,
    },
    Ip {
        ip: IpAddr,
        port: Option<u16>,
    },
    Net {
        net: IpNet,
        port: Option<u16>,
    },
}

/// The hosts reached without a proxy. Entries, comma or space separated and
/// case-insensitive: `host` (that domain and its subdomains, on a label
/// boundary), `.suffix` and `*.suffix` (the same, as curl reads it), `*`
/// (everything), an IP, a CIDR block (v4 or v6), each with an optional
/// `:port` (IPv6 with a port in brackets: `[::1]:8080`). IP entries match IP
/// literals only: nothing is resolved to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    rules: Vec<Rule>,
    ignored: Vec<String>,
}

impl NoProxy {
    /// Parses a `no_proxy` value. An entry that is none of the above is
    /// ignored (and listed by [`NoProxy::ignored`] for a warning) rather
    /// than fatal: the variable is shared with every other tool on the
    /// machine, and one odd entry must not stop the service.
    pub fn parse(value: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            match parse_rule(&entry.to_ascii_lowercase()) {
                Some(rule) => out.rules.push(rule),
                None => out.ignored.push(entry.to_owned()),
            }
        }
        out
    }

    /// Entries that were not understood.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `host:port` is reached directly. `host` as in a URL: IPv6 may
    /// be in brackets, a trailing dot is ignored.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.rules.iter().any(|rule| match rule {
            Rule::All => true,
            Rule::Ip { ip: r, port: p } => ip == Some(*r) && port_ok(p),
            Rule::Net { net, port: p } => ip.is_some_and(|ip| net.contains(&ip)) && port_ok(p),
            Rule::Domain { suffix, port: p } => {
                ip.is_none()
                    && port_ok(p)
                    && (host == *suffix
                        || host
                            .strip_suffix(suffix.as_str())
                            .is_some_and(|head| head.ends_with('.')))
            }
        })
    }
}

fn parse_rule(entry: &str) -> Option<Rule> {
    if entry == "*" {
        return Some(Rule::All);
    }
    // [v6] or [v6]:port
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return ip_or_net_rule(inside, port);
    }
    // Bare IPv6 (several colons) cannot carry a port.
    if entry.matches(':').count() > 1 {
        return ip_or_net_rule(entry, None);
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (entry, None),
    };
    if let Some(rule) = ip_or_net_rule(host, port) {
        return Some(rule);
    }
    let suffix = host
        .trim_start_matches('*')
        .trim_start_matches('.')
        .trim_end_matches('.');
    let valid = !suffix.is_empty()
        && suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    valid.then(|| Rule::Domain {
        suffix: suffix.to_owned(),
        port,
    })
}

fn ip_or_net_rule(text: &str, port: Option<u16>) -> Option<Rule> {
    if text.contains('/') {
        // `10.1.2.3/8` means the network: trunc() drops the host bits.
        return text.parse::<IpNet>().ok().map(|net| Rule::Net {
            net: net.trunc(),
            port,
        });
    }
    text.parse::<IpAddr>().ok().map(|ip| Rule::Ip { ip, port })
}

// ---------------------------------------------------------------------------
// Settings from the environment
// ---------------------------------------------------------------------------

/// Which proxy (if any) each request goes through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    https: Option<ProxyUrl>,
    http: Option<ProxyUrl>,
    no_proxy: NoProxy,
}

impl ProxySettings {
    /// No proxy at all.
    pub fn direct() -> Self {
        ProxySettings::default()
    }

    /// From the process environment; see [`ProxySettings::from_vars`].
    pub fn from_env() -> Result<Self, ProxyConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From `https_proxy`, `http_proxy` and `no_proxy`, each also in upper
    /// case. When both spellings are set the lower-case one wins (curl's
    /// rule), even when empty: `https_proxy=` switches off a system-wide
    /// `HTTPS_PROXY` for this process. `lookup` returns a variable's value.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ProxyConfigError> {
        let var = |lower: &'static str, upper: &'static str| {
            lookup(lower)
                .map(|v| (lower, v))
                .or_else(|| lookup(upper).map(|v| (upper, v)))
                .filter(|(_, v)| !v.trim().is_empty())
        };
        let proxy = |lower, upper| -> Result<Option<ProxyUrl>, ProxyConfigError> {
            var(lower, upper)
                .map(|(variable, value)| {
                    ProxyUrl::parse(&value).map_err(|error| ProxyConfigError { variable, error })
                })
                .transpose()
        };
        Ok(ProxySettings {
            https: proxy("https_proxy", "HTTPS_PROXY")?,
            http: proxy("http_proxy", "HTTP_PROXY")?,
            no_proxy: var("no_proxy", "NO_PROXY")
                .map(|(_, v)| NoProxy::parse(&v))
                .unwrap_or_default(),
        })
    }

    pub fn with_https_proxy(mut self, proxy: ProxyUrl) -> Self {
        self.https = Some(proxy);
        self
    }

    /// The proxy for `http://` targets (loopback only, since plain HTTP to
    /// anything else is refused).
    pub fn with_http_proxy(mut self, proxy: ProxyUrl) -> Self {
        self.http = Some(proxy);
        self
    }

    pub fn with_no_proxy(mut self, no_proxy: NoProxy) -> Self {
        self.no_proxy = no_proxy;
        self
    }

    pub fn https_proxy(&self) -> Option<&ProxyUrl> {
        self.https.as_ref()
    }

    pub fn http_proxy(&self) -> Option<&ProxyUrl> {
        self.http.as_ref()
    }

    pub fn no_proxy(&self) -> &NoProxy {
        &self.no_proxy
    }

    /// The proxy a connection to `scheme://host:port` goes through, or
    /// `None` for a direct connection.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<&ProxyUrl> {
        let proxy = if scheme.eq_ignore_ascii_case("http") {
            self.http.as_ref()
        } else {
            self.https.as_ref()
        }?;
        (!self.no_proxy.matches(host, port)).then_some(proxy)
    }
}

// ---------------------------------------------------------------------------
// The CONNECT handshake
// ---------------------------------------------------------------------------

/// The request that opens a tunnel to `host:port` through `proxy`.
pub fn connect_request(host: &str, port: u16, proxy: &ProxyUrl, user_agent: &str) -> Vec<u8> {
    let target = authority(host, port);
    let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = &proxy.credentials {
        req.push_str(&format!("Proxy-Authorization: {}\r\n", c.basic_header()));
    }
    if !user_agent.is_empty() {
        req.push_str(&format!("User-Agent: {user_agent}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

/// The length of the answer's head (through the blank line), once `buf`
/// holds all of it.
pub fn reply_head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The status line of an answer head: code and reason phrase (made safe to
/// print: printable ASCII, at most 80 characters).
pub fn parse_status_line(head: &[u8]) -> Result<(u16, String), String> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let shown = || printable(&line, 80);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP status line: {:?}", shown()));
    }
    let code = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| format!("no status code in {:?}", shown()))?;
    let phrase = printable(parts.next().unwrap_or("").trim(), 80);
    Ok((code, describe_status(code, &phrase)))
}

/// The standard reason of `code`, plus the proxy's own phrase when it says
/// something else (tinyproxy: "403 Access violation", "500 Unable to
/// connect"), so the message is both recognisable and specific.
fn describe_status(code: u16, phrase: &str) -> String {
    let canonical = awc::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason());
    match canonical {
        Some(c) if phrase.is_empty() || phrase.eq_ignore_ascii_case(c) => c.to_owned(),
        Some(c) => format!("{c}: {phrase}"),
        None => phrase.to_owned(),
    }
}

fn printable(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(max)
        .collect()
}

/// Judges the proxy's answer to CONNECT. Any 2xx opens the tunnel. 407 is
/// the standard "credentials missing or wrong"; tinyproxy answers wrong
/// credentials on CONNECT with 401, so 401 means the same here (a CONNECT
/// never reaches the origin, so a 401 can only be the proxy's).
pub fn check_connect_reply(head: &[u8], proxy: &ProxyUrl, target: &str) -> Result<(), ProxyError> {
    let (status, reason) = parse_status_line(head).map_err(|detail| ProxyError::Malformed {
        proxy: proxy.authority(),
        detail,
    })?;
    match status {
        200..=299 => Ok(()),
        401 | 407 if proxy.credentials.is_some() => Err(ProxyError::CredentialsRejected {
            proxy: proxy.authority(),
            status,
            reason,
        }),
        401 | 407 => Err(ProxyError::CredentialsRequired {
            proxy: proxy.authority(),
            status,
            reason,
        }),
        _ => Err(ProxyError::Refused {
            proxy: proxy.authority(),
            target: target.to_owned(),
            status,
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ProxyUrl {
        ProxyUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_a_proxy_without_credentials() {
        let p = url("http://proxy.example:3128");
        assert_eq!((p.host(), p.port()), ("proxy.example", 3128));
        assert!(p.credentials().is_none());
        assert_eq!(p.to_string(), "http://proxy.example:3128");
    }

    #[test]
    fn parses_credentials_and_percent_decodes_them() {
        let p = url("http://us%65r:p%40ss@proxy.example:8080/");
        let c = p.credentials().unwrap();
        assert_eq!(c.user(), "user");
        assert_eq!(c.password, "p@ss");
        // base64("user:p@ss")
        assert_eq!(c.basic_header(), "Basic dXNlcjpwQHNz");
    }

    #[test]
    fn an_unencoded_at_sign_in_the_password_still_parses() {
        let p = url("http://user:p@ss@proxy.example:8080");
        assert_eq!(p.host(), "proxy.example");
        assert_eq!(p.credentials().unwrap().password, "p@ss");
    }

    #[test]
    fn a_value_without_scheme_is_http_and_without_port_is_80() {
        let p = url("Proxy.Example:3128");
        assert_eq!((p.host(), p.port()), ("proxy.example", 3128));
        assert_eq!(url("HTTP://proxy.example").port(), 80);
    }

    #[test]
    fn ipv6_proxy_hosts_keep_their_brackets_in_the_authority() {
        let p = url("http://[::1]:3128");
        assert_eq!(p.host(), "::1");
        assert_eq!(p.authority(), "[::1]:3128");
    }

    #[test]
    fn other_schemes_are_refused_with_the_password_hidden() {
        for (value, scheme) in [
            ("https://u:hunter2@proxy:443", "https"),
            ("socks5://u:hunter2@proxy:1080", "socks5"),
        ] {
            let e = ProxyUrl::parse(value).unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(&e, ProxyUrlError::UnsupportedScheme { scheme: s, .. } if s == scheme)
            );
            assert!(text.contains("only http:// proxies"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("u:***@proxy"), "{text}");
        }
    }

    #[test]
    fn bad_urls_are_refused_with_the_password_hidden() {
        for value in [
            "http://u:hunter2@proxy:99999",
            "http://u:hunter2@:3128",
            "http://u:hunter2@proxy:3128/proxy.pac",
            "http://proxy:3128/?x=1",
            "",
        ] {
            let e = ProxyUrl::parse(value).unwrap_err();
            assert!(matches!(e, ProxyUrlError::Invalid { .. }), "{value}: {e:?}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
            assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
        }
        let e = ProxyUrl::parse("http://proxy:3128/proxy.pac").unwrap_err();
        assert!(e.to_string().contains("PAC"), "{e}");
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let p = url("http://alice:s3cr%3At@proxy.example:8080");
        assert_eq!(p.to_string(), "http://alice:***@proxy.example:8080");
        assert_eq!(
            format!("{p:?}"),
            "ProxyUrl(http://alice:***@proxy.example:8080)"
        );
        let settings = ProxySettings::direct().with_https_proxy(p);
        let debug = format!("{settings:?}");
        assert!(!debug.contains("s3cr"), "{debug}");
    }

    #[test]
    fn redact_url_hides_passwords_in_unparsable_text() {
        assert_eq!(redact_url("http://u:p@h:1"), "http://u:***@h:1");
        assert_eq!(redact_url("u:p:q@h"), "u:***@h");
        assert_eq!(redact_url("http://u:p@x@h:1"), "http://u:***@h:1");
        assert_eq!(redact_url("http://h:1"), "http://h:1");
        assert_eq!(redact_url("http://user@h:1"), "http://user@h:1");
    }

    #[test]
    fn lower_case_variables_win_and_empty_lower_case_disables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = ProxySettings::from_vars(env(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
        ]))
        .unwrap();
        assert_eq!(s.https_proxy().unwrap().host(), "lower");

        let s = ProxySettings::from_vars(env(&[("HTTPS_PROXY", "http://upper:2")])).unwrap();
        assert_eq!(s.https_proxy().unwrap().host(), "upper");

        let s = ProxySettings::from_vars(env(&[
            ("https_proxy", ""),
            ("HTTPS_PROXY", "http://upper:2"),
        ]))
        .unwrap();
        assert!(s.https_proxy().is_none());

        let e = ProxySettings::from_vars(env(&[("HTTP_PROXY", "socks5://x:1")])).unwrap_err();
        assert_eq!(e.variable, "HTTP_PROXY");
        assert!(e.to_string().starts_with("HTTP_PROXY: "), "{e}");

        let s = ProxySettings::from_vars(env(&[
            ("https_proxy", "http://p:1"),
            ("NO_PROXY", "internal.example"),
        ]))
        .unwrap();
        assert!(s.proxy_for("https", "www.injixo.com", 443).is_some());
        assert!(s.proxy_for("https", "a.internal.example", 443).is_none());
        assert!(
            s.proxy_for("http", "127.0.0.1", 80).is_none(),
            "no http_proxy set"
        );
    }

    #[test]
    fn no_proxy_hosts_match_on_label_boundaries() {
        let n = NoProxy::parse("example.com, .corp.local *.lab.test,Other.ORG.");
        assert!(n.matches("example.com", 443));
        assert!(n.matches("api.example.com", 443));
        assert!(n.matches("API.Example.COM.", 443));
        assert!(!n.matches("badexample.com", 443));
        assert!(!n.matches("example.com.evil", 443));
        assert!(n.matches("corp.local", 443));
        assert!(n.matches("db.corp.local", 443));
        assert!(!n.matches("xcorp.local", 443));
        assert!(n.matches("x.lab.test", 443));
        assert!(n.matches("a.other.org", 443));
        assert!(n.ignored().is_empty());
    }

    #[test]
    fn no_proxy_star_matches_everything() {
        let n = NoProxy::parse("*");
        assert!(n.matches("www.injixo.com", 443));
        assert!(n.matches("10.0.0.1", 1));
        assert!(!NoProxy::parse("").matches("www.injixo.com", 443));
    }

    #[test]
    fn no_proxy_ips_and_cidrs() {
        let n = NoProxy::parse("127.0.0.1,10.0.0.0/8 ::1 fd00::/8,192.168.1.7/24");
        assert!(n.matches("127.0.0.1", 80));
        assert!(!n.matches("127.0.0.2", 80));
        assert!(n.matches("10.200.3.4", 443));
        assert!(!n.matches("11.0.0.1", 443));
        assert!(n.matches("[::1]", 443));
        assert!(n.matches("::1", 443));
        assert!(n.matches("[fd12:3456::1]", 443));
        assert!(!n.matches("[fe80::1]", 443));
        assert!(n.matches("192.168.1.200", 443), "host bits are ignored");
        // IP rules never match names: nothing is resolved.
        assert!(!n.matches("localhost", 80));
        assert!(n.ignored().is_empty(), "{:?}", n.ignored());
    }

    #[test]
    fn no_proxy_ports_restrict_the_match() {
        let n = NoProxy::parse("example.com:8443, 10.0.0.1:80, [::1]:8080");
        assert!(n.matches("api.example.com", 8443));
        assert!(!n.matches("api.example.com", 443));
        assert!(n.matches("10.0.0.1", 80));
        assert!(!n.matches("10.0.0.1", 443));
        assert!(n.matches("[::1]", 8080));
        assert!(!n.matches("::1", 443));
    }

    #[test]
    fn no_proxy_ignores_what_it_cannot_read() {
        let n = NoProxy::parse("10.0.0.0/33, ex ample.com, host:port, [::1, ok.example");
        assert_eq!(n.ignored(), ["10.0.0.0/33", "host:port", "[::1"]);
        assert!(n.matches("ex", 1));
        assert!(n.matches("ok.example", 1));
    }

    #[test]
    fn connect_request_carries_basic_credentials_and_brackets_ipv6() {
        let p = url("http://user:p%40ss@proxy:3128");
        let req = String::from_utf8(connect_request("[::1]", 8443, &p, "ua/1")).unwrap();
        assert_eq!(
            req,
            "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\
             Proxy-Authorization: Basic dXNlcjpwQHNz\r\nUser-Agent: ua/1\r\n\r\n"
        );
        let anon = String::from_utf8(connect_request("h", 443, &url("proxy:1"), "")).unwrap();
        assert_eq!(anon, "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n");
    }

    #[test]
    fn reply_head_ends_at_the_blank_line() {
        assert_eq!(reply_head_len(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(reply_head_len(b"HTTP/1.1 200 OK\r\n\r\n"), Some(19));
    }

    #[test]
    fn connect_replies_are_judged() {
        let with = url("http://user:pw@proxy:3128");
        let without = url("http://proxy:3128");
        let check = |head: &str, p: &ProxyUrl| check_connect_reply(head.as_bytes(), p, "h:443");

        assert!(check("HTTP/1.0 200 Connection established\r\n\r\n", &with).is_ok());
        assert!(check("HTTP/1.1 200 OK\r\nProxy-agent: x\r\n\r\n", &without).is_ok());

        for head in [
            "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            "HTTP/1.0 401 Unauthorized\r\n\r\n",
        ] {
            let e = check(head, &with).unwrap_err();
            assert!(matches!(e, ProxyError::CredentialsRejected { .. }), "{e:?}");
            assert!(
                e.to_string().contains("proxy rejected the credentials"),
                "{e}"
            );
            assert!(e.to_string().contains("proxy:3128"), "{e}");
            let e = check(head, &without).unwrap_err();
            assert!(matches!(e, ProxyError::CredentialsRequired { .. }), "{e:?}");
            assert!(e.to_string().contains("user:password"), "{e}");
        }

        let e = check("HTTP/1.0 403 Forbidden\r\n\r\n", &with).unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy refused the tunnel to h:443: 403 Forbidden (proxy proxy:3128)"
        );

        for garbage in [
            "SSH-2.0-OpenSSH_9.2\r\n\r\n",
            "HTTP/1.1 abc\r\n\r\n",
            "\r\n\r\n",
        ] {
            let e = check(garbage, &with).unwrap_err();
            assert!(matches!(e, ProxyError::Malformed { .. }), "{e:?}");
        }
        let e = check("HTTP/1.1 403 Access violation\r\n\r\n", &with).unwrap_err();
        assert!(
            e.to_string().contains(": 403 Forbidden: Access violation"),
            "{e}"
        );
        let e = check("HTTP/1.1 502 \u{7}bad\r\n\r\n", &with).unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy could not open the tunnel to h:443: 502 Bad Gateway: ?bad (proxy proxy:3128)"
        );
    }
}
