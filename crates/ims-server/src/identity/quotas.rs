//! `GET|PUT /identity/v1/projects/{project}/quotas`: a project's quotas, read and set by admins.
//!
//! Body of both answers: `{"quotas": {"private_images": {"used": N, "limit": N, "default": bool},
//! "members_per_image": {"limit": N, "default": bool}, "image_bytes": {"used": N, "limit": N|null,
//! "default": bool}}}` (`image_bytes`: logical bytes of the project's images; a `null` limit is none).
//! `PUT` takes `{"quotas": {"private_images": N, "members_per_image": N, "image_bytes": N}}` (any of them);
//! `null` instead of `N` returns that quota to the default. Every value is checked before any is stored.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use ims_core::limits::{
    IMAGE_BYTES, MAX_IMAGE_BYTES_QUOTA, MAX_MEMBERS_PER_IMAGE_QUOTA, MAX_PRIVATE_IMAGE_QUOTA, MEMBERS_PER_IMAGE,
    PRIVATE_IMAGES,
};
use ims_core::{ProjectByteQuota, ProjectLimit, ProjectQuota, RequestContext};
use serde_json::{json, Map, Value};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::json_object;
use crate::state::AppState;

pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    let project = state.services.identity.get_project(&ctx, &project).await?;
    Ok(Json(current(&state, &ctx, &project.id).await?))
}

pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let obj = json_object(&headers, &body)?;
    let quotas = obj
        .get("quotas")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("\"quotas\" must be an object"))?;
    if let Some(unknown) = quotas.keys().find(|k| ![PRIVATE_IMAGES, MEMBERS_PER_IMAGE, IMAGE_BYTES].contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown quota {unknown:?}; known: {PRIVATE_IMAGES}, {MEMBERS_PER_IMAGE}, {IMAGE_BYTES}"
        )));
    }
    let private_images = requested(quotas, PRIVATE_IMAGES, MAX_PRIVATE_IMAGE_QUOTA)?;
    let members_per_image = requested(quotas, MEMBERS_PER_IMAGE, MAX_MEMBERS_PER_IMAGE_QUOTA)?;
    let image_bytes = requested(quotas, IMAGE_BYTES, MAX_IMAGE_BYTES_QUOTA)?;
    let project = state.services.identity.get_project(&ctx, &project).await?;
    let images = &state.services.images;
    if let Some(limit) = private_images {
        images.set_project_image_quota(&ctx, &project.id, limit).await?;
    }
    if let Some(limit) = members_per_image {
        images.set_project_member_quota(&ctx, &project.id, limit).await?;
    }
    if let Some(limit) = image_bytes {
        images.set_project_byte_quota(&ctx, &project.id, limit).await?;
    }
    Ok(Json(current(&state, &ctx, &project.id).await?))
}

/// The change asked for `key`: absent (`None`), back to the default (`Some(None)`) or a limit in
/// `0..=max`.
fn requested(quotas: &Map<String, Value>, key: &str, max: i64) -> ApiResult<Option<Option<u64>>> {
    match quotas.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(v) => match v.as_u64() {
            Some(n) if i64::try_from(n).is_ok_and(|n| n <= max) => Ok(Some(Some(n))),
            Some(n) => Err(ApiError::bad_request(format!("quota {n} for {key} is out of range 0..={max}"))),
            None => Err(ApiError::bad_request(format!("{key} must be a non-negative integer or null"))),
        },
    }
}

async fn current(state: &AppState, ctx: &RequestContext, project: &str) -> ApiResult<Value> {
    let images = state.services.images.project_image_quota(ctx, project).await?;
    let members = state.services.images.project_member_quota(ctx, project).await?;
    let bytes = state.services.images.project_byte_quota(ctx, project).await?;
    Ok(render(&images, &members, &bytes))
}

fn render(images: &ProjectQuota, members: &ProjectLimit, bytes: &ProjectByteQuota) -> Value {
    json!({"quotas": {
        PRIVATE_IMAGES: {"used": images.used, "limit": images.limit, "default": images.is_default},
        MEMBERS_PER_IMAGE: {"limit": members.limit, "default": members.is_default},
        IMAGE_BYTES: {"used": bytes.used, "limit": bytes.limit, "default": bytes.is_default},
    }})
}
