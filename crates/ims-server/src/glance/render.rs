//! Glance's JSON shapes for images and members.

use chrono::{DateTime, Utc};
use ims_catalog::{Image, Member};
use serde_json::{json, Map, Value};

/// Glance's timestamp form: seconds precision, `Z`.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An image as `GET /v2/images/{id}` returns it: every base attribute (null when unset), then the
/// extra properties flat beside them.
pub fn image(image: &Image) -> Value {
    let id = image.id.to_string();
    let mut out = Map::new();
    for (k, v) in &image.properties {
        out.insert(k.clone(), Value::String(v.clone()));
    }
    let base = json!({
        "id": id,
        "name": image.name,
        "status": image.status.as_str(),
        "visibility": image.visibility.as_str(),
        "protected": image.protected,
        "os_hidden": image.os_hidden,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "owner": image.owner,
        "size": image.size,
        "virtual_size": image.virtual_size,
        "container_format": image.container_format,
        "disk_format": image.disk_format,
        "min_disk": image.min_disk,
        "min_ram": image.min_ram,
        "created_at": timestamp(&image.created_at),
        "updated_at": timestamp(&image.updated_at),
        "tags": image.tags.iter().collect::<Vec<_>>(),
        "self": format!("/v2/images/{id}"),
        "file": format!("/v2/images/{id}/file"),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(base) = base {
        out.extend(base);
    }
    // Lineage, as read-only properties shown only when recorded.
    use ims_core::lineage::{PARENT_ID_PROPERTY, SOURCE_REF_PROPERTY, SOURCE_TYPE_PROPERTY};
    let lineage = &image.lineage;
    if let Some(t) = lineage.source_type {
        out.insert(SOURCE_TYPE_PROPERTY.into(), Value::String(t.as_str().into()));
    }
    if let Some(r) = &lineage.source_ref {
        out.insert(SOURCE_REF_PROPERTY.into(), Value::String(r.clone()));
    }
    if let Some(p) = lineage.parent_id {
        out.insert(PARENT_ID_PROPERTY.into(), Value::String(p.to_string()));
    }
    // The stores holding the data (Glance's multi-store field), once there is data.
    let stores = ims_core::glance_import::image_stores(image);
    if !stores.is_empty() {
        out.insert("stores".into(), Value::String(stores.join(",")));
    }
    // Shown like an extra property: only when set, so records of other images look as Glance's do.
    if let Some(at) = &image.deprecate_at {
        out.insert("deprecate_at".into(), Value::String(timestamp(at)));
    }
    Value::Object(out)
}

/// A membership as `GET /v2/images/{id}/members/{member}` returns it.
pub fn member(m: &Member) -> Value {
    json!({
        "created_at": timestamp(&m.created_at),
        "updated_at": timestamp(&m.updated_at),
        "image_id": m.image_id.to_string(),
        "member_id": m.member,
        "status": m.status.as_str(),
        "schema": "/v2/schemas/member",
    })
}
