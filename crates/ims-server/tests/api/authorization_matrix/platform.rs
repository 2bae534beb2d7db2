//! The platform surfaces around the images: identity, compute, KMS, buckets, jobs, audit, administration,
//! replication between regions, the health check and the console's static pages.

use reqwest::Method;

use super::glance::{ADMINS, EVERYONE, SIGNED_IN, WRITERS};
use super::{Body, Expect, Row};

/// A resource of project A: readable in A and by admins, hidden from B.
const A_READS: Expect = Expect::Roles("401 2xx 2xx 2xx 404 2xx");
/// A resource of project A: changed by A's writers and admins, hidden from B.
const A_WRITES: Expect = Expect::Roles("401 403 2xx 2xx 404 2xx");

/// Project A's audit events: A and admins; B asking for them is refused.
const A_READS_403: Expect = Expect::Roles("401 2xx 2xx 2xx 403 2xx");

const NEW_SERVER: &str = r#"{"server": {"name": "authz-server", "type": "ecs", "vcpus": 1, "ram_mb": 512, "image_id": "<own_image>"}}"#;

pub fn rows() -> Vec<Row> {
    use Method as M;
    vec![
        Row::new(M::GET, "/healthcheck", "/healthcheck", EVERYONE),
        // Identity.
        Row::new(M::GET, "/identity/v1/projects", "/identity/v1/projects", ADMINS),
        Row::new(M::POST, "/identity/v1/projects", "/identity/v1/projects", ADMINS)
            .body(Body::Json(r#"{"name": "authz-new-<unique>"}"#))
            .changes(&[]),
        Row::new(M::GET, "/identity/v1/projects/{project}", "/identity/v1/projects/<project_a>", ADMINS),
        Row::new(M::DELETE, "/identity/v1/projects/{project}", "/identity/v1/projects/<victim_project>", ADMINS)
            .consumes(&["/identity/v1/projects/<victim_project>"]),
        Row::new(M::GET, "/identity/v1/projects/{project}/quotas", "/identity/v1/projects/<project_a>/quotas", ADMINS),
        Row::new(M::PUT, "/identity/v1/projects/{project}/quotas", "/identity/v1/projects/<project_a>/quotas", ADMINS)
            .body(Body::Json(r#"{"quotas": {"private_images": 1000}}"#))
            .changes(&["/identity/v1/projects/<project_a>/quotas"]),
        Row::new(M::GET, "/identity/v1/users", "/identity/v1/users", ADMINS),
        Row::new(M::POST, "/identity/v1/users", "/identity/v1/users", ADMINS)
            .body(Body::Json(r#"{"name": "authz-user-<unique>", "project": "<project_a>", "role": "reader"}"#))
            .changes(&["/identity/v1/users"]),
        Row::new(M::POST, "/identity/v1/tokens", "/identity/v1/tokens", ADMINS)
            .body(Body::Json(r#"{"user": "<owner_user>", "project": "<project_a>"}"#))
            .changes(&[]),
        Row::new(M::DELETE, "/identity/v1/tokens/{token}", "/identity/v1/tokens/<victim_token>", ADMINS).consumes(&[]),
        Row::new(M::GET, "/identity/v1/auth", "/identity/v1/auth", SIGNED_IN),
        Row::new(M::GET, "/identity/v1/access-keys", "/identity/v1/access-keys", ADMINS),
        Row::new(M::POST, "/identity/v1/access-keys", "/identity/v1/access-keys", ADMINS)
            .body(Body::Json(r#"{"user": "<owner_user>"}"#))
            .changes(&[]),
        Row::new(M::DELETE, "/identity/v1/access-keys/{access}", "/identity/v1/access-keys/<access_key>", ADMINS)
            .consumes(&["/identity/v1/access-keys"]),
        // Compute.
        Row::new(M::GET, "/compute/v1/servers", "/compute/v1/servers", SIGNED_IN),
        Row::new(M::POST, "/compute/v1/servers", "/compute/v1/servers", A_WRITES).body(Body::Json(NEW_SERVER)).changes(&[]),
        Row::new(M::GET, "/compute/v1/servers/{id}", "/compute/v1/servers/<server>", A_READS),
        Row::new(M::DELETE, "/compute/v1/servers/{id}", "/compute/v1/servers/<server>", A_WRITES).consumes(&["/compute/v1/servers/<server>"]),
        Row::new(M::POST, "/compute/v1/servers/{id}/volumes", "/compute/v1/servers/<server>/volumes", A_WRITES)
            .body(Body::Json(r#"{"volume_id": "<volume>"}"#))
            .consumes(&["/compute/v1/servers/<server>", "/compute/v1/volumes/<volume>"]),
        Row::new(
            M::DELETE,
            "/compute/v1/servers/{id}/volumes/{volume_id}",
            "/compute/v1/servers/<server>/volumes/<attached_volume>",
            A_WRITES,
        )
        .consumes(&["/compute/v1/servers/<server>", "/compute/v1/volumes/<attached_volume>"]),
        Row::new(M::GET, "/compute/v1/volumes", "/compute/v1/volumes", SIGNED_IN),
        Row::new(M::POST, "/compute/v1/volumes", "/compute/v1/volumes", WRITERS)
            .body(Body::Json(r#"{"volume": {"name": "authz-volume", "size": 1}}"#))
            .changes(&[]),
        Row::new(M::GET, "/compute/v1/volumes/{id}", "/compute/v1/volumes/<volume>", A_READS),
        Row::new(M::DELETE, "/compute/v1/volumes/{id}", "/compute/v1/volumes/<volume>", A_WRITES).consumes(&["/compute/v1/volumes/<volume>"]),
        Row::new(M::POST, "/compute/v1/volumes/{id}/attachments", "/compute/v1/volumes/<volume>/attachments", A_WRITES)
            .changes(&["/compute/v1/volumes/<volume>"]),
        Row::new(M::DELETE, "/compute/v1/volumes/{id}/attachments", "/compute/v1/volumes/<volume>/attachments", Expect::Roles("401 403 404 404 404 404"))
            .body(Body::Json(r#"{"nbd_url": "nbd://127.0.0.1:1/authz-not-an-export"}"#))
            .changes(&["/compute/v1/volumes/<volume>"]),
        // KMS (admins: keys are the platform's).
        Row::new(M::GET, "/kms/v1/keys", "/kms/v1/keys", ADMINS),
        Row::new(M::POST, "/kms/v1/keys", "/kms/v1/keys", ADMINS).body(Body::Json(r#"{"alias": "authz-key-<unique>"}"#)).changes(&[]),
        Row::new(M::GET, "/kms/v1/keys/{key_id}", "/kms/v1/keys/<kms_key>", ADMINS),
        Row::new(M::PATCH, "/kms/v1/keys/{key_id}", "/kms/v1/keys/<kms_key>", ADMINS)
            .body(Body::Json(r#"{"shareable": true}"#))
            .changes(&["/kms/v1/keys/<kms_key>"]),
        Row::new(M::POST, "/kms/v1/keys/{key_id}/disable", "/kms/v1/keys/<kms_key>/disable", ADMINS)
            .consumes(&["/kms/v1/keys/<kms_key>"]),
        Row::new(M::POST, "/kms/v1/keys/{key_id}/enable", "/kms/v1/keys/<kms_key>/enable", ADMINS)
            .changes(&["/kms/v1/keys/<kms_key>"]),
        // Buckets.
        Row::new(M::GET, "/buckets/v1", "/buckets/v1", SIGNED_IN),
        Row::new(M::PUT, "/buckets/v1/{bucket}", "/buckets/v1/authz-new-<unique>", WRITERS).changes(&[]),
        Row::new(M::GET, "/buckets/v1/{bucket}/objects", "/buckets/v1/<bucket>/objects", A_READS),
        Row::new(M::PUT, "/buckets/v1/{bucket}/objects/{*key}", "/buckets/v1/<bucket>/objects/authz/new", A_WRITES)
            .body(Body::Octets(b"new object"))
            .changes(&["/buckets/v1/<bucket>/objects"]),
        Row::new(M::GET, "/buckets/v1/{bucket}/objects/{*key}", "/buckets/v1/<bucket>/objects/object", A_READS),
        Row::new(M::DELETE, "/buckets/v1/{bucket}/objects/{*key}", "/buckets/v1/<bucket>/objects/object", A_WRITES)
            .consumes(&["/buckets/v1/<bucket>/objects"]),
        // Jobs.
        Row::new(M::GET, "/jobs/v1", "/jobs/v1", SIGNED_IN),
        Row::new(M::GET, "/jobs/v1/{job_id}", "/jobs/v1/<job>", A_READS),
        Row::new(M::POST, "/jobs/v1/{job_id}/cancel", "/jobs/v1/<job>/cancel", Expect::Roles("401 403 409 409 404 409"))
            .changes(&["/jobs/v1/<job>"]),
        // Audit.
        // Audit: every user sees its own project's events; another project's are a 403.
        Row::new(M::GET, "/audit/v1/events", "/audit/v1/events", SIGNED_IN),
        Row::new(M::GET, "/audit/v1/events", "/audit/v1/events?project_id=<project_a>", A_READS_403),
        Row::new(M::GET, "/audit/v1/events/export", "/audit/v1/events/export", SIGNED_IN),
        Row::new(M::GET, "/audit/v1/verification", "/audit/v1/verification", ADMINS),
        // Administration.
        Row::new(M::POST, "/admin/v1/store/gc", "/admin/v1/store/gc", ADMINS).changes(&[]),
        Row::new(M::POST, "/admin/v1/store/verify", "/admin/v1/store/verify", ADMINS).changes(&[]),
        Row::new(M::GET, "/admin/v1/store/stats", "/admin/v1/store/stats", ADMINS),
        Row::new(M::GET, "/admin/v1/nodes", "/admin/v1/nodes", ADMINS),
        // Draining this node would stop the jobs of later cells: an unknown node shows the policy all the same.
        Row::new(M::POST, "/admin/v1/nodes/{node_id}/drain", "/admin/v1/nodes/authz-no-such-node/drain", Expect::Roles("401 403 403 403 403 404"))
            .changes(&["/admin/v1/nodes"]),
        // Replication between regions: the peer region calls with an admin token. A malformed body is refused
        // before the caller is checked (nothing is stored either way).
        Row::new(M::POST, "/internal/v1/replication/chunks/missing", "/internal/v1/replication/chunks/missing", ADMINS)
            .body(Body::Json(r#"{"chunks": []}"#)),
        Row::new(
            M::PUT,
            "/internal/v1/replication/chunks/{chunk_id}",
            "/internal/v1/replication/chunks/0000000000000000000000000000000000000000000000000000000000000000?length=28",
            Expect::Roles("401 403 403 403 403 400"),
        )
        .body(Body::Octets(b"not the chunk of that digest"))
        .changes(&[]),
        Row::new(M::POST, "/internal/v1/replication/images", "/internal/v1/replication/images", Expect::Roles("401 400 400 400 400 400"))
            .body(Body::Json(r#"{}"#))
            .changes(&[]),
        // The console: static pages for everyone; its data comes from the APIs above.
        Row::new(M::GET, "/console", "/console", Expect::Roles("308 308 308 308 308 308")),
        Row::new(M::GET, "/console/", "/console/", EVERYONE),
        Row::new(M::GET, "/console/{*path}", "/console/index.html", EVERYONE),
    ]
}
