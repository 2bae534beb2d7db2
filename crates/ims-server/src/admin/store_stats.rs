//! `GET /admin/v1/store/stats`: logical and physical bytes of the chunk store, in total and per project.

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let stats = state.services.store_admin.stats(&ctx).await?;
    Ok(Json(serde_json::to_value(stats).expect("stats serialize")))
}
