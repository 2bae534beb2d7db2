//! `/v2/images/{id}/actions/deactivate|reactivate` (admin).

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::images::image_id;
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn deactivate(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.services.images.deactivate(&ctx, image_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reactivate(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.services.images.reactivate(&ctx, image_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
