//! `/v2/metadefs/resource_types` and a namespace's associations with them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{body, render};
use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let types = state.services.metadefs.resource_types(&ctx).await?;
    Ok(Json(json!({"resource_types": types.iter().map(render::resource_type).collect::<Vec<_>>()})))
}

pub async fn associations(State(state): State<AppState>, Ctx(ctx): Ctx, Path(ns): Path<String>) -> ApiResult<Json<Value>> {
    let associations = state.services.metadefs.associations(&ctx, &ns).await?;
    Ok(Json(json!({"resource_type_associations": associations.iter().map(render::association).collect::<Vec<_>>()})))
}

pub async fn associate(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let draft = body::association(&body::validated(&headers, &body, "resource_type")?);
    let association = state.services.metadefs.create_association(&ctx, &ns, &draft).await?;
    Ok((StatusCode::CREATED, Json(render::association(&association))).into_response())
}

pub async fn dissociate(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((ns, rt)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.services.metadefs.delete_association(&ctx, &ns, &rt).await?;
    Ok(StatusCode::NO_CONTENT)
}
