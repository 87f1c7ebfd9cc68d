//! Proxy settings: a proxy URL, a `no_proxy` list, a host to match, and the
//! proxy's answer to CONNECT. The input is four parts split at NUL bytes.
//! A parsed proxy shows its password nowhere, and reads back from its own
//! display; `no_proxy` matching ignores case; a status line's reason is
//! printable.
#![no_main]

use injixo_cloud_link::http::proxy::{
    authority, check_connect_reply, connect_request, parse_status_line, redact_url, reply_head_len,
    NoProxy, ProxySettings, ProxyUrl,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == 0);
    let proxy_text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let no_proxy_text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let host_and_port = parts.next().unwrap_or_default();
    let reply = parts.next().unwrap_or_default();
    let (port, host) = match host_and_port {
        [a, b, rest @ ..] => (u16::from_le_bytes([*a, *b]), String::from_utf8_lossy(rest)),
        _ => (443, "www.injixo.com".into()),
    };

    let password = password_in(&proxy_text);
    match ProxyUrl::parse(&proxy_text) {
        Ok(proxy) => {
            let shown = proxy.to_string();
            let debug = format!("{proxy:?}");
            let user = proxy.credentials().map_or("", |c| c.user());
            let secret = password.as_deref().filter(|p| {
                !(user.contains(p)
                    || proxy.authority().contains(p)
                    || "ProxyUrl(http://:***@)".contains(p))
            });
            if let Some(password) = secret {
                assert!(!shown.contains(password), "{shown}");
                assert!(!debug.contains(password), "{debug}");
            }
            // What the log shows names the same proxy.
            let again = ProxyUrl::parse(&shown.replace(":***@", "@"))
                .unwrap_or_else(|e| panic!("{shown} does not read back: {e}"));
            assert_eq!(again.host(), proxy.host(), "{shown}");
            assert_eq!(again.port(), proxy.port(), "{shown}");
            if !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric()) {
                assert_eq!(again.credentials().map(|c| c.user()), Some(user));
            }
            assert_eq!(proxy.authority(), authority(proxy.host(), proxy.port()));

            let request = connect_request(&host, port, &proxy, "injixo-cloud-link/fuzz");
            assert!(request.ends_with(b"\r\n\r\n"));
            let target = authority(&host, port);
            if let Err(error) = check_connect_reply(reply, &proxy, &target) {
                let message = error.to_string();
                if let Some(password) = secret
                    .filter(|p| !target.contains(p) && !String::from_utf8_lossy(reply).contains(p))
                {
                    assert!(!message.contains(password), "{message}");
                }
            }
        }
        Err(error) => {
            // The URL is the only part of the message that echoes the input
            // (the `url` crate's reasons never do), and it is redacted. The
            // fixed text may hold the password by chance ("user").
            let message = error.to_string();
            let shown_url = redact_url(proxy_text.trim());
            if let Some(password) = &password {
                if !shown_url.replace(":***@", "@").contains(password.as_str()) {
                    assert!(!shown_url.contains(password.as_str()), "{message}");
                }
            }
        }
    }

    let no_proxy = NoProxy::parse(&no_proxy_text);
    let direct = no_proxy.matches(&host, port);
    assert_eq!(direct, no_proxy.matches(&host.to_ascii_uppercase(), port));
    if !host.contains(['[', ']']) && !host.ends_with('.') {
        assert_eq!(
            direct,
            no_proxy.matches(&format!("{host}."), port),
            "{host}"
        );
    }
    if no_proxy_text
        .split(|c: char| c == ',' || c.is_whitespace())
        .any(|e| e == "*")
    {
        assert!(direct);
    }
    let settings = ProxySettings::from_vars(|name| match name {
        "https_proxy" => Some(proxy_text.to_string()),
        "no_proxy" => Some(no_proxy_text.to_string()),
        _ => None,
    });
    if let Ok(settings) = settings {
        if settings.https_proxy().is_some() {
            assert_eq!(settings.proxy_for("https", &host, port).is_none(), direct);
        }
    }

    if let Some(len) = reply_head_len(reply) {
        assert!(len <= reply.len() && reply[..len].ends_with(b"\r\n\r\n"));
    }
    if let Ok((code, reason)) = parse_status_line(reply) {
        assert!((100..600).contains(&code));
        assert!(
            reason.chars().all(|c| c.is_ascii_graphic() || c == ' '),
            "{reason:?}"
        );
    }
});

/// The password of a proxy URL as the `url` crate reads it (percent-encoded,
/// as typed), when it is long enough that finding it elsewhere is no accident.
fn password_in(text: &str) -> Option<String> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    url.password().filter(|p| p.len() >= 4).map(str::to_owned)
}
