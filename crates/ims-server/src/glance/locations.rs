//! `/v2/images/{id}/locations` (Image API 2.17): add the location of a queued image's data (202; the
//! data is read in by a `location_import` task), and list the stores holding an image (admins).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ims_core::glance_import::{LocationRequest, ValidationData};
use serde_json::{json, Map, Value};

use super::body;
use super::images::image_id;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `POST`: 202 once the location import is enqueued.
pub async fn add(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let id = image_id(&id)?;
    let request = location_request(body::object(&headers, &body)?)?;
    state.glance_import.add_location(&ctx, id, request).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET`: 200 with `[{"url": ..., "metadata": {"store": ...}}]`.
pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = image_id(&id)?;
    let locations = state.glance_import.locations(&ctx, id).await?;
    Ok(Json(Value::Array(
        locations.iter().map(|l| json!({"url": l.url, "metadata": {"store": l.store}})).collect(),
    )))
}

/// The body as Glance's `add_location` schema has it: `url` (a string, required) and optionally
/// `validation_data` with exactly the keys `os_hash_algo` and `os_hash_value`, both or neither.
fn location_request(body: Map<String, Value>) -> ApiResult<LocationRequest> {
    let url = match body.get("url") {
        Some(Value::String(url)) if !url.is_empty() => url.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => return Err(ApiError::bad_request("'url' is a required property")),
        Some(_) => return Err(ApiError::bad_request("'url' must be a string")),
    };
    let validation_data = match body.get("validation_data") {
        None | Some(Value::Null) => None,
        Some(Value::Object(data)) => {
            if let Some(extra) = data.keys().find(|k| *k != "os_hash_algo" && *k != "os_hash_value") {
                return Err(ApiError::bad_request(format!(
                    "Additional properties are not allowed in validation_data ({extra:?} was unexpected)"
                )));
            }
            let field = |key: &str| match data.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(ApiError::bad_request(format!("validation_data: '{key}' must be a string"))),
            };
            ValidationData::parse(field("os_hash_algo")?, field("os_hash_value")?)?
        }
        Some(_) => return Err(ApiError::bad_request("'validation_data' must be an object")),
    };
    Ok(LocationRequest { url, validation_data })
}
