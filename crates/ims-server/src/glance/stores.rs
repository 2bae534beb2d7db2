//! `DELETE /v2/stores/{store_id}/{image_id}`: removes one store's copy of an image; and the store an
//! upload names (`X-Image-Meta-Store`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use ims_core::glance_import::DEFAULT_STORE_ID;

use super::images::image_id;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// 204 once the store no longer holds the image.
pub async fn delete_from_store(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((store_id, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = image_id(&id)?;
    state.glance_import.delete_from_store(&ctx, &store_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the store an upload names in `X-Image-Meta-Store`, if any: uploads write to the default store
/// only (409 for an unknown store or another one, as Glance answers an unknown store).
pub(super) fn check_upload_store(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(store) = headers.get("x-image-meta-store") else { return Ok(()) };
    let store = store.to_str().map_err(|_| ApiError::bad_request("X-Image-Meta-Store must be a store id"))?.trim();
    if store == DEFAULT_STORE_ID {
        return Ok(());
    }
    let message = if state.glance_import.settings().stores.contains(store) {
        format!("Uploads write to the default store {DEFAULT_STORE_ID} only; copy the image to {store} with copy-image")
    } else {
        format!("Unknown store {store}")
    };
    Err(ApiError::new(StatusCode::CONFLICT, message))
}
