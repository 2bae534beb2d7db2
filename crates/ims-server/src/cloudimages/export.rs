//! ExportImage: `POST /v1/cloudimages/{image_id}/file` and `/v2.1/...` `{"bucket_url": "bucket:key",
//! "file_format": "qcow2|vmdk|vhd|zvhd|zvhd2|raw", "is_quick_export"?}` → `{"job_id"}`.

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{image_id, json_body};
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

fn required<'a>(body: &'a Value, key: &str) -> ImsResult<&'a str> {
    body.get(key).and_then(Value::as_str).ok_or_else(|| ImsError::invalid(format!("\"{key}\" is required")))
}

pub async fn export(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(id): Path<String>, body: Bytes) -> ImsResult<Json<Value>> {
    let id = image_id(&id)?;
    let body = json_body(&body)?;
    let bucket_url = required(&body, "bucket_url")?;
    // Quick export (the stored file as is) and standard export both stream from the chunk store here;
    // the flag only has to be well-formed.
    if body.get("is_quick_export").is_some_and(|v| !v.is_boolean() && !v.is_null()) {
        return Err(ImsError::invalid("\"is_quick_export\" must be a boolean"));
    }
    let file_format = required(&body, "file_format")?;
    let job = state.services.pipelines().export(&ctx, id, bucket_url, file_format).await?;
    Ok(Json(json!({"job_id": job.id})))
}
