//! `/identity/v1/projects/{project}/quotas`: admins set a project's private image quota; creates obey it.

use ims_client::Role;

use crate::common::{raw_image, status, TestServer};

#[tokio::test]
async fn an_admin_sets_and_resets_a_project_quota_and_creates_obey_it() {
    let s = TestServer::start().await;
    let t = s.tenant("quota-a", Role::Member).await;

    let q = s.admin.project_quotas("quota-a").await.unwrap().private_images;
    assert_eq!((q.used, q.limit, q.default), (0, 50, true));

    let q = s.admin.set_private_image_quota(&t.project_id, Some(2)).await.unwrap().private_images;
    assert_eq!((q.used, q.limit, q.default), (0, 2, false));
    t.client.create_image(&raw_image("one")).await.unwrap();
    t.client.create_image(&raw_image("two")).await.unwrap();
    assert_eq!(status(t.client.create_image(&raw_image("three")).await), 413, "the third image is over the quota");
    let q = s.admin.project_quotas(&t.project_id).await.unwrap().private_images;
    assert_eq!((q.used, q.limit), (2, 2), "the refused create changed nothing");

    let q = s.admin.set_private_image_quota("quota-a", Some(1)).await.unwrap().private_images;
    assert_eq!((q.used, q.limit), (2, 1), "a limit below the usage keeps the existing images");
    assert_eq!(status(t.client.create_image(&raw_image("three")).await), 413);

    let q = s.admin.set_private_image_quota("quota-a", None).await.unwrap().private_images;
    assert_eq!((q.limit, q.default), (50, true));
    t.client.create_image(&raw_image("three")).await.unwrap();
}

#[tokio::test]
async fn quota_changes_are_admin_only_and_validated() {
    let s = TestServer::start().await;
    let t = s.tenant("quota-b", Role::Member).await;
    assert_eq!(status(t.client.set_private_image_quota(&t.project_id, Some(500)).await), 403);
    assert_eq!(status(t.client.project_quotas(&t.project_id).await), 403);
    assert_eq!(status(s.admin.set_private_image_quota("no-such-project", Some(5)).await), 404);
    assert_eq!(status(s.admin.set_private_image_quota("quota-b", Some(10_001)).await), 400);

    let path = format!("/identity/v1/projects/{}/quotas", t.project_id);
    for body in [r#"{"quotas": {"private_images": -1}}"#, r#"{"quotas": {"snapshots": 3}}"#, r#"{"quotas": 3}"#] {
        let r = s.raw(reqwest::Method::PUT, &path).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    let q = s.admin.project_quotas(&t.project_id).await.unwrap().private_images;
    assert_eq!((q.limit, q.default), (50, true), "refused changes changed nothing");
}
