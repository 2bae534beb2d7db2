//! The two JSON-patch media types of the Images API.

use axum::http::StatusCode;
use ims_core::{PatchKind, PatchOp};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

pub const PATCH_V21: &str = "application/openstack-images-v2.1-json-patch";
pub const PATCH_V20: &str = "application/openstack-images-v2.0-json-patch";

/// Which form the body is in, from its `Content-Type`; anything else is 415 with `Accept-Patch`.
pub fn media_type(content_type: Option<&str>) -> ApiResult<&'static str> {
    let mime = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match mime.as_deref() {
        Some(PATCH_V21) => Ok(PATCH_V21),
        Some(PATCH_V20) => Ok(PATCH_V20),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported Content-Type {}", content_type.unwrap_or("(none)")),
        )
        .with_header("accept-patch", &format!("{PATCH_V21}, {PATCH_V20}"))),
    }
}

/// Parses a patch document of the given media type.
pub fn parse(media_type: &str, body: &[u8]) -> ApiResult<Vec<PatchOp>> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Malformed JSON in request body: {e}")))?;
    let Value::Array(items) = doc else {
        return Err(ApiError::bad_request("Request body must be a JSON array of operation objects."));
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Object(obj) = item else {
                return Err(ApiError::bad_request("Operations must be JSON objects."));
            };
            if media_type == PATCH_V21 {
                parse_v21(obj)
            } else {
                parse_v20(obj)
            }
        })
        .collect()
}

/// RFC 6902: `{"op": "replace", "path": "/name", "value": ...}`.
fn parse_v21(obj: serde_json::Map<String, Value>) -> ApiResult<PatchOp> {
    let op = obj.get("op").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("Unable to find 'op' in JSON Schema change")
    })?;
    let kind = kind(op)?;
    let path = obj.get("path").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("Unable to find 'path' in JSON Schema change")
    })?;
    op_with(kind, path, obj.get("value").cloned())
}

/// The older form: `{"replace": "/name", "value": ...}`.
fn parse_v20(obj: serde_json::Map<String, Value>) -> ApiResult<PatchOp> {
    for name in ["add", "remove", "replace"] {
        if let Some(path) = obj.get(name) {
            let path = path.as_str().ok_or_else(|| ApiError::bad_request("Operation path must be a string"))?;
            return op_with(kind(name)?, path, obj.get("value").cloned());
        }
    }
    Err(ApiError::bad_request("Operation objects must contain exactly one of \"add\", \"remove\" or \"replace\"."))
}

fn kind(op: &str) -> ApiResult<PatchKind> {
    match op {
        "add" => Ok(PatchKind::Add),
        "remove" => Ok(PatchKind::Remove),
        "replace" => Ok(PatchKind::Replace),
        other => Err(ApiError::bad_request(format!(
            "Invalid operation: `{other}`: only add, remove and replace are supported"
        ))),
    }
}

fn op_with(kind: PatchKind, pointer: &str, value: Option<Value>) -> ApiResult<PatchOp> {
    if kind != PatchKind::Remove && value.is_none() {
        return Err(ApiError::bad_request("Operation requires a member named 'value'."));
    }
    Ok(PatchOp { kind, path: unescape_pointer(pointer)?, value })
}

/// `/a~1b` → `a/b`: JSON pointer to one attribute name.
fn unescape_pointer(pointer: &str) -> ApiResult<String> {
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| ApiError::bad_request(format!("Pointer `{pointer}` does not start with \"/\".")))?;
    if rest.is_empty() {
        return Err(ApiError::bad_request("Pointer contains an empty attribute name."));
    }
    // Deeper pointers (`/locations/0`) keep their slashes unescaped and are refused by the use case.
    let parts: Vec<String> = rest.split('/').map(|p| p.replace("~1", "/").replace("~0", "~")).collect();
    if parts.len() > 1 {
        return Ok(rest.to_string());
    }
    Ok(parts.into_iter().next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(media_type(Some(PATCH_V21)).unwrap(), PATCH_V21);
        assert_eq!(media_type(Some("application/openstack-images-v2.0-json-patch; charset=UTF-8")).unwrap(), PATCH_V20);
        let err = media_type(Some("application/json")).unwrap_err();
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(err.headers.iter().any(|(n, _)| *n == "accept-patch"));
        assert!(media_type(None).is_err());
    }

    #[test]
    fn parses_both_forms() {
        let v21 = json!([{"op": "replace", "path": "/name", "value": "x"}, {"op": "remove", "path": "/a~1b~0c"}]);
        let ops = parse(PATCH_V21, v21.to_string().as_bytes()).unwrap();
        assert_eq!(ops[0], PatchOp { kind: PatchKind::Replace, path: "name".into(), value: Some(json!("x")) });
        assert_eq!(ops[1].path, "a/b~c");
        let v20 = json!([{"replace": "/name", "value": "x"}, {"add": "/k", "value": "v"}, {"remove": "/k"}]);
        let ops = parse(PATCH_V20, v20.to_string().as_bytes()).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[2].kind, PatchKind::Remove);
    }

    #[test]
    fn rejects_malformed_operations() {
        for bad in [
            json!({"op": "replace"}),
            json!([{"op": "move", "path": "/name", "value": 1}]),
            json!([{"op": "replace", "path": "name", "value": 1}]),
            json!([{"op": "replace", "path": "/name"}]),
            json!([{"path": "/name", "value": 1}]),
            json!(["replace"]),
        ] {
            assert_eq!(parse(PATCH_V21, bad.to_string().as_bytes()).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(parse(PATCH_V21, b"{not json").is_err());
    }
}
