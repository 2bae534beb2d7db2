//! `/v2/cache` (Image API 2.14, admins): the images this node's chunk cache holds whole, the prefetch
//! queue, and clearing them (see `ims_core::image_cache`). 404 on a node without a chunk cache.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ims_core::image_cache::ClearTarget;
use serde_json::{json, Value};

use super::images::image_id;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Seconds since the epoch, with a fraction, as Glance gives cache times.
fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// `GET /v2/cache`: 200 with `cached_images` and `queued_images`.
pub async fn state(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let cache = state.image_cache.state(&ctx).await?;
    let cached: Vec<Value> = cache
        .cached_images
        .iter()
        .map(|c| {
            json!({
                "image_id": c.image_id.to_string(),
                "hits": c.hits,
                "last_accessed": epoch(c.last_accessed),
                "last_modified": epoch(c.last_modified),
                "size": c.size,
            })
        })
        .collect();
    let queued: Vec<String> = cache.queued_images.iter().map(ToString::to_string).collect();
    Ok(Json(json!({"cached_images": cached, "queued_images": queued})))
}

/// `PUT /v2/cache/{image_id}`: 202 once the image is queued for prefetching.
pub async fn queue(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = image_id(&id)?;
    state.image_cache.queue(&ctx, id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `DELETE /v2/cache/{image_id}`: 204 once the image is neither queued nor cached.
pub async fn remove(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = image_id(&id)?;
    state.image_cache.remove(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/cache`: 204 once the target of `x-image-cache-clear-target` (`cache`, `queue`, or
/// both when absent or empty) is cleared; 400 for another target.
pub async fn clear(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap) -> ApiResult<StatusCode> {
    let target = match headers.get("x-image-cache-clear-target") {
        None => ClearTarget::Both,
        Some(value) => ClearTarget::parse(
            value.to_str().map_err(|_| ApiError::bad_request("x-image-cache-clear-target must be text"))?,
        )?,
    };
    state.image_cache.clear(&ctx, target).await?;
    Ok(StatusCode::NO_CONTENT)
}
