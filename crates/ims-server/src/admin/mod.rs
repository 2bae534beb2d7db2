//! `/admin/v1/...`: operations on the service itself (admins only; authorization is in the use cases).
//!
//! - `POST /admin/v1/store/gc` `{"grace_seconds": N}` (optional): one garbage collection, its report.
//! - `POST /admin/v1/store/verify` `{"image_id": "..."}` (optional): verification of every chunk, its report.
//! - `GET /admin/v1/store/stats`: logical and physical bytes of the store and of every project.
//! - `GET /admin/v1/nodes`, `POST /admin/v1/nodes/{node_id}/drain`: the nodes and their drain (`nodes.rs`).
//!
//! The node also collects garbage on its own every `gc_interval` seconds ([`BackgroundGc`]).

mod nodes;
mod store_gc;
mod store_stats;
mod store_verify;

use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use ims_core::store_admin::GcOptions;
use serde_json::{Map, Value};

use crate::error::ApiResult;
use crate::state::AppState;

pub use nodes::node_address;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/v1/store/gc", post(store_gc::run))
        .route("/admin/v1/store/verify", post(store_verify::run))
        .route("/admin/v1/store/stats", get(store_stats::show))
        .route("/admin/v1/nodes", get(nodes::list))
        .route("/admin/v1/nodes/{node_id}/drain", post(nodes::drain))
}

/// The body as a JSON object; an empty body is an empty object.
fn optional_object(headers: &HeaderMap, body: &Bytes) -> ApiResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    crate::json_object(headers, body)
}

/// Garbage collection on this node's schedule, for as long as the value lives.
pub struct BackgroundGc {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl BackgroundGc {
    /// Starts collecting every `gc_interval` seconds with the configured grace (nothing when the interval is 0).
    /// The first collection runs one interval after start. A failed collection is logged and retried at
    /// the next interval.
    pub fn start(state: &AppState) -> BackgroundGc {
        let interval = Duration::from_secs(state.settings.gc_interval);
        if interval.is_zero() {
            return BackgroundGc { task: None };
        }
        let options = GcOptions::with_grace(Duration::from_secs(state.settings.gc_grace));
        let service = state.services.store_admin.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(e) = service.collect_garbage_scheduled(options).await {
                    tracing::warn!(error = %e, "background garbage collection failed");
                }
            }
        });
        BackgroundGc { task: Some(task) }
    }
}

impl Drop for BackgroundGc {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
