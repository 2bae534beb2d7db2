//! Objects of a bucket: list, put (streamed), get (streamed), delete.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::glance_timestamp as timestamp;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ListQuery {
    prefix: Option<String>,
}

/// `GET /buckets/v1/{bucket}/objects[?prefix=P]` → `{"objects": [{"key", "size", "last_modified"}]}`, by key.
pub async fn list(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(bucket): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let objects = state.services.buckets.list_objects(&ctx, &bucket, q.prefix.as_deref()).await?;
    let rendered: Vec<Value> = objects
        .iter()
        .map(|o| json!({"key": o.key, "size": o.size, "last_modified": timestamp(&o.last_modified)}))
        .collect();
    Ok(Json(json!({"objects": rendered})))
}

/// `PUT /buckets/v1/{bucket}/objects/{key}` with the object as body (streamed) → 201 `{"key", "size"}`.
pub async fn put(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path((bucket, key)): Path<(String, String)>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let data = body
        .into_data_stream()
        .map_err(|e| ims_core::CoreError::Invalid(format!("reading the request body: {e}")))
        .boxed();
    let size = state.services.buckets.put(&ctx, &bucket, &key, data).await?;
    Ok((StatusCode::CREATED, Json(json!({"key": key, "size": size}))))
}

/// `GET /buckets/v1/{bucket}/objects/{key}` → the object, streamed, with its `Content-Length`.
pub async fn get(State(state): State<AppState>, Ctx(ctx): Ctx, Path((bucket, key)): Path<(String, String)>) -> ApiResult<Response> {
    let (size, stream) = state.services.buckets.get(&ctx, &bucket, &key).await?;
    let stream = stream.map_err(std::io::Error::other);
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(size));
    Ok(response)
}

/// `DELETE /buckets/v1/{bucket}/objects/{key}` → 204; 404 if missing.
pub async fn delete(State(state): State<AppState>, Ctx(ctx): Ctx, Path((bucket, key)): Path<(String, String)>) -> ApiResult<StatusCode> {
    state.services.buckets.delete(&ctx, &bucket, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
