//! `/v2/metadefs/namespaces/{ns}/objects[/{name}]`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ims_catalog::metadef::MetadefItemKind;
use serde_json::{json, Value};

use super::{body, render};
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

const KIND: MetadefItemKind = MetadefItemKind::Object;

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Path(ns): Path<String>) -> ApiResult<Json<Value>> {
    let objects = state.services.metadefs.items(&ctx, &ns, KIND).await?;
    let objects: Vec<Value> = objects.iter().map(|o| render::object(&ns, o)).collect();
    Ok(Json(json!({"objects": objects, "schema": "v2/schemas/metadefs/objects"})))
}

pub async fn create(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let draft = body::object_draft(&body::validated(&headers, &body, "object")?);
    let object = state.services.metadefs.create_item(&ctx, &ns, KIND, &draft).await?;
    let rendered = render::object(&ns, &object);
    let location = rendered["self"].as_str().unwrap_or_default().to_string();
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(rendered)).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let object = state.services.metadefs.item(&ctx, &ns, KIND, &name, None).await?;
    Ok(Json(render::object(&ns, &object)))
}

pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let draft = body::object_draft(&body::validated(&headers, &body, "object")?);
    let object = state.services.metadefs.update_item(&ctx, &ns, KIND, &name, &draft).await?;
    Ok(Json(render::object(&ns, &object)))
}

pub async fn delete(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.services.metadefs.delete_item(&ctx, &ns, KIND, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/metadefs/namespaces/{ns}/objects`: every object of the namespace.
pub async fn delete_all(State(state): State<AppState>, Ctx(ctx): Ctx, Path(ns): Path<String>) -> ApiResult<StatusCode> {
    state.services.metadefs.delete_items(&ctx, &ns, KIND).await?;
    Ok(StatusCode::NO_CONTENT)
}
