//! The IMS API's JSON shapes: `ImageInfo`, members, jobs.

use ims_catalog::{Image, ImageStatus, Job, Member, Visibility};
use serde_json::{json, Value};

use crate::glance::render as glance;

/// `__imagetype` as `viewer` sees the image: `market` when an admin listed it so, `gold` for public
/// images, `private` for the viewer's own, `shared` for the rest (images shared with it).
pub fn image_type(image: &Image, viewer: Option<&str>) -> &'static str {
    if image.properties.get("__imagetype").is_some_and(|t| t == "market") {
        "market"
    } else if image.visibility == Visibility::Public {
        "gold"
    } else if viewer == Some(image.owner.as_str()) {
        "private"
    } else {
        "shared"
    }
}

/// The `__os_type` of an image: stored, else Windows for the Windows platform, else Linux.
pub fn os_type(image: &Image) -> String {
    if let Some(t) = image.properties.get("__os_type") {
        return t.clone();
    }
    let windows = image.properties.get("__platform").is_some_and(|p| p == "Windows")
        || image.properties.get("os_type").is_some_and(|t| t.eq_ignore_ascii_case("windows"));
    if windows { "Windows" } else { "Linux" }.to_string()
}

/// Values an image without the property has (DESIGN section 2: derived where the server can).
pub const DEFAULTS: &[(&str, &str)] = &[
    ("__isregistered", "true"),
    ("virtual_env_type", "FusionCompute"),
    ("enterprise_project_id", "0"),
    ("__image_source_type", "uds"),
    ("hw_firmware_type", "bios"),
];

/// An image as the IMS API returns it (`ImageInfo`): the Glance record, the stored `__` properties,
/// and the derived IMS fields.
pub fn image(image: &Image, viewer: Option<&str>) -> Value {
    let mut out = glance::image(image);
    let obj = out.as_object_mut().expect("an image renders as an object");
    for (key, value) in DEFAULTS {
        obj.entry(key.to_string()).or_insert_with(|| json!(value));
    }
    obj.insert("__imagetype".into(), json!(image_type(image, viewer)));
    obj.insert("__image_size".into(), json!(image.size.unwrap_or(0).to_string()));
    obj.insert("__os_type".into(), json!(os_type(image)));
    obj.insert("__system_support_market".into(), json!(false));
    obj.entry("__lazyloading".to_string())
        .or_insert_with(|| json!(if image.manifest_id.is_some() { "true" } else { "false" }));
    if !obj.contains_key("active_at") {
        let active = matches!(image.status, ImageStatus::Active | ImageStatus::Deactivated);
        obj.insert("active_at".into(), if active { json!(glance::timestamp(&image.updated_at)) } else { Value::Null });
    }
    out
}

/// A membership (`ImageMember`).
pub fn member(m: &Member) -> Value {
    let mut out = glance::member(m);
    out["member_type"] = json!("project");
    out
}

fn time(t: &Option<chrono::DateTime<chrono::Utc>>) -> Value {
    t.as_ref().map_or(Value::Null, |t| json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
}

/// A job (`ShowJobResponse`): `entities` with `process_percent` (0 to 1).
pub fn job(job: &Job) -> Value {
    let mut entities = match &job.entities {
        Value::Object(m) => m.clone(),
        _ => Default::default(),
    };
    entities.insert("process_percent".into(), json!(job.progress / 100.0));
    json!({
        "status": job.status.as_str(),
        "job_id": job.id,
        "job_type": job.job_type,
        "begin_time": time(&job.begin_time),
        "end_time": time(&job.end_time),
        "error_code": job.error_code,
        "fail_reason": job.fail_reason,
        "entities": entities,
    })
}
