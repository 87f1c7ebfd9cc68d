//! Bearer-authenticated endpoints other than uploads: assignment and heartbeat.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::Utc;
use injixo_cloud_link_protocol::{
    AssignmentResponse, Heartbeat, RealtimeAnswer, RealtimeBatch, MAX_BATCH_BYTES,
};

use crate::app::AppState;
use crate::error::ApiError;
use crate::state::{AuthError, Principal, RealtimeOutcome};

/// The integration and client an access token stands for.
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let app = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or(AuthError::InvalidToken)?;
    let principal = app.read(|s| s.authenticate(token, Utc::now()))?;
    Ok(Authenticated(principal))
}

pub async fn assignment(
    app: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (integration, etag) = app
        .read(|s| s.assignment(&principal.integration_id))
        .ok_or_else(|| ApiError::from(AuthError::InvalidToken))?;
    if if_none_match_hits(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .json(AssignmentResponse { integration }))
}

/// RFC 9110 §13.1.2: a list of tags or `*`; weak tags compare weakly.
fn if_none_match_hits(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

pub async fn heartbeat(
    app: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    body: web::Json<Heartbeat>,
) -> HttpResponse {
    app.update(|s| s.record_heartbeat(&principal, body.into_inner(), Utc::now()));
    HttpResponse::NoContent().finish()
}

/// `POST .../realtime/events` (§7): 202 with the count, 200 "duplicate" for
/// a key already stored, 413 over 256 KiB, 422 for a batch the cloud would
/// not take.
pub async fn realtime_events(
    app: web::Data<AppState>,
    Authenticated(principal): Authenticated,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    if body.len() > MAX_BATCH_BYTES {
        return Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a batch is at most {MAX_BATCH_BYTES} bytes, this one {}",
                body.len()
            ),
        ));
    }
    let batch: RealtimeBatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("not a batch of events: {e}"),
        )
    })?;
    match app.update(|s| s.store_realtime(&principal, batch, Utc::now())) {
        Ok(RealtimeOutcome::Accepted(n)) => Ok(HttpResponse::Accepted().json(RealtimeAnswer {
            accepted: Some(n as u64),
            status: None,
        })),
        Ok(RealtimeOutcome::Duplicate) => Ok(HttpResponse::Ok().json(RealtimeAnswer {
            accepted: None,
            status: Some("duplicate".to_owned()),
        })),
        Err(problem) => Err(ApiError::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_batch",
            problem,
        )),
    }
}
