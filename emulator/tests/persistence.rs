//! `--data-dir`: everything survives a restart, even a kill -9; without it
//! nothing does.

mod support;

use awc::http::StatusCode;
use injixo_cloud_link_protocol::paths;
use support::*;

const CSV: &[u8] = b"StartDate;StartTime;AgentID;AgentActivityID\n2022-04-22;08:34:29;816;1013\n";

#[actix_rt::test]
async fn a_restart_keeps_integrations_tokens_imports_and_their_content() {
    let data_dir = tempfile::tempdir().unwrap();
    let dir = data_dir.path().to_str().unwrap();
    let emulator = Emulator::start(&["--data-dir", dir]);
    let integration = create_csv_integration(&emulator, "Agent status").await;
    let tokens = pair(&emulator, &integration, "i").await;
    let import_id = upload(&emulator, &tokens, "key-1", CSV, 1).await;
    // An upload URL handed out before the restart, used after it.
    let pending = create_upload(&emulator, &tokens, &upload_request("key-2", b"x;y\n", 0)).await;
    let (_, etag_headers, _) = send(bearer(
        client().get(emulator.url(paths::ASSIGNMENT)),
        &tokens,
    ))
    .await;
    let etag = etag_headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let address = emulator.address;
    emulator.stop(); // SIGKILL: nothing gets a chance to flush at exit

    let state_file = std::fs::read_to_string(data_dir.path().join("state.json")).unwrap();
    assert!(
        !state_file.contains(&tokens.access_token) && !state_file.contains(&tokens.refresh_token)
    );

    // Same address, so the URL handed out before still points at us.
    let address = address.to_string();
    let emulator = Emulator::start(&["--data-dir", dir, "--listen", &address]);
    let (status, _, body) = send(client().get(emulator.url("/_emulator/integrations"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("Agent status"));

    let (status, _, _) = send(
        bearer(client().get(emulator.url(paths::ASSIGNMENT)), &tokens)
            .insert_header(("If-None-Match", etag.as_str())),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_MODIFIED,
        "the old token and ETag still hold"
    );

    let listed = imports(&emulator, None).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].import_id, import_id);
    assert_eq!(
        content(&emulator, &import_id).await,
        (StatusCode::OK, CSV.to_vec())
    );

    assert_eq!(put_body(&pending, b"x;y\n").await.0, StatusCode::OK);
    let (status, body) = commit(&emulator, &tokens, &pending.upload_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(
        body["import_id"],
        import_id.as_str(),
        "import ids are not reused"
    );

    let (status, body) = refresh(&emulator, &tokens.refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, _, clients) = send(client().get(emulator.url("/_emulator/clients"))).await;
    assert!(String::from_utf8_lossy(&clients).contains(&integration));
}

#[actix_rt::test]
async fn without_a_data_dir_a_restart_forgets_everything() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let tokens = pair(&emulator, &integration, "i").await;
    emulator.stop();
    let emulator = Emulator::start(&[]);
    let (_, _, body) = send(client().get(emulator.url("/_emulator/integrations"))).await;
    assert_eq!(body, b"[]");
    let (status, _, _) = send(bearer(
        client().get(emulator.url(paths::ASSIGNMENT)),
        &tokens,
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn a_corrupt_state_file_stops_the_start_with_a_clear_message() {
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::write(data_dir.path().join("state.json"), "{ not json").unwrap();
    let error = match Emulator::try_start(&["--data-dir", data_dir.path().to_str().unwrap()]) {
        Ok(_) => panic!("the emulator started on a corrupt state file"),
        Err(e) => e,
    };
    assert!(error.contains("state.json"), "{error}");
}
