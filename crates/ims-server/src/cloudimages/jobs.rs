//! `GET /v1/{project_id}/jobs/{job_id}` (ShowJob) and `GET /v1/cloudimages/job/{job_id}` (ShowJobProgress).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::Value;

use super::{check_path_project, render};
use crate::auth::ImsCtx;
use crate::error::ImsResult;
use crate::state::AppState;

pub async fn show(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path((project_id, job_id)): Path<(String, String)>) -> ImsResult<Json<Value>> {
    check_path_project(&ctx, &project_id)?;
    let job = state.services.jobs.get(&ctx, &job_id).await?;
    Ok(Json(render::job(&job)))
}

pub async fn progress(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(job_id): Path<String>) -> ImsResult<Json<Value>> {
    let job = state.services.jobs.get(&ctx, &job_id).await?;
    Ok(Json(render::job(&job)))
}
