//! `/v2/info/*`: import methods, stores, and the caller's usage.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

/// Interoperable import methods this node offers (configured in `[glance_import] methods`).
pub fn import_methods(state: &AppState) -> Vec<&'static str> {
    state.glance_import.settings().methods.iter().map(|m| m.as_str()).collect()
}

pub async fn import(State(state): State<AppState>, _ctx: Ctx) -> Json<Value> {
    Json(json!({
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": import_methods(&state),
        }
    }))
}

/// `/v2/info/stores`: every store, as Glance lists them (`default` only on the default store).
pub async fn stores(State(state): State<AppState>, _ctx: Ctx) -> Json<Value> {
    let stores: Vec<Value> = state
        .glance_import
        .settings()
        .stores
        .list()
        .into_iter()
        .map(|s| {
            let mut store = json!({"id": s.id, "description": s.description});
            if s.default {
                store["default"] = json!(true);
            }
            store
        })
        .collect();
    Json(json!({ "stores": stores }))
}

/// `/v2/info/stores/detail` (admins): every store with its backend type.
pub async fn stores_detail(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    ims_core::Policy::check_admin(&ctx)?;
    let stores: Vec<Value> = state
        .glance_import
        .settings()
        .stores
        .list()
        .into_iter()
        .map(|s| json!({"id": s.id, "description": s.description, "default": s.default, "type": s.kind, "properties": {}}))
        .collect();
    Ok(Json(json!({ "stores": stores })))
}

pub async fn usage(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let usage = state.services.images.usage(&ctx).await?;
    // The project's byte quota (`image_bytes`), in bytes like the usage; -1: no limit.
    let size_limit = state.services.images.own_byte_quota(&ctx).await?.limit.map_or(-1, |l| l as i64);
    Ok(Json(json!({
        "usage": {
            "image_size_total": {"limit": size_limit, "usage": usage.total_size},
            "image_count_total": {"limit": -1, "usage": usage.image_count},
            "image_stage_total": {"limit": -1, "usage": 0},
            "image_count_uploading": {"limit": -1, "usage": usage.uploading_count}
        }
    })))
}
