//! The IMS HTTP server: every API surface over the use cases of `ims-core`.
//!
//! [`serve`] runs one node until its shutdown future completes; tests start it on port 0.

mod admin;
mod audit;
mod auth;
mod buckets;
mod cloudimages;
mod compute;
pub mod config;
mod console;
mod error;
mod glance;
mod identity;
mod jobs;
mod keystone;
mod kms;
mod limits;
mod marketplace;
mod metrics;
mod nbd;
mod rate_limit;
mod recycle_bin;
pub mod nbd_volume;
mod replication;
mod request_id;
pub mod signature;
mod state;
mod tls;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ims_catalog::Catalog;
use ims_core::{ImageLimits, Services};
use ims_store::ChunkStore;
use tokio::net::TcpListener;

pub use config::{Overrides, Settings};
pub use error::{ApiError, ApiResult};
/// The Images API's parsers of list query strings and JSON-patch bodies (fuzzed on their own).
pub use glance::{list_query as glance_list_query, patch as glance_patch};
pub(crate) use glance::body::object as json_object;
pub(crate) use glance::render::timestamp as glance_timestamp;
use state::AppState;

/// A node ready to serve: its state and what first start produced.
pub struct Node {
    state: AppState,
    /// The admin token created at first start (random when `IMS_ADMIN_TOKEN` was not set).
    pub generated_admin_token: Option<String>,
    /// Runs this node's share of the job queue while it serves.
    job_runner: ims_core::jobs::JobRunner,
    /// The NBD listener, bound at open when `nbd_listen` is set.
    nbd: Option<nbd::NbdListener>,
    /// HTTPS only, with this configuration, when `tls_cert` and `tls_key` are set.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Node {
    /// Opens the catalog and the store named by `settings` (creating the data directory and
    /// running migrations) and bootstraps identity on an empty catalog.
    pub async fn open(settings: Settings) -> anyhow::Result<Node> {
        let tls = tls::acceptor(&settings)?;
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
        let database = settings.database_url();
        let catalog = Catalog::connect(&database)
            .await
            .with_context(|| format!("opening catalog {}", config::without_password(&database)))?;
        let store_url = settings.store_url()?;
        let store_options = ims_store::StoreOptions {
            s3_access_key_id: settings.s3_access_key_id.clone(),
            s3_secret_access_key: settings.s3_secret_access_key.clone(),
        };
        let store =
            ChunkStore::open_with(&store_url, &store_options).with_context(|| format!("opening store {store_url}"))?;
        store.set_chunk_cache_bytes(settings.chunk_cache_bytes);
        store.set_gc_grace(std::time::Duration::from_secs(settings.gc_grace));
        let limits = ImageLimits {
            max_image_size: settings.image_size_cap,
            inspection_timeout: std::time::Duration::from_secs(settings.inspection_timeout),
            ..ImageLimits::default()
        };
        let master_key = settings.data_dir.join("master.key");
        let sealer = ims_core::AesGcmSealer::open_key_file(&master_key)
            .with_context(|| format!("opening the master key {}", master_key.display()))?;
        let sealer: Arc<dyn ims_core::SecretSealer> = Arc::new(sealer);
        let kms = Arc::new(ims_core::kms::BuiltinKms::new(catalog.clone(), sealer.clone()));
        let buckets_url = settings.buckets_url()?;
        let bucket_objects = ChunkStore::open_with(&buckets_url, &store_options)
            .with_context(|| format!("opening the buckets {buckets_url}"))?
            .objects()
            .clone();
        let buckets = ims_core::buckets::BucketStore::new(bucket_objects, settings.bucket_grants.clone());
        let services =
            Services::new(catalog.clone(), store, limits).with_sealer(sealer).with_kms(kms).with_buckets(buckets);
        let pipeline_limits = ims_core::pipelines::PipelineLimits {
            max_import_size: settings.max_import_size,
            max_quick_import_size: settings.max_quick_import_size,
            max_export_size: settings.max_export_size,
        };
        let conversions = ims_core::pipelines::parse_conversions(&settings.import_conversions)
            .map_err(|e| anyhow::anyhow!("setting import_conversions: {e}"))?;
        let services = services.with_pipelines(pipeline_limits, conversions).with_regions(replication::regions(&settings)?);
        services.images.set_recycle_bin_retention(std::time::Duration::from_secs(settings.recycle_bin_retention));
        let stale_after = std::time::Duration::from_secs(settings.job_stale_after.max(1));
        let runner_settings = ims_core::jobs::RunnerSettings {
            workers: settings.job_workers,
            stale_after,
            heartbeat_interval: (stale_after / 4).min(std::time::Duration::from_secs(5)),
            ..Default::default()
        };
        let glance_import = services.glance_import(Arc::new(glance::import_settings(&settings)?));
        let mut job_handlers = services.job_handlers();
        glance_import.register_handler(&mut job_handlers);
        let metrics = Arc::new(metrics::Metrics::new(catalog.clone()));
        let job_runner =
            ims_core::jobs::JobRunner::new(catalog, job_handlers, runner_settings, services.jobs.waker())
                .with_observer(metrics.job_observer());
        services.images.set_transfer_node(job_runner.node_id());
        let created = services.identity.bootstrap(settings.admin_token.as_deref()).await?;
        let generated_admin_token = match created {
            Some(token) if settings.admin_token.is_none() => {
                write_secret(&settings.data_dir.join("admin-token"), &token)?;
                tracing::info!(path = %settings.data_dir.join("admin-token").display(), "created the admin token");
                Some(token)
            }
            _ => None,
        };
        let nbd = match settings.nbd_listen {
            Some(address) => Some(
                nbd::NbdListener::bind(address, nbd::tls_for(address, settings.nbd_tls_psk_file.as_deref())?)
                    .await
                    .with_context(|| format!("binding the NBD listener {address}"))?,
            ),
            None => None,
        };
        let nbd_address = nbd.as_ref().map(nbd::NbdListener::address);
        let nbd_tls = nbd.as_ref().is_some_and(nbd::NbdListener::requires_tls);
        let keystone = match settings.auth {
            config::AuthMode::Builtin => None,
            config::AuthMode::Keystone => Some(Arc::new(keystone::KeystoneAuth::new(&settings.keystone)?)),
        };
        let image_cache = ims_core::image_cache::ImageCacheService::new(services.images.clone());
        let state = AppState {
            services,
            settings: Arc::new(settings),
            glance_import,
            image_cache,
            nbd_address,
            nbd_tls,
            keystone,
            metrics,
        };
        Ok(Node { state, generated_admin_token, job_runner, nbd, tls })
    }

    /// Where this node's NBD server listens (the bound port when `nbd_listen` asked for port 0).
    pub fn nbd_address(&self) -> Option<std::net::SocketAddr> {
        self.state.nbd_address
    }

    /// The HTTP application of this node.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthcheck", get(|| async { "OK" }))
            .merge(glance::router())
            .merge(cloudimages::router())
            .merge(compute::router())
            .merge(identity::router())
            .merge(admin::router())
            .merge(audit::router())
            .merge(kms::router())
            .merge(marketplace::router())
            .merge(buckets::router())
            .merge(jobs::router())
            .merge(recycle_bin::router())
            .merge(replication::router())
            .merge(console::router())
            .merge(metrics::router())
            .fallback(fallback)
            .with_state(self.state.clone())
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), signature::verify))
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), audit::record_failures))
            .layer(limits::body_limit(self.state.settings.max_request_body_bytes))
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), limits::enforce))
            .layer(axum::middleware::from_fn_with_state(rate_limit::from_settings(&self.state.settings), rate_limit::enforce))
            .layer(axum::middleware::from_fn(request_id::assign))
            .layer(axum::middleware::from_fn_with_state(self.state.metrics.clone(), metrics::http::record))
    }

    /// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let app = self.router();
        let _gc = admin::BackgroundGc::start(&self.state);
        let _purge = recycle_bin::BackgroundPurge::start(&self.state);
        let address = listener.local_addr()?;
        tracing::info!(%address, https = self.tls.is_some(), "IMS listening");
        let jobs = self.job_runner.with_address(admin::node_address(address)).start();
        let nbd_stop = tokio_util::sync::CancellationToken::new();
        let exports = ims_core::nbd_exports::NbdExportService::new(self.state.services.images.clone())
            .with_buckets(self.state.services.buckets.clone());
        let compute = self.state.services.compute.clone();
        let nbd = self.nbd.map(|listener| listener.serve(exports, compute, nbd_stop.clone()));
        let served = match self.tls {
            Some(acceptor) => {
                use axum::serve::ListenerExt;
                let app = app.layer(axum::middleware::map_response(tls::strict_transport_security));
                let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                // `tap_io` gives the TLS listener the connect-info `SocketAddr` plain TCP has.
                let listener = tls::TlsListener::new(listener, acceptor)?.tap_io(|_| {});
                axum::serve(listener, app).with_graceful_shutdown(shutdown).await
            }
            None => {
                let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
                axum::serve(listener, app).with_graceful_shutdown(shutdown).await
            }
        };
        nbd_stop.cancel();
        if let Some(nbd) = nbd {
            let _ = nbd.await;
        }
        jobs.shutdown().await;
        Ok(served?)
    }
}

/// Opens a node with `settings` and serves it on `listener` until `shutdown`.
pub async fn serve(settings: Settings, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    Node::open(settings).await?.serve(listener, shutdown).await
}

/// Unknown paths: version prefixes get the versions document (300), as Glance answers; the rest 404.
async fn fallback(axum::extract::State(state): axum::extract::State<AppState>, uri: Uri, headers: axum::http::HeaderMap) -> Response {
    let path = uri.path();
    let versioned = path.strip_prefix("/v").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    if versioned && !path.starts_with("/v2/") {
        return (StatusCode::MULTIPLE_CHOICES, axum::Json(glance::versions_document(&state.settings, &headers))).into_response();
    }
    ApiError::not_found(format!("The resource could not be found: {path}")).into_response()
}

/// Writes a secret to a file readable by its owner only.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{secret}")?;
    Ok(())
}
