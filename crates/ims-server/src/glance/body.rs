//! Reading request bodies the way Glance does.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;
use ims_catalog::Visibility;
use ims_core::NewImage;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// The body as JSON. The content type must be JSON (or absent); anything else is 415.
pub fn json(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/json" {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Unsupported Content-Type {ct}: expected application/json"),
            ));
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("Body expected in request."));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("Malformed JSON in request body: {e}")))
}

/// The body as a JSON object.
pub fn object(headers: &HeaderMap, body: &Bytes) -> ApiResult<Map<String, Value>> {
    match json(headers, body)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::bad_request("Request body must be a JSON object.")),
    }
}

/// Attributes a client may never set when creating an image.
const READ_ONLY_ON_CREATE: &[&str] = &[
    "status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size", "created_at", "updated_at",
    "self", "file", "schema", "direct_url", "stores",
];

fn mismatch(key: &str, value: &Value, ty: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Provided object does not match schema 'image': {value} is not of type '{ty}'. Failed validating 'type' in schema['properties']['{key}']"
    ))
}

fn optional_string(key: &str, value: Value) -> ApiResult<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(mismatch(key, &other, "string")),
    }
}

/// Parses a `POST /v2/images` body.
pub fn new_image(map: Map<String, Value>) -> ApiResult<NewImage> {
    let mut new = NewImage::default();
    let mut properties = BTreeMap::new();
    for (key, value) in map {
        if READ_ONLY_ON_CREATE.contains(&key.as_str()) || ims_core::lineage::LINEAGE_PROPERTIES.contains(&key.as_str()) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, format!("Attribute '{key}' is read-only.")));
        }
        match key.as_str() {
            "id" => {
                let s = optional_string(&key, value)?.unwrap_or_default();
                let id = Uuid::parse_str(&s)
                    .ok()
                    .filter(|_| s.len() == 36)
                    .ok_or_else(|| ApiError::bad_request(format!("Provided object does not match schema 'image': '{s}' does not match the UUID pattern for 'id'")))?;
                new.id = Some(id);
            }
            "name" => new.name = optional_string(&key, value)?,
            "visibility" => {
                let s = optional_string(&key, value)?.unwrap_or_default();
                new.visibility = Some(s.parse::<Visibility>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "Provided object does not match schema 'image': '{s}' is not one of ['community', 'public', 'private', 'shared']"
                    ))
                })?);
            }
            "protected" | "os_hidden" => {
                let b = value.as_bool().ok_or_else(|| mismatch(&key, &value, "boolean"))?;
                if key == "protected" {
                    new.protected = b;
                } else {
                    new.os_hidden = b;
                }
            }
            "min_disk" | "min_ram" => {
                let n = value.as_i64().ok_or_else(|| mismatch(&key, &value, "integer"))?;
                if key == "min_disk" {
                    new.min_disk = n;
                } else {
                    new.min_ram = n;
                }
            }
            "disk_format" => new.disk_format = optional_string(&key, value)?,
            "container_format" => new.container_format = optional_string(&key, value)?,
            "owner" => new.owner = optional_string(&key, value)?,
            "tags" => {
                let list = value.as_array().ok_or_else(|| mismatch(&key, &value, "array"))?;
                for t in list {
                    new.tags.push(t.as_str().ok_or_else(|| mismatch(&key, t, "string"))?.to_string());
                }
            }
            "locations" => {
                return Err(ApiError::new(StatusCode::FORBIDDEN, "Attribute 'locations' is reserved."));
            }
            ims_core::patch::DEPRECATE_AT => {
                new.deprecate_at = match value {
                    Value::Null => None,
                    v => Some(ims_core::patch::parse_deprecate_at(&v).map_err(|e| ApiError::bad_request(e.to_string()))?),
                }
            }
            _ => match value {
                Value::String(s) => {
                    properties.insert(key, s);
                }
                other => return Err(mismatch(&key, &other, "string")),
            },
        }
    }
    new.properties = properties;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> ApiResult<NewImage> {
        match v {
            Value::Object(m) => new_image(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn parses_every_attribute() {
        let id = Uuid::new_v4();
        let new = parse(json!({
            "id": id.to_string(), "name": "web", "visibility": "private", "protected": true,
            "disk_format": "qcow2", "container_format": "bare", "min_disk": 10, "tags": ["a"], "os_distro": "debian"
        }))
        .unwrap();
        assert_eq!(new.id, Some(id));
        assert_eq!(new.visibility, Some(Visibility::Private));
        assert!(new.protected);
        assert_eq!(new.min_disk, 10);
        assert_eq!(new.properties["os_distro"], "debian");
    }

    #[test]
    fn refuses_read_only_bad_types_and_bad_ids() {
        assert_eq!(parse(json!({"status": "active"})).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(parse(json!({"size": 1})).unwrap_err().status, StatusCode::FORBIDDEN);
        assert_eq!(parse(json!({"protected": "yes"})).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse(json!({"k": 5})).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse(json!({"id": "not-a-uuid"})).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse(json!({"visibility": "everyone"})).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse(json!({"deprecate_at": "next week"})).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(parse(json!({"deprecate_at": 5})).unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn deprecate_at_is_a_time_not_a_property() {
        let new = parse(json!({"deprecate_at": "2030-01-02T03:04:05+01:00"})).unwrap();
        assert_eq!(new.deprecate_at.unwrap().to_rfc3339(), "2030-01-02T02:04:05+00:00");
        assert!(new.properties.is_empty());
    }

    #[test]
    fn content_type_must_be_json() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(json(&h, &Bytes::from("{}")).unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let h = HeaderMap::new();
        assert_eq!(json(&h, &Bytes::from("{bad")).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
