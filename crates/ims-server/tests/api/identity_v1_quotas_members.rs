//! The `members_per_image` quota: set by an admin through `/identity/v1/projects/{project}/quotas`,
//! enforced on Glance member adds (atomically, under concurrency) and on the IMS batch share.

use ims_client::{CreateImage, Role};
use serde_json::json;

use crate::common::{raw_image, status, TestServer};

fn shared_image(name: &str) -> CreateImage {
    CreateImage { visibility: Some("shared".into()), ..raw_image(name) }
}

#[tokio::test]
async fn the_members_per_image_quota_limits_glance_and_ims_shares() {
    let s = TestServer::start().await;
    let owner = s.tenant("mq-owner", Role::Member).await;
    let other = s.tenant("mq-other", Role::Member).await;
    let mut members = Vec::new();
    for i in 0..4 {
        members.push(s.admin.create_project(&format!("mq-member-{i}")).await.unwrap().id);
    }

    let q = s.admin.project_quotas(&owner.project_id).await.unwrap();
    assert_eq!((q.members_per_image.limit, q.members_per_image.default), (128, true));
    let q = s.admin.set_project_quotas(&owner.project_id, None, Some(Some(2))).await.unwrap();
    assert_eq!((q.members_per_image.limit, q.members_per_image.default), (2, false));
    assert_eq!(q.private_images.limit, 50, "the other quota is unchanged");

    let img = owner.client.create_image(&shared_image("limited")).await.unwrap();
    owner.client.add_member(&img.id, &members[0]).await.unwrap();
    owner.client.add_member(&img.id, &members[1]).await.unwrap();
    assert_eq!(status(owner.client.add_member(&img.id, &members[2]).await), 413);
    assert_eq!(owner.client.list_members(&img.id).await.unwrap().len(), 2, "the refused add changed nothing");

    // The IMS batch share is refused before its job starts.
    let batch = json!({"images": [img.id], "projects": [members[2], members[3]]});
    let r = owner.client.raw(reqwest::Method::POST, "/v1/cloudimages/members").json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error_msg"].as_str().unwrap().contains("at most 2"), "{body}");

    // Another project keeps the default; a reset returns the owner to it.
    let free = other.client.create_image(&shared_image("free")).await.unwrap();
    for m in &members[..3] {
        other.client.add_member(&free.id, m).await.unwrap();
    }
    s.admin.set_project_quotas("mq-owner", None, Some(None)).await.unwrap();
    owner.client.add_member(&img.id, &members[2]).await.unwrap();
}

#[tokio::test]
async fn concurrent_member_adds_never_pass_the_quota() {
    let s = TestServer::start().await;
    let owner = s.tenant("mq-race", Role::Member).await;
    s.admin.set_project_quotas(&owner.project_id, None, Some(Some(5))).await.unwrap();
    let img = owner.client.create_image(&shared_image("popular")).await.unwrap();
    let mut projects = Vec::new();
    for i in 0..12 {
        projects.push(s.admin.create_project(&format!("mq-race-{i}")).await.unwrap().id);
    }
    let tasks: Vec<_> = projects
        .into_iter()
        .map(|p| {
            let (client, id) = (owner.client.clone(), img.id.clone());
            tokio::spawn(async move { client.add_member(&id, &p).await })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => added += 1,
            Err(e) => assert_eq!(e.status(), Some(413), "{e}"),
        }
    }
    assert_eq!(added, 5);
    assert_eq!(owner.client.list_members(&img.id).await.unwrap().len(), 5);
}

#[tokio::test]
async fn quota_updates_are_checked_before_anything_is_stored() {
    let s = TestServer::start().await;
    let t = s.tenant("mq-checked", Role::Member).await;
    let path = format!("/identity/v1/projects/{}/quotas", t.project_id);
    for body in [
        r#"{"quotas": {"private_images": 5, "members_per_image": 1001}}"#,
        r#"{"quotas": {"private_images": 5, "members_per_image": "3"}}"#,
        r#"{"quotas": {"private_images": 5, "members": 3}}"#,
    ] {
        let r = s.raw(reqwest::Method::PUT, &path).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    let q = s.admin.project_quotas(&t.project_id).await.unwrap();
    assert_eq!((q.private_images.limit, q.members_per_image.limit), (50, 128), "nothing was stored");
    assert_eq!(status(t.client.set_project_quotas(&t.project_id, None, Some(Some(3))).await), 403);
    let q = s.admin.set_project_quotas(&t.project_id, Some(Some(5)), Some(Some(1000))).await.unwrap();
    assert_eq!((q.private_images.limit, q.members_per_image.limit), (5, 1000));
}
