//! Master key handlers: create, list, show, disable, enable. Every key is rendered as
//! `{"id","alias","description","state","created_at","updated_at"}`, never with its material.

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
        "created_at": timestamp(&key.created_at),
        "updated_at": timestamp(&key.updated_at),
    })
}

/// `POST /kms/v1/keys` `{"alias", "description"?}` → 201 `{"key": ...}`.
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let obj = json_object(&headers, &body)?;
    let alias = obj.get("alias").and_then(Value::as_str).ok_or_else(|| ApiError::bad_request("\"alias\" is required"))?;
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.as_str()),
        Some(_) => return Err(ApiError::bad_request("\"description\" must be a string")),
    };
    let key = state.services.kms.create_key(&ctx, alias, description).await?;
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
