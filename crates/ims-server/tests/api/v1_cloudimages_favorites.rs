//! `/v1/cloudimages/favorites`: each user's frequently used images, across an admin, an owner project
//! and a member project; images the user cannot see (any more) drop out of the list.

use ims_client::{MemberStatus, PatchOp, Role};

use crate::common::{raw_image, status, TestServer};

fn ids(favorites: &[ims_client::FavoriteImage]) -> Vec<String> {
    favorites.iter().map(|f| f.image_id.clone()).collect()
}

#[tokio::test]
async fn favorites_follow_what_the_user_can_see() {
    let s = TestServer::start().await;
    let owner = s.tenant("fav-owner", Role::Member).await;
    let member = s.tenant("fav-member", Role::Member).await;

    let mut public = raw_image("gold");
    public.visibility = Some("public".into());
    let gold = s.admin.create_image(&public).await.unwrap();
    let private = owner.client.create_image(&raw_image("own")).await.unwrap();
    let mut shared_image = raw_image("shared");
    shared_image.visibility = Some("shared".into());
    let shared = owner.client.create_image(&shared_image).await.unwrap();
    owner.client.add_member(&shared.id, &member.project_id).await.unwrap();

    assert!(member.client.favorites().await.unwrap().is_empty());
    assert_eq!(member.client.add_favorite(&gold.id).await.unwrap().id, gold.id);
    let added = member.client.add_favorite(&shared.id).await.unwrap();
    assert_eq!(added.property("__imagetype"), Some("shared"));
    assert_eq!(status(member.client.add_favorite(&private.id).await), 404, "another project's private image");
    assert_eq!(status(member.client.add_favorite("1b2c3d4e-0000-4000-8000-000000000000").await), 404);
    assert_eq!(status(member.client.add_favorite("not-an-id").await), 404);

    let listed = member.client.favorites().await.unwrap();
    assert_eq!(ids(&listed), [shared.id.clone(), gold.id.clone()], "most recently added first");
    assert_eq!(listed[1].image.property("__imagetype"), Some("gold"));
    assert!(listed.iter().all(|f| f.added_at.ends_with('Z')));
    member.client.add_favorite(&gold.id).await.unwrap();
    assert_eq!(ids(&member.client.favorites().await.unwrap()), [shared.id.clone(), gold.id.clone()], "adding twice changes nothing");
    assert!(owner.client.favorites().await.unwrap().is_empty(), "lists are per user");

    // The share is rejected, then withdrawn: the member no longer sees the image, so it drops out.
    member.client.update_member_status(&shared.id, &member.project_id, MemberStatus::Rejected).await.unwrap();
    owner.client.remove_member(&shared.id, &member.project_id).await.unwrap();
    assert_eq!(ids(&member.client.favorites().await.unwrap()), [gold.id.clone()]);
    // Shared again: it comes back, at its first place.
    owner.client.add_member(&shared.id, &member.project_id).await.unwrap();
    assert_eq!(ids(&member.client.favorites().await.unwrap()), [shared.id.clone(), gold.id.clone()]);

    // Made private by its owner, it drops out again; a deleted image is gone for good.
    owner.client.update_image(&shared.id, &[PatchOp::replace("visibility", "private")]).await.unwrap();
    s.admin.delete_image(&gold.id).await.unwrap();
    assert!(member.client.favorites().await.unwrap().is_empty());

    // A hidden entry can still be removed; removing it twice is a 404.
    member.client.remove_favorite(&shared.id).await.unwrap();
    assert_eq!(status(member.client.remove_favorite(&shared.id).await), 404);
    owner.client.update_image(&shared.id, &[PatchOp::replace("visibility", "shared")]).await.unwrap();
    assert!(member.client.get_image(&shared.id).await.is_ok(), "visible again");
    assert!(member.client.favorites().await.unwrap().is_empty(), "a removed entry stays removed");
}

#[tokio::test]
async fn readers_keep_favorites_and_bad_requests_change_nothing() {
    let s = TestServer::start().await;
    let reader = s.tenant("fav-reader", Role::Reader).await;
    let mut public = raw_image("base");
    public.visibility = Some("public".into());
    let base = s.admin.create_image(&public).await.unwrap();
    reader.client.add_favorite(&base.id).await.unwrap();
    assert_eq!(ids(&reader.client.favorites().await.unwrap()), [base.id.clone()]);
    s.admin.add_favorite(&base.id).await.unwrap();
    assert_eq!(ids(&s.admin.favorites().await.unwrap()), [base.id.clone()]);

    for body in ["", "{}", r#"{"image_id": 7}"#, "[1]", "{"] {
        let r = s
            .raw(reqwest::Method::POST, "/v1/cloudimages/favorites")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body:?}");
        let err: serde_json::Value = r.json().await.unwrap();
        assert!(err["error_msg"].as_str().is_some(), "IMS error form: {err}");
    }
    let r = reqwest::get(format!("{}/v1/cloudimages/favorites", s.url)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(ids(&s.admin.favorites().await.unwrap()), [base.id.clone()], "refused requests changed nothing");
}

#[tokio::test]
async fn a_user_keeps_at_most_one_hundred_favorites() {
    let s = TestServer::start().await;
    let t = s.tenant("fav-many", Role::Member).await;
    let mut images = Vec::new();
    for i in 0..=ims_core::favorites::MAX_FAVORITES_PER_USER {
        images.push(s.admin.create_image(&raw_image(&format!("i{i}"))).await.unwrap().id);
    }
    for id in &images[..100] {
        s.admin.add_favorite(id).await.unwrap();
    }
    assert_eq!(status(s.admin.add_favorite(&images[100]).await), 413);
    s.admin.add_favorite(&images[0]).await.unwrap();
    assert_eq!(s.admin.favorites().await.unwrap().len(), 100);
    assert!(t.client.favorites().await.unwrap().is_empty());
}
