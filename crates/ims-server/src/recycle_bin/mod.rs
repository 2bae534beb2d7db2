//! `/v1/recycle-bin/...`: images deleted into the recycle bin (our extension, IMS error form).
//!
//! - `GET /v1/recycle-bin/images[?all_projects=true&marker=ID&limit=N]` → `{"images": [BinnedImage],
//!   "next_marker"?}`: the caller project's binned images (every project's for admins asking
//!   `all_projects`), oldest binned first, after the image `marker`, at most `limit` (1 to 1000, default
//!   1000); `next_marker` (the last image's id) when the page is full. Each is the IMS image record (with
//!   the status a restore brings back) plus `binned_at` and `purge_after`.
//! - `GET /v1/recycle-bin/images/{id}` → one `BinnedImage`.
//! - `POST /v1/recycle-bin/images/{id}/restore` → the restored IMS image record (same id, data and
//!   checksums, its status before deletion).
//! - `DELETE /v1/recycle-bin/images/{id}` → 204: purged now; its data is reclaimed by the next garbage
//!   collection.
//!
//! Deleting into the bin is the ordinary delete (`DELETE /v2/images/{id}`); the header
//! `X-Ims-Force-Delete: true` deletes for good at once. The node purges images whose retention
//! (`recycle_bin_retention`) ended on its own ([`BackgroundPurge`]).

mod images;

use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/recycle-bin/images", get(images::list))
        .route("/v1/recycle-bin/images/{image_id}", get(images::show).delete(images::purge))
        .route("/v1/recycle-bin/images/{image_id}/restore", post(images::restore))
}

/// Longest wait between two rounds of the scheduled purge.
const MAX_PURGE_INTERVAL: Duration = Duration::from_secs(600);

/// The purge of binned images whose retention ended, on this node's schedule, for as long as the value
/// lives.
pub struct BackgroundPurge {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl BackgroundPurge {
    /// Starts purging every `min(retention, 10 min)` (at least every second); nothing when the bin is
    /// off. A failed round is logged and retried at the next one. Every node may run it: an image is
    /// purged once.
    pub fn start(state: &AppState) -> BackgroundPurge {
        let images = state.services.images.clone();
        let retention = images.recycle_bin_retention();
        if retention.is_zero() {
            return BackgroundPurge { task: None };
        }
        let interval = retention.clamp(Duration::from_secs(1), MAX_PURGE_INTERVAL);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match images.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "purged images whose recycle bin retention ended"),
                    Err(e) => tracing::warn!(error = %e, "recycle bin purge failed"),
                }
            }
        });
        BackgroundPurge { task: Some(task) }
    }
}

impl Drop for BackgroundPurge {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
