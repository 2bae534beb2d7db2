//! The IMS API's JSON shapes: `ImageInfo`, members, jobs.

use ims_catalog::{Image, ImageStatus, Job, MarketListing, Member, Visibility};
use serde_json::{json, Value};

use crate::glance::render as glance;

/// `__imagetype` as `viewer` sees the image: `market` when it has a marketplace listing (`listed`),
/// `gold` for public images, `private` for the viewer's own, `shared` for the rest (images shared with
/// it, or subscribed to on the marketplace).
pub fn image_type(image: &Image, viewer: Option<&str>, listed: bool) -> &'static str {
    if listed {
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
/// and the derived IMS fields (its marketplace listing, if any, is not looked up: see [`listed_image`]).
pub fn image(image: &Image, viewer: Option<&str>) -> Value {
    listed_image(image, viewer, None)
}

/// Like [`image`], for an image with marketplace listing `listing`: `__imagetype=market`, and the
/// listing as `__productcode`, `__is_offshelved` (`"true"`/`"false"`), `__market_listing_id`,
/// `__market_publisher`, `__market_version` and `__market_description`. Without a listing these fields
/// are absent (stored properties of those names are never shown).
pub fn listed_image(image: &Image, viewer: Option<&str>, listing: Option<&MarketListing>) -> Value {
    let mut out = glance::image(image);
    let obj = out.as_object_mut().expect("an image renders as an object");
    for (key, value) in DEFAULTS {
        obj.entry(key.to_string()).or_insert_with(|| json!(value));
    }
    obj.insert("__imagetype".into(), json!(image_type(image, viewer, listing.is_some())));
    for key in MARKET_FIELDS {
        obj.remove(*key);
    }
    if let Some(l) = listing {
        obj.insert("__productcode".into(), json!(l.product_code));
        obj.insert("__is_offshelved".into(), json!(l.offshelved.to_string()));
        obj.insert("__market_listing_id".into(), json!(l.id));
        obj.insert("__market_publisher".into(), json!(l.publisher));
        obj.insert("__market_version".into(), json!(l.version));
        obj.insert("__market_description".into(), json!(l.description));
    }
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

/// The fields [`listed_image`] derives from a marketplace listing.
const MARKET_FIELDS: &[&str] = &[
    "__productcode",
    "__is_offshelved",
    "__market_listing_id",
    "__market_publisher",
    "__market_version",
    "__market_description",
];

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
