//! Servers: create, list, show, delete.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_core::compute::{NewDataVolume, NewServer, ServerSource};
use serde_json::{json, Value};

use super::{opt_str, opt_u64, opt_uuid, parse_id, render_server, required_str, wrapped, Flags};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `POST /compute/v1/servers` → 201 `{"server": {..., "volumes": [...]}}`.
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes)
    -> ApiResult<(StatusCode, Json<Value>)> {
    let body = crate::json_object(&headers, &body)?;
    let server = wrapped(&body, "server")?;
    let server_type = opt_str(server, "type")?.unwrap_or("ecs").parse().map_err(|e: ims_catalog::CatalogError| {
        ApiError::bad_request(e.to_string())
    })?;
    let source = match (opt_uuid(server, "image_id")?, opt_uuid(server, "capsule_id")?) {
        (Some(id), None) => ServerSource::Image(id),
        (None, Some(id)) => ServerSource::Capsule(id),
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give \"image_id\" or \"capsule_id\", not both")),
        (None, None) => return Err(ApiError::bad_request("\"image_id\" (or \"capsule_id\") is required")),
    };
    let vcpus = opt_u64(server, "vcpus")?.unwrap_or(1);
    let mut data_volumes = Vec::new();
    match server.get("data_volumes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let item = item.as_object().ok_or_else(|| ApiError::bad_request("each of \"data_volumes\" must be an object"))?;
                data_volumes.push(NewDataVolume { image_id: opt_uuid(item, "image_id")?, size_gib: opt_u64(item, "size")? });
            }
        }
        Some(_) => return Err(ApiError::bad_request("\"data_volumes\" must be a list")),
    }
    let new = NewServer {
        name: required_str(server, "name")?.to_string(),
        server_type,
        vcpus: u32::try_from(vcpus).map_err(|_| ApiError::bad_request("\"vcpus\" is too large"))?,
        ram_mb: opt_u64(server, "ram_mb")?.unwrap_or(1024),
        architecture: opt_str(server, "architecture")?.map(str::to_string),
        firmware: opt_str(server, "firmware")?.map(str::to_string),
        source,
        system_volume_gib: opt_u64(server, "system_volume_size")?,
        data_volumes,
    };
    let (server, volumes) = state.services.compute.create_server(&ctx, new).await?;
    Ok((StatusCode::CREATED, Json(json!({"server": render_server(&server, Some(&volumes))}))))
}

/// `GET /compute/v1/servers[?all_projects=true]` → `{"servers": [...]}`, oldest first.
pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Query(flags): Query<Flags>) -> ApiResult<Json<Value>> {
    let servers = state.services.compute.list_servers(&ctx, flags.all_projects).await?;
    Ok(Json(json!({"servers": servers.iter().map(|s| render_server(s, None)).collect::<Vec<_>>()})))
}

/// `GET /compute/v1/servers/{id}` → `{"server": {..., "volumes": [...]}}`.
pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(raw): Path<String>) -> ApiResult<Json<Value>> {
    let compute = &state.services.compute;
    let server = compute.get_server(&ctx, parse_id("server", &raw)?).await?;
    let volumes = compute.list_volumes(&ctx, true, Some(server.id)).await?;
    Ok(Json(json!({"server": render_server(&server, Some(&volumes))})))
}

/// `DELETE /compute/v1/servers/{id}[?keep_volumes=true]` → 204.
pub async fn delete(State(state): State<AppState>, Ctx(ctx): Ctx, Path(raw): Path<String>, Query(flags): Query<Flags>)
    -> ApiResult<StatusCode> {
    state.services.compute.delete_server(&ctx, parse_id("server", &raw)?, flags.keep_volumes).await?;
    Ok(StatusCode::NO_CONTENT)
}
