//! Registering an image whose chunks another region sent.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ims_core::regions::ImageRegistration;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `POST /internal/v1/replication/images`: 201 with the image, or 409 with the chunks still missing.
pub async fn register(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let registration: ImageRegistration = serde_json::from_value(Value::Object(crate::json_object(&headers, &body)?))
        .map_err(|e| ApiError::bad_request(format!("bad registration: {e}")))?;
    let answer = state.services.images.replication().register_image(&ctx, registration).await?;
    Ok(match answer {
        Ok(image) => (StatusCode::CREATED, Json(json!({"image_id": image.id.to_string(), "status": image.status.to_string()}))).into_response(),
        Err(missing) => (
            StatusCode::CONFLICT,
            Json(json!({
                "message": format!("{} chunks of the image are not in this region's store", missing.len()),
                "code": "409 Conflict",
                "title": "Conflict",
                "missing": missing,
            })),
        )
            .into_response(),
    })
}
