//! The HTTP stack (`src/http`) against real processes: an HTTPS server
//! (actix-web over rustls, certificate from a throwaway rcgen CA) and a real
//! tinyproxy with Basic authentication. Nothing is mocked.

#[path = "support/tinyproxy.rs"]
mod tinyproxy;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use injixo_cloud_link::http::{
    self, HttpClientFactory, HttpError, NoProxy, ProxyError, ProxySettings, ProxyUrl, TrustedRoots,
    API_TIMEOUT,
};
use injixo_cloud_link::protocol::{self, ErrorBody};
use injixo_cloud_link::report;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tinyproxy::{free_port, Tinyproxy};

const VERSION: &str = "0.0.0-test";
const USER: &str = "cloudlink";
/// What tinyproxy expects (its config grammar takes no `@` or `:`).
const PASSWORD: &str = "s3cr3t-pw_9";
/// The same password in the proxy URL, with `-` spelt `%2D`: tinyproxy
/// accepts the tunnel only if the client percent-decoded it.
const PASSWORD_IN_URL: &str = "s3cr3t%2Dpw_9";

// ---------------------------------------------------------------------------
// Test fixtures
// ---------------------------------------------------------------------------

struct TestCa {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

/// A throwaway CA and a leaf for 127.0.0.1 and localhost signed by it.
fn test_ca() -> TestCa {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "http_stack test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
    TestCa {
        ca: ca_cert.der().clone(),
        chain: vec![leaf.der().clone(), ca_cert.der().clone()],
        key: leaf_key.serialize_der(),
    }
}

async fn hello(req: HttpRequest) -> HttpResponse {
    let ua = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    HttpResponse::Ok().json(json!({"hello": "world", "user_agent": ua}))
}

async fn fail() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("Retry-After", "2"))
        .json(ErrorBody::new("maintenance", "back soon"))
}

async fn slow() -> HttpResponse {
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    HttpResponse::Ok().finish()
}

async fn echo(body: web::Json<Value>) -> HttpResponse {
    HttpResponse::Created().json(body.into_inner())
}

/// An actix-web server on its own thread and system: HTTPS with `tls`,
/// plain HTTP without. Returns its port.
fn start_server(tls: Option<&TestCa>) -> u16 {
    let config = tls.map(|ca| {
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            ca.chain.clone(),
            PrivateKeyDer::Pkcs8(ca.key.clone().into()),
        )
        .unwrap()
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = HttpServer::new(|| {
                App::new()
                    .route("/hello", web::get().to(hello))
                    .route("/fail", web::get().to(fail))
                    .route("/slow", web::get().to(slow))
                    .route("/echo", web::post().to(echo))
            })
            .workers(1)
            .disable_signals();
            let server = match config {
                Some(config) => server.listen_rustls_0_23(listener, config),
                None => server.listen(listener),
            };
            server.unwrap().run().await.unwrap();
        })
    });
    port
}

fn proxy_url(port: u16, password: &str) -> ProxyUrl {
    ProxyUrl::parse(&format!("http://{USER}:{password}@127.0.0.1:{port}")).unwrap()
}

fn factory(ca: Option<&TestCa>, proxy: ProxySettings) -> HttpClientFactory {
    let mut roots = TrustedRoots::system();
    if let Some(ca) = ca {
        roots = roots.with_extra(ca.ca.clone());
    }
    HttpClientFactory::new(VERSION, proxy, &roots).unwrap()
}

/// Every way an error reaches a person or a log line.
fn all_texts(e: &HttpError) -> String {
    format!("{e}\n{e:?}\n{}", report::chain(e))
}

fn assert_no_password(e: &HttpError) {
    let texts = all_texts(e);
    for secret in [PASSWORD, PASSWORD_IN_URL, "s3cr3t"] {
        assert!(!texts.contains(secret), "password leaked: {texts}");
    }
}

// ---------------------------------------------------------------------------
// Through the proxy
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn a_get_through_the_proxy_works_and_the_proxy_logs_the_connect() {
    let ca = test_ca();
    let port = start_server(Some(&ca));
    let proxy = Tinyproxy::start(Some((USER, PASSWORD)), &[port]);
    let factory = factory(
        Some(&ca),
        ProxySettings::direct().with_https_proxy(proxy_url(proxy.port, PASSWORD_IN_URL)),
    );
    let client = factory.client();

    let resp = http::send(
        client.get(format!("https://127.0.0.1:{port}/hello")),
        API_TIMEOUT,
        (),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nproxy log:\n{}", proxy.log()));
    let body: Value = resp.json().unwrap();
    assert_eq!(body["hello"], "world");
    assert_eq!(body["user_agent"], protocol::user_agent(VERSION));
    assert_eq!(
        proxy.connects_to(&format!("127.0.0.1:{port}")),
        1,
        "{}",
        proxy.log()
    );

    // A JSON POST over the same client (and the pooled tunnel).
    let resp = http::send_json(
        client.post(format!("https://127.0.0.1:{port}/echo")),
        API_TIMEOUT,
        &json!({"a": 1}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status.as_u16(), 201);
    assert_eq!(resp.json::<Value>().unwrap(), json!({"a": 1}));
}

#[actix_rt::test]
async fn wrong_credentials_are_named_and_the_password_is_not_shown() {
    let ca = test_ca();
    let port = start_server(Some(&ca));
    let proxy = Tinyproxy::start(Some((USER, PASSWORD)), &[port]);
    let wrong = format!("{PASSWORD_IN_URL}x");
    let factory = factory(
        Some(&ca),
        ProxySettings::direct().with_https_proxy(proxy_url(proxy.port, &wrong)),
    );

    let e = get(&factory, format!("https://127.0.0.1:{port}/hello"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            HttpError::Proxy(ProxyError::CredentialsRejected { status: 401, .. })
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("proxy rejected the credentials"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", proxy.port)),
        "{text}"
    );
    assert!(
        e.is_retryable(),
        "a proxy problem must not reject an upload for good"
    );
    assert!(!all_texts(&e).contains(&wrong), "{e:?}");
    assert_no_password(&e);
    // The factory's own Debug (it may end up in a log) hides it too.
    assert!(!format!("{factory:?}").contains("s3cr3t"), "{factory:?}");
}

#[actix_rt::test]
async fn an_unreachable_proxy_is_named_with_the_os_error() {
    let ca = test_ca();
    let port = start_server(Some(&ca));
    let dead = free_port();
    let factory = factory(
        Some(&ca),
        ProxySettings::direct().with_https_proxy(proxy_url(dead, PASSWORD_IN_URL)),
    );

    let e = get(&factory, format!("https://127.0.0.1:{port}/hello"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, HttpError::Proxy(ProxyError::Unreachable { .. })),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&format!("cannot reach proxy 127.0.0.1:{dead}")),
        "{text}"
    );
    assert!(text.contains("os error 111"), "{text}");
    assert_no_password(&e);
}

#[actix_rt::test]
async fn a_tunnel_the_proxy_refuses_is_named_with_its_status() {
    let ca = test_ca();
    let allowed = start_server(Some(&ca));
    let other = start_server(Some(&ca));
    let proxy = Tinyproxy::start(Some((USER, PASSWORD)), &[allowed]);
    let factory = factory(
        Some(&ca),
        ProxySettings::direct().with_https_proxy(proxy_url(proxy.port, PASSWORD_IN_URL)),
    );

    let e = get(&factory, format!("https://127.0.0.1:{other}/hello"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, HttpError::Proxy(ProxyError::Refused { status: 403, .. })),
        "{e:?}"
    );
    assert!(
        text.contains(&format!(
            "proxy refused the tunnel to 127.0.0.1:{other}: 403 Forbidden"
        )),
        "{text}"
    );
    assert_no_password(&e);
}

#[actix_rt::test]
async fn loopback_http_goes_through_the_http_proxy_unless_no_proxy_says_otherwise() {
    let port = start_server(None);
    let proxy = Tinyproxy::start(Some((USER, PASSWORD)), &[port]);
    let url = format!("http://127.0.0.1:{port}/hello");
    let target = format!("127.0.0.1:{port}");
    let settings = ProxySettings::direct().with_http_proxy(proxy_url(proxy.port, PASSWORD_IN_URL));

    let proxied = factory(None, settings.clone());
    let resp = http::send(proxied.client().get(&url), API_TIMEOUT, ())
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["hello"], "world");
    assert_eq!(proxy.connects_to(&target), 1, "{}", proxy.log());

    let bypassing = factory(
        None,
        settings.with_no_proxy(NoProxy::parse("localhost, 127.0.0.0/8")),
    );
    http::send(bypassing.client().get(&url), API_TIMEOUT, ())
        .await
        .unwrap();
    assert_eq!(proxy.connects_to(&target), 1, "{}", proxy.log());
}

// ---------------------------------------------------------------------------
// TLS and URLs
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn an_untrusted_certificate_fails_and_trusting_its_ca_makes_it_work() {
    let ca = test_ca();
    let port = start_server(Some(&ca));
    let url = format!("https://127.0.0.1:{port}/hello");

    let untrusting = factory(None, ProxySettings::direct());
    let e = http::send(untrusting.client().get(&url), API_TIMEOUT, ())
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Tls { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("not trusted"), "{text}");
    assert!(text.contains("trust store"), "{text}");

    let trusting = factory(Some(&ca), ProxySettings::direct());
    let resp = http::send(trusting.client().get(&url), API_TIMEOUT, ())
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["hello"], "world");
}

#[actix_rt::test]
async fn plain_http_to_a_remote_host_is_refused_before_any_connection() {
    let proxy = Tinyproxy::start(Some((USER, PASSWORD)), &[]);
    let url = proxy_url(proxy.port, PASSWORD_IN_URL);
    let factory = factory(
        None,
        ProxySettings::direct()
            .with_https_proxy(url.clone())
            .with_http_proxy(url),
    );
    let client = factory.client();
    // TEST-NET-1: a connection attempt would hang, or show in the proxy log.
    let remote = "http://192.0.2.1/bucket/key?X-Amz-Signature=deadbeef";
    let started = Instant::now();

    let e = http::send(client.put(remote), API_TIMEOUT, "data")
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::InsecureUrl { .. }), "{e:?}");
    assert!(!e.is_retryable());
    let text = e.to_string();
    assert!(
        text.contains("refusing plain http:// to http://192.0.2.1:80/bucket/key"),
        "{text}"
    );
    assert!(!text.contains("deadbeef"), "the query is not shown: {text}");

    // The awc client used directly, bypassing `send`: the connector refuses.
    let raw = client.get(remote).send().await.unwrap_err();
    let e = HttpError::from_send_error(raw, "192.0.2.1:80", API_TIMEOUT);
    assert!(matches!(e, HttpError::InsecureUrl { .. }), "{e:?}");

    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(proxy.requests(), 0, "{}", proxy.log());
}

// ---------------------------------------------------------------------------
// Errors from the server itself
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn a_refused_connection_names_target_os_error_and_hint() {
    let dead = free_port();
    let factory = factory(None, ProxySettings::direct());
    let e = get(&factory, format!("https://127.0.0.1:{dead}/hello"))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, HttpError::Connect { .. }), "{e:?}");
    assert!(
        text.starts_with(&format!("cannot connect to 127.0.0.1:{dead}: ")),
        "{text}"
    );
    assert!(text.contains("os error 111"), "{text}");
    assert!(
        text.contains(&format!("is outbound TCP {dead} allowed?")),
        "{text}"
    );
    assert!(e.is_retryable());
}

#[actix_rt::test]
async fn error_statuses_carry_body_and_retry_after() {
    let ca = test_ca();
    let port = start_server(Some(&ca));
    let factory = factory(Some(&ca), ProxySettings::direct());
    let e = get(&factory, format!("https://127.0.0.1:{port}/fail"))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503), "{e:?}");
    assert_eq!(e.error_code(), Some("maintenance"));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    assert!(e.is_retryable());

    let e = get(&factory, format!("https://127.0.0.1:{port}/missing"))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(404), "{e:?}");
    assert!(!e.is_retryable());
}

#[actix_rt::test]
async fn each_request_has_its_own_timeout() {
    let ca = test_ca();
    let port = start_server(Some(&ca));
    let factory = factory(Some(&ca), ProxySettings::direct());
    let started = Instant::now();
    let e = http::send(
        factory
            .client()
            .get(format!("https://127.0.0.1:{port}/slow")),
        Duration::from_millis(500),
        (),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, HttpError::Timeout { after, .. } if *after == Duration::from_millis(500)),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// A plain GET through `factory`, with the API timeout.
async fn get(factory: &HttpClientFactory, url: String) -> Result<http::Response, HttpError> {
    http::send(factory.client().get(url), API_TIMEOUT, ()).await
}
