//! `/v1/cloudimages/{image_id}/nbd`: secret NBD export names of an image's guest disk (our extension of
//! the IMS API).
//!
//! - `POST` with an optional body `{"ttl_seconds": N}` (default 3600, at most 7 days) → 201
//!   `{"nbd_url": "nbd://host:port/<name>", "tls", "expires_at"}`; `tls` is true when the NBD server
//!   requires TLS with a pre-shared key (`nbd_tls_psk_file`). The caller must be allowed to download
//!   the image, which must be active. The name is shown only here.
//! - `DELETE` with the body `{"nbd_url": "..."}` (or `{"name": "..."}`) → 204: the name opens nothing for
//!   new connections. The name travels in the body, never in a path that access logs record.
//!
//! 501 when this node runs no NBD server (`nbd_listen` unset).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use ims_core::nbd_exports::{NbdExportService, DEFAULT_EXPORT_TTL};
use serde_json::{json, Value};

use super::{image_id, json_body};
use crate::auth::ImsCtx;
use crate::error::{ims_codes, ImsError, ImsResult};
use crate::glance::render::timestamp;
use crate::state::AppState;

pub async fn mint(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ImsResult<(StatusCode, Json<Value>)> {
    let address = nbd_address(&state)?;
    let ttl = if body.iter().all(u8::is_ascii_whitespace) {
        DEFAULT_EXPORT_TTL
    } else {
        match json_body(&body)?.get("ttl_seconds") {
            None => DEFAULT_EXPORT_TTL,
            Some(v) => Duration::from_secs(
                v.as_u64().ok_or_else(|| ImsError::invalid("\"ttl_seconds\" must be a positive integer"))?,
            ),
        }
    };
    let exports = NbdExportService::new(state.services.images.clone());
    let minted = exports.mint(&ctx, image_id(&raw)?, ttl).await?;
    let url = format!("nbd://{}/{}", url_authority(address, &headers), minted.name);
    let body = json!({"nbd_url": url, "tls": state.nbd_tls, "expires_at": timestamp(&minted.expires_at)});
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn revoke(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
    body: Bytes,
) -> ImsResult<StatusCode> {
    nbd_address(&state)?;
    let body = json_body(&body)?;
    let name = match (body.get("nbd_url").and_then(Value::as_str), body.get("name").and_then(Value::as_str)) {
        (Some(url), _) => url.rsplit('/').next().unwrap_or_default(),
        (None, Some(name)) => name,
        (None, None) => return Err(ImsError::invalid("\"nbd_url\" or \"name\" must name the export to revoke")),
    };
    let exports = NbdExportService::new(state.services.images.clone());
    exports.revoke(&ctx, image_id(&raw)?, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn nbd_address(state: &AppState) -> Result<SocketAddr, ImsError> {
    state.nbd_address.ok_or_else(|| {
        ImsError::new(ims_codes::NOT_AVAILABLE, StatusCode::NOT_IMPLEMENTED, "This node runs no NBD server")
    })
}

/// `host:port` clients reach the NBD server at: the bound address, or, when it is bound to every
/// interface, the host the caller reached the API at.
pub(crate) fn url_authority(address: SocketAddr, headers: &HeaderMap) -> String {
    if !address.ip().is_unspecified() {
        return address.to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .map(|a| a.host().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    format!("{host}:{}", address.port())
}
