//! Master key handlers: create, list, show, update, disable, enable. Every key is rendered as
//! `{"id","alias","description","state","shareable","created_at","updated_at"}`, never with its material.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_core::kms::KmsKey;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{glance_timestamp as timestamp, json_object};

fn render(key: &KmsKey) -> Value {
    json!({
        "id": key.id,
        "alias": key.alias,
        "description": key.description,
        "state": key.state.as_str(),
        "shareable": key.shareable,
        "created_at": timestamp(&key.created_at),
        "updated_at": timestamp(&key.updated_at),
    })
}

/// `shareable` of a request body: absent (`None`) or a boolean.
fn shareable(obj: &serde_json::Map<String, Value>) -> ApiResult<Option<bool>> {
    match obj.get("shareable") {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::bad_request("\"shareable\" must be true or false")),
    }
}

/// `POST /kms/v1/keys` `{"alias", "description"?, "shareable"?}` → 201 `{"key": ...}` (`shareable`
/// defaults to false).
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let obj = json_object(&headers, &body)?;
    let alias = obj.get("alias").and_then(Value::as_str).ok_or_else(|| ApiError::bad_request("\"alias\" is required"))?;
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.as_str()),
        Some(_) => return Err(ApiError::bad_request("\"description\" must be a string")),
    };
    let shareable = shareable(&obj)?.unwrap_or(false);
    let key = state.services.kms.create_key(&ctx, alias, description, shareable).await?;
    Ok((StatusCode::CREATED, Json(json!({"key": render(&key)}))))
}

/// `GET /kms/v1/keys` → `{"keys": [...]}`, oldest first.
pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let keys = state.services.kms.list_keys(&ctx).await?;
    Ok(Json(json!({"keys": keys.iter().map(render).collect::<Vec<_>>()})))
}

/// `GET /kms/v1/keys/{key_id}` → `{"key": ...}`.
pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(key_id): Path<String>) -> ApiResult<Json<Value>> {
    let key = state.services.kms.get_key(&ctx, &key_id).await?;
    Ok(Json(json!({"key": render(&key)})))
}

/// `PATCH /kms/v1/keys/{key_id}` `{"shareable": bool}` → `{"key": ...}` (idempotent). Any other member
/// of the body is refused, so a typo never passes silently.
pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(key_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let obj = json_object(&headers, &body)?;
    if let Some(unknown) = obj.keys().find(|k| k.as_str() != "shareable") {
        return Err(ApiError::bad_request(format!("{unknown:?} cannot be changed; only \"shareable\" can")));
    }
    let shareable = shareable(&obj)?.ok_or_else(|| ApiError::bad_request("\"shareable\" is required"))?;
    let key = state.services.kms.set_key_shareable(&ctx, &key_id, shareable).await?;
    Ok(Json(json!({"key": render(&key)})))
}

/// `POST /kms/v1/keys/{key_id}/disable` → `{"key": ...}` (idempotent).
pub async fn disable(State(state): State<AppState>, Ctx(ctx): Ctx, Path(key_id): Path<String>) -> ApiResult<Json<Value>> {
    let key = state.services.kms.disable_key(&ctx, &key_id).await?;
    Ok(Json(json!({"key": render(&key)})))
}

/// `POST /kms/v1/keys/{key_id}/enable` → `{"key": ...}` (idempotent).
pub async fn enable(State(state): State<AppState>, Ctx(ctx): Ctx, Path(key_id): Path<String>) -> ApiResult<Json<Value>> {
    let key = state.services.kms.enable_key(&ctx, &key_id).await?;
    Ok(Json(json!({"key": render(&key)})))
}
