//! `/v2/images/{id}/members[/{member}]`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_catalog::MemberStatus;
use serde_json::{json, Value};

use super::images::image_id;
use super::{body, render};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let members = state.services.shares.list(&ctx, image_id(&id)?).await?;
    Ok(Json(json!({
        "members": members.iter().map(render::member).collect::<Vec<_>>(),
        "schema": "/v2/schemas/members",
    })))
}

/// `POST {"member": PROJECT}`: 200 (not 201), as Glance answers.
pub async fn add(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let id = image_id(&id)?;
    let obj = body::object(&headers, &body)?;
    let member = obj
        .get("member")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Member to be added not specified: the body must be {\"member\": PROJECT}"))?;
    let m = state.services.shares.add(&ctx, id, member).await?;
    Ok(Json(render::member(&m)))
}

pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path((id, member)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let m = state.services.shares.get(&ctx, image_id(&id)?, &member).await?;
    Ok(Json(render::member(&m)))
}

/// `PUT {"status": "accepted"}`: only by the member itself.
pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((id, member)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let id = image_id(&id)?;
    let obj = body::object(&headers, &body)?;
    let status = obj
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Status not specified: the body must be {\"status\": STATUS}"))?;
    let status: MemberStatus = status
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Invalid status: {status}: use pending, accepted or rejected")))?;
    let m = state.services.shares.set_status(&ctx, id, &member, status).await?;
    Ok(Json(render::member(&m)))
}

pub async fn remove(State(state): State<AppState>, Ctx(ctx): Ctx, Path((id, member)): Path<(String, String)>) -> ApiResult<StatusCode> {
    state.services.shares.remove(&ctx, image_id(&id)?, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}
