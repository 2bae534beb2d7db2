//! `GET /audit/v1/verification`: walks the whole hash chain (admins only).
//!
//! `{"intact": true|false, "events": N, "head_hash": "...", "broken": null | {"position", "reason"}}`;
//! a broken chain is still a 200: the check ran, and this is what it found.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let v = state.services.audit.verify(&ctx).await?;
    Ok(Json(json!({
        "intact": v.is_intact(),
        "events": v.events,
        "head_hash": v.head_hash,
        "broken": v.broken,
    })))
}
