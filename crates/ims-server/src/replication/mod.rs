//! `/internal/v1/replication/...`: what another region's `CopyImageCrossRegion` job calls on this node
//! (admins only; authorization is in `ims_core::replication`). Errors in the Glance form.
//!
//! - `POST /internal/v1/replication/chunks/missing` `{"chunks": [id, ...]}` (at most 1000): `{"missing": [...]}`,
//!   the ids this store lacks.
//! - `PUT /internal/v1/replication/chunks/{id}?length=N`, body the chunk object as stored: verified
//!   against `id` and the plaintext length `N`, then stored (204).
//! - `POST /internal/v1/replication/images` (an `ImageRegistration`): registers the image from its manifest
//!   (201 `{"image_id", "status"}`), 409 `{"missing": [...]}` if chunks are not here yet.
//!
//! [`regions`] builds the peers of the `[regions.<name>]` settings, which this node copies images to.

mod chunks;
mod images;

use axum::extract::DefaultBodyLimit;
use axum::routing::{post, put};
use axum::Router;

use crate::config::Settings;
use crate::state::AppState;

/// Largest chunk object accepted (a chunk's plaintext at most, plus its codec tag and some slack).
const MAX_CHUNK_BODY: usize = ims_store::cdc::MAX_CHUNK + 4096;
/// Largest registration body: its manifest lists every extent of the image (about 100 bytes per MiB).
const MAX_REGISTRATION_BODY: usize = 256 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/internal/v1/replication/chunks/missing", post(chunks::missing))
        .route("/internal/v1/replication/chunks/{chunk_id}", put(chunks::put).layer(DefaultBodyLimit::max(MAX_CHUNK_BODY)))
        .route(
            "/internal/v1/replication/images",
            post(images::register).layer(DefaultBodyLimit::max(MAX_REGISTRATION_BODY)),
        )
}

/// The regions of `settings`, ready to be copied to. A bad endpoint or an empty token is an error.
pub fn regions(settings: &Settings) -> anyhow::Result<ims_core::regions::Regions> {
    let peers = settings
        .regions
        .iter()
        .map(|(name, region)| ims_core::regions::RegionPeer::new(name, &region.endpoint, &region.token))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| anyhow::anyhow!("setting regions: {e}"))?;
    Ok(ims_core::regions::Regions::new(peers))
}
