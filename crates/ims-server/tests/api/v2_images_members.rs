use ims_client::{CreateImage, ListParams, MemberStatus, PatchOp, Role};
use reqwest::Method;
use serde_json::json;

use crate::common::{pattern, raw_image, status, TestServer};

#[tokio::test]
async fn a_share_is_pending_until_the_member_accepts_it() {
    let s = TestServer::start().await;
    let owner = s.tenant("owner", Role::Member).await;
    let guest = s.tenant("guest", Role::Member).await;
    let img = owner.client.create_image(&raw_image("shared-disk")).await.unwrap();
    let data = pattern(300_000, 1);
    owner.client.upload_bytes(&img.id, data.clone()).await.unwrap();

    assert_eq!(status(guest.client.get_image(&img.id).await), 404, "not shared yet");
    let m = owner.client.add_member(&img.id, &guest.project_id).await.unwrap();
    assert_eq!((m.status.as_str(), m.member_id.as_str()), ("pending", guest.project_id.as_str()));
    assert_eq!(status(owner.client.add_member(&img.id, &guest.project_id).await), 409);

    // Pending: the member can see it by id and among pending shares, not in its default list.
    guest.client.get_image(&img.id).await.unwrap();
    let default = guest.client.list_all_images(&ListParams::default()).await.unwrap();
    assert!(default.is_empty());
    let pending = ListParams { member_status: Some("pending".into()), visibility: Some("shared".into()), ..Default::default() };
    assert_eq!(guest.client.list_all_images(&pending).await.unwrap().len(), 1);

    assert_eq!(status(owner.client.update_member_status(&img.id, &guest.project_id, MemberStatus::Accepted).await), 403,
        "only the member answers");
    let m = guest.client.update_member_status(&img.id, &guest.project_id, MemberStatus::Accepted).await.unwrap();
    assert_eq!(m.status, "accepted");
    let default = guest.client.list_all_images(&ListParams::default()).await.unwrap();
    assert_eq!(default.len(), 1);
    let got = guest.client.download(&img.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());

    // The member sees only its own membership; it cannot change the image or its members.
    assert_eq!(guest.client.list_members(&img.id).await.unwrap().len(), 1);
    assert_eq!(status(guest.client.delete_image(&img.id).await), 403);
    assert_eq!(status(guest.client.update_image(&img.id, &[PatchOp::replace("name", "x")]).await), 403);
    assert_eq!(status(guest.client.add_member(&img.id, "someone-else").await), 403);

    owner.client.remove_member(&img.id, &guest.project_id).await.unwrap();
    assert_eq!(status(guest.client.get_image(&img.id).await), 404);
}

#[tokio::test]
async fn members_only_on_shared_images_and_bodies_are_checked() {
    let s = TestServer::start().await;
    let owner = s.tenant("o", Role::Member).await;
    let private = owner.client.create_image(&CreateImage { visibility: Some("private".into()), ..raw_image("p") }).await.unwrap();
    assert_eq!(status(owner.client.add_member(&private.id, "x").await), 403);
    let shared = owner.client.create_image(&raw_image("s")).await.unwrap();
    let path = format!("/v2/images/{}/members", shared.id);
    let r = owner.client.raw(Method::POST, &path).json(&json!({"nope": 1})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = owner.client.raw(Method::POST, &path).json(&json!({"member": "p2"})).send().await.unwrap();
    assert_eq!(r.status(), 200, "Glance answers 200 to a new member");
    let r = owner
        .client
        .raw(Method::PUT, &format!("{path}/p2"))
        .json(&json!({"status": "maybe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(status(owner.client.get_member(&shared.id, "nobody").await), 404);
    assert_eq!(status(owner.client.remove_member(&shared.id, "nobody").await), 404);
}

#[tokio::test]
async fn at_most_128_members() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("popular")).await.unwrap();
    for i in 0..128 {
        s.admin.add_member(&img.id, &format!("project-{i}")).await.unwrap();
    }
    assert_eq!(status(s.admin.add_member(&img.id, "one-too-many").await), 413);
}

#[tokio::test]
async fn a_rejected_share_stays_out_of_lists() {
    let s = TestServer::start().await;
    let owner = s.tenant("o", Role::Member).await;
    let guest = s.tenant("g", Role::Member).await;
    let img = owner.client.create_image(&raw_image("x")).await.unwrap();
    owner.client.add_member(&img.id, "g").await.unwrap();
    guest.client.update_member_status(&img.id, &guest.project_id, MemberStatus::Rejected).await.unwrap();
    assert!(guest.client.list_all_images(&ListParams::default()).await.unwrap().is_empty());
    let rejected = ListParams { member_status: Some("rejected".into()), ..Default::default() };
    assert_eq!(guest.client.list_all_images(&rejected).await.unwrap().len(), 1);
}
