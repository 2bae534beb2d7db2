//! `/v1/capsules[/{capsule_id}]`: capsule images (our extension of the IMS API; see
//! docs/governance.md, "Capsule images").
//!
//! - `POST {"name", "base_image_id", "app_image_ids": [...], "user_data"?: base64, "properties"?: {},
//!   "visibility"?}` → `{"capsule": Capsule}`.
//! - `GET ?limit&marker` → `{"capsules": [ImageInfo + "base_image_id", "app_image_ids"]}`, newest
//!   first, `next_marker` when a full page was returned.
//! - `GET /{id}` → `{"capsule": Capsule}`, where Capsule is `{"image": ImageInfo, "base_image":
//!   ImageInfo, "app_images": [ImageInfo], "user_data": base64}`.
//! - `DELETE /{id}` → 204: deletes the capsule record like any image (its parts stay).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use ims_catalog::{Image, Visibility};
use ims_core::capsules::{capsule_refs, is_capsule};
use ims_core::{CapsuleParts, NewCapsule};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{image_id, json_body, render};
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    base_image_id: String,
    app_image_ids: Vec<String>,
    #[serde(default)]
    user_data: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    visibility: Option<String>,
}

pub async fn create(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body: CreateBody = serde_json::from_value(json_body(&body)?)
        .map_err(|e| ImsError::invalid(format!("Invalid capsule request: {e}")))?;
    let id = |raw: &str| uuid::Uuid::parse_str(raw).map_err(|_| ImsError::invalid(format!("{raw:?} is not an image id")));
    let user_data = match body.user_data.as_deref() {
        None => Bytes::new(),
        Some(text) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Bytes::from)
            .map_err(|e| ImsError::invalid(format!("\"user_data\" must be base64: {e}")))?,
    };
    let visibility = body
        .visibility
        .as_deref()
        .map(|v| v.parse::<Visibility>().map_err(|_| ImsError::invalid(format!("Invalid visibility {v:?}"))))
        .transpose()?;
    let new = NewCapsule {
        name: body.name,
        base_image: id(&body.base_image_id)?,
        app_images: body.app_image_ids.iter().map(|raw| id(raw)).collect::<Result<_, _>>()?,
        user_data,
        properties: body.properties,
        visibility,
    };
    let parts = state.services.images.create_capsule(&ctx, new).await?;
    Ok(Json(json!({"capsule": render_parts(&parts, ctx.project_id())})))
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<u32>,
    marker: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    RawQuery(raw): RawQuery,
) -> ImsResult<Json<Value>> {
    let params: ListParams = serde_urlencoded::from_str(&raw.unwrap_or_default())
        .map_err(|e| ImsError::invalid(format!("Invalid query string: {e}")))?;
    let limit = params.limit.unwrap_or(100).min(1000);
    let marker = params.marker.as_deref().map(image_id).transpose()?;
    let capsules = state.services.images.list_capsules(&ctx, limit, marker).await?;
    let next_marker = (limit > 0 && capsules.len() as u32 == limit).then(|| capsules.last().map(|i| i.id)).flatten();
    let rendered: Vec<Value> = capsules.iter().map(|c| summary(c, ctx.project_id())).collect();
    Ok(Json(json!({"capsules": rendered, "next_marker": next_marker})))
}

pub async fn show(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<Json<Value>> {
    let parts = state.services.images.resolve_capsule(&ctx, capsule_id(&raw)?).await?;
    Ok(Json(json!({"capsule": render_parts(&parts, ctx.project_id())})))
}

pub async fn delete(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<StatusCode> {
    let id = capsule_id(&raw)?;
    let image = state.services.images.get(&ctx, id).await?;
    if !is_capsule(&image) {
        return Err(ImsError::not_found(format!("No capsule found with ID {raw}")));
    }
    state.services.images.delete(&ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn capsule_id(raw: &str) -> Result<uuid::Uuid, ImsError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ImsError::not_found(format!("No capsule found with ID {raw}")))
}

/// A capsule record with its references (ids only; nothing else is looked up).
fn summary(capsule: &Image, viewer: Option<&str>) -> Value {
    let mut out = render::image(capsule, viewer);
    if let Ok((base, apps)) = capsule_refs(capsule) {
        out["base_image_id"] = json!(base);
        out["app_image_ids"] = json!(apps);
    }
    out
}

fn render_parts(parts: &CapsuleParts, viewer: Option<&str>) -> Value {
    json!({
        "image": summary(&parts.capsule, viewer),
        "base_image": render::image(&parts.base_image, viewer),
        "app_images": parts.app_images.iter().map(|i| render::image(i, viewer)).collect::<Vec<_>>(),
        "user_data": base64::engine::general_purpose::STANDARD.encode(&parts.user_data),
    })
}
