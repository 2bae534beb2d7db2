//! CopyImageCrossRegion (`POST /v1/cloudimages/{image_id}/cross_region_copy`): `{"region", "name",
//! "project_name"?, "description"?, "agency_name"?, "vault_id"?}`, answered with `{"job_id"}`. The region
//! must be one of the node's `[regions.<name>]`; `agency_name` and `vault_id` (IAM agencies, backup
//! vaults) have no meaning here and are ignored. `GET /v1/cloudimages/regions` names those regions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use ims_core::pipelines::{codes, CrossRegionCopy};
use serde_json::{json, Value};

use super::{image_id, json_body};
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
    string(body, key)?.filter(|s| !s.trim().is_empty()).ok_or_else(|| ImsError::invalid(format!("\"{key}\" is required")))
}

/// The regions images can be copied to: `{"regions": [{"name"}]}`, by name (endpoints and credentials stay
/// in the node's configuration). Any authenticated caller may ask.
pub async fn list_regions(State(state): State<AppState>, ImsCtx(_ctx): ImsCtx) -> Json<Value> {
    let regions: Vec<Value> = state.services.regions.names().into_iter().map(|name| json!({"name": name})).collect();
    Json(json!({"regions": regions}))
}

pub async fn copy_cross_region(
    State(state): State<AppState>,
    ImsCtx(ctx): ImsCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> ImsResult<Json<Value>> {
    let id = image_id(&id)?;
    let body = json_body(&body)?;
    let region = required(&body, "region")?;
    if state.services.regions.get(&region).is_none() {
        return Err(ImsError::new(
            codes::REGION_UNKNOWN,
            StatusCode::BAD_REQUEST,
            format!("Unknown region {region:?}: this region can copy images to {:?}", state.services.regions.names()),
        ));
    }
    let request = CrossRegionCopy {
        region,
        name: required(&body, "name")?,
        description: string(&body, "description")?,
        project_name: string(&body, "project_name")?,
    };
    let job = state.services.pipelines().copy_cross_region(&ctx, id, request).await?;
    Ok(Json(json!({"job_id": job.id})))
}
