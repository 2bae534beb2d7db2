//! `/v1/cloudimages/favorites[/{image_id}]`: the caller's frequently used images (our extension of the
//! IMS API; the list is per user).
//!
//! - `GET` → `{"favorites": [{"image_id", "added_at", "image": ImageInfo}]}`, most recently added first,
//!   only images the caller can see now.
//! - `POST {"image_id": "<uuid>"}` → `{"image_id", "image": ImageInfo}`; adding an image already on the
//!   list changes nothing.
//! - `DELETE /v1/cloudimages/favorites/{image_id}` → 204.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{image_id, json_body, render};
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::glance::render::timestamp;
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, ImsCtx(ctx): ImsCtx) -> ImsResult<Json<Value>> {
    let favorites = state.services.images.favorites(&ctx).await?;
    let viewer = ctx.project_id();
    let rendered: Vec<Value> = favorites
        .iter()
        .map(|f| {
            json!({
                "image_id": f.image.id,
                "added_at": timestamp(&f.added_at),
                "image": render::image(&f.image, viewer),
            })
        })
        .collect();
    Ok(Json(json!({"favorites": rendered})))
}

pub async fn add(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    let raw = body
        .get("image_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ImsError::invalid("\"image_id\" must be an image id string"))?;
    let image = state.services.images.add_favorite(&ctx, image_id(raw)?).await?;
    Ok(Json(json!({"image_id": image.id, "image": render::image(&image, ctx.project_id())})))
}

pub async fn remove(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<StatusCode> {
    state.services.images.remove_favorite(&ctx, image_id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
