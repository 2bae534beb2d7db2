//! Glance Images API v2: versions, images, data, staging and import, tasks, tags, members, actions, stores,
//! info and schemas.

use reqwest::Method;

use super::rules::{ADD_MEMBER, ANSWER_SHARE, DOWNLOAD, MODIFY, REMOVE_MEMBER, SHOW, SHOW_MEMBER, WRITE_DATA};
use super::{Body, Expect, Row};

/// Anyone, with or without a token.
pub const EVERYONE: Expect = Expect::Roles("2xx 2xx 2xx 2xx 2xx 2xx");
/// Any signed-in caller.
pub const SIGNED_IN: Expect = Expect::Roles("401 2xx 2xx 2xx 2xx 2xx");
/// Signed-in callers with a writing role.
pub const WRITERS: Expect = Expect::Roles("401 403 2xx 2xx 2xx 2xx");
/// Admins only.
pub const ADMINS: Expect = Expect::Roles("401 403 403 403 403 2xx");

const NEW_IMAGE: &str = r#"{"name": "authz-new", "disk_format": "raw", "container_format": "bare"}"#;
const NEW_PUBLIC_IMAGE: &str =
    r#"{"name": "authz-new-public", "disk_format": "raw", "container_format": "bare", "visibility": "public"}"#;

pub fn rows() -> Vec<Row> {
    use Method as M;
    let multiple_choices = Expect::Roles("300 300 300 300 300 300");
    vec![
        Row::new(M::GET, "/", "/", multiple_choices),
        Row::new(M::GET, "/versions", "/versions", EVERYONE),
        Row::new(M::GET, "/v2", "/v2", Expect::Roles("300 300 300 300 300 300")),
        Row::new(M::GET, "/v2/", "/v2/", Expect::Roles("300 300 300 300 300 300")),
        Row::new(M::GET, "/v2/images", "/v2/images", SIGNED_IN),
        Row::new(M::POST, "/v2/images", "/v2/images", WRITERS).body(Body::Json(NEW_IMAGE)).changes(&[]),
        Row::new(M::POST, "/v2/images", "/v2/images", ADMINS).body(Body::Json(NEW_PUBLIC_IMAGE)).changes(&[]),
        Row::new(M::GET, "/v2/images/{id}", "/v2/images/<image>", Expect::Images(&SHOW)),
        Row::new(M::PATCH, "/v2/images/{id}", "/v2/images/<image>", Expect::Images(&MODIFY))
            .body(Body::JsonPatch(r#"[{"op": "add", "path": "/authz_note", "value": "changed"}]"#))
            .changes(&[]),
        Row::new(M::DELETE, "/v2/images/{id}", "/v2/images/<image>", Expect::Images(&MODIFY)).consumes(&[]),
        Row::new(M::PUT, "/v2/images/{id}/file", "/v2/images/<image>/file", Expect::Images(&WRITE_DATA))
            .body(Body::Octets(b"replacement data"))
            .changes(&[]),
        Row::new(M::GET, "/v2/images/{id}/file", "/v2/images/<image>/file", Expect::Images(&DOWNLOAD)),
        Row::new(M::PUT, "/v2/images/{id}/stage", "/v2/images/<image>/stage", Expect::Images(&WRITE_DATA))
            .body(Body::Octets(b"staged data"))
            .changes(&[]),
        Row::new(M::POST, "/v2/images/{id}/import", "/v2/images/<image>/import", Expect::Images(&WRITE_DATA))
            .body(Body::Json(r#"{"method": {"name": "glance-direct"}}"#))
            .changes(&[]),
        Row::new(M::GET, "/v2/images/{id}/tasks", "/v2/images/<image>/tasks", Expect::Images(&SHOW)),
        Row::new(M::GET, "/v2/tasks", "/v2/tasks", ADMINS),
        // Legacy import tasks are for admins; this one's source (loopback) is refused by the web-download rules.
        Row::new(M::POST, "/v2/tasks", "/v2/tasks", Expect::Roles("401 403 403 403 403 400")).body(Body::Json(
            r#"{"type": "import", "input": {"import_from": "http://127.0.0.1:9/x.raw", "import_from_format": "raw",
                "image_properties": {"name": "authz-task", "disk_format": "raw", "container_format": "bare"}}}"#,
        )),
        Row::new(M::GET, "/v2/tasks/{id}", "/v2/tasks/<task>", Expect::Roles("401 2xx 2xx 2xx 404 2xx")),
        Row::new(M::PUT, "/v2/images/{id}/tags/{tag}", "/v2/images/<image>/tags/authz-new", Expect::Images(&MODIFY))
            .changes(&[]),
        Row::new(M::DELETE, "/v2/images/{id}/tags/{tag}", "/v2/images/<image>/tags/authz", Expect::Images(&MODIFY))
            .consumes(&[]),
        Row::new(M::GET, "/v2/images/{id}/members", "/v2/images/<image>/members", Expect::Images(&SHOW)),
        Row::new(M::POST, "/v2/images/{id}/members", "/v2/images/<image>/members", Expect::Images(&ADD_MEMBER))
            .body(Body::Json(r#"{"member": "<project_c>"}"#))
            .consumes(&[]),
        Row::new(
            M::GET,
            "/v2/images/{id}/members/{member}",
            "/v2/images/<image>/members/<project_b>",
            Expect::Images(&SHOW_MEMBER),
        ),
        Row::new(
            M::PUT,
            "/v2/images/{id}/members/{member}",
            "/v2/images/<image>/members/<project_b>",
            Expect::Images(&ANSWER_SHARE),
        )
        .body(Body::Json(r#"{"status": "accepted"}"#))
        .consumes(&[]),
        Row::new(
            M::DELETE,
            "/v2/images/{id}/members/{member}",
            "/v2/images/<image>/members/<project_b>",
            Expect::Images(&REMOVE_MEMBER),
        )
        .consumes(&[]),
        Row::new(
            M::POST,
            "/v2/images/{id}/actions/deactivate",
            "/v2/images/<image>/actions/deactivate",
            Expect::Images(&MODIFY),
        )
        .consumes(&[]),
        Row::new(
            M::POST,
            "/v2/images/{id}/actions/reactivate",
            "/v2/images/<image>/actions/reactivate",
            Expect::Images(&MODIFY),
        )
        .consumes(&[]),
        // Schemas are public documents (clients fetch them to validate).
        Row::new(M::GET, "/v2/schemas/{name}", "/v2/schemas/image", EVERYONE),
        Row::new(M::GET, "/v2/info/import", "/v2/info/import", SIGNED_IN),
        Row::new(M::GET, "/v2/info/stores", "/v2/info/stores", SIGNED_IN),
        Row::new(M::GET, "/v2/info/stores/detail", "/v2/info/stores/detail", ADMINS),
        Row::new(M::GET, "/v2/info/usage", "/v2/info/usage", SIGNED_IN),
        Row::new(M::DELETE, "/v2/stores/{store_id}/{id}", "/v2/stores/<store>/<image>", Expect::Images(&super::rules::STORE_DELETE))
            .consumes(&[]),
        Row::new(M::GET, "/v2/tenants", "/v2/tenants", SIGNED_IN),
        Row::new(M::GET, "/v2/tenants/{project}", "/v2/tenants/<project_a>", SIGNED_IN),
    ]
}
