//! `--tls-cert/--tls-key`: HTTPS with a throwaway CA made by rcgen.

mod support;

use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use injixo_cloud_link_protocol::{paths, UploadTarget};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use support::*;

struct TestPki {
    _dir: tempfile::TempDir,
    cert_path: String,
    key_path: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

fn make_pki() -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, server.pem()).unwrap();
    std::fs::write(&key_path, server_key.serialize_pem()).unwrap();
    TestPki {
        cert_path: cert_path.to_str().unwrap().to_owned(),
        key_path: key_path.to_str().unwrap().to_owned(),
        ca_der: ca.der().clone(),
        _dir: dir,
    }
}

fn tls_client(ca: &rustls::pki_types::CertificateDer<'static>) -> awc::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
        .timeout(Duration::from_secs(20))
        .finish()
}

#[actix_rt::test]
async fn the_whole_protocol_works_over_https() {
    let pki = make_pki();
    let emulator = Emulator::start(&["--tls-cert", &pki.cert_path, "--tls-key", &pki.key_path]);
    assert!(
        emulator.base_url.starts_with("https://127.0.0.1:"),
        "{}",
        emulator.base_url
    );
    let https = tls_client(&pki.ca_der);

    let (status, _, body) = send_json(
        https.post(emulator.url("/_emulator/integrations")),
        &serde_json::json!({"name": "CSV", "kind": "csv"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let integration = body["id"].as_str().unwrap().to_owned();

    let (status, body) = send_form(
        https.post(emulator.url(paths::DEVICE_AUTHORIZATION)),
        &[
            ("client_id", "injixo-cloud-link"),
            ("instance", "i"),
            ("hostname", "h"),
            ("os", "linux"),
            ("version", "1"),
            ("installation_id", "x"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["verification_uri"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    let (status, _, _) = send_json(
        https.post(emulator.url("/_emulator/connect")),
        &serde_json::json!({"pin": body["user_code"], "integration_id": integration}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, tokens) = send_form(
        https.post(emulator.url(paths::TOKEN)),
        &[
            ("grant_type", injixo_cloud_link_protocol::DEVICE_CODE_GRANT),
            ("client_id", "injixo-cloud-link"),
            ("device_code", body["device_code"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access_token = tokens["access_token"].as_str().unwrap();

    let csv = b"a;b\n1;2\n";
    let (status, _, body) = send_json(
        https
            .post(emulator.url(paths::UPLOADS))
            .bearer_auth(access_token),
        &serde_json::to_value(upload_request("k", csv, 1)).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let target: UploadTarget = typed(body);
    assert!(target.url.starts_with("https://"), "{}", target.url);
    let mut put = https.put(&target.url);
    for (name, value) in &target.headers {
        put = put.insert_header((name.as_str(), value.as_str()));
    }
    let response = put.send_body(csv.to_vec()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _, body) = send_json(
        https
            .post(emulator.url(&paths::commit(&target.upload_id)))
            .bearer_auth(access_token),
        &serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_rt::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let pki = make_pki();
    let emulator = Emulator::start(&["--tls-cert", &pki.cert_path, "--tls-key", &pki.key_path]);
    let stranger_ca = make_pki().ca_der;
    let result = tls_client(&stranger_ca)
        .get(emulator.url("/_emulator/imports"))
        .send()
        .await;
    assert!(result.is_err(), "an untrusted certificate was accepted");
    // The trusting client still gets through afterwards.
    let response = tls_client(&pki.ca_der)
        .get(emulator.url("/_emulator/imports"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[test]
fn a_missing_certificate_stops_the_start_with_a_clear_message() {
    let error = match Emulator::try_start(&[
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ]) {
        Ok(_) => panic!("the emulator started without a certificate"),
        Err(e) => e,
    };
    assert!(error.contains("/nonexistent/cert.pem"), "{error}");
}
