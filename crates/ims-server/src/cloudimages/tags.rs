//! IMS resource tags: v2 (`/v2/{project_id}/images/...tags...`, `resource_instances/action`) and the
//! legacy v1 APIs (`/v1/cloudimages/tags`, `/v1/{project_id}/cloudimages/{image_id}/tags/delete`).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use ims_catalog::ResourceTag;
use ims_core::{TagCondition, TagQuery};
use serde_json::{json, Value};

use super::{check_path_project, image_id, json_body, render};
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

fn tag(v: &Value) -> ImsResult<ResourceTag> {
    let key = v.get("key").and_then(Value::as_str).ok_or_else(|| ImsError::invalid("A tag needs a \"key\""))?;
    let value = match v.get("value") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s,
        Some(_) => return Err(ImsError::invalid("A tag's \"value\" must be a string")),
    };
    Ok(ResourceTag::new(key, value))
}

fn tag_list(body: &Value, key: &str) -> ImsResult<Vec<ResourceTag>> {
    match body.get(key) {
        Some(Value::Array(items)) => items.iter().map(tag).collect(),
        _ => Err(ImsError::invalid(format!("\"{key}\" must be a list of {{\"key\", \"value\"}}"))),
    }
}

fn render_tags(tags: &[ResourceTag]) -> Value {
    json!(tags.iter().map(|t| json!({"key": t.key, "value": t.value})).collect::<Vec<_>>())
}

/// `POST /v2/{project_id}/images/{image_id}/tags` `{"tag": {"key", "value"}}` → 204.
pub async fn add(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path((project_id, id)): Path<(String, String)>, body: Bytes) -> ImsResult<StatusCode> {
    check_path_project(&ctx, &project_id)?;
    let body = json_body(&body)?;
    let t = tag(body.get("tag").ok_or_else(|| ImsError::invalid("\"tag\" is required"))?)?;
    state.services.tags.change(&ctx, image_id(&id)?, &[t], &[], false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../tags/action` `{"action": "create"|"delete", "tags": [...]}` → 204.
pub async fn batch(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path((project_id, id)): Path<(String, String)>, body: Bytes) -> ImsResult<StatusCode> {
    check_path_project(&ctx, &project_id)?;
    let body = json_body(&body)?;
    let tags = tag_list(&body, "tags")?;
    let id = image_id(&id)?;
    match body.get("action").and_then(Value::as_str) {
        Some("create") => state.services.tags.change(&ctx, id, &tags, &[], false).await?,
        Some("delete") => {
            let keys: Vec<String> = tags.into_iter().map(|t| t.key).collect();
            state.services.tags.change(&ctx, id, &[], &keys, false).await?
        }
        other => return Err(ImsError::invalid(format!("Invalid action {other:?}: use create or delete"))),
    };
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v2/{project_id}/images/{image_id}/tags/{key}` → 204; 404 if the image has no such key.
pub async fn delete(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path((project_id, id, key)): Path<(String, String, String)>) -> ImsResult<StatusCode> {
    check_path_project(&ctx, &project_id)?;
    state.services.tags.change(&ctx, image_id(&id)?, &[], &[key], true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v2/{project_id}/images/{image_id}/tags` → `{"tags": [{"key", "value"}]}`.
pub async fn list(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path((project_id, id)): Path<(String, String)>) -> ImsResult<Json<Value>> {
    check_path_project(&ctx, &project_id)?;
    let tags = state.services.tags.list(&ctx, image_id(&id)?).await?;
    Ok(Json(json!({"tags": render_tags(&tags)})))
}

/// `GET /v2/{project_id}/images/tags` → `{"tags": [{"key", "values"}]}` over the project's images.
pub async fn project(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(project_id): Path<String>) -> ImsResult<Json<Value>> {
    check_path_project(&ctx, &project_id)?;
    let tags = state.services.tags.project_tags(&ctx).await?;
    Ok(Json(json!({"tags": tags.iter().map(|(k, v)| json!({"key": k, "values": v})).collect::<Vec<_>>()})))
}

fn conditions(body: &Value, key: &str) -> ImsResult<Vec<TagCondition>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let key = item.get("key").and_then(Value::as_str).ok_or_else(|| ImsError::invalid(format!("\"{key}\" entries need a \"key\"")))?;
                let values = match item.get("values") {
                    None | Some(Value::Null) => vec![],
                    Some(Value::Array(vs)) => vs.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                    Some(_) => return Err(ImsError::invalid("\"values\" must be a list of strings")),
                };
                Ok(TagCondition { key: key.to_string(), values })
            })
            .collect(),
        Some(_) => Err(ImsError::invalid(format!("\"{key}\" must be a list"))),
    }
}

/// A number given as a string (the SDK models `limit`/`offset` as strings) or a number.
fn number(body: &Value, key: &str, default: usize) -> ImsResult<usize> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => s.parse().map_err(|_| ImsError::invalid(format!("\"{key}\" must be a number"))),
        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize).ok_or_else(|| ImsError::invalid(format!("\"{key}\" must be a number"))),
        Some(_) => Err(ImsError::invalid(format!("\"{key}\" must be a number"))),
    }
}

/// `POST /v2/{project_id}/images/resource_instances/action`: `action` `filter` (a page of images with
/// their tags and `total_count`) or `count` (only `total_count`).
pub async fn query(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path(project_id): Path<String>, body: Bytes) -> ImsResult<Json<Value>> {
    check_path_project(&ctx, &project_id)?;
    let body = json_body(&body)?;
    let action = body.get("action").and_then(Value::as_str).unwrap_or("filter");
    let limit = number(&body, "limit", 1000)?;
    if !(1..=1000).contains(&limit) {
        return Err(ImsError::invalid("\"limit\" must be between 1 and 1000"));
    }
    let matches = match body.get("matches") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                let t = tag(m)?;
                if t.key != "resource_name" {
                    return Err(ImsError::invalid(format!("Unsupported match key {:?}: use resource_name", t.key)));
                }
                Ok((t.key, t.value))
            })
            .collect::<ImsResult<_>>()?,
        Some(_) => return Err(ImsError::invalid("\"matches\" must be a list")),
    };
    let q = TagQuery {
        tags: conditions(&body, "tags")?,
        tags_any: conditions(&body, "tags_any")?,
        not_tags: conditions(&body, "not_tags")?,
        not_tags_any: conditions(&body, "not_tags_any")?,
        matches,
        without_any_tag: body.get("without_any_tag").and_then(Value::as_bool).unwrap_or(false),
        offset: number(&body, "offset", 0)?,
        limit,
    };
    let (total, page) = state.services.tags.query(&ctx, &q).await?;
    match action {
        "count" => Ok(Json(json!({"total_count": total}))),
        "filter" => Ok(Json(json!({
            "resources": page.iter().map(|(image, tags)| json!({
                "resource_id": image.id.to_string(),
                "resource_name": image.name.clone().unwrap_or_default(),
                "resource_detail": {"status": image.status.as_str()},
                "tags": render_tags(tags),
            })).collect::<Vec<_>>(),
            "total_count": total,
        }))),
        other => Err(ImsError::invalid(format!("Invalid action {other:?}: use filter or count"))),
    }
}

/// `PUT /v1/cloudimages/tags` `{"image_id", "image_tag": {"key", "value"}}` or the older
/// `{"image_id", "tag": "key.value"}` → 204.
pub async fn v1_put(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<StatusCode> {
    let body = json_body(&body)?;
    let id = image_id(body.get("image_id").and_then(Value::as_str).ok_or_else(|| ImsError::invalid("\"image_id\" is required"))?)?;
    let t = match (body.get("image_tag"), body.get("tag").and_then(Value::as_str)) {
        (Some(t), _) if !t.is_null() => tag(t)?,
        (_, Some(s)) => {
            let (k, v) = s.split_once('.').unwrap_or((s, ""));
            ResourceTag::new(k, v)
        }
        _ => return Err(ImsError::invalid("\"image_tag\" (or \"tag\") is required")),
    };
    state.services.tags.change(&ctx, id, &[t], &[], false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/{project_id}/cloudimages/{image_id}/tags/delete` `{"tags": [{"key", ...}]}` → 204.
pub async fn v1_delete(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, Path((project_id, id)): Path<(String, String)>, body: Bytes) -> ImsResult<StatusCode> {
    check_path_project(&ctx, &project_id)?;
    let keys: Vec<String> = tag_list(&json_body(&body)?, "tags")?.into_iter().map(|t| t.key).collect();
    state.services.tags.change(&ctx, image_id(&id)?, &[], &keys, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/cloudimages/tags`: the tags (`key.value`) of the project's images that pass the filters
/// (`id`, `name`, `status`, `min_disk`, `__imagetype`, `__platform`, `__os_type`, `virtual_env_type`,
/// `architecture`), sorted, `limit` per `page` (1-based).
pub async fn v1_list(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, RawQuery(raw): RawQuery) -> ImsResult<Json<Value>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw.unwrap_or_default())
        .map_err(|e| ImsError::invalid(format!("Invalid query string: {e}")))?;
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let parse_n = |k: &str| get(k).map(|v| v.parse::<usize>().map_err(|_| ImsError::invalid(format!("{k} must be a number")))).transpose();
    let limit = parse_n("limit")?;
    let page = parse_n("page")?.unwrap_or(1).max(1);
    let project = ctx.project_id().map(str::to_string);
    let all = state.services.tags.query(&ctx, &TagQuery { limit: usize::MAX, ..Default::default() }).await?.1;
    let mut out = std::collections::BTreeSet::new();
    for (image, tags) in &all {
        let doc = render::image(image, project.as_deref());
        let keep = pairs.iter().all(|(k, v)| match k.as_str() {
            "limit" | "page" | "member_status" | "enterprise_project_id" | "created_at" | "updated_at" => true,
            "id" | "name" | "status" | "__imagetype" | "__platform" | "__os_type" | "virtual_env_type" | "architecture" => {
                doc.get(k).and_then(Value::as_str) == Some(v.as_str())
            }
            "min_disk" => doc.get(k).and_then(Value::as_i64).map(|n| n.to_string()).as_deref() == Some(v.as_str()),
            _ => true,
        });
        if keep {
            for t in tags {
                out.insert(format!("{}.{}", t.key, t.value));
            }
        }
    }
    let tags: Vec<String> = match limit {
        Some(l) => out.into_iter().skip((page - 1) * l).take(l).collect(),
        None => out.into_iter().collect(),
    };
    Ok(Json(json!({"tags": tags})))
}
