//! Which chunks this store lacks, and storing one sent by another region.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_store::ChunkId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingRequest {
    chunks: Vec<ChunkId>,
}

/// `POST /internal/v1/replication/chunks/missing`.
pub async fn missing(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Value>> {
    let request: MissingRequest = serde_json::from_value(Value::Object(crate::json_object(&headers, &body)?))
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))?;
    let missing = state.services.images.replication().missing_chunks(&ctx, request.chunks).await?;
    Ok(Json(json!({"missing": missing})))
}

#[derive(Deserialize)]
pub struct PutQuery {
    length: usize,
}

/// `PUT /internal/v1/replication/chunks/{chunk_id}?length=N`.
pub async fn put(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(chunk_id): Path<String>,
    query: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let id = ChunkId::from_hex(&chunk_id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Query(query) = query.map_err(|_| ApiError::bad_request("the query must give the chunk's plaintext \"length\""))?;
    state.services.images.replication().put_chunk(&ctx, id, query.length, body).await?;
    Ok(StatusCode::NO_CONTENT)
}
