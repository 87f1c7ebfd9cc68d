//! Every error a client sees, in the protocol's JSON shape
//! `{"error": "<code>", "message": "<human text>"}`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use injixo_cloud_link_protocol::ErrorBody;

use crate::state::{AuthError, ConnectError, IntegrationError, TokenError, UploadError};

#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` for 401 answers (RFC 6750 §3).
    pub bearer_challenge: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
            bearer_challenge: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code.clone(), self.message.clone())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.bearer_challenge {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                format!("Bearer error=\"{}\"", self.code),
            ));
        }
        // Errors must never be cached by a proxy in between.
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        response.json(self.body())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        let code = serde_json::to_value(e.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "invalid_request".to_owned());
        ApiError::new(StatusCode::BAD_REQUEST, code, e.message)
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let mut error = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string());
        error.bearer_challenge = true;
        error
    }
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        let message = e.to_string();
        match e {
            ConnectError::UnknownIntegration(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_integration", message)
            }
            ConnectError::UnknownPin => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_pin", message)
            }
            ConnectError::ExpiredPin => ApiError::new(StatusCode::GONE, "expired_pin", message),
            ConnectError::LockedPin => ApiError::new(StatusCode::GONE, "locked_pin", message),
            ConnectError::PinAlreadyUsed => {
                ApiError::new(StatusCode::CONFLICT, "pin_used", message)
            }
            ConnectError::MalformedPin => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_pin", message)
            }
            ConnectError::TooManyAttempts { retry_after_secs } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
                    .with_retry_after(retry_after_secs)
            }
        }
    }
}

impl From<IntegrationError> for ApiError {
    fn from(e: IntegrationError) -> Self {
        let message = e.to_string();
        match e {
            IntegrationError::Unknown(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_integration", message)
            }
            IntegrationError::Invalid(_) => ApiError::bad_request(message),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let message = e.to_string();
        match e {
            UploadError::Invalid(_) => ApiError::bad_request(message),
            UploadError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            UploadError::UnknownUpload(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_upload", message)
            }
            UploadError::NotUploaded(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_uploaded", message)
            }
        }
    }
}
