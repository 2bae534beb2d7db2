//! `/v1/capsules`: capsule images across an admin (public base image), an owner project and a
//! member project: creation checks every part, capsules list as images in both APIs, sharing lets a
//! member resolve a capsule whose parts it cannot see itself, and a forged or broken capsule does
//! not resolve.

use std::collections::BTreeMap;

use ims_client::{Client, CreateCapsule, CreateImage, ListParams, Role};

use crate::common::{raw_image, status, TestServer};

/// An active image with `data`; a data disk image when `data_disk`.
async fn active_image(client: &Client, name: &str, data_disk: bool, public: bool) -> String {
    let mut request: CreateImage = raw_image(name);
    if data_disk {
        request.properties.insert("virtual_env_type".into(), "DataImage".into());
    }
    if public {
        request.visibility = Some("public".into());
    }
    request.properties.insert("__os_type".into(), "Linux".into());
    let image = client.create_image(&request).await.unwrap();
    client.upload_bytes(&image.id, format!("{name} disk").into_bytes()).await.unwrap();
    image.id
}

fn capsule(name: &str, base: &str, apps: &[&str]) -> CreateCapsule {
    CreateCapsule {
        name: name.into(),
        base_image_id: base.into(),
        app_image_ids: apps.iter().map(|s| s.to_string()).collect(),
        user_data: b"#cloud-config\nruncmd: [[sh, -c, 'echo hi']]\n\x00\xff".to_vec(),
        properties: BTreeMap::from([("app_version".into(), "1.2.3".into())]),
        visibility: None,
    }
}

#[tokio::test]
async fn capsules_are_created_listed_shared_and_resolved() {
    let s = TestServer::start().await;
    let owner = s.tenant("caps-owner", Role::Member).await;
    let member = s.tenant("caps-member", Role::Member).await;
    let base = active_image(&s.admin, "ubuntu", false, true).await;
    let app = active_image(&owner.client, "app-disk", true, false).await;
    let own_system = active_image(&owner.client, "own-system", false, false).await;
    let others_data = active_image(&member.client, "member-data", true, false).await;

    let created = owner.client.create_capsule(&capsule("web", &base, &[&app])).await.unwrap();
    let id = created.image.id.clone();
    assert_eq!(created.image.status, "active");
    assert_eq!(created.image.property("__image_kind"), Some("capsule"));
    assert_eq!(created.image.property("__imagetype"), Some("private"));
    assert_eq!(created.image.property("__os_type"), Some("Linux"), "inherited from the base image");
    assert_eq!(created.image.property("app_version"), Some("1.2.3"));
    assert_eq!(created.image.property("base_image_id"), Some(base.as_str()));
    assert_eq!(created.base_image.id, base);
    assert_eq!(created.app_images.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), [app.clone()]);
    assert_eq!(created.user_data, capsule("", "", &[]).user_data);

    let shown = owner.client.get_capsule(&id).await.unwrap();
    assert_eq!(shown, created);
    // A capsule is an image in both APIs.
    let glance = owner.client.list_all_images(&ListParams::default()).await.unwrap();
    assert!(glance.iter().any(|i| i.id == id));
    let ims: serde_json::Value =
        owner.client.raw(reqwest::Method::GET, "/v2/cloudimages").send().await.unwrap().json().await.unwrap();
    let listed = ims["images"].as_array().unwrap().iter().find(|i| i["id"] == id.as_str()).cloned().unwrap();
    assert_eq!(listed["__imagetype"], "private");
    let page = owner.client.list_capsules(None, None).await.unwrap();
    assert_eq!(page.capsules.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), [id.clone()]);
    assert_eq!(page.capsules[0].properties["app_image_ids"], serde_json::json!([app]));

    // Refusals change nothing.
    for (bad, code) in [
        (capsule("x", &app, &[&app]), 400),            // base referenced twice / is a data disk
        (capsule("x", &own_system, &[&own_system]), 400),
        (capsule("x", &app, &[&own_system]), 400),     // base is a data disk, app a system disk
        (capsule("x", &base, &[&own_system]), 400),    // app is not a data disk
        (capsule("x", &base, &[&others_data]), 400),   // not visible to the owner
        (capsule("x", &base, &[]), 400),
        (capsule("x", &base, &[&id]), 400),            // a capsule is not a data disk
        (capsule("", &base, &[&app]), 400),
    ] {
        assert_eq!(status(owner.client.create_capsule(&bad).await), code, "{bad:?}");
    }
    let mut big = capsule("x", &base, &[&app]);
    big.user_data = vec![b'a'; 65_536];
    assert_eq!(status(owner.client.create_capsule(&big).await), 413);
    let mut reserved = capsule("x", &base, &[&app]);
    reserved.properties.insert("__capsule_base_image".into(), own_system.clone());
    assert_eq!(status(owner.client.create_capsule(&reserved).await), 403);
    let reader = s.tenant("caps-reader", Role::Reader).await;
    assert_eq!(status(reader.client.create_capsule(&capsule("x", &base, &[])).await), 403);
    assert_eq!(owner.client.list_capsules(None, None).await.unwrap().capsules.len(), 1);
    let images = owner.client.list_all_images(&ListParams::default()).await.unwrap();
    assert_eq!(images.iter().filter(|i| i.name.as_deref() == Some("x")).count(), 0);

    // Another project sees nothing until the capsule is shared with it; then it resolves the
    // capsule, parts included, though it cannot see the owner's application image itself.
    assert_eq!(status(member.client.get_capsule(&id).await), 404);
    owner.client.add_member(&id, &member.project_id).await.unwrap();
    let seen = member.client.get_capsule(&id).await.unwrap();
    assert_eq!(seen.app_images[0].id, app);
    assert_eq!(seen.user_data, created.user_data);
    assert_eq!(seen.image.property("__imagetype"), Some("shared"));
    assert_eq!(status(member.client.get_image(&app).await), 404);
    member
        .client
        .update_member_status(&id, &member.project_id, ims_client::MemberStatus::Accepted)
        .await
        .unwrap();
    let listed = member.client.list_capsules(None, None).await.unwrap().capsules;
    assert_eq!(listed.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), [id.clone()]);
    assert_eq!(status(member.client.delete_capsule(&id).await), 403, "members do not delete");

    // A record that merely claims to be a capsule cannot reach images its owner cannot see.
    let mut forged = raw_image("forged");
    forged.properties.insert("__image_kind".into(), "capsule".into());
    forged.properties.insert("__capsule_base_image".into(), own_system.clone());
    forged.properties.insert("__capsule_app_images".into(), app.clone());
    let forged = member.client.create_image(&forged).await.unwrap();
    assert_eq!(status(member.client.get_capsule(&forged.id).await), 409);
    // A plain image is not a capsule.
    assert_eq!(status(owner.client.get_capsule(&app).await), 404);
    assert_eq!(status(owner.client.delete_capsule(&app).await), 404);
    assert_eq!(status(owner.client.get_capsule("not-an-id").await), 404);

    // A deleted part breaks the capsule (deleting the part is not refused); deleting the capsule
    // deletes only its record.
    let app2 = active_image(&owner.client, "app-disk-2", true, false).await;
    let second = owner.client.create_capsule(&capsule("web2", &base, &[&app2])).await.unwrap();
    owner.client.delete_image(&app2).await.unwrap();
    assert_eq!(status(owner.client.get_capsule(&second.image.id).await), 409);
    owner.client.delete_capsule(&id).await.unwrap();
    assert_eq!(status(owner.client.get_capsule(&id).await), 404);
    assert_eq!(owner.client.get_image(&app).await.unwrap().status, "active");
}
