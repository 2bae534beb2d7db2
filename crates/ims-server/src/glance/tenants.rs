//! `/v2/tenants`: the project lookups that `openstack image add project` and
//! `openstack image set --accept --project` make against the image endpoint when no identity
//! service is configured (they resolve a project name or id before sharing).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

fn tenant(p: &ims_catalog::Project) -> Value {
    json!({"id": p.id, "name": p.name, "enabled": true, "description": ""})
}

/// One project by id or name, for any signed-in caller (id and name only).
pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(project): Path<String>) -> ApiResult<Json<Value>> {
    let p = state.services.identity.lookup_project(&ctx, &project).await?;
    Ok(Json(json!({"tenant": tenant(&p)})))
}

/// The caller's own project.
pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let own = ctx.project_id().unwrap_or_default().to_string();
    let p = state.services.identity.lookup_project(&ctx, &own).await?;
    Ok(Json(json!({"tenants": [tenant(&p)], "tenants_links": []})))
}
