//! Buckets: list the caller's, create one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ims_core::buckets::Bucket;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

fn render(bucket: &Bucket) -> Value {
    json!({"name": bucket.name, "owner": bucket.owner})
}

/// `GET /buckets/v1` → `{"buckets": [{"name", "owner"}]}`, by name: those the caller may use.
pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let buckets = state.services.buckets.list_buckets(&ctx).await?;
    Ok(Json(json!({"buckets": buckets.iter().map(render).collect::<Vec<_>>()})))
}

/// `PUT /buckets/v1/{bucket}` → 201 `{"bucket": {"name", "owner"}}`; 409 if it exists.
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, Path(bucket): Path<String>) -> ApiResult<(StatusCode, Json<Value>)> {
    let bucket = state.services.buckets.create_bucket(&ctx, &bucket).await?;
    Ok((StatusCode::CREATED, Json(json!({"bucket": render(&bucket)}))))
}
