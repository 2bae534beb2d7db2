//! `/v2/metadefs/namespaces[/{ns}]`, and deleting all of a namespace's objects, properties or tags.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ims_catalog::metadef::NamespaceVisibility;
use ims_core::metadefs::{NamespaceListQuery, NamespaceSortKey};
use serde_json::{json, Value};

use super::{body, render};
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The query parameters of a request, in order.
pub fn query_pairs(query: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| ApiError::bad_request(format!("Bad query string: {e}")))
}

/// The one value of parameter `key`, if given.
pub fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn list_query(pairs: &[(String, String)]) -> ApiResult<NamespaceListQuery> {
    let mut query = NamespaceListQuery::default();
    if let Some(limit) = param(pairs, "limit") {
        let limit: i64 = limit.parse().map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
        if limit < 0 {
            return Err(ApiError::bad_request("limit param must be positive"));
        }
        query.limit = usize::try_from(limit).unwrap_or(usize::MAX);
    }
    query.marker = param(pairs, "marker").map(str::to_string);
    if let Some(key) = param(pairs, "sort_key") {
        query.sort_key = key.parse::<NamespaceSortKey>()?;
    }
    query.descending = match param(pairs, "sort_dir").unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => return Err(ApiError::bad_request(format!("Invalid sort direction: {other}"))),
    };
    if let Some(visibility) = param(pairs, "visibility") {
        query.visibility = Some(
            visibility
                .parse::<NamespaceVisibility>()
                .map_err(|_| ApiError::bad_request(format!("Invalid visibility value: {visibility}")))?,
        );
    }
    if let Some(types) = param(pairs, "resource_types") {
        query.resource_types = types.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect();
    }
    Ok(query)
}

pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, RawQuery(raw): RawQuery) -> ApiResult<Json<Value>> {
    let pairs = query_pairs(raw.as_deref())?;
    let page = state.services.metadefs.list_namespaces(&ctx, &list_query(&pairs)?).await?;
    let without_marker: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "marker").cloned().collect();
    let encode = |pairs: &[(String, String)]| serde_urlencoded::to_string(pairs).unwrap_or_default();
    let mut first = String::from("/v2/metadefs/namespaces");
    if !without_marker.is_empty() {
        first = format!("{first}?{}", encode(&without_marker));
    }
    let namespaces: Vec<Value> =
        page.namespaces.iter().map(|(ns, associations)| render::namespace_with_associations(ns, associations)).collect();
    let mut out = json!({"namespaces": namespaces, "first": first, "schema": "/v2/schemas/metadefs/namespaces"});
    if let Some(next) = page.next {
        let mut next_pairs = without_marker;
        next_pairs.push(("marker".into(), next));
        out["next"] = json!(format!("/v2/metadefs/namespaces?{}", encode(&next_pairs)));
    }
    Ok(Json(out))
}

pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let draft = body::namespace(&body::validated(&headers, &body, "namespace")?)?;
    let contents = state.services.metadefs.create_namespace(&ctx, &draft).await?;
    let location = render::namespace_href(&contents.namespace.namespace);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(render::namespace_contents(&contents))).into_response())
}

pub async fn show(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(ns): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let pairs = query_pairs(raw.as_deref())?;
    let contents = state.services.metadefs.namespace(&ctx, &ns, param(&pairs, "resource_type")).await?;
    Ok(Json(render::namespace_contents(&contents)))
}

pub async fn update(
    State(state): State<AppState>,
    Ctx(ctx): Ctx,
    Path(ns): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let draft = body::namespace(&body::validated(&headers, &body, "namespace")?)?;
    let updated = state.services.metadefs.update_namespace(&ctx, &ns, &draft).await?;
    Ok(Json(Value::Object(render::namespace(&updated))))
}

pub async fn delete(State(state): State<AppState>, Ctx(ctx): Ctx, Path(ns): Path<String>) -> ApiResult<StatusCode> {
    state.services.metadefs.delete_namespace(&ctx, &ns).await?;
    Ok(StatusCode::NO_CONTENT)
}
