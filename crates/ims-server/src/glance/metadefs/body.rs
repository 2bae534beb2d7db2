//! Turning validated request bodies into the drafts the use cases take.

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use ims_catalog::metadef::NamespaceVisibility;
use ims_core::metadefs::{AssociationDraft, ItemDraft, NamespaceDraft};
use serde_json::{Map, Value};

use super::schemas;
use crate::error::{ApiError, ApiResult};
use crate::glance::body as glance_body;

/// Attributes the server sets; a client sending one is refused (403, as Glance does).
const READ_ONLY: &[&str] = &["self", "schema", "created_at", "updated_at"];

/// The body as a JSON object valid against the schema called `schema`.
pub fn validated(headers: &HeaderMap, body: &Bytes, schema: &str) -> ApiResult<Map<String, Value>> {
    let map = glance_body::object(headers, body)?;
    if let Some(key) = READ_ONLY.iter().find(|k| map.contains_key(**k)) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("Attribute '{key}' is read-only.")));
    }
    schemas::validate(schema, &Value::Object(map.clone()))?;
    Ok(map)
}

fn string(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_string)
}

/// A property definition keyed by `name`: the definition as stored (without the name).
fn property_draft(name: &str, definition: &Value) -> ItemDraft {
    let mut body = definition.as_object().cloned().unwrap_or_default();
    body.remove("name");
    ItemDraft { name: name.to_string(), body: Value::Object(body) }
}

/// An object body (already validated): everything but its name and read-only fields is its definition.
pub fn object_draft(map: &Map<String, Value>) -> ItemDraft {
    let mut body = map.clone();
    for key in ["name", "self", "schema", "created_at", "updated_at"] {
        body.remove(key);
    }
    ItemDraft { name: string(map, "name").unwrap_or_default(), body: Value::Object(body) }
}

/// A property body (already validated).
pub fn property(map: &Map<String, Value>) -> ItemDraft {
    property_draft(&string(map, "name").unwrap_or_default(), &Value::Object(map.clone()))
}

/// An association body (already validated).
pub fn association(map: &Map<String, Value>) -> AssociationDraft {
    AssociationDraft {
        name: string(map, "name").unwrap_or_default(),
        prefix: string(map, "prefix"),
        properties_target: string(map, "properties_target"),
    }
}

/// A namespace body (already validated against the namespace schema), with its contents.
pub fn namespace(map: &Map<String, Value>) -> ApiResult<NamespaceDraft> {
    let visibility = match map.get("visibility").and_then(Value::as_str) {
        Some(v) => Some(v.parse::<NamespaceVisibility>().map_err(|e| ApiError::bad_request(e.to_string()))?),
        None => None,
    };
    let list = |key: &str| map.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut objects = Vec::new();
    for object in list("objects") {
        let object = object.as_object().cloned().unwrap_or_default();
        schemas::validate("object", &Value::Object(object.clone()))?;
        objects.push(object_draft(&object));
    }
    let properties = map
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| props.iter().map(|(name, def)| property_draft(name, def)).collect())
        .unwrap_or_default();
    let mut tags = Vec::new();
    for tag in list("tags") {
        match tag.get("name").and_then(Value::as_str) {
            Some(name) => tags.push(name.to_string()),
            None => return Err(ApiError::bad_request("Every tag needs a name.")),
        }
    }
    let mut associations = Vec::new();
    for association_body in list("resource_type_associations") {
        let association_body = association_body.as_object().cloned().unwrap_or_default();
        schemas::validate("resource_type", &Value::Object(association_body.clone()))?;
        associations.push(association(&association_body));
    }
    Ok(NamespaceDraft {
        namespace: string(map, "namespace").unwrap_or_default(),
        display_name: string(map, "display_name"),
        description: string(map, "description"),
        visibility,
        protected: map.get("protected").and_then(Value::as_bool),
        owner: string(map, "owner"),
        objects,
        properties,
        tags,
        associations,
    })
}
