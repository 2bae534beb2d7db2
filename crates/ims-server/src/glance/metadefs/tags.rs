//! `/v2/metadefs/namespaces/{ns}/tags[/{name}]`.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ims_catalog::metadef::MetadefItemKind;
use ims_core::metadefs::ItemDraft;
use serde_json::{json, Value};

use super::{body, render};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::glance::body as glance_body;
use crate::state::AppState;

const KIND: MetadefItemKind = MetadefItemKind::Tag;

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Path(ns): Path<String>) -> ApiResult<Json<Value>> {
    let tags = state.services.metadefs.items(&ctx, &ns, KIND).await?;
    Ok(Json(json!({"tags": tags.iter().map(render::tag).collect::<Vec<_>>()})))
}

/// Whether `X-Openstack-Append` asks to keep the tags already there (oslo's `bool_from_string`).
fn append(headers: &HeaderMap) -> bool {
    headers
        .get("x-openstack-append")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "t" | "true" | "on" | "y" | "yes"))
}

/// `POST .../tags` with `{"tags": [{"name": ...}, ...]}`: replaces the namespace's tags, or adds to
/// them with `X-Openstack-Append: True`.
pub async fn create_many(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let map = glance_body::object(&headers, &body)?;
    let Some(list) = map.get("tags").and_then(Value::as_array) else {
        return Err(ApiError::bad_request("The body must hold a list of tags: {\"tags\": [{\"name\": ...}]}."));
    };
    let mut names = Vec::with_capacity(list.len());
    for tag in list {
        super::schemas::validate("tag", tag)?;
        names.push(tag["name"].as_str().unwrap_or_default().to_string());
    }
    let tags = state.services.metadefs.create_tags(&ctx, &ns, &names, append(&headers)).await?;
    let tags: Vec<Value> = tags.iter().map(|t| json!({"name": t.name})).collect();
    Ok((StatusCode::CREATED, Json(json!({"tags": tags}))).into_response())
}

/// `POST .../tags/{name}`: one tag, no body needed.
pub async fn create(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let draft = ItemDraft { name, body: json!({}) };
    let tag = state.services.metadefs.create_item(&ctx, &ns, KIND, &draft).await?;
    let location = format!("{}/tags/{}", render::namespace_href(&ns), tag.name);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(render::tag(&tag))).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let tag = state.services.metadefs.item(&ctx, &ns, KIND, &name, None).await?;
    Ok(Json(render::tag(&tag)))
}

/// `PUT .../tags/{name}` with `{"name": new}`: renames the tag.
pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let map = body::validated(&headers, &body, "tag")?;
    let draft = ItemDraft { name: map["name"].as_str().unwrap_or_default().to_string(), body: json!({}) };
    let tag = state.services.metadefs.update_item(&ctx, &ns, KIND, &name, &draft).await?;
    Ok(Json(render::tag(&tag)))
}

pub async fn delete(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.services.metadefs.delete_item(&ctx, &ns, KIND, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../tags`: every tag of the namespace.
pub async fn delete_all(State(state): State<AppState>, Ctx(ctx): Ctx, Path(ns): Path<String>) -> ApiResult<StatusCode> {
    state.services.metadefs.delete_items(&ctx, &ns, KIND).await?;
    Ok(StatusCode::NO_CONTENT)
}
