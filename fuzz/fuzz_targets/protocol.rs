//! Every answer the client reads from the cloud, parsed from arbitrary bytes
//! as the client does (`serde_json::from_slice`, see `http::Response::json`
//! and `HttpError::from_status`), and then used as the client uses it. The
//! first byte picks the answer; the rest is its body. A parsed answer
//! serializes and parses back to itself; nothing the cloud sends panics the
//! client, makes a path, or shows a secret.
#![no_main]

use std::path::{Component, Path};

use awc::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use awc::http::{Method, StatusCode, Uri};
use chrono::{DateTime, Utc};
use injixo_cloud_link::assignment::{changes, summary, CachedAssignment};
use injixo_cloud_link::csv::FilePattern;
use injixo_cloud_link::db::{connection_string, planner, watermark};
use injixo_cloud_link::http::error::MAX_RETRY_AFTER;
use injixo_cloud_link::http::{self, HttpError};
use injixo_cloud_link::pairing::{banner, PinOffer};
use injixo_cloud_link::protocol::{
    AssignmentResponse, CommitResponse, DeviceAuthorizationResponse, ErrorBody, Integration,
    IntegrationKind, TokenErrorCode, TokenResponse, UploadAlreadyCommitted, UploadTarget,
};
use injixo_cloud_link::state::credentials::Credentials;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
    match which % 8 {
        0 => {
            if let Some(answer) = parse::<DeviceAuthorizationResponse>(body) {
                // As the pairing actor turns it into the PIN banner.
                let offer = PinOffer {
                    pin: answer.user_code,
                    verification_uri: answer.verification_uri,
                    expires_at: now
                        + chrono::Duration::seconds(answer.expires_in.min(86_400) as i64),
                    relink: answer.interval % 2 == 0,
                };
                assert!(!banner(&offer, Some("x"), now).is_empty());
            }
        }
        1 => {
            if let Some(token) = parse::<TokenResponse>(body) {
                let shown = format!("{token:?}");
                for secret in [&token.access_token, &token.refresh_token] {
                    if secret.len() >= 8 && !token.integration_id.contains(secret.as_str()) {
                        assert!(!shown.contains(secret.as_str()), "{shown}");
                    }
                }
                let linked = Credentials::linked(token.clone(), "https://www.injixo.com", now);
                assert!(linked.expires_at >= now);
                assert!(linked.refresh_at(now) <= linked.expires_at);
                let refreshed = linked.refreshed(token, now);
                // What is stored must load again.
                let stored = serde_json::to_vec(&refreshed).unwrap();
                let loaded: Credentials = serde_json::from_slice(&stored).unwrap();
                assert_eq!(loaded, refreshed);
            }
        }
        2 => {
            if let Some(answer) = parse::<AssignmentResponse>(body) {
                use_assignment(&answer.integration, now);
            }
        }
        3 => {
            if let Some(target) = parse::<UploadTarget>(body) {
                use_upload_target(&target);
            }
        }
        4 => {
            if let Some(earlier) = parse::<UploadAlreadyCommitted>(body) {
                let _ = injixo_cloud_link::protocol::paths::commit(&earlier.upload_id);
            }
        }
        5 => {
            let _ = parse::<CommitResponse>(body);
        }
        _ => {
            // An error answer: the body and a Retry-After header, split at
            // the first newline.
            let (header, body) = match body.iter().position(|&b| b == b'\n') {
                Some(i) => (&body[..i], &body[i + 1..]),
                None => (&b""[..], body),
            };
            let _ = parse::<ErrorBody>(body);
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_bytes(header) {
                headers.insert(RETRY_AFTER, value);
            }
            for status in [StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS] {
                let error = HttpError::from_status("cloud:443", status, &headers, body);
                if let Some(delay) = error.retry_after() {
                    assert!(delay <= MAX_RETRY_AFTER, "{delay:?}");
                }
                let _ = error.to_string();
                let _ = error.is_retryable();
                // As the cloud module reads a token endpoint's error code.
                if let Some(code) = error.error_code() {
                    let _: Option<TokenErrorCode> =
                        serde_json::from_value(serde_json::Value::String(code.to_owned())).ok();
                }
            }
        }
    }
});

/// Parses like the client, and checks that the value reads back as itself.
fn parse<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(body: &[u8]) -> Option<T> {
    let value: T = serde_json::from_slice(body).ok()?;
    let again: T = serde_json::from_slice(&serde_json::to_vec(&value).unwrap()).unwrap();
    assert_eq!(again, value);
    Some(value)
}

fn use_assignment(integration: &Integration, now: DateTime<Utc>) {
    let _ = summary(integration);
    let before = Integration {
        id: "int_1".into(),
        name: "Avaya CMS".into(),
        kind: IntegrationKind::Csv,
        realtime: None,
        csv: None,
        database: None,
    };
    let _ = changes(&before, integration);
    let _ = changes(integration, &before);
    assert!(changes(integration, integration).is_empty());
    // The cache in state/assignment.json loads again.
    let cached = CachedAssignment {
        integration: integration.clone(),
        etag: None,
        fetched_at: now,
    };
    let again: CachedAssignment =
        serde_json::from_slice(&serde_json::to_vec(&cached).unwrap()).unwrap();
    assert_eq!(again, cached);

    // The watermark file is named after the id, which must never make a path.
    let name = watermark::file_name(&integration.id);
    let components: Vec<_> = Path::new(&name).components().collect();
    assert!(
        matches!(components[..], [Component::Normal(_)]) && !name.contains(['/', '\\', ':']),
        "{name:?}"
    );

    if let Some(csv) = &integration.csv {
        if let Ok(pattern) = FilePattern::new(&csv.pattern) {
            let _ = pattern.selects("interval.csv");
            let _ = pattern.selects(&csv.pattern);
        }
    }
    if let Some(database) = &integration.database {
        let _ = planner::parse_time_zone(&database.time_zone);
        let conn = &database.connection_string;
        let _ = connection_string::mask(conn);
        let _ = connection_string::driver_kind(conn);
        let _ = connection_string::with_driver_tuning(conn, 1000, 65_536);
        // The local password always wins over the cloud's string.
        let local = "l0cal-Secret";
        let effective = connection_string::effective(conn, None, Some("reader"), Some(local));
        let passwords: Vec<_> = connection_string::parse(&effective)
            .into_iter()
            .filter(|a| ["pwd", "password"].contains(&a.key.to_ascii_lowercase().as_str()))
            .map(|a| a.value)
            .collect();
        assert_eq!(passwords, [local], "{conn:?} became {effective:?}");
        if !conn.contains(local) {
            let masked = connection_string::mask(&effective);
            assert!(!masked.contains(local), "{effective:?}");
        }
        for import in &database.imports {
            let _ = planner::query_shape(import);
            let schedule = planner::ImportSchedule::from_import(import);
            let _ = planner::first_start(&schedule, now, chrono_tz::UTC);
        }
    }
}

fn use_upload_target(target: &UploadTarget) {
    // As the uploader's PUT does.
    if let Ok(uri) = target.url.parse::<Uri>() {
        let shown = http::display_url(&uri);
        // A pre-signed URL carries its signature in the query: never shown.
        if uri.query().is_some() {
            assert!(!shown.contains('?'), "{shown} shows the query");
        }
    }
    let _ = Method::from_bytes(target.method.as_bytes());
    for (name, value) in &target.headers {
        let _ = HeaderName::from_bytes(name.as_bytes());
        let _ = HeaderValue::from_str(value);
    }
    let _ = injixo_cloud_link::protocol::paths::commit(&target.upload_id);
}
