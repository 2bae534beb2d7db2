//! The IMS HTTP server: every API surface over the use cases of `ims-core`.
//!
//! [`serve`] runs one node until its shutdown future completes; tests start it on port 0.

mod auth;
mod cloudimages;
pub mod config;
mod console;
mod error;
mod glance;
mod identity;
mod request_id;
pub mod signature;
mod state;

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
pub(crate) use glance::body::object as json_object;
pub(crate) use glance::render::timestamp as glance_timestamp;
use state::AppState;

/// A node ready to serve: its state and what first start produced.
pub struct Node {
    state: AppState,
    /// The admin token created at first start (random when `IMS_ADMIN_TOKEN` was not set).
    pub generated_admin_token: Option<String>,
}

impl Node {
    /// Opens the catalog and the store named by `settings` (creating the data directory and
    /// running migrations) and bootstraps identity on an empty catalog.
    pub async fn open(settings: Settings) -> anyhow::Result<Node> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
        let database = settings.database_url();
        let catalog = Catalog::connect(&database).await.with_context(|| format!("opening catalog {database}"))?;
        let store_url = settings.store_url()?;
        let store = ChunkStore::open(&store_url).with_context(|| format!("opening store {store_url}"))?;
        let limits = ImageLimits { max_image_size: settings.image_size_cap, ..ImageLimits::default() };
        let master_key = settings.data_dir.join("master.key");
        let sealer = ims_core::AesGcmSealer::open_key_file(&master_key)
            .with_context(|| format!("opening the master key {}", master_key.display()))?;
        let services = Services::new(catalog, store, limits).with_sealer(Arc::new(sealer));
        let created = services.identity.bootstrap(settings.admin_token.as_deref()).await?;
        let generated_admin_token = match created {
            Some(token) if settings.admin_token.is_none() => {
                write_secret(&settings.data_dir.join("admin-token"), &token)?;
                tracing::info!(path = %settings.data_dir.join("admin-token").display(), "created the admin token");
                Some(token)
            }
            _ => None,
        };
        Ok(Node { state: AppState { services, settings: Arc::new(settings) }, generated_admin_token })
    }

    /// The HTTP application of this node.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthcheck", get(|| async { "OK" }))
            .merge(glance::router())
            .merge(cloudimages::router())
            .merge(identity::router())
            .merge(console::router())
            .fallback(fallback)
            .with_state(self.state.clone())
            .layer(axum::middleware::from_fn_with_state(self.state.clone(), signature::verify))
            .layer(axum::middleware::from_fn(request_id::assign))
    }

    /// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let app = self.router();
        tracing::info!(address = %listener.local_addr()?, "IMS listening");
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
        Ok(())
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
        return (StatusCode::MULTIPLE_CHOICES, axum::Json(glance::versions_document(state.settings.public_url.as_deref(), &headers))).into_response();
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
