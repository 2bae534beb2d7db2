//! Images from servers and volumes of the built-in compute driver, each answered with `{"job_id"}`:
//! CreateImage with `instance_id` (a system disk image, plus data disk images of the volumes listed in
//! `data_images`: `[{"name", "volume_id", "description"?, "tags"?}]`) or with `volume_id` (a data disk
//! image), and CreateWholeImage with `instance_id` (`POST /v1/cloudimages/wholeimages/action`).

use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use ims_core::compute::{ImageFromDisk, ServerImageRequest};
use ims_core::RequestContext;
use serde_json::{json, Value};
use uuid::Uuid;

use super::json_body;
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

fn string(body: &Value, key: &str) -> ImsResult<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ImsError::invalid(format!("\"{key}\" must be a string"))),
    }
}

fn required(body: &Value, key: &str) -> ImsResult<String> {
    string(body, key)?.filter(|s| !s.is_empty()).ok_or_else(|| ImsError::invalid(format!("\"{key}\" is required")))
}

fn id(body: &Value, key: &str) -> ImsResult<Uuid> {
    let raw = required(body, key)?;
    Uuid::parse_str(&raw).map_err(|_| ImsError::invalid(format!("\"{key}\" must be a UUID, not {raw:?}")))
}

fn integer(body: &Value, key: &str) -> ImsResult<Option<i64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| ImsError::invalid(format!("\"{key}\" must be an integer"))),
    }
}

/// `name`, `description` and `tags` of a new image.
fn image(body: &Value) -> ImsResult<ImageFromDisk> {
    let tags = match body.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(str::to_string).ok_or_else(|| ImsError::invalid("\"tags\" must list strings")))
            .collect::<ImsResult<_>>()?,
        Some(_) => return Err(ImsError::invalid("\"tags\" must be a list")),
    };
    Ok(ImageFromDisk { name: required(body, "name")?, description: string(body, "description")?, tags })
}

fn server_request(body: &Value, with_data_images: bool) -> ImsResult<ServerImageRequest> {
    let mut data_images = Vec::new();
    match body.get("data_images") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if with_data_images => {
            for item in items {
                data_images.push((id(item, "volume_id")?, image(item)?));
            }
        }
        Some(_) => return Err(ImsError::invalid("\"data_images\" must be a list of {\"name\", \"volume_id\"}")),
    }
    Ok(ServerImageRequest {
        image: image(body)?,
        min_ram: integer(body, "min_ram")?,
        max_ram: integer(body, "max_ram")?,
        data_images,
    })
}

/// CreateImage from a server (`instance_id`) or a volume (`volume_id`); `import.rs` hands these over.
pub async fn create_image(state: &AppState, ctx: &RequestContext, body: &Value) -> ImsResult<Json<Value>> {
    let compute = &state.services.compute;
    let job = match (string(body, "instance_id")?, string(body, "volume_id")?) {
        (Some(_), Some(_)) => return Err(ImsError::invalid("give one of \"instance_id\" and \"volume_id\", not both")),
        (Some(_), None) => compute.image_from_server(ctx, id(body, "instance_id")?, server_request(body, true)?).await?,
        (None, Some(_)) => compute.image_from_volume(ctx, id(body, "volume_id")?, image(body)?).await?,
        (None, None) => {
            return Err(ImsError::invalid("one of \"image_url\", \"instance_id\" and \"volume_id\" is required"))
        }
    };
    Ok(Json(json!({"job_id": job.id})))
}

/// CreateWholeImage: `{"name", "instance_id", "description"?, "tags"?, "min_ram"?, "max_ram"?}`. Images
/// from backups (`backup_id`) need a backup service this deployment does not have.
pub async fn create_whole_image(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<Json<Value>> {
    let body = json_body(&body)?;
    if string(&body, "backup_id")?.is_some() {
        return Err(ImsError::invalid("whole-server images from backups are not supported: give \"instance_id\""));
    }
    let server = id(&body, "instance_id")?;
    let job = state.services.compute.whole_image_from_server(&ctx, server, server_request(&body, false)?).await?;
    Ok(Json(json!({"job_id": job.id})))
}
