//! The IMS API (`/v1/cloudimages...`, `/v2/cloudimages...`, `/v2.1/...`, `/v2/{project_id}/images...`),
//! NBD export minting, capsules, the marketplace and the recycle bin. `<my_project>` is the caller's
//! project (A for anonymous calls).

use reqwest::Method;

use super::glance::{ADMINS, SIGNED_IN, WRITERS};
use super::rules::*;
use super::{Body, Expect, Row};

const IMPORT: &str = r#"{"name": "authz-import", "image_url": "<bucket>:disk.raw", "min_disk": 1, "os_version": "Ubuntu 22.04 server 64bit"}"#;
const DATA_IMPORT: &str = r#"{"name": "authz-data-import", "image_url": "<bucket>:disk.raw", "min_disk": 1}"#;
const QUICK_IMPORT: &str =
    r#"{"name": "authz-quick", "image_url": "<bucket>:disk.raw", "min_disk": 1, "os_version": "Ubuntu 22.04 server 64bit", "type": "ECS"}"#;
/// Creating from a bucket file of project A: A's writers and admins; B cannot read A's bucket.
const FROM_A_BUCKET: Expect = Expect::Roles("401 403 2xx 2xx 404 2xx");
/// A resource of project A: readable in A and by admins, hidden from B.
const A_READS: Expect = Expect::Roles("401 2xx 2xx 2xx 404 2xx");
/// A resource of project A: changed by A's writers and admins, hidden from B.
const A_WRITES: Expect = Expect::Roles("401 403 2xx 2xx 404 2xx");

pub fn rows() -> Vec<Row> {
    use Method as M;
    vec![
        Row::new(M::GET, "/v2/cloudimages", "/v2/cloudimages", SIGNED_IN),
        Row::new(M::PATCH, "/v2/cloudimages/{image_id}", "/v2/cloudimages/<image>", Expect::Images(&MODIFY))
            .body(Body::Json(r#"[{"op": "replace", "path": "/name", "value": "authz-renamed"}]"#))
            .changes(&[]),
        Row::new(M::POST, "/v2/cloudimages/action", "/v2/cloudimages/action", FROM_A_BUCKET).body(Body::Json(IMPORT)).changes(&[]),
        Row::new(M::POST, "/v2.1/cloudimages/action", "/v2.1/cloudimages/action", FROM_A_BUCKET).body(Body::Json(IMPORT)).changes(&[]),
        Row::new(M::POST, "/v2/cloudimages/quickimport/action", "/v2/cloudimages/quickimport/action", FROM_A_BUCKET)
            .body(Body::Json(QUICK_IMPORT))
            .changes(&[]),
        Row::new(M::POST, "/v2.1/cloudimages/quickimport/action", "/v2.1/cloudimages/quickimport/action", FROM_A_BUCKET)
            .body(Body::Json(QUICK_IMPORT))
            .changes(&[]),
        Row::new(M::POST, "/v1/cloudimages/dataimages/action", "/v1/cloudimages/dataimages/action", FROM_A_BUCKET)
            .body(Body::Json(DATA_IMPORT))
            .changes(&[]),
        Row::new(M::POST, "/v2.1/cloudimages/dataimages/action", "/v2.1/cloudimages/dataimages/action", FROM_A_BUCKET)
            .body(Body::Json(DATA_IMPORT))
            .changes(&[]),
        Row::new(M::POST, "/v1/cloudimages/wholeimages/action", "/v1/cloudimages/wholeimages/action", A_WRITES)
            .body(Body::Json(r#"{"name": "authz-whole", "instance_id": "<server>"}"#))
            .changes(&["/compute/v1/servers/<server>"]),
        Row::new(M::PUT, "/v1/cloudimages/{image_id}/upload", "/v1/cloudimages/<image>/upload", Expect::Images(&WRITE_DATA))
            .body(Body::Json(r#"{"image_url": "<bucket>:disk.raw"}"#))
            .changes(&[]),
        Row::new(M::POST, "/v1/cloudimages/{image_id}/copy", "/v1/cloudimages/<image>/copy", Expect::Images(&COPY))
            .body(Body::Json(r#"{"name": "authz-copy"}"#))
            .changes(&[]),
        Row::new(M::POST, "/v2.1/cloudimages/{image_id}/copy", "/v2.1/cloudimages/<image>/copy", Expect::Images(&COPY))
            .body(Body::Json(r#"{"name": "authz-copy"}"#))
            .changes(&[]),
        Row::new(M::GET, "/v1/cloudimages/regions", "/v1/cloudimages/regions", SIGNED_IN),
        Row::new(
            M::POST,
            "/v1/cloudimages/{image_id}/cross_region_copy",
            "/v1/cloudimages/<image>/cross_region_copy",
            Expect::Images(&COPY),
        )
        .body(Body::Json(r#"{"name": "authz-far-copy", "region": "elsewhere", "project_name": "authz-a"}"#))
        .changes(&[]),
        Row::new(M::POST, "/v1/cloudimages/{image_id}/file", "/v1/cloudimages/<image>/file", Expect::Images(&EXPORT))
            .body(Body::Json(r#"{"bucket_url": "<bucket>:authz-export", "file_format": "qcow2"}"#))
            .changes(&[]),
        Row::new(M::POST, "/v2.1/cloudimages/{image_id}/file", "/v2.1/cloudimages/<image>/file", Expect::Images(&EXPORT))
            .body(Body::Json(r#"{"bucket_url": "<bucket>:authz-export", "file_format": "qcow2"}"#))
            .changes(&[]),
        Row::new(M::POST, "/v1/cloudimages/{image_id}/nbd", "/v1/cloudimages/<image>/nbd", Expect::Images(&NBD_EXPORT))
            .changes(&[]),
        Row::new(M::DELETE, "/v1/cloudimages/{image_id}/nbd", "/v1/cloudimages/<image>/nbd", Expect::Images(&NBD_REVOKE_UNKNOWN))
            .body(Body::Json(r#"{"name": "authz-not-an-export"}"#))
            .changes(&[]),
        Row::new(M::GET, "/v1/cloudimages/quota", "/v1/cloudimages/quota", SIGNED_IN),
        Row::new(M::GET, "/v1/capsules", "/v1/capsules", SIGNED_IN),
        // B names parts it cannot see: a bad request that reveals nothing.
        Row::new(M::POST, "/v1/capsules", "/v1/capsules", Expect::Roles("401 403 2xx 2xx 400 2xx"))
            .body(Body::Json(
                r#"{"name": "authz-capsule", "base_image_id": "<own_image>", "app_image_ids": ["<data_image>"], "user_data": "", "visibility": "private"}"#,
            ))
            .changes(&[]),
        Row::new(M::GET, "/v1/capsules/{capsule_id}", "/v1/capsules/<capsule>", A_READS),
        Row::new(M::DELETE, "/v1/capsules/{capsule_id}", "/v1/capsules/<capsule>", A_WRITES).consumes(&["/v1/capsules/<capsule>"]),
        Row::new(M::GET, "/v1/cloudimages/favorites", "/v1/cloudimages/favorites", SIGNED_IN),
        Row::new(M::POST, "/v1/cloudimages/favorites", "/v1/cloudimages/favorites", Expect::Images(&SHOW))
            .body(Body::Json(r#"{"image_id": "<image>"}"#))
            .changes(&[]),
        Row::new(M::DELETE, "/v1/cloudimages/favorites/{image_id}", "/v1/cloudimages/favorites/<image>", Expect::Images(&UNFAVOURITE))
            .changes(&[]),
        Row::new(M::GET, "/v1/cloudimages/{image_id}/ancestry", "/v1/cloudimages/<image>/ancestry", Expect::Images(&SHOW)),
        Row::new(M::GET, "/v1/cloudimages/share_auto_accept", "/v1/cloudimages/share_auto_accept", SIGNED_IN),
        Row::new(M::POST, "/v1/cloudimages/share_auto_accept", "/v1/cloudimages/share_auto_accept", WRITERS)
            .body(Body::Json(r#"{"project": "<project_c>"}"#))
            .changes(&[]),
        Row::new(
            M::DELETE,
            "/v1/cloudimages/share_auto_accept/{project}",
            "/v1/cloudimages/share_auto_accept/<auto_accepted>",
            Expect::Roles("401 403 2xx 2xx 404 404"),
        )
        .consumes(&[]),
        Row::new(M::GET, "/v1/cloudimages/os_version", "/v1/cloudimages/os_version", SIGNED_IN),
        Row::new(M::POST, "/v1/cloudimages/os_version", "/v1/cloudimages/os_version", ADMINS)
            .body(Body::Json(r#"{"platform": "Authz", "os_version": "Authz <unique> 64bit", "os_bit": "64", "os_type": "Linux"}"#))
            .changes(&[]),
        Row::new(M::POST, "/v1/cloudimages/members", "/v1/cloudimages/members", Expect::Images(&BATCH_SHARE))
            .body(Body::Json(r#"{"images": ["<image>"], "projects": ["<project_c>"]}"#))
            .consumes(&[]),
        Row::new(M::PUT, "/v1/cloudimages/members", "/v1/cloudimages/members", Expect::Images(&BATCH_ANSWER))
            .body(Body::Json(r#"{"images": ["<image>"], "project_id": "<project_b>", "status": "accepted"}"#))
            .consumes(&[]),
        Row::new(M::DELETE, "/v1/cloudimages/members", "/v1/cloudimages/members", Expect::Images(&BATCH_SHARE))
            .body(Body::Json(r#"{"images": ["<image>"], "projects": ["<project_b>"]}"#))
            .consumes(&[]),
        Row::new(
            M::GET,
            "/v1/{project_id}/cloudimages/{image_id}/members",
            "/v1/<my_project>/cloudimages/<image>/members",
            Expect::Images(&SHOW),
        ),
        Row::new(
            M::GET,
            "/v1/{project_id}/cloudimages/{image_id}/members/{member_id}",
            "/v1/<my_project>/cloudimages/<image>/members/<project_b>",
            Expect::Images(&SHOW_MEMBER),
        ),
        Row::new(M::GET, "/v1/{project_id}/jobs/{job_id}", "/v1/<my_project>/jobs/<job>", A_READS),
        Row::new(M::GET, "/v1/cloudimages/job/{job_id}", "/v1/cloudimages/job/<job>", A_READS),
        Row::new(M::GET, "/v1/cloudimages/tags", "/v1/cloudimages/tags", SIGNED_IN),
        Row::new(M::PUT, "/v1/cloudimages/tags", "/v1/cloudimages/tags", Expect::Images(&MODIFY))
            .body(Body::Json(r#"{"image_id": "<image>", "image_tag": {"key": "authz-v1", "value": "v"}}"#))
            .changes(&[]),
        Row::new(
            M::DELETE,
            "/v1/{project_id}/cloudimages/{image_id}/tags/delete",
            "/v1/<my_project>/cloudimages/<image>/tags/delete",
            Expect::Images(&MODIFY),
        )
        .body(Body::Json(r#"{"tags": [{"key": "authz"}]}"#))
        .consumes(&[]),
        Row::new(M::GET, "/v2/{project_id}/images/tags", "/v2/<my_project>/images/tags", SIGNED_IN),
        Row::new(
            M::POST,
            "/v2/{project_id}/images/resource_instances/action",
            "/v2/<my_project>/images/resource_instances/action",
            SIGNED_IN,
        )
        .body(Body::Json(r#"{"action": "filter"}"#)),
        Row::new(M::GET, "/v2/{project_id}/images/{image_id}/tags", "/v2/<my_project>/images/<image>/tags", Expect::Images(&SHOW)),
        Row::new(M::POST, "/v2/{project_id}/images/{image_id}/tags", "/v2/<my_project>/images/<image>/tags", Expect::Images(&MODIFY))
            .body(Body::Json(r#"{"tag": {"key": "authz-v2", "value": "v"}}"#))
            .changes(&[]),
        Row::new(
            M::POST,
            "/v2/{project_id}/images/{image_id}/tags/action",
            "/v2/<my_project>/images/<image>/tags/action",
            Expect::Images(&MODIFY),
        )
        .body(Body::Json(r#"{"action": "create", "tags": [{"key": "authz-batch", "value": "v"}]}"#))
        .changes(&[]),
        Row::new(
            M::DELETE,
            "/v2/{project_id}/images/{image_id}/tags/{key}",
            "/v2/<my_project>/images/<image>/tags/authz-resource",
            Expect::Images(&MODIFY),
        )
        .consumes(&[]),
        // The marketplace.
        Row::new(M::GET, "/v1/marketplace/listings", "/v1/marketplace/listings", SIGNED_IN),
        Row::new(M::POST, "/v1/marketplace/listings", "/v1/marketplace/listings", Expect::Images(&PUBLISH))
            .body(Body::Json(r#"{"image_id": "<image>", "product_code": "authz-<unique>", "version": "1.0", "description": ""}"#))
            .consumes(&[]),
        Row::new(M::GET, "/v1/marketplace/listings/{listing_id}", "/v1/marketplace/listings/<listing>", SIGNED_IN),
        Row::new(M::DELETE, "/v1/marketplace/listings/{listing_id}", "/v1/marketplace/listings/<listing>", LISTING_WRITES)
            .consumes(&["/v1/marketplace/listings/<listing>"]),
        Row::new(
            M::POST,
            "/v1/marketplace/listings/{listing_id}/offshelf",
            "/v1/marketplace/listings/<listing>/offshelf",
            LISTING_WRITES,
        )
        .consumes(&["/v1/marketplace/listings/<listing>"]),
        Row::new(M::POST, "/v1/marketplace/listings/{listing_id}/onshelf", "/v1/marketplace/listings/<listing>/onshelf", LISTING_WRITES)
            .changes(&["/v1/marketplace/listings/<listing>"]),
        Row::new(
            M::GET,
            "/v1/marketplace/listings/{listing_id}/subscriptions",
            "/v1/marketplace/listings/<listing>/subscriptions",
            Expect::Roles("401 2xx 2xx 2xx 403 2xx"),
        ),
        Row::new(
            M::POST,
            "/v1/marketplace/listings/{listing_id}/subscriptions",
            "/v1/marketplace/listings/<listing>/subscriptions",
            WRITERS,
        )
        .consumes(&["/v1/marketplace/listings/<listing>/subscriptions"]),
        Row::new(
            M::DELETE,
            "/v1/marketplace/listings/{listing_id}/subscriptions/{project_id}",
            "/v1/marketplace/listings/<subscribed_listing>/subscriptions/<project_b>",
            Expect::Roles("401 403 403 403 2xx 2xx"),
        )
        .consumes(&["/v1/marketplace/listings/<subscribed_listing>/subscriptions"]),
        // The recycle bin.
        Row::new(M::GET, "/v1/recycle-bin/images", "/v1/recycle-bin/images", SIGNED_IN),
        Row::new(M::GET, "/v1/recycle-bin/images/{image_id}", "/v1/recycle-bin/images/<image>", Expect::Images(&BIN_SHOW)),
        Row::new(M::DELETE, "/v1/recycle-bin/images/{image_id}", "/v1/recycle-bin/images/<image>", Expect::Images(&BIN_CHANGE))
            .consumes(&[]),
        Row::new(
            M::POST,
            "/v1/recycle-bin/images/{image_id}/restore",
            "/v1/recycle-bin/images/<image>/restore",
            Expect::Images(&BIN_CHANGE),
        )
        .consumes(&[]),
    ]
}

/// Changing a listing of project A: its writers and admins; others see it (it is on shelf) but may not.
const LISTING_WRITES: Expect = Expect::Roles("401 403 2xx 2xx 403 2xx");
