//! Glance tasks: `/v2/tasks` (admin), `/v2/tasks/{id}` and `/v2/images/{id}/tasks`, each an import job.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ims_core::glance_import::{GlanceTask, LegacyImportTask};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body;
use super::images::image_id;
use super::render::timestamp;
use crate::auth::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A task in Glance's task schema (`/v2/schemas/task`).
fn task(t: &GlanceTask) -> Value {
    json!({
        "id": t.id,
        "type": t.task_type,
        "status": t.status,
        "input": t.input,
        "result": t.result,
        "owner": t.owner,
        "message": t.message,
        "expires_at": null,
        "image_id": t.image_id,
        "request_id": t.request_id,
        "user_id": t.user_id,
        "created_at": timestamp(&t.created_at),
        "updated_at": timestamp(&t.updated_at),
        "self": format!("/v2/tasks/{}", t.id),
        "schema": "/v2/schemas/task",
    })
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
}

/// `GET /v2/tasks`: every import task, newest first (admins).
pub async fn list(State(state): State<AppState>, Ctx(ctx): Ctx, Query(q): Query<ListQuery>) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(25).clamp(1, 1000);
    let tasks = state.glance_import.list_tasks(&ctx, limit).await?;
    Ok(Json(json!({
        "tasks": tasks.iter().map(task).collect::<Vec<_>>(),
        "first": "/v2/tasks",
        "schema": "/v2/schemas/tasks",
    })))
}

/// `POST /v2/tasks`: a legacy `import` task (admins), which creates an image from `input.image_properties`
/// and fills it from `input.import_from` as `web-download` does. 201 with the task, `pending`.
pub async fn create(State(state): State<AppState>, Ctx(ctx): Ctx, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    // Glance checks who may use the tasks API before it reads the body.
    ims_core::Policy::check_admin(&ctx)?;
    let request = body::object(&headers, &body)?;
    let legacy = legacy_import_task(request)?;
    let created = state.glance_import.create_legacy_import_task(&ctx, legacy).await?;
    let location = format!("/v2/tasks/{}", created.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(task(&created))).into_response())
}

fn legacy_import_task(mut request: serde_json::Map<String, Value>) -> ApiResult<LegacyImportTask> {
    for key in ["type", "input"] {
        if !request.contains_key(key) {
            return Err(ApiError::bad_request(format!("Task '{key}' is required")));
        }
    }
    match &request["type"] {
        Value::String(t) if t == "import" => {}
        Value::String(t) => {
            return Err(ApiError::bad_request(format!(
                "Tasks of type '{t}' cannot be created here: only 'import' (use POST /v2/images/{{id}}/import)"
            )))
        }
        other => return Err(ApiError::bad_request(format!("Task 'type' must be a string, not {other}"))),
    }
    let input = request.remove("input").unwrap_or(Value::Null);
    let Value::Object(fields) = &input else {
        return Err(ApiError::bad_request("Task 'input' must be an object"));
    };
    let text = |key: &str| match fields.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(ApiError::bad_request(format!("Input field '{key}' must be a non-empty string"))),
        None => Err(ApiError::bad_request(format!("Input does not contain '{key}' field"))),
    };
    let import_from = text("import_from")?;
    text("import_from_format")?;
    let image = match fields.get("image_properties") {
        Some(Value::Object(properties)) => body::new_image(properties.clone())?,
        Some(_) => return Err(ApiError::bad_request("Input field 'image_properties' must be an object")),
        None => return Err(ApiError::bad_request("Input does not contain 'image_properties' field")),
    };
    Ok(LegacyImportTask { import_from, image, input })
}

/// `GET /v2/tasks/{id}`.
pub async fn show(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let found = state.glance_import.get_task(&ctx, &id).await?;
    Ok(Json(task(&found)))
}

/// `GET /v2/images/{id}/tasks`: the image's import tasks, newest first.
pub async fn of_image(State(state): State<AppState>, Ctx(ctx): Ctx, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = image_id(&id)?;
    let tasks = state.glance_import.image_tasks(&ctx, id).await?;
    Ok(Json(json!({"tasks": tasks.iter().map(task).collect::<Vec<_>>()})))
}

/// The task schema (`/v2/schemas/task`), as Glance publishes it.
pub fn schema() -> Value {
    let nullable_string = json!({"type": ["null", "string"]});
    json!({
        "name": "task",
        "properties": {
            "id": {"type": "string", "description": "An identifier for the task"},
            "type": {"type": "string", "description": "The type of task represented by this content",
                "enum": ["import", "api_image_import", "location_import"]},
            "status": {"type": "string", "description": "The current status of this task",
                "enum": ["pending", "processing", "success", "failure"]},
            "input": {"type": ["null", "object"], "description": "The parameters required by task, JSON blob"},
            "result": {"type": ["null", "object"], "description": "The result of current task, JSON blob"},
            "owner": {"type": "string", "description": "An identifier for the owner of this task"},
            "message": {"type": "string", "description": "Human-readable informative message only included when appropriate (usually on failure)"},
            "image_id": nullable_string.clone(),
            "request_id": nullable_string.clone(),
            "user_id": nullable_string.clone(),
            "expires_at": {"type": ["null", "string"], "description": "Datetime when this resource would be subject to removal"},
            "created_at": {"type": "string", "description": "Datetime when this resource was created"},
            "updated_at": {"type": "string", "description": "Datetime when this resource was updated"},
            "self": {"type": "string", "readOnly": true},
            "schema": {"type": "string", "readOnly": true},
        },
        "links": [
            {"rel": "self", "href": "{self}"},
            {"rel": "describedby", "href": "{schema}"},
        ],
    })
}
