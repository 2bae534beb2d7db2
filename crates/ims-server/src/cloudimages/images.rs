//! `GET /v2/cloudimages` (ListImages) and `PATCH /v2/cloudimages/{image_id}` (UpdateImage).

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use bytes::Bytes;
use ims_core::{PatchKind, PatchOp};
use serde_json::{json, Value};

use super::{image_id, json_body, list_query, render};
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, RawQuery(raw): RawQuery) -> ImsResult<Json<Value>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw.unwrap_or_default())
        .map_err(|e| ImsError::invalid(format!("Invalid query string: {e}")))?;
    let query = list_query::parse(&pairs, ctx.project_id())?;
    let limit = query.limit;
    let images = state.services.images.list(&ctx, query).await?;
    let ids: Vec<uuid::Uuid> = images.iter().map(|i| i.id).collect();
    let listings: std::collections::HashMap<uuid::Uuid, ims_catalog::MarketListing> =
        state.services.images.listings_of_images(&ids).await?.into_iter().map(|l| (l.image_id, l)).collect();
    let next_marker = (limit > 0 && images.len() as u32 == limit).then(|| images.last().map(|i| i.id.to_string())).flatten();
    let mut doc = json!({
        "images": images
            .iter()
            .map(|i| render::listed_image(i, ctx.project_id(), listings.get(&i.id)))
            .collect::<Vec<_>>(),
        "page_info": {"next_marker": next_marker, "current_count": images.len()},
        "schema": "/v2/schemas/images",
    });
    if let Some(marker) = next_marker {
        let mut kept: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "marker").collect();
        kept.push(("marker".into(), marker));
        doc["next"] = json!(format!("/v2/cloudimages?{}", serde_urlencoded::to_string(&kept).unwrap_or_default()));
    }
    Ok(Json(doc))
}

/// Base attributes of the record (the rest are properties, which `replace` also creates).
const BASE: &[&str] = &[
    "name", "visibility", "protected", "os_hidden", "min_disk", "min_ram", "disk_format", "container_format", "owner",
    "tags",
];

/// `PATCH` with `[{"op": "replace", "path": "/name", "value": ...}]` (any JSON content type): the same
/// update as Glance's, with the IMS SDK's string values coerced (`"1024"` for `min_ram`, `"true"` for
/// `protected`, numbers and booleans to strings for properties), and `replace` of a property the image
/// does not have adding it.
pub async fn update(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> ImsResult<Json<Value>> {
    let id = image_id(&id)?;
    let Value::Array(items) = json_body(&body)? else {
        return Err(ImsError::invalid("The body must be a JSON array of {\"op\", \"path\", \"value\"} operations"));
    };
    let mut ops = Vec::new();
    for item in items {
        let op = item.get("op").and_then(Value::as_str).ok_or_else(|| ImsError::invalid("Each operation needs \"op\""))?;
        let path = item.get("path").and_then(Value::as_str).ok_or_else(|| ImsError::invalid("Each operation needs \"path\""))?;
        let kind = match op {
            "add" => PatchKind::Add,
            "remove" => PatchKind::Remove,
            "replace" => PatchKind::Replace,
            other => return Err(ImsError::invalid(format!("Invalid operation {other:?}: use add, remove or replace"))),
        };
        let name = path
            .strip_prefix('/')
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ImsError::invalid(format!("Invalid path {path:?}: expected /attribute")))?
            .replace("~1", "/")
            .replace("~0", "~");
        let base = BASE.contains(&name.as_str());
        let value = item.get("value").cloned().map(|v| coerce(&name, base, v));
        if kind != PatchKind::Remove && value.is_none() {
            return Err(ImsError::invalid(format!("Operation {op} on {path} needs a value")));
        }
        let kind = if kind == PatchKind::Replace && !base { PatchKind::Add } else { kind };
        ops.push(PatchOp { kind, path: name, value });
    }
    let image = state.services.images.update(&ctx, id, &ops).await?;
    Ok(Json(render::image(&image, ctx.project_id())))
}

fn coerce(name: &str, base: bool, value: Value) -> Value {
    match (name, value) {
        ("min_disk" | "min_ram", Value::String(s)) => s.trim().parse::<i64>().map(Value::from).unwrap_or(Value::String(s)),
        ("protected" | "os_hidden", Value::String(s)) => match s.as_str() {
            "true" | "True" => Value::Bool(true),
            "false" | "False" => Value::Bool(false),
            _ => Value::String(s),
        },
        (_, Value::Number(n)) if !base => Value::String(n.to_string()),
        (_, Value::Bool(b)) if !base => Value::String(b.to_string()),
        (_, v) => v,
    }
}
