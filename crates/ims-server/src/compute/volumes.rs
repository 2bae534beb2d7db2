//! Volumes: create, list, show, delete, attach to and detach from servers.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_core::compute::NewVolume;
use serde_json::{json, Value};

use super::{opt_u64, opt_uuid, parse_id, render_volume, required_str, wrapped, Flags};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `POST /compute/v1/volumes` → 201 `{"volume": {...}}`.
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes)
    -> ApiResult<(StatusCode, Json<Value>)> {
    let body = crate::json_object(&headers, &body)?;
    let volume = wrapped(&body, "volume")?;
    let new = NewVolume {
        name: required_str(volume, "name")?.to_string(),
        size_gib: opt_u64(volume, "size")?,
        image_id: opt_uuid(volume, "image_id")?,
    };
    let volume = state.services.compute.create_volume(&ctx, new).await?;
    Ok((StatusCode::CREATED, Json(json!({"volume": render_volume(&volume)}))))
}

/// `GET /compute/v1/volumes[?all_projects=true&server_id=]` → `{"volumes": [...]}`.
pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Query(flags): Query<Flags>) -> ApiResult<Json<Value>> {
    let volumes = state.services.compute.list_volumes(&ctx, flags.all_projects, flags.server_id).await?;
    Ok(Json(json!({"volumes": volumes.iter().map(render_volume).collect::<Vec<_>>()})))
}

/// `GET /compute/v1/volumes/{id}` → `{"volume": {...}}`.
pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(raw): Path<String>) -> ApiResult<Json<Value>> {
    let volume = state.services.compute.get_volume(&ctx, parse_id("volume", &raw)?).await?;
    Ok(Json(json!({"volume": render_volume(&volume)})))
}

/// `DELETE /compute/v1/volumes/{id}` → 204; 409 while attached.
pub async fn delete(State(state): State<AppState>, Ctx(ctx): Ctx, Path(raw): Path<String>) -> ApiResult<StatusCode> {
    state.services.compute.delete_volume(&ctx, parse_id("volume", &raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /compute/v1/servers/{id}/volumes` `{"volume_id", "device_index"?}` → `{"volume": {...}}`.
pub async fn attach(State(state): State<AppState>, Ctx(ctx): Ctx, Path(raw): Path<String>, headers: HeaderMap, body: Bytes)
    -> ApiResult<Json<Value>> {
    let server_id = parse_id("server", &raw)?;
    let body = crate::json_object(&headers, &body)?;
    let volume_id = opt_uuid(&body, "volume_id")?.ok_or_else(|| ApiError::bad_request("\"volume_id\" is required"))?;
    let device_index = opt_u64(&body, "device_index")?
        .map(u32::try_from)
        .transpose()
        .map_err(|_| ApiError::bad_request("\"device_index\" is too large"))?;
    let volume = state.services.compute.attach_volume(&ctx, volume_id, server_id, device_index).await?;
    Ok(Json(json!({"volume": render_volume(&volume)})))
}

/// `DELETE /compute/v1/servers/{id}/volumes/{volume_id}` → 204.
pub async fn detach(State(state): State<AppState>, Ctx(ctx): Ctx, Path((raw, raw_volume)): Path<(String, String)>)
    -> ApiResult<StatusCode> {
    let (server_id, volume_id) = (parse_id("server", &raw)?, parse_id("volume", &raw_volume)?);
    state.services.compute.detach_volume(&ctx, server_id, volume_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
