//! `PUT /v2/images/{id}/stage`: data for a later `glance-direct` import.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::data::data_headers;
use super::images::image_id;
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

/// `PUT`: streams the body into the store; 204 once it is staged (the image is `uploading`).
pub async fn stage(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let id = image_id(&id)?;
    let declared = data_headers(&headers, "staged data")?;
    state.glance_import.stage(&ctx, id, declared, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}
