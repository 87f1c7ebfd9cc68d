//! RFC 8628 device authorization and the token endpoint (both grants).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use injixo_cloud_link_protocol::{
    emulator::INTEGRATIONS_PAGE, DeviceAuthorizationRequest, DeviceAuthorizationResponse,
    TokenRequest, TokenResponse, CLIENT_ID, DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT,
};

use crate::app::{base_url, AppState};
use crate::error::ApiError;
use crate::state::{mask_pin, DeviceInfo};

fn check_client_id(client_id: &str) -> Result<(), ApiError> {
    if client_id == CLIENT_ID {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            format!("unknown client_id; expected {CLIENT_ID:?}"),
        ))
    }
}

pub async fn device_authorization(
    app: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<DeviceAuthorizationRequest>,
) -> Result<HttpResponse, ApiError> {
    let form = form.into_inner();
    check_client_id(&form.client_id)?;
    let device = DeviceInfo {
        instance: form.instance,
        hostname: form.hostname,
        os: form.os,
        version: form.version,
        installation_id: form.installation_id,
    };
    let instance = device.instance.clone();
    let authorization =
        app.update(|s| s.start_device_authorization(device, &app.settings, Utc::now()));
    tracing::info!(
        "device authorization for instance {instance:?}: PIN {}",
        mask_pin(&authorization.pin)
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(DeviceAuthorizationResponse {
            device_code: authorization.device_code,
            user_code: authorization.pin,
            verification_uri: format!("{}{INTEGRATIONS_PAGE}", base_url(&req)),
            expires_in: authorization.expires_in,
            interval: authorization.interval,
        }))
}

pub async fn token(
    app: web::Data<AppState>,
    form: web::Form<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let form = form.into_inner();
    check_client_id(&form.client_id)?;
    let now = Utc::now();
    let issued = match form.grant_type.as_str() {
        DEVICE_CODE_GRANT => {
            let device_code = form
                .device_code
                .ok_or_else(|| ApiError::bad_request("device_code is missing"))?;
            app.update(|s| s.poll_device_code(&device_code, &app.settings, now))?
        }
        REFRESH_TOKEN_GRANT => {
            let refresh_token = form
                .refresh_token
                .ok_or_else(|| ApiError::bad_request("refresh_token is missing"))?;
            app.update(|s| s.refresh(&refresh_token, &app.settings, now))?
        }
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported"),
            ))
        }
    };
    tracing::info!("tokens issued for {}", issued.integration_id);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer".to_owned(),
            expires_in: issued.expires_in,
            refresh_token: issued.refresh_token,
            integration_id: issued.integration_id,
        }))
}
