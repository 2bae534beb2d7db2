//! `/v2/images/{id}/tags/{tag}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::images::image_id;
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn add(State(state): State<AppState>, Ctx(ctx): Ctx, Path((id, tag)): Path<(String, String)>) -> ApiResult<StatusCode> {
    state.services.images.add_tag(&ctx, image_id(&id)?, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(State(state): State<AppState>, Ctx(ctx): Ctx, Path((id, tag)): Path<(String, String)>) -> ApiResult<StatusCode> {
    state.services.images.remove_tag(&ctx, image_id(&id)?, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}
