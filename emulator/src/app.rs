//! The shared application state and the routing table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Duration;

use crate::cli::Cli;
use crate::error::ApiError;
use crate::faults::FaultTable;
use crate::persist::{DataDir, PersistError};
use crate::s3::{ExternalS3, ExternalS3Config, ObjectStore, StoreError, UrlSigner};
use crate::state::{Settings, State};
use crate::{api, control, oauth, page, uploads};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct AppState {
    state: Mutex<State>,
    pub settings: Settings,
    data_dir: Option<DataDir>,
    pub objects: ObjectStore,
    pub signer: UrlSigner,
    pub faults: FaultTable,
    generation: AtomicU64,
}

impl AppState {
    pub fn from_cli(cli: &Cli) -> Result<Self, StartError> {
        let settings = Settings {
            pin_ttl: seconds(cli.pin_ttl),
            access_token_ttl: seconds(cli.token_ttl),
            refresh_token_ttl: seconds(cli.refresh_token_ttl),
            poll_interval_secs: cli.poll_interval,
            upload_url_ttl: seconds(cli.upload_url_ttl),
            max_upload_size: cli.max_upload_size,
        };
        let data_dir = cli.data_dir.as_deref().map(DataDir::open).transpose()?;
        let state = match &data_dir {
            Some(dir) => dir.load()?.unwrap_or_default(),
            None => State::default(),
        };
        let objects = match (&cli.s3_endpoint, &data_dir) {
            (Some(endpoint), _) => ObjectStore::External(ExternalS3::new(ExternalS3Config {
                endpoint: endpoint.clone(),
                bucket: cli.s3_bucket.clone().unwrap_or_default(),
                region: cli.s3_region.clone(),
                access_key: cli.s3_access_key.clone().unwrap_or_default(),
                secret_key: cli.s3_secret_key.clone().unwrap_or_default(),
            })?),
            (None, Some(dir)) => ObjectStore::Directory(dir.objects_dir()),
            (None, None) => ObjectStore::memory(),
        };
        Ok(Self::new(state, settings, data_dir, objects))
    }

    pub fn new(
        state: State,
        settings: Settings,
        data_dir: Option<DataDir>,
        objects: ObjectStore,
    ) -> Self {
        let signer = UrlSigner::new(state.url_signing_key());
        let app = AppState {
            state: Mutex::new(state),
            settings,
            data_dir,
            objects,
            signer,
            faults: FaultTable::default(),
            generation: AtomicU64::new(0),
        };
        // Writes the signing key of a fresh data dir right away.
        app.update(|_| ());
        app
    }

    /// Runs `f` on the state without changing it.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Runs `f` on the state and, with `--data-dir`, writes the result to disk
    /// before returning, so an answer the client saw is never lost in a crash.
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, snapshot) = {
            let mut state = self.lock();
            let result = f(&mut state);
            let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            // Serializing under the lock is what makes the snapshot consistent;
            // the slow part, the disk write, happens after the lock is gone.
            let snapshot = self.data_dir.as_ref().map(|_| {
                (
                    generation,
                    serde_json::to_vec(&*state).expect("the state serializes"),
                )
            });
            (result, snapshot)
        };
        if let (Some(dir), Some((generation, bytes))) = (&self.data_dir, snapshot) {
            if let Err(e) = dir.save(generation, &bytes) {
                tracing::error!("cannot save the state: {e}");
            }
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in one handler must not take the whole emulator down.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn seconds(n: u64) -> Duration {
    Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 1000))
}

/// `scheme://host` as the client reached us, for URLs we hand out.
pub fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    use injixo_cloud_link_protocol::{paths, MAX_BATCH_BYTES};
    cfg.app_data(
        web::FormConfig::default()
            .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
    )
    .app_data(
        web::JsonConfig::default()
            .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::bad_request(e.to_string()).into()),
    )
    .route(
        paths::DEVICE_AUTHORIZATION,
        web::post().to(oauth::device_authorization),
    )
    .route(paths::TOKEN, web::post().to(oauth::token))
    .route(paths::ASSIGNMENT, web::get().to(api::assignment))
    .route(paths::HEARTBEAT, web::post().to(api::heartbeat))
    .service(
        web::resource(paths::REALTIME_EVENTS)
            // A batch is at most 256 KiB (§7); the handler says so with 413.
            .app_data(web::PayloadConfig::new(MAX_BATCH_BYTES + 1))
            .route(web::post().to(api::realtime_events)),
    )
    .route(paths::UPLOADS, web::post().to(uploads::create))
    .route(paths::COMMIT_ROUTE, web::post().to(uploads::commit))
    .route(
        "/_s3/uploads/{upload_id}",
        web::put().to(uploads::put_object),
    )
    .route("/", web::get().to(page::home))
    .route(page::PAGE_PATH, web::get().to(page::show))
    .route(
        "/account/integrations/{id}/connect",
        web::post().to(page::connect),
    )
    .configure(control::routes)
    .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    ApiError::not_found(format!("no route for {} {}", req.method(), req.path())).error_response()
}
