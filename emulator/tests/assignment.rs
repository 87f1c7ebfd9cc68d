//! Assignment with ETag, heartbeat, and the integration part of the control API.

mod support;

use awc::http::StatusCode;
use injixo_cloud_link_protocol::emulator::ClientRecord;
use injixo_cloud_link_protocol::{paths, AssignmentResponse, Integration, IntegrationKind};
use serde_json::json;
use support::*;

#[actix_rt::test]
async fn the_assignment_has_a_strong_etag_that_follows_changes() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let tokens = pair(&emulator, &integration, "i").await;
    let url = emulator.url(paths::ASSIGNMENT);

    let (status, headers, body) = send(bearer(client().get(&url), &tokens)).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers
        .get("etag")
        .expect("ETag")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    let assignment: AssignmentResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(assignment.integration.id, integration);
    assert_eq!(assignment.integration.kind, IntegrationKind::Csv);
    assert_eq!(assignment.integration.csv.unwrap().pattern, "*.csv");

    let (status, headers, body) =
        send(bearer(client().get(&url), &tokens).insert_header(("If-None-Match", etag.as_str())))
            .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(headers.get("etag").unwrap().to_str().unwrap(), etag);

    let (status, _, _) =
        send(bearer(client().get(&url), &tokens).insert_header(("If-None-Match", "\"other\"")))
            .await;
    assert_eq!(status, StatusCode::OK);

    let database = json!({
        "name": "Avaya CMS interval data", "kind": "database",
        "database": {
            "connection_string": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Database=acd;Uid=wfm;Pwd=secret",
            "time_zone": "Europe/Berlin",
            "imports": [
                {"id": "interval", "type": "interval", "query": "SELECT * FROM stats WHERE ts >= ? AND ts < ?",
                 "every_seconds": 900, "reconcile_hours": 24, "backfill_days": 1095},
                {"id": "agent_status", "type": "agent_status", "query": "SELECT * FROM agents",
                 "every_seconds": 10, "reconcile_hours": 1, "backfill_days": 0}]}});
    let (status, _, body) = send_json(
        client().put(emulator.url(&format!("/_emulator/integrations/{integration}"))),
        &database,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, headers, body) =
        send(bearer(client().get(&url), &tokens).insert_header(("If-None-Match", etag.as_str())))
            .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(headers.get("etag").unwrap().to_str().unwrap(), etag);
    let assignment: AssignmentResponse = serde_json::from_slice(&body).unwrap();
    let db = assignment.integration.database.expect("database settings");
    assert_eq!(db.time_zone, "Europe/Berlin");
    assert_eq!(db.imports.len(), 2);
    assert_eq!(assignment.integration.id, integration);
}

#[actix_rt::test]
async fn heartbeats_are_stored_per_client() {
    let emulator = Emulator::start(&[]);
    let integration = create_csv_integration(&emulator, "CSV").await;
    let tokens = pair(&emulator, &integration, "com.injixo.cloud-link.instance.1").await;
    let heartbeat = json!({
        "version": "0.2.0", "os": "linux", "hostname": "acd-server", "started_at": "2025-01-01T12:00:00Z",
        "state": "limited",
        "importers": [{"id": "csv", "state": "error", "last_success_at": null, "last_error": "permission denied"}],
        "spool": {"files": 3, "bytes": 1234}});
    let (status, _, body) = send_json(
        bearer(client().post(emulator.url(paths::HEARTBEAT)), &tokens),
        &heartbeat,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (_, _, body) = send(client().get(emulator.url("/_emulator/clients"))).await;
    let clients: Vec<ClientRecord> = serde_json::from_slice(&body).unwrap();
    assert_eq!(clients.len(), 1);
    let client_record = &clients[0];
    assert_eq!(client_record.integration_id, integration);
    assert_eq!(client_record.instance, "com.injixo.cloud-link.instance.1");
    assert_eq!(client_record.version, "0.2.0");
    assert_eq!(client_record.hostname, "acd-server");
    assert!(client_record.last_heartbeat.is_some());
    let stored = client_record.heartbeat.as_ref().unwrap();
    assert_eq!(stored.spool.files, 3);
    assert_eq!(
        stored.importers[0].last_error.as_deref(),
        Some("permission denied")
    );

    let (status, _, body) = send_json(
        bearer(client().post(emulator.url(paths::HEARTBEAT)), &tokens),
        &json!({"version": 1}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}

#[actix_rt::test]
async fn integrations_are_created_listed_replaced_and_deleted() {
    let emulator = Emulator::start(&[]);
    let first = create_csv_integration(&emulator, "First").await;
    let second = create_csv_integration(&emulator, "Second").await;
    assert_ne!(first, second);

    let (status, _, body) = send(client().get(emulator.url("/_emulator/integrations"))).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<Integration> = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        listed.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["First", "Second"]
    );

    let one = |id: &str| emulator.url(&format!("/_emulator/integrations/{id}"));
    let (status, _, body) = send(client().get(one(&first))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Integration>(&body).unwrap().name,
        "First"
    );

    let (status, _, body) = send_json(
        client().put(one("int_999")),
        &json!({"name": "x", "kind": "csv"}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_integration")
    );
    let (status, _, body) = send_json(
        client().post(emulator.url("/_emulator/integrations")),
        &json!({"name": "x", "kind": "database"}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let (status, _, body) = send_json(
        client().post(emulator.url("/_emulator/integrations")),
        &json!({"kind": "csv"}),
    )
    .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    let (status, _, _) = send(client().delete(one(&first))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = send(client().delete(one(&first))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "unknown_integration"
    );
    let (status, _, _) = send(client().get(one(&first))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn unknown_routes_answer_json_404() {
    let emulator = Emulator::start(&[]);
    let (status, _, body) = send(client().get(emulator.url("/api/cloud-link/v2/nothing"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        error_code(&serde_json::from_slice(&body).unwrap()),
        "not_found"
    );
}
