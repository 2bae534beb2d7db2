//! `/v2/images` and `/v2/images/{id}`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::json;
use uuid::Uuid;

use super::{body, list_query, patch, render};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// An image id from the path; anything that is not a UUID names no image (404).
pub fn image_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("No image found with ID {raw}")))
}

pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let new = body::new_image(body::object(&headers, &body)?)?;
    let image = state.services.images.create(&ctx, new).await?;
    let location = format!("/v2/images/{}", image.id);
    // Interoperable import methods this node offers (the same list as `/v2/info/import`).
    let import_methods = super::info::import_methods(&state).join(",");
    let headers = [(header::LOCATION, location), (header::HeaderName::from_static("openstack-image-import-methods"), import_methods)];
    Ok((StatusCode::CREATED, headers, Json(render::image(&image))).into_response())
}

pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<Response> {
    let image = state.services.images.get(&ctx, image_id(&id)?).await?;
    Ok(Json(render::image(&image)).into_response())
}

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let raw = raw.unwrap_or_default();
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(&raw).map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))?;
    let query = list_query::parse(&pairs).map_err(|e| ApiError::bad_request(e.0))?;
    let limit = query.limit;
    let images = state.services.images.list(&ctx, query).await?;
    let mut doc = json!({
        "images": images.iter().map(render::image).collect::<Vec<_>>(),
        "first": first_link(&pairs),
        "schema": "/v2/schemas/images",
    });
    if limit > 0 && images.len() as u32 == limit {
        if let Some(last) = images.last() {
            doc["next"] = json!(next_link(&pairs, last.id));
        }
    }
    Ok(Json(doc).into_response())
}

/// The same query without a marker.
fn first_link(pairs: &[(String, String)]) -> String {
    let kept: Vec<_> = pairs.iter().filter(|(k, _)| k != "marker").collect();
    link(&kept)
}

/// The same query, continuing after `last`.
fn next_link(pairs: &[(String, String)], last: Uuid) -> String {
    let marker = ("marker".to_string(), last.to_string());
    let mut kept: Vec<_> = pairs.iter().filter(|(k, _)| k != "marker").collect();
    kept.push(&marker);
    link(&kept)
}

fn link(pairs: &[&(String, String)]) -> String {
    if pairs.is_empty() {
        return "/v2/images".into();
    }
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("/v2/images?{query}")
}

pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let id = image_id(&id)?;
    let media = patch::media_type(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()))?;
    let ops = patch::parse(media, &body)?;
    let image = state.services.images.update(&ctx, id, &ops).await?;
    Ok(Json(render::image(&image)).into_response())
}

/// The request header that makes a delete final at once instead of moving the image to the recycle bin.
pub const FORCE_DELETE_HEADER: &str = "x-ims-force-delete";

/// `DELETE /v2/images/{id}`: to the recycle bin when it is on, for good with `X-Ims-Force-Delete: true`.
pub async fn delete(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let force = match headers.get(FORCE_DELETE_HEADER).map(|v| v.to_str().unwrap_or_default().trim()) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => return Err(ApiError::bad_request(format!("Invalid X-Ims-Force-Delete header {v:?}: use true or false"))),
    };
    state.services.images.delete_image(&ctx, image_id(&id)?, force).await?;
    Ok(StatusCode::NO_CONTENT)
}
