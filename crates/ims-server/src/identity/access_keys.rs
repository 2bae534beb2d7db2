//! `/identity/v1/access-keys`: AK/SK pairs for `SDK-HMAC-SHA256` signed requests (admin).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_catalog::AccessKey;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{glance_timestamp as timestamp, json_object};

fn render(k: &AccessKey) -> Value {
    json!({
        "access": k.id,
        "user_id": k.user_id,
        "project_id": k.project_id,
        "description": k.description,
        "created_at": timestamp(&k.created_at),
        "status": if k.revoked { "revoked" } else { "active" },
    })
}

/// `POST {"user", "project"?, "description"?}` → 201 `{"access_key": {..., "secret"}}`: the secret is
/// shown this once.
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let obj = json_object(&headers, &body)?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str);
    let user = text("user").ok_or_else(|| ApiError::bad_request("\"user\" is required"))?;
    let issued = state.services.identity.create_access_key(&ctx, user, text("project"), text("description")).await?;
    let mut doc = render(&issued.key);
    doc["secret"] = json!(issued.secret);
    Ok((StatusCode::CREATED, Json(json!({"access_key": doc}))))
}

#[derive(Deserialize)]
pub struct ListQuery {
    user: Option<String>,
}

/// `GET [?user=U]`: keys without their secrets.
pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let keys = state.services.identity.list_access_keys(&ctx, q.user.as_deref()).await?;
    Ok(Json(json!({"access_keys": keys.iter().map(render).collect::<Vec<_>>()})))
}

/// `DELETE /{access}` → 204: the key stops working.
pub async fn revoke(State(state): State<AppState>, Ctx(ctx): Ctx, Path(access): Path<String>) -> ApiResult<StatusCode> {
    state.services.identity.revoke_access_key(&ctx, &access).await?;
    Ok(StatusCode::NO_CONTENT)
}
