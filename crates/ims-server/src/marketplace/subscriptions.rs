//! Subscription handlers: subscribe, list a listing's subscribers, unsubscribe.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::{listing, listing_id, subscription};
use crate::auth::ImsCtx;
use crate::error::ImsResult;
use crate::state::AppState;

pub async fn subscribe(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<Json<Value>> {
    let (product, sub) = state.services.images.subscribe(&ctx, listing_id(&raw)?).await?;
    Ok(Json(json!({"subscription": subscription(&sub), "listing": listing(&product, ctx.project_id())})))
}

pub async fn list(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<Json<Value>> {
    let subs = state.services.images.listing_subscriptions(&ctx, listing_id(&raw)?).await?;
    Ok(Json(json!({"subscriptions": subs.iter().map(subscription).collect::<Vec<_>>()})))
}

pub async fn unsubscribe(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path((raw, project)): Path<(String, String)>,
) -> ImsResult<StatusCode> {
    state.services.images.unsubscribe(&ctx, listing_id(&raw)?, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
