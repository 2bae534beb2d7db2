use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::render;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::json_object;
use crate::state::AppState;

pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let obj = json_object(&headers, &body)?;
    let name = obj.get("name").and_then(Value::as_str).ok_or_else(|| ApiError::bad_request("\"name\" is required"))?;
    let project = state.services.identity.create_project(&ctx, name).await?;
    Ok((StatusCode::CREATED, Json(json!({"project": render::project(&project)}))))
}

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let projects = state.services.identity.list_projects(&ctx).await?;
    Ok(Json(json!({"projects": projects.iter().map(render::project).collect::<Vec<_>>()})))
}

pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    let project = state.services.identity.get_project(&ctx, &project).await?;
    Ok(Json(json!({"project": render::project(&project)})))
}

pub async fn delete(State(state): State<AppState>, Ctx(ctx): Ctx, Path(project): Path<String>) -> ApiResult<StatusCode> {
    state.services.identity.delete_project(&ctx, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
