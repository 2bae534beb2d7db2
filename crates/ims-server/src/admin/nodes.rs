//! `/admin/v1/nodes`: the nodes sharing the catalog, and their drain.
//!
//! - `GET /admin/v1/nodes` → `{"nodes": [...]}`, oldest start first.
//! - `POST /admin/v1/nodes/{node_id}/drain` → 202 `{"node": ...}`: the node claims no new job and hands its
//!   running jobs back to the queue; it shows `drained` once it runs none. 404 for an unknown node.

use std::net::SocketAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use ims_catalog::Node;
use ims_core::nodes::NodeService;
use serde_json::{json, Value};

use crate::auth::Ctx;
use crate::error::ApiResult;
use crate::glance_timestamp as timestamp;
use crate::state::AppState;

/// The address a node registers: the bound `ip:port`, or `hostname:port` when it listens on every address
/// (`0.0.0.0`, `::`), where the bound address would not tell the nodes apart.
pub fn node_address(bound: SocketAddr) -> String {
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string());
    match host.filter(|h| !h.is_empty()) {
        Some(host) => format!("{host}:{}", bound.port()),
        None => bound.to_string(),
    }
}

/// Every field of a node.
fn render(node: &Node) -> Value {
    json!({
        "id": node.id,
        "address": node.address,
        "state": node.state.as_str(),
        "started_at": timestamp(&node.started_at),
        "heartbeat_at": timestamp(&node.heartbeat_at),
    })
}

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx) -> ApiResult<Json<Value>> {
    let nodes = NodeService::new(&state.services.images).list(&ctx).await?;
    Ok(Json(json!({"nodes": nodes.iter().map(render).collect::<Vec<_>>()})))
}

pub async fn drain(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(node_id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let node = NodeService::new(&state.services.images).drain(&ctx, &node_id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"node": render(&node)}))))
}
