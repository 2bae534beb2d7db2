//! Image deprecation (`deprecate_at`) through the Glance API (`/v2/images`) and the IMS API
//! (`/v2/cloudimages`), seen by three projects: the owner, a member the image is shared with, and the admin.

use chrono::{Duration, SecondsFormat, Utc};
use ims_client::{Client, CreateImage, ListParams, MemberStatus, PatchOp, Role};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, raw_image, status, TestServer};

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn ids(client: &Client, params: &ListParams) -> Vec<String> {
    let mut ids: Vec<String> = client.list_all_images(params).await.unwrap().into_iter().map(|i| i.id).collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn deprecated() -> ListParams {
    ListParams { deprecated: Some(true), ..Default::default() }
}

#[tokio::test]
async fn deprecated_images_leave_default_lists_and_stay_usable() {
    let s = TestServer::start().await;
    let owner = s.tenant("owner", Role::Member).await;
    let guest = s.tenant("guest", Role::Member).await;
    let past = rfc3339(Utc::now() - Duration::days(1));
    let future = rfc3339(Utc::now() + Duration::days(10));

    let old = owner
        .client
        .create_image(&CreateImage { deprecate_at: Some(past.clone()), ..raw_image("old") })
        .await
        .unwrap();
    assert_eq!(old.deprecate_at.as_deref(), Some(past.as_str()));
    assert!(!old.properties.contains_key("deprecate_at"), "a record field, not a property");
    let data = pattern(200_000, 7);
    owner.client.upload_bytes(&old.id, data.clone()).await.unwrap();
    let current = owner.client.create_image(&raw_image("current")).await.unwrap();
    let soon = owner
        .client
        .create_image(&CreateImage { deprecate_at: Some(future.clone()), ..raw_image("soon") })
        .await
        .unwrap();
    owner.client.add_member(&old.id, &guest.project_id).await.unwrap();
    guest.client.update_member_status(&old.id, &guest.project_id, MemberStatus::Accepted).await.unwrap();

    // Owner: the deprecated image is left out of the default list and listed with deprecated=true.
    let mut visible = vec![current.id.clone(), soon.id.clone()];
    visible.sort();
    assert_eq!(ids(&owner.client, &ListParams::default()).await, visible);
    assert_eq!(ids(&owner.client, &deprecated()).await, vec![old.id.clone()]);
    let not_deprecated = ListParams { deprecated: Some(false), ..Default::default() };
    assert_eq!(ids(&owner.client, &not_deprecated).await, visible);

    // Member: the same rule for an accepted share; show and download keep working.
    assert!(ids(&guest.client, &ListParams::default()).await.is_empty());
    assert_eq!(ids(&guest.client, &deprecated()).await, vec![old.id.clone()]);
    assert_eq!(guest.client.get_image(&old.id).await.unwrap().deprecate_at.as_deref(), Some(past.as_str()));
    let got = guest.client.download(&old.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), data.as_slice());
    assert_eq!(
        status(guest.client.update_image(&old.id, &[PatchOp::remove("deprecate_at")]).await),
        403,
        "only the owner changes deprecation"
    );

    // Admin: sees every project's images, still not the deprecated one by default.
    let admin_default = ids(&s.admin, &ListParams::default()).await;
    assert!(admin_default.contains(&current.id) && !admin_default.contains(&old.id));
    assert_eq!(ids(&s.admin, &deprecated()).await, vec![old.id.clone()]);

    // Clearing deprecation brings the image back; setting a past time hides it again.
    let cleared = owner.client.update_image(&old.id, &[PatchOp::remove("deprecate_at")]).await.unwrap();
    assert_eq!(cleared.deprecate_at, None);
    assert!(ids(&guest.client, &ListParams::default()).await.contains(&old.id));
    assert!(ids(&owner.client, &deprecated()).await.is_empty());
    owner.client.update_image(&old.id, &[PatchOp::replace("deprecate_at", past.as_str())]).await.unwrap();
    assert!(ids(&guest.client, &ListParams::default()).await.is_empty());

    // A deprecated image can be deprecated later instead (the future image stays listed meanwhile).
    let moved = owner.client.update_image(&old.id, &[PatchOp::add("deprecate_at", future.as_str())]).await.unwrap();
    assert_eq!(moved.deprecate_at.as_deref(), Some(future.as_str()));
    assert_eq!(ids(&owner.client, &ListParams::default()).await, sorted(vec![old.id.clone(), current.id, soon.id]));
}

#[tokio::test]
async fn bad_deprecation_times_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    let owner = s.tenant("owner", Role::Member).await;
    let r = owner.client.raw(Method::POST, "/v2/images").json(&json!({"name": "x", "deprecate_at": "tomorrow"})).send();
    assert_eq!(r.await.unwrap().status(), 400);
    assert!(ids(&owner.client, &ListParams::default()).await.is_empty(), "no image was created");

    let img = owner.client.create_image(&raw_image("x")).await.unwrap();
    for bad in [json!("2030-13-01T00:00:00Z"), json!(1_900_000_000), json!("2030-01-01")] {
        let ops = [PatchOp::replace("name", "renamed"), PatchOp::replace("deprecate_at", bad.clone())];
        assert_eq!(status(owner.client.update_image(&img.id, &ops).await), 400, "{bad}");
    }
    let after = owner.client.get_image(&img.id).await.unwrap();
    assert_eq!((after.name.as_deref(), after.deprecate_at), (Some("x"), None));
    let r = owner.client.raw(Method::GET, "/v2/images?deprecated=maybe").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let schema = owner.client.schemas("image").await.unwrap();
    assert_eq!(schema["properties"]["deprecate_at"]["type"], json!(["null", "string"]));
}

/// `GET /v2/cloudimages` as `client` (bearer token), returning the ids listed.
async fn ims_list(client: &Client, query: &str) -> Vec<String> {
    let r = client.raw(Method::GET, &format!("/v2/cloudimages{query}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let mut ids: Vec<String> =
        body["images"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn ims_api_sets_and_filters_deprecation() {
    let s = TestServer::start().await;
    let owner = s.tenant("owner", Role::Member).await;
    let guest = s.tenant("guest", Role::Member).await;
    let img = owner.client.create_image(&raw_image("ims")).await.unwrap();
    owner.client.add_member(&img.id, &guest.project_id).await.unwrap();
    guest.client.update_member_status(&img.id, &guest.project_id, MemberStatus::Accepted).await.unwrap();
    assert_eq!(ims_list(&guest.client, "").await, vec![img.id.clone()]);

    // UpdateImage: a replace of deprecate_at sets it.
    let past = rfc3339(Utc::now() - Duration::hours(1));
    let r = owner
        .client
        .raw(Method::PATCH, &format!("/v2/cloudimages/{}", img.id))
        .json(&json!([{"op": "replace", "path": "/deprecate_at", "value": past}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["deprecate_at"], json!(past));

    for client in [&owner.client, &guest.client, &s.admin] {
        assert!(ims_list(client, "").await.is_empty());
        assert_eq!(ims_list(client, "?__deprecated=true").await, vec![img.id.clone()]);
    }
    let r = owner.client.raw(Method::GET, "/v2/cloudimages?__deprecated=perhaps").send().await.unwrap();
    assert_eq!(r.status(), 400);

    // A bad time is refused.
    let r = owner
        .client
        .raw(Method::PATCH, &format!("/v2/cloudimages/{}", img.id))
        .json(&json!([{"op": "replace", "path": "/deprecate_at", "value": "soon"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // remove clears it.
    let r = owner
        .client
        .raw(Method::PATCH, &format!("/v2/cloudimages/{}", img.id))
        .json(&json!([{"op": "remove", "path": "/deprecate_at"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ims_list(&guest.client, "").await, vec![img.id.clone()]);
}
