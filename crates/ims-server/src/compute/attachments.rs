//! Volume attachments over NBD: mint and revoke the secret name of a read-write volume export.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_core::nbd_exports::DEFAULT_EXPORT_TTL;
use serde_json::{json, Value};

use super::{opt_str, opt_u64, parse_id};
use crate::auth::Ctx;
use crate::cloudimages::nbd::url_authority;
use crate::error::{ApiError, ApiResult};
use crate::glance::render::timestamp;
use crate::state::AppState;

fn nbd_address(state: &AppState) -> Result<std::net::SocketAddr, ApiError> {
    state.nbd_address.ok_or_else(|| ApiError::new(StatusCode::NOT_IMPLEMENTED, "This node runs no NBD server"))
}

/// `POST /compute/v1/volumes/{id}/attachments` `{"ttl_seconds"?}` → 201 `{"nbd_url", "tls", "expires_at"}`.
pub async fn mint(State(state): State<AppState>, Ctx(ctx): Ctx, Path(raw): Path<String>, headers: HeaderMap, body: Bytes)
    -> ApiResult<(StatusCode, Json<Value>)> {
    let address = nbd_address(&state)?;
    let ttl = if body.iter().all(u8::is_ascii_whitespace) {
        DEFAULT_EXPORT_TTL
    } else {
        let body = crate::json_object(&headers, &body)?;
        opt_u64(&body, "ttl_seconds")?.map_or(DEFAULT_EXPORT_TTL, Duration::from_secs)
    };
    let minted = state.services.compute.mint_volume_export(&ctx, parse_id("volume", &raw)?, ttl).await?;
    let url = format!("nbd://{}/{}", url_authority(address, &headers), minted.name);
    let body = json!({"nbd_url": url, "tls": state.nbd_tls, "expires_at": timestamp(&minted.expires_at)});
    Ok((StatusCode::CREATED, Json(body)))
}

/// `DELETE /compute/v1/volumes/{id}/attachments` `{"nbd_url"}` or `{"name"}` → 204.
pub async fn revoke(State(state): State<AppState>, Ctx(ctx): Ctx, Path(raw): Path<String>, headers: HeaderMap, body: Bytes)
    -> ApiResult<StatusCode> {
    nbd_address(&state)?;
    let body = crate::json_object(&headers, &body)?;
    let name = match (opt_str(&body, "nbd_url")?, opt_str(&body, "name")?) {
        (Some(url), _) => url.rsplit('/').next().unwrap_or_default(),
        (None, Some(name)) => name,
        (None, None) => return Err(ApiError::bad_request("\"nbd_url\" or \"name\" must name the export to revoke")),
    };
    state.services.compute.revoke_volume_export(&ctx, parse_id("volume", &raw)?, name).await?;
    Ok(StatusCode::NO_CONTENT)
}
