//! The JSON shapes of the metadata definitions API, as Glance renders them (unset fields left out).

use ims_catalog::metadef::{MetadefItem, MetadefNamespace, MetadefResourceType, NamespaceContents, ResourceTypeAssociation};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use crate::glance::render::timestamp;

/// Characters escaped in a name put into a URL path (`:` stays, as Glance leaves it).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b':').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn segment(name: &str) -> String {
    utf8_percent_encode(name, PATH_SEGMENT).to_string()
}

pub fn namespace_href(namespace: &str) -> String {
    format!("/v2/metadefs/namespaces/{}", segment(namespace))
}

/// A namespace's own fields.
pub fn namespace(ns: &MetadefNamespace) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("namespace".into(), json!(ns.namespace));
    if let Some(display_name) = &ns.display_name {
        out.insert("display_name".into(), json!(display_name));
    }
    if let Some(description) = &ns.description {
        out.insert("description".into(), json!(description));
    }
    out.insert("visibility".into(), json!(ns.visibility.as_str()));
    out.insert("protected".into(), json!(ns.protected));
    out.insert("owner".into(), json!(ns.owner));
    out.insert("created_at".into(), json!(timestamp(&ns.created_at)));
    out.insert("updated_at".into(), json!(timestamp(&ns.updated_at)));
    out.insert("self".into(), json!(namespace_href(&ns.namespace)));
    out.insert("schema".into(), json!("/v2/schemas/metadefs/namespace"));
    out
}

/// A namespace with its associations (as listed).
pub fn namespace_with_associations(ns: &MetadefNamespace, associations: &[ResourceTypeAssociation]) -> Value {
    let mut out = namespace(ns);
    if !associations.is_empty() {
        out.insert("resource_type_associations".into(), associations.iter().map(association).collect());
    }
    Value::Object(out)
}

/// A namespace with everything in it (as shown and created).
pub fn namespace_contents(contents: &NamespaceContents) -> Value {
    let name = &contents.namespace.namespace;
    let mut out = namespace(&contents.namespace);
    if !contents.associations.is_empty() {
        out.insert("resource_type_associations".into(), contents.associations.iter().map(association).collect());
    }
    if !contents.properties.is_empty() {
        out.insert("properties".into(), properties(&contents.properties));
    }
    if !contents.objects.is_empty() {
        out.insert("objects".into(), contents.objects.iter().map(|o| object(name, o)).collect());
    }
    if !contents.tags.is_empty() {
        out.insert("tags".into(), contents.tags.iter().map(|t| json!({"name": t.name})).collect());
    }
    Value::Object(out)
}

pub fn association(a: &ResourceTypeAssociation) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(a.name));
    if let Some(prefix) = &a.prefix {
        out.insert("prefix".into(), json!(prefix));
    }
    if let Some(target) = &a.properties_target {
        out.insert("properties_target".into(), json!(target));
    }
    out.insert("created_at".into(), json!(timestamp(&a.created_at)));
    out.insert("updated_at".into(), json!(timestamp(&a.updated_at)));
    Value::Object(out)
}

pub fn resource_type(r: &MetadefResourceType) -> Value {
    json!({"name": r.name, "created_at": timestamp(&r.created_at), "updated_at": timestamp(&r.updated_at)})
}

/// An object: its definition plus name, times, `self` and `schema`.
pub fn object(namespace: &str, o: &MetadefItem) -> Value {
    let mut out = o.body.as_object().cloned().unwrap_or_default();
    out.insert("name".into(), json!(o.name));
    out.insert("created_at".into(), json!(timestamp(&o.created_at)));
    out.insert("updated_at".into(), json!(timestamp(&o.updated_at)));
    out.insert("self".into(), json!(format!("{}/objects/{}", namespace_href(namespace), segment(&o.name))));
    out.insert("schema".into(), json!("/v2/schemas/metadefs/object"));
    Value::Object(out)
}

/// A property: its definition plus its name.
pub fn property(p: &MetadefItem) -> Value {
    let mut out = p.body.as_object().cloned().unwrap_or_default();
    out.insert("name".into(), json!(p.name));
    Value::Object(out)
}

/// Properties keyed by name, each definition without its name (the form inside namespaces).
pub fn properties(list: &[MetadefItem]) -> Value {
    Value::Object(list.iter().map(|p| (p.name.clone(), p.body.clone())).collect())
}

pub fn tag(t: &MetadefItem) -> Value {
    json!({"name": t.name, "created_at": timestamp(&t.created_at), "updated_at": timestamp(&t.updated_at)})
}
