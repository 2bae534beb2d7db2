//! `GET /audit/v1/events`: one page of the audit trail.
//!
//! The answer is `{"events": [...], "next": "/audit/v1/events?...&marker=N"}`, `next` only when the page
//! is full. Each event carries its chain position, `prev_hash` and `hash`.

use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let query = super::query::parse(raw.as_deref(), true)?;
    let records = state.services.audit.list(&ctx, query.clone()).await?;
    let limit = if query.limit == 0 { ims_core::audit::DEFAULT_PAGE } else { query.limit };
    let mut body = json!({ "events": records });
    if let Some(last) = records.last().filter(|_| records.len() == limit as usize) {
        body["next"] = Value::String(next_link(raw.as_deref(), last.position));
    }
    Ok(Json(body))
}

/// The same query with `marker` set to `position`.
fn next_link(raw: Option<&str>, position: u64) -> String {
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
    pairs.retain(|(k, _)| k != "marker");
    pairs.push(("marker".into(), position.to_string()));
    let encoded = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("/audit/v1/events?{encoded}")
}
