//! `/v2/info/*`: import methods, stores, and the caller's usage.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

/// The store every image lives in (one chunk store per deployment).
pub const STORE_ID: &str = "local";

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

pub async fn stores(_ctx: Ctx) -> Json<Value> {
    Json(json!({
        "stores": [{"id": STORE_ID, "description": "Deduplicated, compressed chunk store", "default": true}]
    }))
}

pub async fn usage(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let usage = state.services.images.usage(&ctx).await?;
    Ok(Json(json!({
        "usage": {
            "image_size_total": {"limit": -1, "usage": usage.total_size},
            "image_count_total": {"limit": -1, "usage": usage.image_count},
            "image_stage_total": {"limit": -1, "usage": 0},
            "image_count_uploading": {"limit": -1, "usage": usage.uploading_count}
        }
    })))
}
