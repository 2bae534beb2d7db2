//! `/v1/cloudimages/share_auto_accept[/{project}]`: the projects whose shares the caller's project
//! accepts without answering (our extension of the IMS API).
//!
//! - `GET` → `{"projects": ["<project id>", ...]}`, ordered by id.
//! - `POST {"project": "<id or name>"}` → `{"project": "<id>"}`; naming a project already listed changes
//!   nothing.
//! - `DELETE /v1/cloudimages/share_auto_accept/{project}` → 204.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::json_body;
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, ImsCtx(ctx): ImsCtx) -> ImsResult<Json<Value>> {
    let projects = state.services.images.auto_accept_sources(&ctx).await?;
    Ok(Json(json!({"projects": projects})))
}

pub async fn add(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    let project = body
        .get("project")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ImsError::invalid("\"project\" must be a project id or name"))?;
    let id = state.services.images.add_auto_accept_source(&ctx, project).await?;
    Ok(Json(json!({"project": id})))
}

pub async fn remove(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(project): Path<String>,
) -> ImsResult<StatusCode> {
    state.services.images.remove_auto_accept_source(&ctx, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
