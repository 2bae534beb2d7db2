//! `/v1/cloudimages/members` (batch add, update, delete → job) and
//! `/v1/{project_id}/cloudimages/{image_id}/members[/{member_id}]`.

use axum::extract::{Path, Query, State};
use axum::Json;
use bytes::Bytes;
use ims_catalog::MemberStatus;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_path_project, image_id, json_body, render};
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

fn strings(body: &Value, key: &str) -> ImsResult<Vec<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| ImsError::invalid(format!("\"{key}\" must list strings"))))
            .collect(),
        Some(_) => Err(ImsError::invalid(format!("\"{key}\" must be a list"))),
    }
}

fn unsupported_targets(body: &Value) -> ImsResult<()> {
    for key in ["domains", "organizations"] {
        if !strings(body, key)?.is_empty() {
            return Err(ImsError::invalid(format!("Sharing with {key} is not supported: share with projects")));
        }
    }
    Ok(())
}

pub async fn batch_add(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    unsupported_targets(&body)?;
    let job = state.services.shares.batch_add(&ctx, &strings(&body, "images")?, &strings(&body, "projects")?).await?;
    Ok(Json(json!({"job_id": job.id})))
}

pub async fn batch_delete(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    unsupported_targets(&body)?;
    let job = state.services.shares.batch_delete(&ctx, &strings(&body, "images")?, &strings(&body, "projects")?).await?;
    Ok(Json(json!({"job_id": job.id})))
}

/// `{"images", "project_id", "status": "accepted"|"rejected"}`: only the member project itself.
pub async fn batch_update(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    let project = body.get("project_id").and_then(Value::as_str).ok_or_else(|| ImsError::invalid("\"project_id\" is required"))?;
    let status = body.get("status").and_then(Value::as_str).ok_or_else(|| ImsError::invalid("\"status\" is required"))?;
    let status = match status {
        "accepted" => MemberStatus::Accepted,
        "rejected" => MemberStatus::Rejected,
        other => return Err(ImsError::invalid(format!("Invalid status {other:?}: use accepted or rejected"))),
    };
    let job = state.services.shares.batch_update(&ctx, &strings(&body, "images")?, project, status).await?;
    Ok(Json(json!({"job_id": job.id})))
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<usize>,
    marker: Option<String>,
}

/// Members in creation order, `limit` of them after the member `marker`.
pub async fn list(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path((project_id, id)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> ImsResult<Json<Value>> {
    check_path_project(&ctx, &project_id)?;
    let members = state.services.shares.list(&ctx, image_id(&id)?).await?;
    let start = match &page.marker {
        None => 0,
        Some(m) => members.iter().position(|x| &x.member == m).map(|i| i + 1).ok_or_else(|| ImsError::invalid(format!("Invalid marker {m}")))?,
    };
    let limit = page.limit.unwrap_or(usize::MAX);
    let shown: Vec<_> = members.iter().skip(start).take(limit).collect();
    let next = (start + shown.len() < members.len()).then(|| shown.last().map(|m| m.member.clone())).flatten();
    Ok(Json(json!({
        "members": shown.iter().map(|m| render::member(m)).collect::<Vec<_>>(),
        "schema": "/v2/schemas/members",
        "page_info": {"next_marker": next, "current_count": shown.len()},
    })))
}

pub async fn show(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path((project_id, id, member)): Path<(String, String, String)>,
) -> ImsResult<Json<Value>> {
    check_path_project(&ctx, &project_id)?;
    let m = state.services.shares.get(&ctx, image_id(&id)?, &member).await?;
    Ok(Json(render::member(&m)))
}
