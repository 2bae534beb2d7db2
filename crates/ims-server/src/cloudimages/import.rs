//! Images from bucket files and copies, each answered with `{"job_id"}` (images from servers and volumes:
//! `server_images.rs`):
//! CreateImage with `image_url` (`POST /v2/cloudimages/action`, `/v2.1/...`), CreateDataImage
//! (`POST /v1/cloudimages/dataimages/action`, `/v2.1/...`), ImportImageQuick
//! (`POST /v2/cloudimages/quickimport/action`, `/v2.1/...`), RegisterImage (`PUT /v1/cloudimages/{id}/upload`)
//! and CopyImageInRegion (`POST /v1/cloudimages/{id}/copy`, `/v2.1/...`).

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use ims_core::pipelines::ImportRequest;
use serde_json::{json, Value};

use super::{image_id, json_body, server_images};
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

fn string(body: &Value, key: &str) -> ImsResult<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ImsError::invalid(format!("\"{key}\" must be a string"))),
    }
}

fn required(body: &Value, key: &str) -> ImsResult<String> {
    string(body, key)?.filter(|s| !s.is_empty()).ok_or_else(|| ImsError::invalid(format!("\"{key}\" is required")))
}

fn flag(body: &Value, key: &str) -> ImsResult<bool> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ImsError::invalid(format!("\"{key}\" must be a boolean"))),
    }
}

/// The fields every image-from-file request shares.
fn import_request(body: &Value, data_image: bool, quick: bool) -> ImsResult<ImportRequest> {
    let min_disk = match body.get("min_disk") {
        None | Some(Value::Null) => return Err(ImsError::invalid("\"min_disk\" is required")),
        Some(v) => v.as_i64().ok_or_else(|| ImsError::invalid("\"min_disk\" must be an integer"))?,
    };
    let tags = match body.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(str::to_string).ok_or_else(|| ImsError::invalid("\"tags\" must list strings")))
            .collect::<ImsResult<_>>()?,
        Some(_) => return Err(ImsError::invalid("\"tags\" must be a list")),
    };
    Ok(ImportRequest {
        name: required(body, "name")?,
        image_url: required(body, "image_url")?,
        min_disk,
        data_image,
        os_version: string(body, "os_version")?,
        description: string(body, "description")?,
        tags,
        quick,
    })
}

async fn start_import(state: &AppState, ctx: &ims_core::RequestContext, request: ImportRequest) -> ImsResult<Json<Value>> {
    let (_, job) = state.services.pipelines().import(ctx, request).await?;
    Ok(Json(json!({"job_id": job.id})))
}

/// CreateImage: from a bucket file (`image_url`), or from a server or a volume (`server_images.rs`).
pub async fn create_image(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    if body.get("image_url").is_none_or(Value::is_null) {
        return server_images::create_image(&state, &ctx, &body).await;
    }
    let quick = flag(&body, "is_quick_import")?;
    start_import(&state, &ctx, import_request(&body, false, quick)?).await
}

/// CreateDataImage: a data disk image from a bucket file.
pub async fn create_data_image(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    start_import(&state, &ctx, import_request(&body, false, false).map(|r| ImportRequest { data_image: true, ..r })?).await
}

/// ImportImageQuick: a RAW or ZVHD2 file stored as it is; `type` DataImage makes a data disk image.
pub async fn import_quick(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    let data_image = match string(&body, "type")?.as_deref() {
        None | Some("ECS") => false,
        Some("DataImage") => true,
        Some(other) => return Err(ImsError::invalid(format!("\"type\" {other:?}: ECS or DataImage"))),
    };
    start_import(&state, &ctx, import_request(&body, data_image, true)?).await
}

/// RegisterImage: `{"image_url"}` fills a queued image from a bucket file.
pub async fn register(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(id): Path<String>, body: Bytes) -> ImsResult<Json<Value>> {
    let id = image_id(&id)?;
    let body = json_body(&body)?;
    let image_url = required(&body, "image_url")?;
    let job = state.services.pipelines().register(&ctx, id, &image_url).await?;
    Ok(Json(json!({"job_id": job.id})))
}

/// CopyImageInRegion: `{"name", "description"?, "cmk_id"?, "enterprise_project_id"?}`.
pub async fn copy(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(id): Path<String>, body: Bytes) -> ImsResult<Json<Value>> {
    let id = image_id(&id)?;
    let body = json_body(&body)?;
    let name = required(&body, "name")?;
    let cmk_id = string(&body, "cmk_id")?;
    let description = string(&body, "description")?;
    let (_, job) = state.services.pipelines().copy(&ctx, id, &name, description, cmk_id.as_deref()).await?;
    Ok(Json(json!({"job_id": job.id})))
}
