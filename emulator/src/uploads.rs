//! `POST /uploads`, the PUT to the emulator's own store, and the commit.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use injixo_cloud_link_protocol::{
    CommitResponse, CommitStatus, CreateUploadRequest, UploadAlreadyCommitted, UploadTarget,
};
use sha2::{Digest, Sha256};

use crate::api::Authenticated;
use crate::app::{base_url, AppState};
use crate::error::ApiError;
use crate::s3::{ExternalS3, ObjectWriter, SignatureError, StoreError};
use crate::state::{CommitOutcome, Upload, UploadDecision, UploadError};

pub async fn create(
    app: web::Data<AppState>,
    req: HttpRequest,
    Authenticated(principal): Authenticated,
    body: web::Json<CreateUploadRequest>,
) -> Result<HttpResponse, ApiError> {
    let decision =
        app.update(|s| s.create_upload(&principal, body.into_inner(), &app.settings, Utc::now()))?;
    let upload = match decision {
        UploadDecision::AlreadyCommitted { upload_id } => {
            return Ok(HttpResponse::Ok().json(UploadAlreadyCommitted {
                upload_id,
                status: CommitStatus::Committed,
            }))
        }
        UploadDecision::Created(upload) => *upload,
    };
    let expires_in = app.settings.upload_url_ttl.num_seconds().max(0) as u64;
    let request = &upload.request;
    let (url, headers) = match app.objects.external() {
        Some(s3) => {
            let put = s3.presign_put(
                &upload.object_key,
                &request.content_type,
                &request.sha256,
                std::time::Duration::from_secs(expires_in),
            );
            (put.url, put.headers)
        }
        None => {
            let url = app.signer.presign_put(
                &base_url(&req),
                &upload.upload_id,
                upload.url_expires_at,
                request.size,
                &request.sha256,
            );
            let headers =
                BTreeMap::from([("Content-Type".to_owned(), request.content_type.clone())]);
            (url, headers)
        }
    };
    Ok(HttpResponse::Created().json(UploadTarget {
        upload_id: upload.upload_id,
        url,
        method: "PUT".to_owned(),
        headers,
        expires_in,
    }))
}

pub async fn commit(
    app: web::Data<AppState>,
    upload_id: web::Path<String>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    let upload_id = upload_id.into_inner();
    if let Some(s3) = app.objects.external() {
        // The PUT went to the S3 server, so only it knows whether the bytes arrived.
        let pending = app.read(|s| {
            s.upload(&upload_id)
                .filter(|u| u.integration_id == principal.integration_id && !u.stored)
                .cloned()
        });
        if let Some(upload) = pending {
            let limit = usize::try_from(app.settings.max_upload_size).unwrap_or(usize::MAX);
            verify_external_object(s3, &upload, limit).await?;
            app.update(|s| s.mark_stored(&upload_id))?;
        }
    }
    let outcome = app.update(|s| s.commit(&principal, &upload_id, Utc::now()))?;
    match &outcome {
        CommitOutcome::Committed { import_id } => {
            tracing::info!(
                "{upload_id} committed as {import_id} for {}",
                principal.integration_id
            )
        }
        CommitOutcome::Duplicate { import_id } => {
            tracing::info!(
                "{upload_id}: key already committed as {import_id}; counted as duplicate"
            )
        }
    }
    Ok(HttpResponse::Ok().json(CommitResponse {
        import_id: outcome.import_id().to_owned(),
        status: CommitStatus::Committed,
    }))
}

/// Reads the object back and checks it against what was declared: S3 checks
/// the signed checksum itself, but S3-compatible test servers may not.
async fn verify_external_object(
    s3: &ExternalS3,
    upload: &Upload,
    limit: usize,
) -> Result<(), ApiError> {
    let declared = &upload.request;
    let stored = match s3.get(&upload.object_key, limit).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound(_)) => {
            return Err(UploadError::NotUploaded(upload.upload_id.clone()).into())
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "storage_unavailable",
                e.to_string(),
            ))
        }
    };
    if stored.len() as u64 != declared.size {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "size_mismatch",
            format!(
                "the stored object has {} bytes, {} were declared",
                stored.len(),
                declared.size
            ),
        ));
    }
    let actual = hex::encode(Sha256::digest(&stored));
    if actual != declared.sha256 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "bad_digest",
            format!(
                "the stored object's sha256 is {actual}, {} was declared",
                declared.sha256
            ),
        ));
    }
    Ok(())
}

fn signature_error(e: SignatureError) -> ApiError {
    let code = match e {
        SignatureError::Expired => "request_expired",
        SignatureError::Missing(_) | SignatureError::Mismatch => "signature_mismatch",
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        code,
        format!("{e}: ask for a new upload URL"),
    )
}

fn size_mismatch(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "size_mismatch", message)
}

/// `PUT /_s3/uploads/{upload_id}?X-...`: checked the way S3 checks a
/// pre-signed PUT, with the body streamed, hashed and never trusted.
pub async fn put_object(
    app: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if app.objects.external().is_some() {
        return Err(ApiError::not_found(
            "uploads go to the external S3 server (--s3-endpoint)",
        ));
    }
    let signed = app
        .signer
        .verify("PUT", req.path(), &query, Utc::now())
        .map_err(signature_error)?;
    if req.headers().contains_key(header::TRANSFER_ENCODING) {
        return Err(ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "missing_content_length",
            "chunked transfer encoding is not accepted: send Content-Length",
        ));
    }
    let content_length: u64 = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "missing_content_length",
                "Content-Length is required",
            )
        })?;
    // Refused before reading a byte: no point in receiving a body of the wrong size.
    if content_length != signed.size {
        return Err(size_mismatch(format!(
            "Content-Length is {content_length}, the upload declared {} bytes",
            signed.size
        )));
    }
    let object_key = app
        .read(|s| s.upload(&signed.upload_id).map(|u| u.object_key.clone()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_upload",
                "this upload is not known",
            )
        })?;
    let mut writer = app
        .objects
        .writer(&object_key)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match receive(&mut payload, &mut writer, &signed.sha256, signed.size).await {
        Ok(()) => writer
            .finish(&app.objects)
            .map_err(|e| ApiError::internal(e.to_string()))?,
        Err(e) => {
            writer.abort();
            return Err(e);
        }
    }
    app.update(|s| s.mark_stored(&signed.upload_id))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", signed.sha256)))
        .finish())
}

async fn receive(
    payload: &mut web::Payload,
    writer: &mut ObjectWriter,
    expected_sha256: &str,
    expected_size: u64,
) -> Result<(), ApiError> {
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        received += chunk.len() as u64;
        if received > expected_size {
            return Err(size_mismatch(format!(
                "the body is larger than the declared {expected_size} bytes"
            )));
        }
        hasher.update(&chunk);
        writer
            .write(&chunk)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    if received != expected_size {
        return Err(size_mismatch(format!(
            "the body has {received} bytes, the upload declared {expected_size}"
        )));
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected_sha256 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_digest",
            format!("the body's sha256 is {actual}, the upload declared {expected_sha256}"),
        ));
    }
    Ok(())
}
