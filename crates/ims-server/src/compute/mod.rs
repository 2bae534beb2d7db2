//! `/compute/v1`: servers and volumes of the built-in compute driver. Errors are in Glance's form.
//!
//! - `POST /compute/v1/servers` `{"server": {"name", "type": "ecs"|"bms", "vcpus", "ram_mb", "image_id" or
//!   "capsule_id", "architecture"?, "firmware"?: "bios"|"uefi", "system_volume_size"? (GiB),
//!   "data_volumes"?: [{"image_id"?, "size"? (GiB)}]}}` → 201
//!   `{"server": {..., "volumes": [...]}}`; `GET /compute/v1/servers[?all_projects=true]`;
//!   `GET /compute/v1/servers/{id}` (with its volumes); `DELETE /compute/v1/servers/{id}[?keep_volumes=true]`.
//! - `POST /compute/v1/servers/{id}/volumes` `{"volume_id", "device_index"?}` attaches a volume;
//!   `DELETE /compute/v1/servers/{id}/volumes/{volume_id}` detaches it.
//! - `POST /compute/v1/volumes` `{"volume": {"name", "size"? (GiB), "image_id"?}}` → 201;
//!   `GET /compute/v1/volumes[?all_projects=true&server_id=]`; `GET`, `DELETE /compute/v1/volumes/{id}`.
//! - `POST /compute/v1/volumes/{id}/attachments` `{"ttl_seconds"?}` → 201 `{"nbd_url", "tls", "expires_at"}`: a
//!   read-write NBD export of the volume; `DELETE` with `{"nbd_url"}` or `{"name"}` revokes it (204).

mod attachments;
mod servers;
mod volumes;

use axum::routing::{delete, get, post};
use axum::Router;
use ims_catalog::{Server, Volume};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::error::ApiError;
use crate::glance::render::timestamp;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/compute/v1/servers", get(servers::list).post(servers::create))
        .route("/compute/v1/servers/{id}", get(servers::show).delete(servers::delete))
        .route("/compute/v1/servers/{id}/volumes", post(volumes::attach))
        .route("/compute/v1/servers/{id}/volumes/{volume_id}", delete(volumes::detach))
        .route("/compute/v1/volumes", get(volumes::list).post(volumes::create))
        .route("/compute/v1/volumes/{id}", get(volumes::show).delete(volumes::delete))
        .route("/compute/v1/volumes/{id}/attachments", post(attachments::mint).delete(attachments::revoke))
}

fn render_server(server: &Server, volumes: Option<&[Volume]>) -> Value {
    let mut out = json!({
        "id": server.id,
        "name": server.name,
        "project_id": server.project,
        "type": server.server_type.as_str(),
        "vcpus": server.vcpus,
        "ram_mb": server.ram_mb,
        "architecture": server.architecture,
        "firmware": server.firmware,
        "status": server.status.as_str(),
        "image_id": server.image_id,
        "created_at": timestamp(&server.created_at),
        "updated_at": timestamp(&server.updated_at),
    });
    if let Some(volumes) = volumes {
        out["volumes"] = Value::Array(volumes.iter().map(render_volume).collect());
    }
    out
}

fn render_volume(volume: &Volume) -> Value {
    json!({
        "id": volume.id,
        "name": volume.name,
        "project_id": volume.project,
        "size": volume.size.div_ceil(ims_core::compute::GIB),
        "size_bytes": volume.size,
        "status": volume.status(),
        "bootable": volume.bootable,
        "source_image_id": volume.source_image_id,
        "encrypted": volume.encryption.is_some(),
        "kms_key_id": volume.encryption.as_ref().map(|e| e.key_id.clone()),
        "server_id": volume.attachment.map(|a| a.server_id),
        "device_index": volume.attachment.map(|a| a.device_index),
        "created_at": timestamp(&volume.created_at),
        "updated_at": timestamp(&volume.updated_at),
    })
}

fn parse_id(what: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("No {what} found with ID {raw}")))
}

/// The object under `key` of a request body (`{"server": {...}}`).
fn wrapped<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a Map<String, Value>, ApiError> {
    body.get(key).and_then(Value::as_object).ok_or_else(|| ApiError::bad_request(format!("the body must be {{\"{key}\": {{...}}}}")))
}

fn opt_u64(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| ApiError::bad_request(format!("\"{key}\" must be a non-negative integer"))),
    }
}

fn opt_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| ApiError::bad_request(format!("\"{key}\" must be a string"))),
    }
}

fn opt_uuid(body: &Map<String, Value>, key: &str) -> Result<Option<Uuid>, ApiError> {
    opt_str(body, key)?
        .map(|s| Uuid::parse_str(s).map_err(|_| ApiError::bad_request(format!("\"{key}\" must be a UUID, not {s:?}"))))
        .transpose()
}

fn required_str<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    opt_str(body, key)?.ok_or_else(|| ApiError::bad_request(format!("\"{key}\" is required")))
}

/// Query flags of listings and deletions.
#[derive(Debug, Default, serde::Deserialize)]
struct Flags {
    #[serde(default)]
    all_projects: bool,
    #[serde(default)]
    keep_volumes: bool,
    server_id: Option<Uuid>,
}
