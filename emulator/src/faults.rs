//! Fault injection (`POST /_emulator/faults`): an actix-web middleware that
//! makes chosen requests fail the way networks and clouds fail.
//!
//! Requests below `/_emulator` are never touched, so a test can always
//! clear the faults it set.

use std::any::Any;
use std::future::Future;
use std::io;
#[cfg(unix)]
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse, ResponseError};
use injixo_cloud_link_protocol::emulator::{FaultMode, FaultRule};
use rand::Rng;

use crate::app::AppState;
use crate::error::ApiError;

struct ActiveRule {
    rule: FaultRule,
    remaining: Option<u64>,
}

#[derive(Default)]
pub struct FaultTable {
    rules: Mutex<Vec<ActiveRule>>,
}

impl FaultTable {
    pub fn add(&self, rule: FaultRule) -> Result<(), String> {
        if !rule.path_prefix.starts_with('/') {
            return Err("path_prefix must start with '/'".into());
        }
        if !(0.0..=1.0).contains(&rule.probability) {
            return Err("probability must be between 0 and 1".into());
        }
        if rule.mode == FaultMode::Status && StatusCode::from_u16(rule.status).is_err() {
            return Err(format!("{} is not an HTTP status", rule.status));
        }
        let remaining = rule.count;
        self.lock().push(ActiveRule { rule, remaining });
        Ok(())
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The rules with the counts they have left.
    pub fn list(&self) -> Vec<FaultRule> {
        self.lock()
            .iter()
            .map(|active| FaultRule {
                count: active.remaining,
                ..active.rule.clone()
            })
            .collect()
    }

    /// The first rule for `path` that fires this time, if any.
    fn take(&self, path: &str) -> Option<FaultRule> {
        let mut rules = self.lock();
        let mut fired = None;
        for active in rules.iter_mut() {
            if !path.starts_with(&active.rule.path_prefix) || active.remaining == Some(0) {
                continue;
            }
            if rand::rng().random::<f64>() >= active.rule.probability {
                continue;
            }
            if let Some(n) = active.remaining.as_mut() {
                *n -= 1;
            }
            fired = Some(active.rule.clone());
            break;
        }
        rules.retain(|active| active.remaining != Some(0));
        fired
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ActiveRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A duplicate of the connection's socket, kept so that a `reset` fault can
/// set SO_LINGER=0 on it: closing then sends a TCP RST.
#[cfg(unix)]
struct ConnectionSocket(OwnedFd);

/// `HttpServer::on_connect` hook.
#[cfg(unix)]
pub fn remember_socket(connection: &dyn Any, extensions: &mut Extensions) {
    use actix_web::rt::net::TcpStream;
    let tcp = if let Some(tcp) = connection.downcast_ref::<TcpStream>() {
        Some(tcp)
    } else {
        connection
            .downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
            .map(|tls| tls.get_ref().0)
    };
    if let Some(Ok(fd)) = tcp.map(|tcp| tcp.as_fd().try_clone_to_owned()) {
        extensions.insert(ConnectionSocket(fd));
    }
}

/// Elsewhere a `reset` is a plain close of the connection.
#[cfg(not(unix))]
pub fn remember_socket(_connection: &dyn Any, _extensions: &mut Extensions) {}

pub async fn inject(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.path().starts_with("/_emulator") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let fault = req
        .app_data::<web::Data<AppState>>()
        .and_then(|app| app.faults.take(req.path()));
    let Some(fault) = fault else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    tracing::info!(
        "injecting {:?} fault into {} {}",
        fault.mode,
        req.method(),
        req.path()
    );
    if fault.delay_ms > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    match fault.mode {
        FaultMode::Delay => Ok(next.call(req).await?.map_into_boxed_body()),
        FaultMode::Status => {
            let status =
                StatusCode::from_u16(fault.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut error =
                ApiError::new(status, "injected_fault", "fault injected by the emulator");
            error.retry_after = fault.retry_after;
            Ok(req.into_response(error.error_response()))
        }
        FaultMode::Reset => {
            abort_connection(&req);
            Ok(req.into_response(HttpResponse::Ok().body(BrokenBody::reset())))
        }
        FaultMode::Truncate => {
            let response = next.call(req).await?.map_into_boxed_body();
            let (req, response) = response.into_parts();
            let status = response.status();
            let headers = response.headers().clone();
            let body = actix_web::body::to_bytes(response.into_body())
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let mut truncated = HttpResponse::build(status);
            for (name, value) in headers.iter() {
                if name != actix_web::http::header::CONTENT_LENGTH {
                    truncated.append_header((name.clone(), value.clone()));
                }
            }
            if body.is_empty() {
                // Nothing to cut in half: lose the whole answer instead.
                abort_connection(&req);
                return Ok(ServiceResponse::new(
                    req,
                    HttpResponse::Ok().body(BrokenBody::reset()),
                ));
            }
            let response = truncated.body(BrokenBody::truncated(body));
            Ok(ServiceResponse::new(req, response))
        }
    }
}

#[cfg(unix)]
fn abort_connection(req: &impl ConnData) {
    if let Some(ConnectionSocket(fd)) = req.connection_socket() {
        let _ = socket2::SockRef::from(fd).set_linger(Some(Duration::ZERO));
    }
}

#[cfg(not(unix))]
fn abort_connection<T>(_req: &T) {}

#[cfg(unix)]
trait ConnData {
    fn connection_socket(&self) -> Option<&ConnectionSocket>;
}

#[cfg(unix)]
impl ConnData for ServiceRequest {
    fn connection_socket(&self) -> Option<&ConnectionSocket> {
        self.conn_data::<ConnectionSocket>()
    }
}

#[cfg(unix)]
impl ConnData for actix_web::HttpRequest {
    fn connection_socket(&self) -> Option<&ConnectionSocket> {
        self.conn_data::<ConnectionSocket>()
    }
}

/// A body that promises `declared` bytes, sends `head`, waits for it to be
/// flushed, then fails, which makes actix-web close the connection.
struct BrokenBody {
    head: Option<Bytes>,
    declared: u64,
    pause: Option<Pin<Box<actix_web::rt::time::Sleep>>>,
}

impl BrokenBody {
    fn reset() -> Self {
        BrokenBody {
            head: None,
            declared: 1,
            pause: None,
        }
    }

    fn truncated(full: Bytes) -> Self {
        let half = full.len() / 2;
        BrokenBody {
            head: Some(full.slice(..half)),
            declared: full.len() as u64,
            pause: Some(Box::pin(actix_web::rt::time::sleep(Duration::from_millis(
                100,
            )))),
        }
    }
}

impl MessageBody for BrokenBody {
    type Error = io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.declared)
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, io::Error>>> {
        if let Some(head) = self.head.take() {
            if !head.is_empty() {
                return Poll::Ready(Some(Ok(head)));
            }
        }
        if let Some(pause) = self.pause.as_mut() {
            // Pending lets the server flush what was sent so far.
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        Poll::Ready(Some(Err(io::Error::other(
            "connection broken by fault injection",
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_fires_count_times_on_its_prefix_only() {
        let table = FaultTable::default();
        let mut rule = FaultRule::new("/api/cloud-link/v1/uploads", FaultMode::Status);
        rule.count = Some(2);
        table.add(rule).unwrap();
        assert!(table.take("/api/cloud-link/v1/heartbeat").is_none());
        assert!(table.take("/api/cloud-link/v1/uploads").is_some());
        assert_eq!(table.list()[0].count, Some(1));
        assert!(table
            .take("/api/cloud-link/v1/uploads/up_1/commit")
            .is_some());
        assert!(table.take("/api/cloud-link/v1/uploads").is_none());
        assert!(table.list().is_empty());
    }

    #[test]
    fn probability_zero_never_fires_and_bad_rules_are_refused() {
        let table = FaultTable::default();
        let mut never = FaultRule::new("/", FaultMode::Reset);
        never.probability = 0.0;
        table.add(never).unwrap();
        assert!((0..100).all(|_| table.take("/x").is_none()));
        let mut bad = FaultRule::new("/", FaultMode::Status);
        bad.probability = 1.5;
        assert!(table.add(bad).is_err());
        assert!(table.add(FaultRule::new("api", FaultMode::Status)).is_err());
        let mut bad_status = FaultRule::new("/", FaultMode::Status);
        bad_status.status = 1000;
        assert!(table.add(bad_status).is_err());
    }
}
