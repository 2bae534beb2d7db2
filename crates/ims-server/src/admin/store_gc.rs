//! `POST /admin/v1/store/gc`: one garbage collection of the chunk store.
//!
//! Body (optional): `{"grace_seconds": N}`, default the node's `gc_grace`. Answer: the report
//! (`chunks_deleted`, `bytes_reclaimed`, `manifests_removed`, `duration_seconds`, ...).

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use ims_core::store_admin::GcOptions;
use serde_json::Value;

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn run(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Value>> {
    let obj = super::optional_object(&headers, &body)?;
    if let Some(unknown) = obj.keys().find(|k| k.as_str() != "grace_seconds") {
        return Err(ApiError::bad_request(format!("unknown field {unknown:?}; known: grace_seconds")));
    }
    let grace = match obj.get("grace_seconds") {
        None | Some(Value::Null) => state.settings.gc_grace,
        Some(v) => v.as_u64().ok_or_else(|| ApiError::bad_request("grace_seconds must be a non-negative integer"))?,
    };
    let report = state.services.store_admin.collect_garbage(&ctx, GcOptions::with_grace(Duration::from_secs(grace))).await?;
    Ok(Json(serde_json::to_value(report).expect("a report serializes")))
}
