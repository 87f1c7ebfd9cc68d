//! Pairing over real HTTP: device authorization, the token endpoint's
//! answers, the PIN guard, refresh rotation and revocation.

mod support;

use awc::http::StatusCode;
use injixo_cloud_link_protocol::{paths, TokenResponse, CLIENT_ID};
use serde_json::json;
use support::*;

#[actix_rt::test]
async fn a_device_is_paired_by_its_pin() {
    let emulator = Emulator::start(&["--poll-interval", "1"]);
    let integration = create_csv_integration(&emulator, "Avaya CMS").await;
    let authorization = start_authorization(&emulator, "com.injixo.cloud-link").await;

    assert_eq!(authorization.user_code.len(), 6);
    assert!(authorization.user_code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(authorization.expires_in, 300);
    assert_eq!(authorization.interval, 1);
    assert_eq!(
        authorization.verification_uri,
        emulator.url("/account/integrations")
    );

    let (status, body) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "authorization_pending")
    );

    let (status, _, body) = connect(&emulator, &authorization.user_code, &integration).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["instance"], "com.injixo.cloud-link");
    // A second click on Connect is harmless.
    let (status, _, _) = connect(&emulator, &authorization.user_code, &integration).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tokens: TokenResponse = typed(body);
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.integration_id, integration);
    assert_eq!(tokens.expires_in, 3600);
    assert_ne!(tokens.access_token, tokens.refresh_token);
    assert!(tokens.access_token.len() >= 32);

    // The device code is spent.
    let (status, body) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );

    let (status, _, body) = send(client().get(emulator.url("/_emulator/clients"))).await;
    assert_eq!(status, StatusCode::OK);
    let clients: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(clients[0]["integration_id"], integration.as_str());
    assert_eq!(clients[0]["hostname"], "test-host");
}

#[actix_rt::test]
async fn polling_faster_than_the_interval_gets_slow_down() {
    let emulator = Emulator::start(&[]);
    let authorization = start_authorization(&emulator, "i").await;
    assert_eq!(authorization.interval, 5);
    let (_, first) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(error_code(&first), "authorization_pending");
    let (status, second) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(
        (status, error_code(&second).as_str()),
        (StatusCode::BAD_REQUEST, "slow_down")
    );
}

#[actix_rt::test]
async fn an_expired_pin_answers_expired_token_and_410() {
    let emulator = Emulator::start(&["--pin-ttl", "0"]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let authorization = start_authorization(&emulator, "i").await;
    assert_eq!(authorization.expires_in, 0);
    let (status, _, body) = connect(&emulator, &authorization.user_code, &integration).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::GONE, "expired_pin")
    );
    let (status, body) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "expired_token")
    );
}

#[actix_rt::test]
async fn wrong_pins_are_limited_and_answered_429_with_retry_after() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let authorization = start_authorization(&emulator, "i").await;
    let wrong = if authorization.user_code == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let (status, _, body) = connect(&emulator, wrong, &integration).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (StatusCode::NOT_FOUND, "unknown_pin")
        );
    }
    // Even the right PIN is refused while the source is limited.
    let (status, headers, body) = connect(&emulator, &authorization.user_code, &integration).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    let retry_after: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Five wrong entries while the PIN lived have locked it for good: the device must start again.
    let (status, body) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "expired_token")
    );
}

#[actix_rt::test]
async fn connect_errors_use_the_protocol_error_shape() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let (status, _, body) = connect(&emulator, "123456", "int_404").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_integration")
    );
    let (status, _, body) = connect(&emulator, "12ab", &integration).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_pin")
    );

    // A PIN used for one integration cannot be taken for another.
    let other = create_csv_integration(&emulator, "Other").await;
    let authorization = start_authorization(&emulator, "i").await;
    let (status, _, _) = connect(&emulator, &authorization.user_code, &integration).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = connect(&emulator, &authorization.user_code, &other).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::CONFLICT, "pin_used")
    );

    let (status, _, body) = send_json(
        client().post(emulator.url("/_emulator/connect")),
        &json!({"pin": 5}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[actix_rt::test]
async fn the_token_endpoint_refuses_bad_requests() {
    let emulator = Emulator::start(&[]);
    let token_url = emulator.url(paths::TOKEN);
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("grant_type", "password"), ("client_id", CLIENT_ID)],
            "unsupported_grant_type",
        ),
        (
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "someone-else"),
                ("refresh_token", "x"),
            ],
            "invalid_client",
        ),
        (
            &[("grant_type", "refresh_token"), ("client_id", CLIENT_ID)],
            "invalid_request",
        ),
        (&[("client_id", CLIENT_ID)], "invalid_request"),
    ];
    for (form, expected) in cases {
        let (status, body) = send_form(client().post(&token_url), form).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (StatusCode::BAD_REQUEST, expected),
            "{form:?}"
        );
    }
    let (status, body) = send_form(
        client().post(emulator.url(paths::DEVICE_AUTHORIZATION)),
        &[
            ("client_id", "someone-else"),
            ("instance", "i"),
            ("hostname", "h"),
            ("os", "o"),
            ("version", "v"),
            ("installation_id", "x"),
        ],
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_client")
    );
    let (status, body) = send_form(
        client().post(emulator.url(paths::DEVICE_AUTHORIZATION)),
        &[("client_id", CLIENT_ID)],
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[actix_rt::test]
async fn refresh_tokens_rotate() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let first = pair(&emulator, &integration, "i").await;
    let (status, body) = refresh(&emulator, &first.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second: TokenResponse = typed(body);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    let (status, body) = refresh(&emulator, &first.refresh_token).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, _, _) = send(bearer(
        client().get(emulator.url(paths::ASSIGNMENT)),
        &second,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn connecting_another_client_ends_the_old_link() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let old = pair(&emulator, &integration, "old").await;
    let new = pair(&emulator, &integration, "new").await;

    let (status, headers, body) =
        send(bearer(client().get(emulator.url(paths::ASSIGNMENT)), &old)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("www-authenticate").is_some());
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "invalid_token"
    );
    let (status, body) = refresh(&emulator, &old.refresh_token).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );

    let (status, _, _) = send(bearer(client().get(emulator.url(paths::ASSIGNMENT)), &new)).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn deleting_the_integration_revokes_the_clients_tokens() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let tokens = pair(&emulator, &integration, "i").await;
    let (status, _, _) =
        send(client().delete(emulator.url(&format!("/_emulator/integrations/{integration}"))))
            .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(bearer(
        client().get(emulator.url(paths::ASSIGNMENT)),
        &tokens,
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = refresh(&emulator, &tokens.refresh_token).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[actix_rt::test]
async fn a_device_approved_for_a_deleted_integration_is_denied() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let authorization = start_authorization(&emulator, "i").await;
    let (status, _, _) = connect(&emulator, &authorization.user_code, &integration).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) =
        send(client().delete(emulator.url(&format!("/_emulator/integrations/{integration}"))))
            .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = poll_token(&emulator, &authorization.device_code).await;
    // Deleting dropped the approved authorization, so the code is gone altogether.
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
}

#[actix_rt::test]
async fn expired_access_tokens_get_401_and_refresh_still_works() {
    let emulator = Emulator::start(&["--token-ttl", "0"]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let tokens = pair(&emulator, &integration, "i").await;
    assert_eq!(tokens.expires_in, 0);
    let (status, headers, _) = send(bearer(
        client().get(emulator.url(paths::ASSIGNMENT)),
        &tokens,
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        "Bearer error=\"invalid_token\""
    );
    let (status, body) = refresh(&emulator, &tokens.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_rt::test]
async fn requests_without_a_bearer_token_get_401() {
    let emulator = Emulator::start(&[]);
    for (method, path) in [
        ("GET", paths::ASSIGNMENT),
        ("POST", paths::HEARTBEAT),
        ("POST", paths::UPLOADS),
        ("POST", "/api/cloud-link/v1/uploads/up_1/commit"),
    ] {
        let request = client()
            .request(method.parse().unwrap(), emulator.url(path))
            .insert_header(("Authorization", "Bearer not-a-token"));
        let (status, _, body) = send_json(request, &json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(error_code(&body), "invalid_token");
        let (status, _, _) =
            send(client().request(method.parse().unwrap(), emulator.url(path))).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without Authorization"
        );
    }
}

#[actix_rt::test]
async fn logs_have_one_line_per_request_and_never_a_token_or_pin() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let authorization = start_authorization(&emulator, "i").await;
    let (status, _, _) = connect(&emulator, &authorization.user_code, &integration).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = poll_token(&emulator, &authorization.device_code).await;
    let tokens: TokenResponse = typed(body);
    let (_, body) = refresh(&emulator, &tokens.refresh_token).await;
    let refreshed: TokenResponse = typed(body);

    let mut log = String::new();
    wait_until(
        std::time::Duration::from_secs(10),
        "the token request in the log",
        || {
            log = emulator.log();
            log.matches("POST /api/cloud-link/v1/oauth/token 200")
                .count()
                == 2
        },
    );
    assert!(log.contains("POST /_emulator/integrations 201"), "{log}");
    assert!(
        log.contains("POST /api/cloud-link/v1/oauth/device_authorization 200"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("POST /_emulator/connect 200") && l.contains("ms")),
        "{log}"
    );
    for secret in [
        authorization.user_code.as_str(),
        authorization.device_code.as_str(),
        tokens.access_token.as_str(),
        tokens.refresh_token.as_str(),
        refreshed.access_token.as_str(),
    ] {
        assert!(!log.contains(secret), "the log shows a secret:\n{log}");
    }
}
