//! Applying JSON-patch style changes to an image with Glance's rules.
//!
//! Parsing the wire formats (the v2.1 RFC 6902 form and the old v2.0 form) is the HTTP layer's job;
//! it hands over [`PatchOp`]s with the path already decoded to one attribute name.

use ims_catalog::{Image, ImageStatus, Visibility};
use serde_json::Value;

use crate::images::{check_string, reserved};
use crate::limits::RESERVED_PREFIX;
use crate::{CoreError, RequestContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Add,
    Remove,
    Replace,
}

/// One change: `path` is the attribute (`name`, `tags`, a property key), already unescaped.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub kind: PatchKind,
    pub path: String,
    pub value: Option<Value>,
}

/// Attributes only the service sets.
const READ_ONLY: &[&str] = &[
    "id", "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size", "created_at",
    "updated_at", "self", "file", "schema", "direct_url", "locations", "stores",
];

/// The attribute that sets [`Image::deprecate_at`]: an RFC 3339 time; `remove` or `null` clears it.
pub const DEPRECATE_AT: &str = "deprecate_at";

/// Parses a `deprecate_at` value: an RFC 3339 string with a time zone.
pub fn parse_deprecate_at(value: &Value) -> Result<chrono::DateTime<chrono::Utc>> {
    let s = value.as_str().ok_or_else(|| {
        CoreError::Invalid(format!("'{DEPRECATE_AT}' must be an RFC 3339 time string, not {value}"))
    })?;
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| CoreError::Invalid(format!("'{DEPRECATE_AT}' {s:?} is not an RFC 3339 time: {e}")))
}

/// Applies `ops` in order to `image`. On error `image` may be partly changed: callers apply to a copy.
pub fn apply_patch(ctx: &RequestContext, image: &mut Image, ops: &[PatchOp]) -> Result<()> {
    for op in ops {
        apply_one(ctx, image, op)?;
    }
    Ok(())
}

fn apply_one(_ctx: &RequestContext, image: &mut Image, op: &PatchOp) -> Result<()> {
    let path = op.path.as_str();
    if READ_ONLY.contains(&path) || crate::lineage::LINEAGE_PROPERTIES.contains(&path) {
        return Err(CoreError::Forbidden(format!("Attribute '{path}' is read-only.")));
    }
    if path.starts_with(RESERVED_PREFIX) {
        return Err(reserved(path));
    }
    let value = op.value.as_ref();
    if path == DEPRECATE_AT {
        image.deprecate_at = match (op.kind, value) {
            (PatchKind::Remove, _) | (_, Some(Value::Null)) => None,
            (_, Some(value)) => Some(parse_deprecate_at(value)?),
            (_, None) => return Err(CoreError::Invalid(format!("Operation on '{path}' needs a value"))),
        };
        return Ok(());
    }
    let base = matches!(
        path,
        "name" | "visibility" | "protected" | "os_hidden" | "min_disk" | "min_ram" | "disk_format"
            | "container_format" | "owner" | "tags"
    );
    if base {
        if op.kind == PatchKind::Remove {
            return Err(CoreError::Forbidden(format!("Attribute '{path}' cannot be removed.")));
        }
        let value = value.ok_or_else(|| CoreError::Invalid(format!("Operation on '{path}' needs a value")))?;
        return set_base(image, path, value);
    }
    if path.is_empty() || path.contains('/') {
        return Err(CoreError::Invalid(format!("Invalid JSON pointer for this resource: '/{path}'")));
    }
    match op.kind {
        PatchKind::Remove => {
            if image.properties.remove(path).is_none() {
                return Err(CoreError::Conflict(format!("Property {path} does not exist.")));
            }
        }
        PatchKind::Add | PatchKind::Replace => {
            if op.kind == PatchKind::Replace && !image.properties.contains_key(path) {
                return Err(CoreError::Conflict(format!("Property {path} does not exist.")));
            }
            let value = match value {
                Some(Value::String(s)) => s.clone(),
                Some(other) => {
                    return Err(CoreError::Invalid(format!(
                        "Provided object does not match schema 'image': {other} is not of type 'string' for property '{path}'"
                    )))
                }
                None => return Err(CoreError::Invalid(format!("Operation on '{path}' needs a value"))),
            };
            check_string("property name", path)?;
            image.properties.insert(path.to_string(), value);
        }
    }
    Ok(())
}

fn set_base(image: &mut Image, path: &str, value: &Value) -> Result<()> {
    let mismatch = |ty: &str| {
        CoreError::Invalid(format!(
            "Provided object does not match schema 'image': {value} is not of type '{ty}' for '{path}'"
        ))
    };
    match path {
        "name" => {
            image.name = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                _ => return Err(mismatch("string")),
            }
        }
        "visibility" => {
            let s = value.as_str().ok_or_else(|| mismatch("string"))?;
            image.visibility = s.parse::<Visibility>().map_err(|_| {
                CoreError::Invalid(format!(
                    "Provided object does not match schema 'image': '{s}' is not one of ['community', 'public', 'private', 'shared']"
                ))
            })?;
        }
        "protected" => image.protected = value.as_bool().ok_or_else(|| mismatch("boolean"))?,
        "os_hidden" => image.os_hidden = value.as_bool().ok_or_else(|| mismatch("boolean"))?,
        "min_disk" => image.min_disk = value.as_i64().ok_or_else(|| mismatch("integer"))?,
        "min_ram" => image.min_ram = value.as_i64().ok_or_else(|| mismatch("integer"))?,
        "disk_format" | "container_format" => {
            let v = match value {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                _ => return Err(mismatch("string")),
            };
            if image.status != ImageStatus::Queued {
                return Err(CoreError::Forbidden(format!(
                    "Attribute {path} can be only replaced for a queued image."
                )));
            }
            if path == "disk_format" {
                image.disk_format = v;
            } else {
                image.container_format = v;
            }
        }
        "owner" => {
            image.owner = value.as_str().ok_or_else(|| mismatch("string"))?.to_string();
        }
        "tags" => {
            let list = value.as_array().ok_or_else(|| mismatch("array"))?;
            let mut tags = std::collections::BTreeSet::new();
            for t in list {
                tags.insert(t.as_str().ok_or_else(|| mismatch("string"))?.to_string());
            }
            image.tags = tags;
        }
        _ => unreachable!("set_base called with a base attribute"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn ctx() -> RequestContext {
        RequestContext::new("req".into(), None)
    }

    fn op(kind: PatchKind, path: &str, value: Option<Value>) -> PatchOp {
        PatchOp { kind, path: path.into(), value }
    }

    fn image() -> Image {
        Image::new(Uuid::new_v4(), "p", Utc::now())
    }

    #[test]
    fn sets_base_attributes_and_properties() {
        let mut img = image();
        apply_patch(
            &ctx(),
            &mut img,
            &[
                op(PatchKind::Replace, "name", Some(json!("web"))),
                op(PatchKind::Add, "os_distro", Some(json!("debian"))),
                op(PatchKind::Replace, "protected", Some(json!(true))),
                op(PatchKind::Replace, "tags", Some(json!(["a", "b"]))),
                op(PatchKind::Replace, "min_ram", Some(json!(512))),
            ],
        )
        .unwrap();
        assert_eq!(img.name.as_deref(), Some("web"));
        assert_eq!(img.properties["os_distro"], "debian");
        assert!(img.protected);
        assert_eq!(img.tags.len(), 2);
        assert_eq!(img.min_ram, 512);
    }

    #[test]
    fn read_only_and_reserved_attributes_are_forbidden() {
        for path in ["status", "checksum", "size", "id", "os_glance_import_method"] {
            let err = apply_patch(&ctx(), &mut image(), &[op(PatchKind::Replace, path, Some(json!("x")))]);
            assert!(matches!(err, Err(CoreError::Forbidden(_))), "{path}");
        }
    }

    #[test]
    fn missing_properties_conflict_on_remove_and_replace() {
        let mut img = image();
        let err = apply_patch(&ctx(), &mut img, &[op(PatchKind::Remove, "nope", None)]);
        assert!(matches!(err, Err(CoreError::Conflict(_))));
        let err = apply_patch(&ctx(), &mut img, &[op(PatchKind::Replace, "nope", Some(json!("v")))]);
        assert!(matches!(err, Err(CoreError::Conflict(_))));
        apply_patch(&ctx(), &mut img, &[op(PatchKind::Add, "k", Some(json!("v")))]).unwrap();
        apply_patch(&ctx(), &mut img, &[op(PatchKind::Remove, "k", None)]).unwrap();
        assert!(img.properties.is_empty());
    }

    #[test]
    fn type_mismatches_are_invalid() {
        for (path, v) in [("protected", json!("yes")), ("min_disk", json!("1")), ("k", json!(1)), ("visibility", json!("everyone"))] {
            let err = apply_patch(&ctx(), &mut image(), &[op(PatchKind::Add, path, Some(v))]);
            assert!(matches!(err, Err(CoreError::Invalid(_))), "{path}");
        }
    }

    #[test]
    fn deprecate_at_is_set_replaced_and_cleared() {
        let mut img = image();
        let set = |v| op(PatchKind::Replace, DEPRECATE_AT, Some(v));
        apply_patch(&ctx(), &mut img, &[set(json!("2030-01-01T00:00:00+02:00"))]).unwrap();
        assert_eq!(img.deprecate_at.unwrap().to_rfc3339(), "2029-12-31T22:00:00+00:00");
        assert!(img.properties.is_empty(), "a record field, not a property");
        for bad in [json!("2030-01-01"), json!(5), json!(true)] {
            let err = apply_patch(&ctx(), &mut img, &[set(bad.clone())]);
            assert!(matches!(err, Err(CoreError::Invalid(_))), "{bad}");
        }
        apply_patch(&ctx(), &mut img, &[op(PatchKind::Remove, DEPRECATE_AT, None)]).unwrap();
        assert_eq!(img.deprecate_at, None);
        apply_patch(&ctx(), &mut img, &[op(PatchKind::Remove, DEPRECATE_AT, None)]).unwrap();
        apply_patch(&ctx(), &mut img, &[set(json!("2030-01-01T00:00:00Z")), set(Value::Null)]).unwrap();
        assert_eq!(img.deprecate_at, None);
    }

    #[test]
    fn formats_change_only_while_queued() {
        let mut img = image();
        apply_patch(&ctx(), &mut img, &[op(PatchKind::Replace, "disk_format", Some(json!("qcow2")))]).unwrap();
        img.status = ImageStatus::Active;
        let err = apply_patch(&ctx(), &mut img, &[op(PatchKind::Replace, "disk_format", Some(json!("raw")))]);
        assert!(matches!(err, Err(CoreError::Forbidden(_))));
    }
}
