//! Glance metadata definitions (`/v2/metadefs/...`), the image cache (`/v2/cache`), image locations and
//! `/metrics`. Definitions are read by every signed-in caller (in public namespaces) and written by admins,
//! as in Glance's default policy. `<namespace>` is a public namespace of the admin's with an object
//! `object`, a property `property`, a tag `tag` and the resource type `OS::Glance::Image`.

use reqwest::Method;

use super::glance::{ADMINS, SIGNED_IN};
use super::rules::{LOCATIONS_LIST, WRITE_DATA};
use super::{Body, Expect, Row};

/// Writes that the admin's success uses up (the next cell gets a new namespace).
const ADMIN_WRITES: Expect = ADMINS;

pub fn rows() -> Vec<Row> {
    use Method as M;
    const NS: &[&str] = &["/v2/metadefs/namespaces/<namespace>"];
    vec![
        Row::new(M::GET, "/v2/metadefs/namespaces", "/v2/metadefs/namespaces", SIGNED_IN),
        Row::new(M::POST, "/v2/metadefs/namespaces", "/v2/metadefs/namespaces", ADMINS)
            .body(Body::Json(r#"{"namespace": "authz-ns-<unique>", "visibility": "public"}"#))
            .changes(&[]),
        Row::new(M::GET, "/v2/metadefs/namespaces/{ns}", "/v2/metadefs/namespaces/<namespace>", SIGNED_IN),
        Row::new(M::PUT, "/v2/metadefs/namespaces/{ns}", "/v2/metadefs/namespaces/<namespace>", ADMIN_WRITES)
            .body(Body::Json(r#"{"namespace": "<namespace>", "visibility": "public", "description": "changed"}"#))
            .changes(NS),
        Row::new(M::DELETE, "/v2/metadefs/namespaces/{ns}", "/v2/metadefs/namespaces/<namespace>", ADMIN_WRITES).consumes(NS),
        Row::new(M::GET, "/v2/metadefs/namespaces/{ns}/objects", "/v2/metadefs/namespaces/<namespace>/objects", SIGNED_IN),
        Row::new(M::POST, "/v2/metadefs/namespaces/{ns}/objects", "/v2/metadefs/namespaces/<namespace>/objects", ADMIN_WRITES)
            .body(Body::Json(r#"{"name": "authz-object-<unique>"}"#))
            .changes(NS),
        Row::new(M::DELETE, "/v2/metadefs/namespaces/{ns}/objects", "/v2/metadefs/namespaces/<namespace>/objects", ADMIN_WRITES)
            .consumes(NS),
        Row::new(M::GET, "/v2/metadefs/namespaces/{ns}/objects/{name}", "/v2/metadefs/namespaces/<namespace>/objects/object", SIGNED_IN),
        Row::new(M::PUT, "/v2/metadefs/namespaces/{ns}/objects/{name}", "/v2/metadefs/namespaces/<namespace>/objects/object", ADMIN_WRITES)
            .body(Body::Json(r#"{"name": "object", "description": "changed"}"#))
            .changes(NS),
        Row::new(M::DELETE, "/v2/metadefs/namespaces/{ns}/objects/{name}", "/v2/metadefs/namespaces/<namespace>/objects/object", ADMIN_WRITES)
            .consumes(NS),
        Row::new(M::GET, "/v2/metadefs/namespaces/{ns}/properties", "/v2/metadefs/namespaces/<namespace>/properties", SIGNED_IN),
        Row::new(M::POST, "/v2/metadefs/namespaces/{ns}/properties", "/v2/metadefs/namespaces/<namespace>/properties", ADMIN_WRITES)
            .body(Body::Json(r#"{"name": "authz_property_<unique>", "type": "string", "title": "Authz"}"#))
            .changes(NS),
        Row::new(M::DELETE, "/v2/metadefs/namespaces/{ns}/properties", "/v2/metadefs/namespaces/<namespace>/properties", ADMIN_WRITES)
            .consumes(NS),
        Row::new(M::GET, "/v2/metadefs/namespaces/{ns}/properties/{name}", "/v2/metadefs/namespaces/<namespace>/properties/property", SIGNED_IN),
        Row::new(M::PUT, "/v2/metadefs/namespaces/{ns}/properties/{name}", "/v2/metadefs/namespaces/<namespace>/properties/property", ADMIN_WRITES)
            .body(Body::Json(r#"{"name": "property", "type": "string", "title": "Changed"}"#))
            .changes(NS),
        Row::new(M::DELETE, "/v2/metadefs/namespaces/{ns}/properties/{name}", "/v2/metadefs/namespaces/<namespace>/properties/property", ADMIN_WRITES)
            .consumes(NS),
        Row::new(M::GET, "/v2/metadefs/namespaces/{ns}/tags", "/v2/metadefs/namespaces/<namespace>/tags", SIGNED_IN),
        Row::new(M::POST, "/v2/metadefs/namespaces/{ns}/tags", "/v2/metadefs/namespaces/<namespace>/tags", ADMIN_WRITES)
            .body(Body::Json(r#"{"tags": [{"name": "authz-tag-<unique>"}]}"#))
            .consumes(NS),
        Row::new(M::DELETE, "/v2/metadefs/namespaces/{ns}/tags", "/v2/metadefs/namespaces/<namespace>/tags", ADMIN_WRITES).consumes(NS),
        Row::new(M::GET, "/v2/metadefs/namespaces/{ns}/tags/{name}", "/v2/metadefs/namespaces/<namespace>/tags/tag", SIGNED_IN),
        Row::new(M::POST, "/v2/metadefs/namespaces/{ns}/tags/{name}", "/v2/metadefs/namespaces/<namespace>/tags/authz-tag-<unique>", ADMIN_WRITES)
            .changes(NS),
        Row::new(M::PUT, "/v2/metadefs/namespaces/{ns}/tags/{name}", "/v2/metadefs/namespaces/<namespace>/tags/tag", ADMIN_WRITES)
            .body(Body::Json(r#"{"name": "tag-renamed"}"#))
            .consumes(NS),
        Row::new(M::DELETE, "/v2/metadefs/namespaces/{ns}/tags/{name}", "/v2/metadefs/namespaces/<namespace>/tags/tag", ADMIN_WRITES)
            .consumes(NS),
        Row::new(M::GET, "/v2/metadefs/resource_types", "/v2/metadefs/resource_types", SIGNED_IN),
        Row::new(M::GET, "/v2/metadefs/namespaces/{ns}/resource_types", "/v2/metadefs/namespaces/<namespace>/resource_types", SIGNED_IN),
        Row::new(M::POST, "/v2/metadefs/namespaces/{ns}/resource_types", "/v2/metadefs/namespaces/<namespace>/resource_types", ADMIN_WRITES)
            .body(Body::Json(r#"{"name": "OS::Cinder::Volume"}"#))
            .consumes(NS),
        Row::new(
            M::DELETE,
            "/v2/metadefs/namespaces/{ns}/resource_types/{rt}",
            "/v2/metadefs/namespaces/<namespace>/resource_types/OS::Glance::Image",
            ADMIN_WRITES,
        )
        .consumes(NS),
        Row::new(M::GET, "/v2/schemas/metadefs/{name}", "/v2/schemas/metadefs/namespace", super::glance::EVERYONE),
        // The image cache of this node (admins).
        Row::new(M::GET, "/v2/cache", "/v2/cache", ADMINS),
        Row::new(M::DELETE, "/v2/cache", "/v2/cache", ADMINS).changes(&[]),
        Row::new(M::PUT, "/v2/cache/{id}", "/v2/cache/<own_image>", ADMINS).changes(&[]),
        Row::new(M::DELETE, "/v2/cache/{id}", "/v2/cache/<own_image>", ADMINS).changes(&[]),
        // Locations (Image API 2.17): adding one to an image that has data is a conflict; listing is for admins.
        Row::new(M::POST, "/v2/images/{id}/locations", "/v2/images/<image>/locations", Expect::Images(&WRITE_DATA))
            .body(Body::Json(r#"{"url": "http://127.0.0.1:9/authz-image"}"#))
            .changes(&[]),
        Row::new(M::GET, "/v2/images/{id}/locations", "/v2/images/<image>/locations", Expect::Images(&LOCATIONS_LIST)),
        // Prometheus metrics: admins (or the configured scrape token).
        Row::new(M::GET, "/metrics", "/metrics", ADMINS),
    ]
}
