//! `/v1/cloudimages/share_auto_accept`: a member project accepts shares from named projects without
//! answering them, through the Glance and the IMS share paths; others still wait for an answer.

use ims_client::{CreateImage, ListParams, Role};
use serde_json::json;

use crate::common::{raw_image, status, TestServer};

fn shared_image(name: &str) -> CreateImage {
    CreateImage { visibility: Some("shared".into()), ..raw_image(name) }
}

#[tokio::test]
async fn shares_from_trusted_projects_start_accepted() {
    let s = TestServer::start().await;
    let owner = s.tenant("aa-owner", Role::Member).await;
    let stranger = s.tenant("aa-stranger", Role::Member).await;
    let member = s.tenant("aa-member", Role::Member).await;

    assert!(member.client.auto_accept_sources().await.unwrap().is_empty());
    assert_eq!(member.client.add_auto_accept_source("aa-owner").await.unwrap(), owner.project_id, "by name");
    member.client.add_auto_accept_source(&owner.project_id).await.unwrap();
    assert_eq!(member.client.auto_accept_sources().await.unwrap(), [owner.project_id.clone()]);

    // Glance share from the trusted owner: accepted at once, so it is in the member's default list.
    let trusted = owner.client.create_image(&shared_image("trusted")).await.unwrap();
    let m = owner.client.add_member(&trusted.id, &member.project_id).await.unwrap();
    assert_eq!(m.status, "accepted");
    let listed = member.client.list_all_images(&ListParams::default()).await.unwrap();
    assert!(listed.iter().any(|i| i.id == trusted.id));

    // IMS batch share from the owner: accepted too.
    let batch_image = owner.client.create_image(&raw_image("batch")).await.unwrap();
    let batch = json!({"images": [batch_image.id], "projects": [member.project_id]});
    let r = owner.client.raw(reqwest::Method::POST, "/v1/cloudimages/members").json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let job: serde_json::Value = r.json().await.unwrap();
    let every = std::time::Duration::from_millis(50);
    let done = owner.client.wait_job(job["job_id"].as_str().unwrap(), every, std::time::Duration::from_secs(30), |_| {}).await.unwrap();
    assert!(done.is_final(), "{done:?}");
    assert_eq!(member.client.get_member(&batch_image.id, &member.project_id).await.unwrap().status, "accepted");

    // A share from a project not on the list waits for an answer.
    let other = stranger.client.create_image(&shared_image("other")).await.unwrap();
    assert_eq!(stranger.client.add_member(&other.id, &member.project_id).await.unwrap().status, "pending");

    // Taken off the list: later shares wait again; earlier ones stay accepted.
    member.client.remove_auto_accept_source("aa-owner").await.unwrap();
    assert_eq!(status(member.client.remove_auto_accept_source(&owner.project_id).await), 404);
    let later = owner.client.create_image(&shared_image("later")).await.unwrap();
    assert_eq!(owner.client.add_member(&later.id, &member.project_id).await.unwrap().status, "pending");
    assert_eq!(member.client.get_member(&trusted.id, &member.project_id).await.unwrap().status, "accepted");
}

#[tokio::test]
async fn auto_accept_changes_are_checked() {
    let s = TestServer::start().await;
    let reader = s.tenant("aa-reader", Role::Reader).await;
    let member = s.tenant("aa-self", Role::Member).await;
    assert_eq!(status(reader.client.add_auto_accept_source("admin").await), 403);
    assert_eq!(status(member.client.add_auto_accept_source("no-such-project").await), 404);
    assert_eq!(status(member.client.add_auto_accept_source("aa-self").await), 400);
    for body in ["", "{}", r#"{"project": ""}"#, r#"{"project": 3}"#] {
        let r = member
            .client
            .raw(reqwest::Method::POST, "/v1/cloudimages/share_auto_accept")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body:?}");
    }
    assert!(member.client.auto_accept_sources().await.unwrap().is_empty(), "nothing was stored");
    s.admin.add_auto_accept_source("aa-self").await.unwrap();
    assert_eq!(s.admin.auto_accept_sources().await.unwrap(), [member.project_id.clone()]);
}
