use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::render;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::json_object;
use crate::state::AppState;

/// `POST {"user", "project"}`: a new token (admin).
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let obj = json_object(&headers, &body)?;
    let field = |k: &str| {
        obj.get(k).and_then(Value::as_str).ok_or_else(|| ApiError::bad_request(format!("\"{k}\" is required")))
    };
    let token = state.services.identity.create_token(&ctx, field("user")?, field("project")?).await?;
    Ok((StatusCode::CREATED, Json(json!({"token": render::issued_token(&token)}))))
}

pub async fn revoke(State(state): State<AppState>, Ctx(ctx): Ctx, Path(token): Path<String>) -> ApiResult<StatusCode> {
    state.services.identity.revoke_token(&ctx, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the presented token stands for.
pub async fn whoami(Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let c = ctx.caller.as_ref().ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "authentication required"))?;
    Ok(Json(json!({
        "user": {"id": c.user_id, "name": c.user_name},
        "project": {"id": c.project_id, "name": c.project_name},
        "role": c.role.as_str(),
        "is_admin": c.is_admin(),
    })))
}
