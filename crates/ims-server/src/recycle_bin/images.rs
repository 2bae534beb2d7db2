//! Handlers of `/v1/recycle-bin/images...` (see the module above).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use ims_catalog::BinnedImage;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::ImsCtx;
use crate::cloudimages::{image_id, render};
use crate::error::{ImsError, ImsResult};
use crate::glance::render::timestamp;
use crate::state::AppState;

/// A binned image: the IMS record plus when it was binned and when it may be purged.
fn binned(b: &BinnedImage, viewer: Option<&str>) -> Value {
    let mut out = render::image(&b.image, viewer);
    out["binned_at"] = json!(timestamp(&b.binned_at));
    out["purge_after"] = json!(timestamp(&b.purge_after));
    out
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all_projects: bool,
    marker: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ImsResult<Json<Value>> {
    let Query(q) = query.map_err(|e| ImsError::invalid(format!("Invalid query string: {}", e.body_text())))?;
    let marker = q
        .marker
        .map(|m| uuid::Uuid::parse_str(&m).map_err(|_| ImsError::invalid(format!("Invalid marker {m:?}"))))
        .transpose()?;
    let limit = q.limit.unwrap_or(ims_core::recycle_bin::MAX_BIN_LIST).clamp(1, ims_core::recycle_bin::MAX_BIN_LIST);
    let images = state.services.images.list_bin(&ctx, q.all_projects, marker, limit).await?;
    let viewer = ctx.project_id();
    let mut out = json!({"images": images.iter().map(|b| binned(b, viewer)).collect::<Vec<_>>()});
    // A full page may have more after it: the marker of the next one (a later page may be empty).
    if images.len() == limit as usize {
        if let Some(last) = images.last() {
            out["next_marker"] = json!(last.image.id);
        }
    }
    Ok(Json(out))
}

pub async fn show(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(raw): Path<String>) -> ImsResult<Json<Value>> {
    let found = state.services.images.get_binned(&ctx, image_id(&raw)?).await?;
    Ok(Json(binned(&found, ctx.project_id())))
}

pub async fn restore(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(raw): Path<String>,
) -> ImsResult<Json<Value>> {
    let image = state.services.images.restore(&ctx, image_id(&raw)?).await?;
    Ok(Json(render::image(&image, ctx.project_id())))
}

pub async fn purge(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(raw): Path<String>) -> ImsResult<StatusCode> {
    state.services.images.purge(&ctx, image_id(&raw)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
