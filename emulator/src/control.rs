//! The inspection and control API below `/_emulator` (protocol.md §6).
//! No authentication, so it answers only to loopback addresses.

use std::io::Read;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use chrono::Utc;
use flate2::read::GzDecoder;
use injixo_cloud_link_protocol::emulator::{ConnectRequest, CreatedIntegration, FaultRule};
use injixo_cloud_link_protocol::Integration;
use serde::Deserialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::state::mask_pin;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/_emulator")
            .wrap(actix_web::middleware::from_fn(loopback_only))
            .route("/integrations", web::post().to(create_integration))
            .route("/integrations", web::get().to(list_integrations))
            .route("/integrations/{id}", web::get().to(get_integration))
            .route("/integrations/{id}", web::put().to(replace_integration))
            .route("/integrations/{id}", web::delete().to(delete_integration))
            .route("/connect", web::post().to(connect))
            .route("/imports", web::get().to(list_imports))
            .route("/realtime", web::get().to(list_realtime))
            .route(
                "/imports/{import_id}/content",
                web::get().to(import_content),
            )
            .route("/clients", web::get().to(list_clients))
            .route("/faults", web::post().to(add_fault))
            .route("/faults", web::get().to(list_faults))
            .route("/faults", web::delete().to(clear_faults)),
    );
}

/// The API has no authentication: only this machine may use it.
async fn loopback_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let from_loopback = req.peer_addr().is_none_or(|addr| addr.ip().is_loopback());
    if !from_loopback {
        let error = ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the emulator API answers only to loopback addresses",
        );
        return Ok(req.into_response(error.error_response()));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

async fn create_integration(
    app: web::Data<AppState>,
    body: web::Json<Integration>,
) -> Result<HttpResponse, ApiError> {
    let id = app.update(|s| s.create_integration(body.into_inner()))?;
    tracing::info!("integration {id} created");
    Ok(HttpResponse::Created().json(CreatedIntegration { id }))
}

async fn list_integrations(app: web::Data<AppState>) -> HttpResponse {
    let integrations: Vec<Integration> = app.read(|s| s.integrations().cloned().collect());
    HttpResponse::Ok().json(integrations)
}

async fn get_integration(
    app: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let integration = app.read(|s| s.integration(&id).cloned()).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_integration",
            format!("there is no integration {id}"),
        )
    })?;
    Ok(HttpResponse::Ok().json(integration))
}

async fn replace_integration(
    app: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Integration>,
) -> Result<HttpResponse, ApiError> {
    let integration = app.update(|s| s.replace_integration(&id, body.into_inner()))?;
    tracing::info!("integration {id} changed");
    Ok(HttpResponse::Ok().json(integration))
}

async fn delete_integration(
    app: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    app.update(|s| s.delete_integration(&id))?;
    tracing::info!("integration {id} deleted; its client's tokens are revoked");
    Ok(HttpResponse::NoContent().finish())
}

async fn connect(
    app: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ConnectRequest>,
) -> Result<HttpResponse, ApiError> {
    let source = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let ConnectRequest {
        pin,
        integration_id,
    } = body.into_inner();
    let connected = app.update(|s| s.connect(&pin, &integration_id, source, Utc::now()));
    match &connected {
        Ok(c) => tracing::info!(
            "PIN {} connected {:?} to {integration_id}",
            mask_pin(&pin),
            c.instance
        ),
        Err(e) => tracing::info!("PIN {} refused for {integration_id}: {e}", mask_pin(&pin)),
    }
    Ok(HttpResponse::Ok().json(connected?))
}

#[derive(Deserialize)]
struct ImportFilter {
    integration_id: Option<String>,
}

async fn list_imports(app: web::Data<AppState>, filter: web::Query<ImportFilter>) -> HttpResponse {
    HttpResponse::Ok().json(app.read(|s| s.imports(filter.integration_id.as_deref())))
}

async fn list_realtime(app: web::Data<AppState>, filter: web::Query<ImportFilter>) -> HttpResponse {
    HttpResponse::Ok().json(app.read(|s| s.realtime(filter.integration_id.as_deref())))
}

async fn import_content(
    app: web::Data<AppState>,
    import_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let import = app.read(|s| s.import(&import_id).cloned()).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_import",
            format!("there is no import {import_id}"),
        )
    })?;
    let limit = usize::try_from(app.settings.max_upload_size).unwrap_or(usize::MAX);
    let stored = app
        .objects
        .read(&import.object_key, limit)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "storage_unavailable",
                e.to_string(),
            )
        })?;
    let content = match import.record.content_encoding.as_deref() {
        Some("gzip") => {
            let mut decoded = Vec::new();
            GzDecoder::new(stored.as_slice())
                .read_to_end(&mut decoded)
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "bad_gzip",
                        format!("the stored bytes are not valid gzip: {e}"),
                    )
                })?;
            decoded
        }
        _ => stored,
    };
    let content_type = if import.record.content_type.is_empty() {
        "application/octet-stream".to_owned()
    } else {
        import.record.content_type.clone()
    };
    Ok(HttpResponse::Ok().content_type(content_type).body(content))
}

async fn list_clients(app: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(app.read(|s| s.clients()))
}

async fn add_fault(
    app: web::Data<AppState>,
    rule: web::Json<FaultRule>,
) -> Result<HttpResponse, ApiError> {
    let rule = rule.into_inner();
    tracing::info!("fault rule added: {rule:?}");
    app.faults.add(rule).map_err(ApiError::bad_request)?;
    Ok(HttpResponse::Created().json(app.faults.list()))
}

async fn list_faults(app: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(app.faults.list())
}

async fn clear_faults(app: web::Data<AppState>) -> HttpResponse {
    app.faults.clear();
    HttpResponse::NoContent().finish()
}
