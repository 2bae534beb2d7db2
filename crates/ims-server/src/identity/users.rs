use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_catalog::Role;
use serde_json::{json, Value};

use super::render;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::{glance_timestamp as timestamp, json_object};

/// `POST {"name", "project", "role"}`: the user and its first token.
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<(StatusCode, Json<Value>)> {
    let obj = json_object(&headers, &body)?;
    let field = |k: &str| {
        obj.get(k).and_then(Value::as_str).ok_or_else(|| ApiError::bad_request(format!("\"{k}\" is required")))
    };
    let name = field("name")?;
    let project = field("project")?;
    let role: Role = obj
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("member")
        .parse()
        .map_err(|e: ims_catalog::CatalogError| ApiError::bad_request(e.to_string()))?;
    let (user, project, token) = state.services.identity.create_user(&ctx, name, project, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "user": {
                "id": user.id, "name": user.name, "created_at": timestamp(&user.created_at),
                "project_id": project.id, "role": role.as_str(),
            },
            "token": render::issued_token(&token),
        })),
    ))
}

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let users = state.services.identity.list_users(&ctx).await?;
    let users: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({
                "id": u.user.id, "name": u.user.name, "created_at": timestamp(&u.user.created_at),
                "roles": u.roles.iter().map(|(p, r)| json!({"project_id": p, "role": r.as_str()})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"users": users})))
}
