//! Uploads over real HTTP: the two steps, the S3-style checks of the PUT,
//! idempotent commits and the inspection of what was stored.

mod support;

use std::io::Write;

use awc::http::StatusCode;
use injixo_cloud_link_protocol::{paths, TokenResponse, UploadAlreadyCommitted};
use serde_json::json;
use support::*;

const CSV: &[u8] = b"Queue;Date;Time;IncomingCalls\nMy Inbound Queue;25/05/2020;08:00;15\n";

async fn paired(emulator: &Emulator) -> (String, TokenResponse) {
    let integration = create_csv_integration(emulator, "CSV").await;
    let tokens = pair(emulator, &integration, "i").await;
    (integration, tokens)
}

#[actix_rt::test]
async fn a_file_is_uploaded_committed_and_read_back() {
    let emulator = Emulator::start(&[]);
    let (integration, tokens) = paired(&emulator).await;
    let key = sha256_hex(CSV);
    let target = create_upload(&emulator, &tokens, &upload_request(&key, CSV, 1)).await;
    assert_eq!(target.method, "PUT");
    assert_eq!(target.expires_in, 900);
    assert_eq!(target.headers["Content-Type"], "text/csv");
    assert!(
        target.url.starts_with(&emulator.url("/_s3/")),
        "{}",
        target.url
    );

    let (status, _) = put_body(&target, CSV).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = commit(&emulator, &tokens, &target.upload_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "committed");
    let import_id = body["import_id"].as_str().unwrap().to_owned();

    let listed = imports(&emulator, Some(&integration)).await;
    assert_eq!(listed.len(), 1);
    let import = &listed[0];
    assert_eq!(import.import_id, import_id);
    assert_eq!(import.idempotency_key, key);
    assert_eq!(import.file_name, "stats.csv");
    assert_eq!(import.size, CSV.len() as u64);
    assert_eq!(import.sha256, sha256_hex(CSV));
    assert_eq!(import.metadata["rows"], 1);
    assert_eq!(import.duplicates, 0);
    assert!(imports(&emulator, Some("int_other")).await.is_empty());
    assert_eq!(
        content(&emulator, &import_id).await,
        (StatusCode::OK, CSV.to_vec())
    );

    // Committing the same upload again is idempotent: same import, counted.
    let (status, again) = commit(&emulator, &tokens, &target.upload_id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["import_id"], import_id.as_str());

    // Asking to upload the same key again: already committed, nothing to send.
    let (status, _, body) = send_json(
        bearer(client().post(emulator.url(paths::UPLOADS)), &tokens),
        &serde_json::to_value(upload_request(&key, CSV, 1)).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let committed: UploadAlreadyCommitted = typed(body);
    assert_eq!(committed.upload_id, target.upload_id);
    assert_eq!(imports(&emulator, None).await.len(), 1);
}

#[actix_rt::test]
async fn a_second_commit_of_a_key_is_counted_as_duplicate_and_stores_nothing() {
    let emulator = Emulator::start(&[]);
    let (_, tokens) = paired(&emulator).await;
    // Two uploads of one key, as after a crash between PUT and commit.
    let first = create_upload(&emulator, &tokens, &upload_request("key-1", CSV, 1)).await;
    let second = create_upload(&emulator, &tokens, &upload_request("key-1", CSV, 1)).await;
    assert_ne!(first.upload_id, second.upload_id);
    assert_eq!(put_body(&first, CSV).await.0, StatusCode::OK);
    assert_eq!(put_body(&second, CSV).await.0, StatusCode::OK);
    let (_, one) = commit(&emulator, &tokens, &first.upload_id).await;
    let (status, two) = commit(&emulator, &tokens, &second.upload_id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["import_id"], two["import_id"]);
    let listed = imports(&emulator, None).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].duplicates, 1);
}

#[actix_rt::test]
async fn gzip_uploads_are_decoded_for_inspection() {
    let emulator = Emulator::start(&[]);
    let (_, tokens) = paired(&emulator).await;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(CSV).unwrap();
    let gzipped = encoder.finish().unwrap();
    let mut request = upload_request("gz", &gzipped, 1);
    request.content_encoding = Some("gzip".into());
    let target = create_upload(&emulator, &tokens, &request).await;
    assert_eq!(put_body(&target, &gzipped).await.0, StatusCode::OK);
    let (_, body) = commit(&emulator, &tokens, &target.upload_id).await;
    let (status, decoded) = content(&emulator, body["import_id"].as_str().unwrap()).await;
    assert_eq!((status, decoded), (StatusCode::OK, CSV.to_vec()));
}

#[actix_rt::test]
async fn a_chunked_put_is_answered_411() {
    let emulator = Emulator::start(&[]);
    let (_, tokens) = paired(&emulator).await;
    let target = create_upload(&emulator, &tokens, &upload_request("k", b"a;b\n1;2\n", 1)).await;
    let request = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n8\r\na;b\n1;2\n\r\n0\r\n\r\n",
        path_and_query(&target.url),
        emulator.address
    );
    let (status, body) = raw_http(emulator.address, request.as_bytes());
    assert_eq!(status, 411, "{body}");
    assert!(body.contains("missing_content_length"), "{body}");
    // Nothing was stored, so the commit is refused.
    let (status, body) = commit(&emulator, &tokens, &target.upload_id).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::CONFLICT, "not_uploaded")
    );
}

#[actix_rt::test]
async fn a_put_without_content_length_is_answered_411() {
    let emulator = Emulator::start(&[]);
    let (_, tokens) = paired(&emulator).await;
    let target = create_upload(&emulator, &tokens, &upload_request("k", b"x", 1)).await;
    let request = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        path_and_query(&target.url),
        emulator.address
    );
    let (status, body) = raw_http(emulator.address, request.as_bytes());
    assert_eq!(status, 411, "{body}");
}

#[actix_rt::test]
async fn a_size_or_sha256_mismatch_is_answered_400() {
    let emulator = Emulator::start(&[]);
    let (_, tokens) = paired(&emulator).await;
    let target = create_upload(&emulator, &tokens, &upload_request("k", CSV, 1)).await;

    let (status, body) = put_body(&target, &CSV[..CSV.len() - 1]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "size_mismatch"
    );

    let mut longer = CSV.to_vec();
    longer.push(b'\n');
    let (status, _) = put_body(&target, &longer).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut tampered = CSV.to_vec();
    tampered[0] = b'q';
    let (status, body) = put_body(&target, &tampered).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "bad_digest"
    );

    let (status, body) = commit(&emulator, &tokens, &target.upload_id).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::CONFLICT, "not_uploaded")
    );
    // The right bytes still go through afterwards.
    assert_eq!(put_body(&target, CSV).await.0, StatusCode::OK);
    assert_eq!(
        commit(&emulator, &tokens, &target.upload_id).await.0,
        StatusCode::OK
    );
}

#[actix_rt::test]
async fn an_expired_url_is_answered_403() {
    let emulator = Emulator::start(&["--upload-url-ttl", "0"]);
    let (_, tokens) = paired(&emulator).await;
    let target = create_upload(&emulator, &tokens, &upload_request("k", CSV, 1)).await;
    assert_eq!(target.expires_in, 0);
    let (status, body) = put_body(&target, CSV).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "request_expired"
    );
}

#[actix_rt::test]
async fn a_tampered_signature_is_answered_403() {
    let emulator = Emulator::start(&[]);
    let (_, tokens) = paired(&emulator).await;
    let mut target = create_upload(&emulator, &tokens, &upload_request("k", CSV, 1)).await;
    let original = target.url.clone();

    // A bigger size in the URL than was signed.
    target.url = original.replace(
        &format!("X-Size={}", CSV.len()),
        &format!("X-Size={}", CSV.len() + 1),
    );
    assert_ne!(target.url, original);
    let mut bigger = CSV.to_vec();
    bigger.push(b'\n');
    let (status, body) = put_body(&target, &bigger).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "signature_mismatch"
    );

    // Another upload's path with this signature.
    target.url = original.replace("/_s3/uploads/up_", "/_s3/uploads/up_0");
    assert_eq!(put_body(&target, CSV).await.0, StatusCode::FORBIDDEN);

    // No signature at all.
    target.url = original.split('?').next().unwrap().to_owned();
    assert_eq!(put_body(&target, CSV).await.0, StatusCode::FORBIDDEN);
}

#[actix_rt::test]
async fn invalid_upload_requests_are_answered_400() {
    let emulator = Emulator::start(&["--max-upload-size", "100"]);
    let (_, tokens) = paired(&emulator).await;
    let url = emulator.url(paths::UPLOADS);
    let valid = serde_json::to_value(upload_request("k", CSV, 1)).unwrap();
    let mut cases = Vec::new();
    for (field, value) in [
        ("sha256", json!("not-hex")),
        ("idempotency_key", json!("")),
        ("file_name", json!("")),
        ("content_encoding", json!("br")),
        ("source", json!("ftp")),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        cases.push(body);
    }
    cases.push(json!({"idempotency_key": "k"}));
    for body in cases {
        let (status, _, answer) = send_json(bearer(client().post(&url), &tokens), &body).await;
        assert_eq!(
            (status, error_code(&answer).as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
    }
    let mut huge = valid.clone();
    huge["size"] = json!(101);
    let (status, _, answer) = send_json(bearer(client().post(&url), &tokens), &huge).await;
    assert_eq!(
        (status, error_code(&answer).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
}

#[actix_rt::test]
async fn unknown_uploads_and_other_integrations_uploads_are_404() {
    let emulator = Emulator::start(&[]);
    let (_, tokens) = paired(&emulator).await;
    let (status, body) = commit(&emulator, &tokens, "up_unknown").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_upload")
    );

    let target = create_upload(&emulator, &tokens, &upload_request("k", CSV, 1)).await;
    assert_eq!(put_body(&target, CSV).await.0, StatusCode::OK);
    let other_integration = create_csv_integration(&emulator, "Other").await;
    let stranger = pair(&emulator, &other_integration, "stranger").await;
    let (status, body) = commit(&emulator, &stranger, &target.upload_id).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_upload")
    );
    let (status, _) = content(&emulator, "imp_404").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
