use ims_client::{CreateImage, PatchOp, Role};
use reqwest::Method;
use serde_json::json;

use crate::common::{raw_image, status, TestServer};

#[tokio::test]
async fn create_returns_the_glance_record_with_defaults_and_location() {
    let s = TestServer::start().await;
    let r = s
        .raw(Method::POST, "/v2/images")
        .json(&json!({"name": "web", "disk_format": "qcow2", "container_format": "bare", "os_distro": "debian"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(r.headers().contains_key("openstack-image-import-methods"));
    let body: serde_json::Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/v2/images/{id}"));
    for key in ["checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size"] {
        assert!(body[key].is_null() && body.get(key).is_some(), "{key} present and null");
    }
    assert_eq!(body["status"], "queued");
    assert_eq!(body["visibility"], "shared", "Glance's default visibility");
    assert_eq!(body["protected"], false);
    assert_eq!(body["os_distro"], "debian");
    assert_eq!(body["self"], format!("/v2/images/{id}"));
    assert_eq!(body["file"], format!("/v2/images/{id}/file"));
    assert_eq!(body["schema"], "/v2/schemas/image");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    let shown = s.admin.get_image(id).await.unwrap();
    assert_eq!(shown.name.as_deref(), Some("web"));
}

#[tokio::test]
async fn client_supplied_ids_are_kept_and_never_reused() {
    let s = TestServer::start().await;
    let id = "0b7a2b4c-71a0-4c64-9fe6-5d1c4d8a1f00";
    let img = s.admin.create_image(&CreateImage { id: Some(id.into()), ..raw_image("a") }).await.unwrap();
    assert_eq!(img.id, id);
    assert_eq!(status(s.admin.create_image(&CreateImage { id: Some(id.into()), ..raw_image("b") }).await), 409);
    s.admin.delete_image(id).await.unwrap();
    assert_eq!(status(s.admin.create_image(&CreateImage { id: Some(id.into()), ..raw_image("c") }).await), 409);
}

#[tokio::test]
async fn bad_create_bodies_get_glance_statuses_and_store_nothing() {
    let s = TestServer::start().await;
    let cases = [
        (json!({"name": "x", "disk_format": "bogus"}), 400),
        (json!({"name": "x", "container_format": "bogus"}), 400),
        (json!({"name": "n".repeat(256)}), 400),
        (json!({"id": "not-a-uuid"}), 400),
        (json!({"status": "active"}), 403),
        (json!({"size": 5}), 403),
        (json!({"checksum": "x"}), 403),
        (json!({"os_glance_import_method": "x"}), 403),
        (json!({"protected": "yes"}), 400),
        (json!({"min_ram": -1}), 400),
        (json!({"custom": 5}), 400),
        (json!({"visibility": "public"}), 201),
    ];
    for (body, expected) in cases {
        let r = s.raw(Method::POST, "/v2/images").json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), expected, "{body}");
    }
    let r = s.raw(Method::POST, "/v2/images").header("content-type", "application/json").body("{nope").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s.raw(Method::POST, "/v2/images").header("content-type", "text/plain").body("{}").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let all = s.admin.list_all_images(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 1, "only the one valid request created an image");
}

#[tokio::test]
async fn public_images_are_for_admins_and_properties_are_limited() {
    let s = TestServer::start().await;
    let t = s.tenant("p", Role::Member).await;
    let body = CreateImage { visibility: Some("public".into()), ..raw_image("pub") };
    assert_eq!(status(t.client.create_image(&body).await), 403);
    let mut many = raw_image("many");
    for i in 0..129 {
        many.properties.insert(format!("k{i}"), "v".into());
    }
    assert_eq!(status(t.client.create_image(&many).await), 413);
}

#[tokio::test]
async fn readers_cannot_create_or_change_images() {
    let s = TestServer::start().await;
    let reader = s.tenant("r", Role::Reader).await;
    assert_eq!(status(reader.client.create_image(&raw_image("x")).await), 403);
}

#[tokio::test]
async fn patch_in_both_media_types() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("a")).await.unwrap();
    let updated = s
        .admin
        .update_image(&img.id, &[PatchOp::replace("name", "b"), PatchOp::add("os_distro", "debian"), PatchOp::replace("min_ram", 512)])
        .await
        .unwrap();
    assert_eq!(updated.name.as_deref(), Some("b"));
    assert_eq!(updated.property("os_distro"), Some("debian"));
    assert_eq!(updated.min_ram, 512);

    let r = s
        .raw(Method::PATCH, &format!("/v2/images/{}", img.id))
        .header("content-type", "application/openstack-images-v2.0-json-patch")
        .body(json!([{"replace": "/name", "value": "c"}, {"remove": "/os_distro"}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let shown = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(shown.name.as_deref(), Some("c"));
    assert_eq!(shown.property("os_distro"), None);

    let r = s
        .raw(Method::PATCH, &format!("/v2/images/{}", img.id))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.headers()["accept-patch"].to_str().unwrap().contains("openstack-images-v2.1-json-patch"));
}

#[tokio::test]
async fn patch_refusals_change_nothing() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("a")).await.unwrap();
    let cases: Vec<(Vec<PatchOp>, u16)> = vec![
        (vec![PatchOp::replace("status", "active")], 403),
        (vec![PatchOp::replace("size", 5)], 403),
        (vec![PatchOp::add("os_glance_x", "y")], 403),
        (vec![PatchOp::remove("missing")], 409),
        (vec![PatchOp::replace("missing", "v")], 409),
        (vec![PatchOp::replace("protected", "yes")], 400),
        (vec![PatchOp::replace("name", "n".repeat(256))], 400),
        (vec![PatchOp::replace("name", "changed"), PatchOp::replace("checksum", "x")], 403),
    ];
    for (ops, expected) in cases {
        assert_eq!(status(s.admin.update_image(&img.id, &ops).await), expected, "{ops:?}");
    }
    let shown = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(shown.name.as_deref(), Some("a"), "a refused patch applies no part of itself");
}

#[tokio::test]
async fn protected_images_cannot_be_deleted_and_deleted_ones_are_gone() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&CreateImage { protected: Some(true), ..raw_image("p") }).await.unwrap();
    assert_eq!(status(s.admin.delete_image(&img.id).await), 403);
    s.admin.update_image(&img.id, &[PatchOp::replace("protected", false)]).await.unwrap();
    s.admin.delete_image(&img.id).await.unwrap();
    assert_eq!(status(s.admin.get_image(&img.id).await), 404);
    assert_eq!(status(s.admin.delete_image(&img.id).await), 404);
}

#[tokio::test]
async fn other_projects_see_neither_private_nor_unshared_images() {
    let s = TestServer::start().await;
    let a = s.tenant("a", Role::Member).await;
    let b = s.tenant("b", Role::Member).await;
    let private = a.client.create_image(&CreateImage { visibility: Some("private".into()), ..raw_image("p") }).await.unwrap();
    let community = a.client.create_image(&CreateImage { visibility: Some("community".into()), ..raw_image("c") }).await.unwrap();
    assert_eq!(status(b.client.get_image(&private.id).await), 404);
    assert_eq!(status(b.client.delete_image(&private.id).await), 404);
    assert_eq!(status(b.client.update_image(&private.id, &[PatchOp::replace("name", "x")]).await), 404);
    assert_eq!(b.client.get_image(&community.id).await.unwrap().id, community.id);
    assert_eq!(status(b.client.delete_image(&community.id).await), 403, "visible but not theirs");
    assert_eq!(status(b.client.get_image("not-a-uuid").await), 404);
    // Admins see everything.
    s.admin.get_image(&private.id).await.unwrap();
}
