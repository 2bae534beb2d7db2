//! `GET /v1/cloudimages/quota` (ShowImageQuota) and `/v1/cloudimages/os_version` (ListOsVersions; POST
//! adds an entry, admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use ims_catalog::OsVersion;
use serde_json::{json, Value};

use super::json_body;
use crate::auth::ImsCtx;
use crate::error::{ImsError, ImsResult};
use crate::state::AppState;

pub async fn show(State(state): State<AppState>, ImsCtx(ctx): ImsCtx) -> ImsResult<Json<Value>> {
    let (used, quota) = state.services.images.image_quota(&ctx).await?;
    let bytes = state.services.images.own_byte_quota(&ctx).await?;
    Ok(Json(json!({"quotas": {"resources": [
        {"type": "image", "used": used, "quota": quota, "min": 0, "max": ims_core::limits::MAX_PRIVATE_IMAGE_QUOTA},
        // Logical bytes of the project's images; a quota of -1 is no limit.
        {
            "type": ims_core::limits::IMAGE_BYTES,
            "used": bytes.used,
            "quota": bytes.limit.map_or(-1, |l| l as i64),
            "min": 0,
            "max": ims_core::limits::MAX_IMAGE_BYTES_QUOTA,
        },
    ]}})))
}

fn version(v: &OsVersion) -> Value {
    json!({"platform": v.platform, "os_version_key": v.os_version_key, "os_version": v.os_version, "os_bit": v.os_bit, "os_type": v.os_type})
}

/// The catalogue as a JSON array of `{"platform", "version_list"}`. The `tag` filter of the API is
/// accepted and does not filter (every entry suits every tag here).
pub async fn os_versions(State(state): State<AppState>, ImsCtx(ctx): ImsCtx) -> ImsResult<Json<Value>> {
    let platforms = state.services.images.os_versions(&ctx).await?;
    Ok(Json(Value::Array(
        platforms
            .iter()
            .map(|(platform, versions)| json!({"platform": platform, "version_list": versions.iter().map(version).collect::<Vec<_>>()}))
            .collect(),
    )))
}

/// `POST {"platform", "os_version", "os_bit", "os_type", "os_version_key"?}` (admin; our extension).
pub async fn add_os_version(State(state): State<AppState>, ImsCtx(ctx): ImsCtx, body: Bytes) -> ImsResult<(StatusCode, Json<Value>)> {
    let body = json_body(&body)?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let required = |k: &str| text(k).ok_or_else(|| ImsError::invalid(format!("\"{k}\" is required")));
    let os_version = required("os_version")?;
    let v = OsVersion {
        os_version_key: text("os_version_key").unwrap_or_else(|| os_version.clone()),
        platform: required("platform")?,
        os_version,
        os_bit: body.get("os_bit").and_then(Value::as_i64).unwrap_or(64),
        os_type: text("os_type").unwrap_or_else(|| "Linux".into()),
    };
    state.services.images.put_os_version(&ctx, v.clone()).await?;
    Ok((StatusCode::CREATED, Json(version(&v))))
}
