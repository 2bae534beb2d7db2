//! Listing handlers: browse, show, publish, shelf state, delist.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use ims_core::market::{ListingScope, NewListing};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{listing, listing_id};
use crate::auth::ImsCtx;
use crate::cloudimages::{image_id, json_body};
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

/// Decodes the query string into `T`, with a clear IMS error for an unknown or malformed parameter.
fn query_params<T: serde::de::DeserializeOwned>(raw: Option<String>) -> Result<T, ImsError> {
    serde_urlencoded::from_str(&raw.unwrap_or_default())
        .map_err(|e| ImsError::invalid(format!("Invalid query string: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    scope: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    RawQuery(raw): RawQuery,
) -> ImsResult<Json<Value>> {
    let params: ListParams = query_params(raw)?;
    let scope = match params.scope.as_deref() {
        None | Some("on_shelf") => ListingScope::OnShelf,
        Some("published") => ListingScope::Published,
        Some("subscribed") => ListingScope::Subscribed,
        Some("all") => ListingScope::All,
        Some(other) => {
            return Err(ImsError::invalid(format!(
                "Invalid scope {other:?}: use on_shelf, published, subscribed or all"
            )))
        }
    };
    let products = state.services.images.browse_listings(&ctx, scope).await?;
    let viewer = ctx.project_id();
    Ok(Json(json!({"listings": products.iter().map(|p| listing(p, viewer)).collect::<Vec<_>>()})))
}

pub async fn show(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<Json<Value>> {
    let product = state.services.images.show_listing(&ctx, listing_id(&raw)?).await?;
    Ok(Json(listing(&product, ctx.project_id())))
}

/// A string field of the body: required, or `""` when absent and optional.
fn text(body: &Value, field: &str, required: bool) -> Result<String, ImsError> {
    match body.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        _ => Err(ImsError::invalid(format!("\"{field}\" must be a string"))),
    }
}

pub async fn publish(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    body: Bytes,
) -> ImsResult<(StatusCode, Json<Value>)> {
    let body = json_body(&body)?;
    let new = NewListing {
        image_id: image_id(&text(&body, "image_id", true)?)?,
        product_code: text(&body, "product_code", true)?,
        version: text(&body, "version", true)?,
        description: text(&body, "description", false)?,
    };
    let product = state.services.images.publish_listing(&ctx, new).await?;
    Ok((StatusCode::CREATED, Json(listing(&product, ctx.project_id()))))
}

async fn set_shelf(state: AppState, ctx: ims_core::RequestContext, raw: &str, off: bool) -> ImsResult<Json<Value>> {
    let product = state.services.images.set_listing_offshelved(&ctx, listing_id(raw)?, off).await?;
    Ok(Json(listing(&product, ctx.project_id())))
}

pub async fn offshelf(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<Json<Value>> {
    set_shelf(state, ctx, &raw, true).await
}

pub async fn onshelf(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<Json<Value>> {
    set_shelf(state, ctx, &raw, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelistParams {
    force: Option<bool>,
}

pub async fn delist(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> ImsResult<StatusCode> {
    let params: DelistParams = query_params(raw_query)?;
    state.services.images.delist(&ctx, listing_id(&raw)?, params.force.unwrap_or(false)).await?;
    Ok(StatusCode::NO_CONTENT)
}
