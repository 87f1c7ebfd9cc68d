//! One log line per request: method, path, status, duration.
//!
//! The query string is left out on purpose: pre-signed URLs carry their
//! signature there. Tokens travel in headers and bodies, which are never logged.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let result = next.call(req).await;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(response) => tracing::info!(
            "{method} {path} {} {millis:.1}ms",
            response.status().as_u16()
        ),
        Err(e) => tracing::info!(
            "{method} {path} {} {millis:.1}ms",
            e.as_response_error().status_code().as_u16()
        ),
    }
    result
}
