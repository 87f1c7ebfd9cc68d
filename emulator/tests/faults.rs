//! Fault injection through `POST /_emulator/faults`, seen from a client.

mod support;

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use injixo_cloud_link_protocol::paths;
use serde_json::json;
use support::*;

async fn add_fault(emulator: &Emulator, rule: serde_json::Value) {
    let (status, _, body) =
        send_json(client().post(emulator.url("/_emulator/faults")), &rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[actix_rt::test]
async fn a_status_fault_answers_count_times_with_retry_after_then_stops() {
    let emulator = Emulator::start(&[]);
    add_fault(
        &emulator,
        json!({"path_prefix": "/api/cloud-link/v1/oauth", "mode": "status",
        "status": 503, "retry_after": 2, "count": 2}),
    )
    .await;
    let (_, _, listed) = send(client().get(emulator.url("/_emulator/faults"))).await;
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    assert_eq!(listed[0]["count"], 2);

    for _ in 0..2 {
        let (status, headers, body) =
            send(client().post(emulator.url(paths::DEVICE_AUTHORIZATION))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers.get("retry-after").unwrap(), "2");
        assert_eq!(
            error_code(&serde_json::from_slice(&body).unwrap()),
            "injected_fault"
        );
    }
    // Exhausted: the real endpoint answers again.
    let authorization = start_authorization(&emulator, "i").await;
    assert_eq!(authorization.user_code.len(), 6);
    // Other paths were never affected.
    let (status, _, _) = send(client().get(emulator.url("/_emulator/imports"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn faults_never_touch_the_control_api_and_can_be_cleared() {
    let emulator = Emulator::start(&[]);
    add_fault(
        &emulator,
        json!({"path_prefix": "/", "mode": "status", "status": 500}),
    )
    .await;
    let (status, _, _) = send(client().get(emulator.url("/account/integrations"))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _, _) = send(client().get(emulator.url("/_emulator/integrations"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(client().delete(emulator.url("/_emulator/faults"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(client().get(emulator.url("/account/integrations"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn invalid_fault_rules_are_refused() {
    let emulator = Emulator::start(&[]);
    for rule in [
        json!({"path_prefix": "/", "mode": "explode"}),
        json!({"path_prefix": "/", "mode": "status", "probability": 2.0}),
        json!({"path_prefix": "api", "mode": "reset"}),
        json!({"mode": "reset"}),
    ] {
        let (status, _, body) =
            send_json(client().post(emulator.url("/_emulator/faults")), &rule).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{rule}"
        );
    }
}

#[actix_rt::test]
async fn a_delay_fault_slows_the_answer_down() {
    let emulator = Emulator::start(&[]);
    add_fault(
        &emulator,
        json!({"path_prefix": "/account", "mode": "delay", "delay_ms": 700, "count": 1}),
    )
    .await;
    let started = Instant::now();
    let (status, _, _) = send(client().get(emulator.url("/account/integrations"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn a_reset_fault_breaks_the_connection_without_an_answer() {
    let emulator = Emulator::start(&[]);
    add_fault(
        &emulator,
        json!({"path_prefix": "/account", "mode": "reset", "count": 1}),
    )
    .await;
    let request = format!(
        "GET /account/integrations HTTP/1.1\r\nHost: {}\r\n\r\n",
        emulator.address
    );
    let mut stream = std::net::TcpStream::connect(emulator.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let read = std::io::Read::read_to_end(&mut stream, &mut answer);
    let error = read.expect_err("the connection must be reset, not closed politely");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // Count 1: the next request is served.
    let (status, _, _) = send(client().get(emulator.url("/account/integrations"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn a_truncate_fault_runs_the_handler_then_cuts_the_body() {
    let emulator = Emulator::start(&[]);
    add_fault(&emulator, json!({"path_prefix": "/api/cloud-link/v1/oauth/device_authorization", "mode": "truncate", "count": 1})).await;
    let form =
        "client_id=injixo-cloud-link&instance=i&hostname=h&os=linux&version=1&installation_id=x";
    let request = format!(
        "POST /api/cloud-link/v1/oauth/device_authorization HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        emulator.address,
        form.len()
    );
    let mut stream = std::net::TcpStream::connect(emulator.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let declared: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("Content-Length");
    assert!(
        !body.is_empty() && body.len() < declared,
        "got {} of {declared} bytes",
        body.len()
    );
    assert!(serde_json::from_str::<serde_json::Value>(body).is_err());
}

#[actix_rt::test]
async fn a_fault_with_probability_zero_never_fires() {
    let emulator = Emulator::start(&[]);
    add_fault(
        &emulator,
        json!({"path_prefix": "/account", "mode": "status", "probability": 0.0}),
    )
    .await;
    for _ in 0..20 {
        let (status, _, _) = send(client().get(emulator.url("/account/integrations"))).await;
        assert_eq!(status, StatusCode::OK);
    }
}
