//! `POST /admin/v1/store/verify`: reads back and hashes every chunk of every image (or of one).
//!
//! Body (optional): `{"image_id": "<uuid>"}`. Answer (200 whatever was found): the report, with
//! `chunk_problems` (image, file offset, chunk, `missing`/`corrupt`) and `manifest_problems`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use bytes::Bytes;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn run(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<Json<Value>> {
    let obj = super::optional_object(&headers, &body)?;
    if let Some(unknown) = obj.keys().find(|k| k.as_str() != "image_id") {
        return Err(ApiError::bad_request(format!("unknown field {unknown:?}; known: image_id")));
    }
    let image_id = match obj.get("image_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(Uuid::parse_str(s).map_err(|_| ApiError::bad_request(format!("image_id {s:?} is not a uuid")))?)
        }
        Some(_) => return Err(ApiError::bad_request("image_id must be a string")),
    };
    let report = state.services.store_admin.verify(&ctx, image_id).await?;
    Ok(Json(serde_json::to_value(report).expect("a report serializes")))
}
