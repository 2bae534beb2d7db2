//! `/v2/schemas/metadefs/{name}`: Glance's JSON schemas of the metadata definitions API, which request
//! bodies are validated against (the subset of JSON Schema draft 4 those schemas use).

use axum::extract::Path;
use axum::Json;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// The schema called `name` (`namespace`, `namespaces`, `object`, ... `resource_types`).
pub fn schema(name: &str) -> Option<Value> {
    let text = match name {
        "namespace" => include_str!("schemas/namespace.json"),
        "namespaces" => include_str!("schemas/namespaces.json"),
        "object" => include_str!("schemas/object.json"),
        "objects" => include_str!("schemas/objects.json"),
        "property" => include_str!("schemas/property.json"),
        "properties" => include_str!("schemas/properties.json"),
        "tag" => include_str!("schemas/tag.json"),
        "tags" => include_str!("schemas/tags.json"),
        "resource_type" => include_str!("schemas/resource_type.json"),
        "resource_types" => include_str!("schemas/resource_types.json"),
        _ => return None,
    };
    Some(serde_json::from_str(text).expect("the embedded metadef schemas are valid JSON"))
}

pub async fn show(Path(name): Path<String>) -> ApiResult<Json<Value>> {
    schema(&name).map(Json).ok_or_else(|| ApiError::not_found(format!("No schema named metadefs/{name}")))
}

/// Checks `value` against the schema called `name`; a mismatch is a 400 naming the failed rule.
pub fn validate(name: &str, value: &Value) -> ApiResult<()> {
    let root = schema(name).expect("a known schema");
    check(&root, &root, value, "").map_err(|why| {
        ApiError::bad_request(format!("Provided object does not match schema '{name}': {why}"))
    })
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// Validates `value` at `path` against `schema`, resolving `$ref`s in `root`.
fn check(root: &Value, schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let Some(rules) = schema.as_object() else { return Ok(()) };
    let at = if path.is_empty() { String::from("the body") } else { format!("'{path}'") };
    if let Some(reference) = rules.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(Some(root), |node, key| node.and_then(|n| n.get(key))))
            .and_then(|t| t);
        if let Some(target) = target {
            check(root, target, value, path)?;
        }
    }
    for sub in rules.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        check(root, sub, value, path)?;
    }
    match rules.get("type") {
        Some(Value::String(ty)) if !type_matches(ty, value) => {
            return Err(format!("{value} is not of type '{ty}' at {at}"));
        }
        Some(Value::Array(types)) if !types.iter().filter_map(Value::as_str).any(|ty| type_matches(ty, value)) => {
            return Err(format!("{value} is not of an allowed type at {at}"));
        }
        _ => {}
    }
    if let Some(allowed) = rules.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return Err(format!("{value} is not one of {} at {at}", Value::Array(allowed.clone())));
        }
    }
    if let (Some(max), Some(s)) = (rules.get("maxLength").and_then(Value::as_u64), value.as_str()) {
        if s.chars().count() as u64 > max {
            return Err(format!("{value} is too long (at most {max} characters) at {at}"));
        }
    }
    if let (Some(min), Some(n)) = (rules.get("minimum").and_then(Value::as_f64), value.as_f64()) {
        if n < min {
            return Err(format!("{value} is less than the minimum of {min} at {at}"));
        }
    }
    if let Some(items) = value.as_array() {
        if rules.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    return Err(format!("{} has non-unique elements at {at}", value));
                }
            }
        }
        if let Some(item_schema) = rules.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(root, item_schema, item, &format!("{path}[{i}]"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        for required in rules.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(required) {
                return Err(format!("'{required}' is a required property at {at}"));
            }
        }
        let declared = rules.get("properties").and_then(Value::as_object);
        for (key, member) in object {
            let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            match declared.and_then(|d| d.get(key)) {
                Some(member_schema) => check(root, member_schema, member, &child)?,
                None => match rules.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("additional property '{key}' is not allowed at {at}"));
                    }
                    Some(extra @ Value::Object(_)) => check(root, extra, member, &child)?,
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_schema_is_served() {
        for name in [
            "namespace", "namespaces", "object", "objects", "property", "properties", "tag", "tags", "resource_type",
            "resource_types",
        ] {
            assert!(schema(name).is_some(), "{name}");
        }
        assert!(schema("image").is_none());
    }

    #[test]
    fn namespace_bodies_are_validated_like_glance() {
        let ok = json!({"namespace": "OS::A", "visibility": "public", "protected": true,
            "properties": {"p": {"title": "P", "type": "string", "enum": ["a"]}},
            "objects": [{"name": "o", "required": ["p"], "properties": {"p": {"title": "P", "type": "integer", "minimum": 0}}}],
            "tags": [{"name": "t"}], "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "a_"}]});
        validate("namespace", &ok).unwrap();
        for bad in [
            json!({"display_name": "no namespace"}),
            json!({"namespace": "x", "visibility": "shared"}),
            json!({"namespace": "x", "protected": "yes"}),
            json!({"namespace": "x", "unknown": 1}),
            json!({"namespace": "x".repeat(81)}),
            json!({"namespace": "x", "properties": {"p": {"type": "string"}}}),
            json!({"namespace": "x", "properties": {"p": {"title": "P", "type": "color"}}}),
            json!({"namespace": "x", "objects": [{"name": "o", "required": ["a", "a"]}]}),
            json!({"namespace": "x", "properties": {"p": {"title": "P", "type": "string", "maxLength": -1}}}),
        ] {
            assert_eq!(validate("namespace", &bad).unwrap_err().status, 400, "{bad}");
        }
    }
}
