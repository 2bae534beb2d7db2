use ims_client::Role;
use reqwest::Method;

use crate::common::{pattern, raw_image, status, TestServer};

#[tokio::test]
async fn tags_are_added_once_and_removed() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("t")).await.unwrap();
    s.admin.add_tag(&img.id, "linux").await.unwrap();
    s.admin.add_tag(&img.id, "linux").await.unwrap();
    s.admin.add_tag(&img.id, "x86").await.unwrap();
    let mut tags = s.admin.get_image(&img.id).await.unwrap().tags;
    tags.sort();
    assert_eq!(tags, ["linux", "x86"]);
    s.admin.remove_tag(&img.id, "linux").await.unwrap();
    assert_eq!(status(s.admin.remove_tag(&img.id, "linux").await), 404);
    assert_eq!(s.admin.get_image(&img.id).await.unwrap().tags, ["x86"]);
    let long = "t".repeat(256);
    assert_eq!(status(s.admin.add_tag(&img.id, &long).await), 400);
}

#[tokio::test]
async fn at_most_128_tags() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("t")).await.unwrap();
    for i in 0..128 {
        s.admin.add_tag(&img.id, &format!("tag-{i}")).await.unwrap();
    }
    assert_eq!(status(s.admin.add_tag(&img.id, "one-too-many").await), 413);
}

#[tokio::test]
async fn deactivation_needs_an_active_image_and_the_owner_project_or_an_admin() {
    let s = TestServer::start().await;
    let t = s.tenant("o", Role::Member).await;
    let other = s.tenant("x", Role::Member).await;
    let img = t.client.create_image(&raw_image("d")).await.unwrap();
    assert_eq!(status(s.admin.deactivate(&img.id).await), 409, "a queued image cannot be deactivated");
    t.client.upload_bytes(&img.id, pattern(10, 1)).await.unwrap();
    // Glance's default rule: an admin, or a member of the image's project.
    t.client.deactivate(&img.id).await.unwrap();
    assert_eq!(t.client.get_image(&img.id).await.unwrap().status, "deactivated");
    assert_eq!(status(other.client.reactivate(&img.id).await), 404, "another project does not see it");
    t.client.reactivate(&img.id).await.unwrap();
    assert_eq!(t.client.get_image(&img.id).await.unwrap().status, "active");
    s.admin.deactivate(&img.id).await.unwrap();
    s.admin.deactivate(&img.id).await.unwrap();
    s.admin.reactivate(&img.id).await.unwrap();
    assert_eq!(t.client.get_image(&img.id).await.unwrap().status, "active");
    let r = s.raw(Method::GET, &format!("/v2/images/{}/actions/deactivate", img.id)).send().await.unwrap();
    assert_eq!(r.status(), 405);
}
