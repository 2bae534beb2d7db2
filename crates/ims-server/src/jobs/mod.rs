//! `/jobs/v1`: the job queue as the CLI and the console see it (the IMS API's ShowJob answers in
//! `cloudimages/jobs.rs`). `GET /jobs/v1[?status=S&parent_id=J&all_projects=true&limit=N]`,
//! `GET /jobs/v1/{job_id}`, `POST /jobs/v1/{job_id}/cancel`. Errors are in Glance's form.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ims_catalog::{Job, JobStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::glance_timestamp as timestamp;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs/v1", get(list))
        .route("/jobs/v1/{job_id}", get(show))
        .route("/jobs/v1/{job_id}/cancel", post(cancel))
}

/// Every field of a job.
pub fn render(job: &Job) -> Value {
    json!({
        "id": job.id,
        "job_type": job.job_type,
        "project_id": job.project_id,
        "status": job.status.as_str(),
        "progress": job.progress,
        "entities": job.entities,
        "result": job.result,
        "error_code": job.error_code,
        "fail_reason": job.fail_reason,
        "attempts": job.attempts,
        "parent_id": job.parent_id,
        "cancel_requested": job.cancel_requested,
        "worker": job.claimed_by,
        "created_at": timestamp(&job.created_at),
        "updated_at": timestamp(&job.updated_at),
        "begin_time": job.begin_time.as_ref().map(timestamp),
        "end_time": job.end_time.as_ref().map(timestamp),
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    parent_id: Option<String>,
    #[serde(default)]
    all_projects: bool,
    limit: Option<u32>,
}

/// `GET /jobs/v1` → `{"jobs": [...]}`, newest first (default limit 100).
async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let statuses = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase().parse::<JobStatus>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ApiError::bad_request(format!("bad status filter {text:?}: INIT, RUNNING, SUCCESS or FAIL")))?,
    };
    let limit = q.limit.unwrap_or(100);
    let jobs = state.services.jobs.list(&ctx, statuses, q.parent_id, q.all_projects, limit).await?;
    Ok(Json(json!({"jobs": jobs.iter().map(render).collect::<Vec<_>>()})))
}

/// `GET /jobs/v1/{job_id}` → `{"job": ...}`.
async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(job_id): Path<String>) -> ApiResult<Json<Value>> {
    let job = state.services.jobs.get(&ctx, &job_id).await?;
    Ok(Json(json!({"job": render(&job)})))
}

/// `POST /jobs/v1/{job_id}/cancel` → 202 `{"job": ...}`; 409 if the job already ended.
async fn cancel(State(state): State<AppState>, Ctx(ctx): Ctx, Path(job_id): Path<String>) -> ApiResult<(StatusCode, Json<Value>)> {
    let job = state.services.jobs.cancel(&ctx, &job_id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job": render(&job)}))))
}
