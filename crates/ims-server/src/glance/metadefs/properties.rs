//! `/v2/metadefs/namespaces/{ns}/properties[/{name}]`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ims_catalog::metadef::MetadefItemKind;
use serde_json::{json, Value};

use super::namespaces::{param, query_pairs};
use super::{body, render};
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

const KIND: MetadefItemKind = MetadefItemKind::Property;

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Path(ns): Path<String>) -> ApiResult<Json<Value>> {
    let properties = state.services.metadefs.items(&ctx, &ns, KIND).await?;
    Ok(Json(json!({"properties": render::properties(&properties), "schema": "v2/schemas/metadefs/properties"})))
}

pub async fn create(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let draft = body::property(&body::validated(&headers, &body, "property")?);
    let property = state.services.metadefs.create_item(&ctx, &ns, KIND, &draft).await?;
    Ok((StatusCode::CREATED, Json(render::property(&property))).into_response())
}

/// One property; with `?resource_type=`, named with that association's prefix.
pub async fn show(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let pairs = query_pairs(raw.as_deref())?;
    let resource_type = param(&pairs, "resource_type").filter(|rt| !rt.is_empty());
    let property = state.services.metadefs.item(&ctx, &ns, KIND, &name, resource_type).await?;
    Ok(Json(render::property(&property)))
}

pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let draft = body::property(&body::validated(&headers, &body, "property")?);
    let property = state.services.metadefs.update_item(&ctx, &ns, KIND, &name, &draft).await?;
    Ok(Json(render::property(&property)))
}

pub async fn delete(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.services.metadefs.delete_item(&ctx, &ns, KIND, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/metadefs/namespaces/{ns}/properties`: every property of the namespace.
pub async fn delete_all(State(state): State<AppState>, Ctx(ctx): Ctx, Path(ns): Path<String>) -> ApiResult<StatusCode> {
    state.services.metadefs.delete_items(&ctx, &ns, KIND).await?;
    Ok(StatusCode::NO_CONTENT)
}
