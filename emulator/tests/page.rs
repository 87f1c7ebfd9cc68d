//! The person's page, over plain HTTP (the browser test is in page_browser.rs).

mod support;

use awc::http::StatusCode;
use injixo_cloud_link_protocol::paths;
use serde_json::json;
use support::*;

async fn get_page(emulator: &Emulator) -> String {
    let (status, headers, body) = send(client().get(emulator.url("/account/integrations"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    String::from_utf8(body).unwrap()
}

async fn post_pin(
    emulator: &Emulator,
    integration: &str,
    pin: &str,
) -> (StatusCode, awc::http::header::HeaderMap, String) {
    let mut response = client()
        .post(emulator.url(&format!("/account/integrations/{integration}/connect")))
        .send_form(&[("pin", pin)])
        .await
        .unwrap();
    let body = response.body().await.unwrap();
    (
        response.status(),
        response.headers().clone(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_rt::test]
async fn the_page_lists_integrations_clients_and_imports_escaped() {
    let emulator = Emulator::start(&[]);
    assert!(get_page(&emulator).await.contains("No integrations yet"));
    let integration = create_csv_integration(&emulator, "<script>alert('x')</script> & Co").await;
    let page = get_page(&emulator).await;
    assert!(page.contains("PIN shown during installation"));
    assert!(page.contains(&format!(
        "action=\"/account/integrations/{integration}/connect\""
    )));
    assert!(page.contains(">Connect</button>"));
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co"));
    assert!(!page.contains("<script>"));
    assert!(page.contains("No client connected."));

    let tokens = pair(&emulator, &integration, "com.injixo.cloud-link.<i>").await;
    let heartbeat = json!({"version": "9.8.7", "os": "linux", "hostname": "acd-host", "started_at": "2025-01-01T00:00:00Z",
        "state": "online", "importers": [], "spool": {"files": 0, "bytes": 0}});
    let (status, _, _) = send_json(
        bearer(client().post(emulator.url(paths::HEARTBEAT)), &tokens),
        &heartbeat,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    upload(&emulator, &tokens, "k1", b"a;b\n1;2\n3;4\n", 2).await;
    upload(&emulator, &tokens, "k2", b"a;b\n5;6\n", 1234).await;

    let page = get_page(&emulator).await;
    assert!(page.contains("com.injixo.cloud-link.&lt;i&gt;"), "{page}");
    assert!(page.contains("acd-host") && page.contains("9.8.7"));
    assert!(!page.contains("Last heartbeat</th></tr><tr><td>never"));
    assert!(
        page.contains("<td class=\"num\">1234</td>") && page.contains("<td class=\"num\">2</td>"),
        "{page}"
    );
    assert!(page.contains("imp_1") && page.contains("imp_2"));
    // Newest import first.
    assert!(page.find("imp_2").unwrap() < page.find("imp_1").unwrap());
}

#[actix_rt::test]
async fn the_form_connects_a_pin_then_redirects() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let authorization = start_authorization(&emulator, "my-instance").await;
    let (status, headers, _) = post_pin(&emulator, &integration, &authorization.user_code).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        location.starts_with(&format!("/account/integrations?connected={integration}")),
        "{location}"
    );
    let (status, _, body) = send(client().get(emulator.url(&location))).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains("Connected: my-instance on test-host."),
        "{page}"
    );
    let (status, _) = poll_token(&emulator, &authorization.device_code).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn wrong_expired_and_rate_limited_pins_show_a_message() {
    let emulator = Emulator::start(&["--pin-ttl", "0"]);
    let integration = create_csv_integration(&emulator, "CSV").await;

    let expired = start_authorization(&emulator, "i").await;
    let (status, _, page) = post_pin(&emulator, &integration, &expired.user_code).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(
        page.contains("role=\"alert\"") && page.contains("this PIN has expired"),
        "{page}"
    );

    let (status, _, page) = post_pin(&emulator, &integration, "12\"><b>").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("the PIN must be 6 digits"));
    assert!(
        page.contains("value=\"12&quot;&gt;&lt;b&gt;\""),
        "the typed PIN is escaped"
    );

    let wrong = if expired.user_code == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..4 {
        let (status, _, page) = post_pin(&emulator, &integration, wrong).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(page.contains("this PIN is not known"), "{page}");
    }
    let (status, headers, page) = post_pin(&emulator, &integration, wrong).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.get("retry-after").is_some());
    assert!(page.contains("too many wrong PINs: try again in"), "{page}");

    let (status, _, page) = post_pin(&emulator, "int_404", wrong).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("<h1>Integrations</h1>"));
}

#[actix_rt::test]
async fn the_root_redirects_to_the_page() {
    let emulator = Emulator::start(&[]);
    let (status, headers, _) = send(client().get(emulator.url("/"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers.get("location").unwrap(), "/account/integrations");
}
