//! Input limits on every surface: each limit plus one gets a clear error in the surface's error form,
//! and the stored data is unchanged afterwards.

use ims_client::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{raw_image, TestServer, ADMIN_TOKEN};

/// Sends `body` as JSON with `content_type`, returning the status and the parsed body.
async fn send(s: &TestServer, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let r = s.raw(method, path).header("content-type", content_type).body(body).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn image_json(s: &TestServer, id: &str) -> Value {
    s.raw(Method::GET, &format!("/v2/images/{id}")).send().await.unwrap().json().await.unwrap()
}

/// A JSON object of `n` bytes or a little more: `{"name": ..., "pad_<i>": "xxx..."}`.
fn padded(name: &str, n: usize) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    object.insert("name".into(), json!(name));
    let mut i = 0;
    while serde_json::to_vec(&object).unwrap().len() < n {
        object.insert(format!("pad_{i}"), json!("x".repeat(200)));
        i += 1;
    }
    serde_json::to_vec(&object).unwrap()
}

#[tokio::test]
async fn buffered_bodies_over_the_limit_get_413_in_the_surface_form_and_change_nothing() {
    let s = TestServer::start_with(|settings| settings.max_request_body_bytes = 16 << 10).await;
    let image = s.admin.create_image(&raw_image("kept")).await.unwrap();
    let before = image_json(&s, &image.id).await;

    // Glance create: a body just under the limit is taken; one just over is refused and creates nothing.
    let (status, body) = send(&s, Method::POST, "/v2/images", "application/json", padded("fits", 15 << 10)).await;
    assert_eq!(status, 201, "{body}");
    let over = padded("too-big", (16 << 10) + 1);
    assert!(over.len() > 16 << 10);
    let (status, body) = send(&s, Method::POST, "/v2/images", "application/json", over.clone()).await;
    assert_eq!(status, 413);
    assert_eq!(body["code"], "413 Payload Too Large", "Glance's error form: {body}");
    assert!(body["message"].as_str().unwrap().contains("16384 bytes"), "{body}");
    let listed: Value = s.raw(Method::GET, "/v2/images?name=too-big").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["images"], json!([]));

    // A JSON patch over the limit leaves the image as it was.
    let patch: Vec<Value> = (0..100).map(|i| json!({"op": "add", "path": format!("/k{i}"), "value": "v".repeat(200)})).collect();
    let patch = serde_json::to_vec(&patch).unwrap();
    let patch_type = "application/openstack-images-v2.1-json-patch";
    let (status, _) = send(&s, Method::PATCH, &format!("/v2/images/{}", image.id), patch_type, patch).await;
    assert_eq!(status, 413);
    assert_eq!(image_json(&s, &image.id).await, before);

    // The IMS API answers in its own form.
    let (status, body) = send(&s, Method::PATCH, &format!("/v2/cloudimages/{}", image.id), "application/json", over.clone()).await;
    assert_eq!(status, 413);
    assert_eq!(body["error_code"], "IMG.0006", "the IMS error form: {body}");
    assert_eq!(image_json(&s, &image.id).await, before);

    // Identity, compute, KMS and jobs bodies are capped too.
    let projects = s.admin.list_projects().await.unwrap().len();
    for path in ["/identity/v1/projects", "/compute/v1/servers", "/kms/v1/keys", "/v2/cloudimages/action", "/v1/cloudimages/members"] {
        let (status, body) = send(&s, Method::POST, path, "application/json", over.clone()).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert!(body.is_object(), "{path}: a JSON error body");
    }
    assert_eq!(s.admin.list_projects().await.unwrap().len(), projects);

    // Image data is streamed, not buffered: far more than the JSON limit goes through.
    let data = crate::common::pattern(256 << 10, 1);
    s.admin.upload_bytes(&image.id, data.clone()).await.unwrap();
    assert_eq!(s.admin.get_image(&image.id).await.unwrap().size, Some(data.len() as u64));
}

#[tokio::test]
async fn uploads_over_the_image_size_cap_are_refused_and_the_image_stays_queued() {
    let s = TestServer::start_with(|settings| settings.image_size_cap = 64 << 10).await;
    let image = s.admin.create_image(&raw_image("capped")).await.unwrap();
    let r = s
        .raw(Method::PUT, &format!("/v2/images/{}/file", image.id))
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; (64 << 10) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let after = s.admin.get_image(&image.id).await.unwrap();
    assert_eq!((after.status.as_str(), after.size), ("queued", None));
    s.admin.upload_bytes(&image.id, vec![7u8; 64 << 10]).await.expect("exactly the cap is accepted");
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let s = TestServer::start_with(|settings| settings.max_header_bytes = 8 << 10).await;
    let http = reqwest::Client::new();
    let get = |path: &str, pad: usize| {
        http.get(format!("{}{path}", s.url))
            .header("x-auth-token", ADMIN_TOKEN)
            .header("accept", "application/json")
            .header("x-pad", "p".repeat(pad))
            .send()
    };
    assert_eq!(get("/v2/images", 4 << 10).await.unwrap().status(), 200);
    let r = get("/v2/images", 8 << 10).await.unwrap();
    assert_eq!(r.status(), 431);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "431 Request Header Fields Too Large", "{body}");
    let body: Value = get("/v2/cloudimages", 8 << 10).await.unwrap().json().await.unwrap();
    assert_eq!(body["error_code"], "IMG.0001", "the IMS form on IMS paths: {body}");
    // Glance clients that accept anything get the HTML page Glance answers errors with.
    let r = http.get(format!("{}/v2/images", s.url)).header("accept", "*/*").header("x-pad", "p".repeat(8 << 10)).send().await.unwrap();
    assert_eq!(r.status(), 431);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<title>431 Request Header Fields Too Large</title>"));

    // The HTTP layer refuses more than 100 headers before any of them is looked at.
    let mut many = http.get(format!("{}/v2/images", s.url)).header("x-auth-token", ADMIN_TOKEN);
    for i in 0..120 {
        many = many.header(format!("x-h{i}"), "1");
    }
    let status = many.send().await.unwrap().status();
    assert_eq!(status, 431);
}

#[tokio::test]
async fn glance_names_tags_properties_and_members_are_bounded() {
    let s = TestServer::start().await;
    let image = s.admin.create_image(&raw_image("bounded")).await.unwrap();
    let path = format!("/v2/images/{}", image.id);
    let patch_type = "application/openstack-images-v2.1-json-patch";
    let patch = |ops: Value| serde_json::to_vec(&ops).unwrap();

    let (status, _) = send(&s, Method::PATCH, &path, patch_type, patch(json!([{"op": "replace", "path": "/name", "value": "n".repeat(255)}]))).await;
    assert_eq!(status, 200, "255 characters are accepted");
    let before = image_json(&s, &image.id).await;
    for (what, ops) in [
        ("name", json!([{"op": "replace", "path": "/name", "value": "n".repeat(256)}])),
        ("property key", json!([{"op": "add", "path": format!("/{}", "k".repeat(256)), "value": "v"}])),
        ("property value", json!([{"op": "add", "path": "/k", "value": "v".repeat(256)}])),
        ("tag", json!([{"op": "replace", "path": "/tags", "value": ["t".repeat(256)]}])),
    ] {
        let (status, body) = send(&s, Method::PATCH, &path, patch_type, patch(ops)).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body["message"].as_str().unwrap().contains("255"), "{what}: {body}");
        assert_eq!(image_json(&s, &image.id).await, before, "{what}");
    }
    let r = s.raw(Method::PUT, &format!("{path}/tags/{}", "t".repeat(256))).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // 128 tags and 128 properties fit; one more of either is refused.
    let tags: Vec<String> = (0..128).map(|i| format!("t{i}")).collect();
    let mut ops = vec![json!({"op": "replace", "path": "/tags", "value": tags})];
    ops.extend((0..128).map(|i| json!({"op": "add", "path": format!("/p{i}"), "value": "v"})));
    let (status, body) = send(&s, Method::PATCH, &path, patch_type, patch(Value::Array(ops))).await;
    assert_eq!(status, 200, "{body}");
    let full = image_json(&s, &image.id).await;
    let r = s.raw(Method::PUT, &format!("{path}/tags/one-more")).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let (status, _) = send(&s, Method::PATCH, &path, patch_type, patch(json!([{"op": "add", "path": "/p128", "value": "v"}]))).await;
    assert_eq!(status, 413);
    assert_eq!(image_json(&s, &image.id).await, full);

    // Members: ids of at most 255 characters, at most 128 of them.
    let shared = s.admin.create_image(&shared_image()).await.unwrap();
    let members = format!("/v2/images/{}/members", shared.id);
    let (status, _) = send(&s, Method::POST, &members, "application/json", serde_json::to_vec(&json!({"member": "m".repeat(256)})).unwrap()).await;
    assert_eq!(status, 400);
    for i in 0..128 {
        s.admin.add_member(&shared.id, &format!("project-{i}")).await.unwrap();
    }
    let (status, body) = send(&s, Method::POST, &members, "application/json", serde_json::to_vec(&json!({"member": "project-128"})).unwrap()).await;
    assert_eq!(status, 413, "{body}");
    let listed: Value = s.raw(Method::GET, &members).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["members"].as_array().unwrap().len(), 128);
}

/// A shared image to add members to.
fn shared_image() -> ims_client::CreateImage {
    ims_client::CreateImage { visibility: Some("shared".into()), ..raw_image("shared") }
}

#[tokio::test]
async fn ims_names_tags_and_member_ids_are_bounded() {
    let s = TestServer::start().await;
    let t = s.tenant("ims-limits", Role::Member).await;
    let image = t.client.create_image(&raw_image("ims")).await.unwrap();
    let before = image_json(&s, &image.id).await;
    let send_as = |method: Method, path: String, body: Value| {
        let request = t.client.raw(method, &path).header("content-type", "application/json").body(body.to_string());
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) =
        send_as(Method::PATCH, format!("/v2/cloudimages/{}", image.id), json!([{"op": "replace", "path": "/name", "value": "n".repeat(256)}])).await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("IMG.0001")), "{body}");
    let tag_path = format!("/v2/{}/images/{}/tags", t.project_id, image.id);
    for tag in [json!({"key": "k".repeat(129), "value": "v"}), json!({"key": "k", "value": "v".repeat(256)})] {
        let (status, body) = send_as(Method::POST, tag_path.clone(), json!({"tag": tag})).await;
        assert_eq!((status, body["error_code"].as_str()), (400, Some("IMG.0001")), "{body}");
    }
    for i in 0..20 {
        let (status, body) = send_as(Method::POST, tag_path.clone(), json!({"tag": {"key": format!("k{i}"), "value": "v"}})).await;
        assert_eq!(status, 204, "{body}");
    }
    let (status, body) = send_as(Method::POST, tag_path.clone(), json!({"tag": {"key": "k20", "value": "v"}})).await;
    assert_eq!((status, body["error_code"].as_str()), (413, Some("IMG.0006")), "the 21st tag: {body}");
    let tags: Value = t.client.raw(Method::GET, &tag_path).send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 20);
    let batch = json!({"images": [image.id], "projects": ["p".repeat(256)]});
    let (status, body) = send_as(Method::POST, "/v1/cloudimages/members".into(), batch).await;
    assert!(status == 400 || body["job_id"].is_string(), "refused at once or in its job: {status} {body}");
    let members: Value = s.raw(Method::GET, &format!("/v2/images/{}/members", image.id)).send().await.unwrap().json().await.unwrap();
    assert_eq!(members["members"], json!([]));
    assert_eq!(image_json(&s, &image.id).await, before);
}

#[tokio::test]
async fn page_limits_are_clamped_as_glance_clamps_them() {
    let s = TestServer::start().await;
    for i in 0..3 {
        s.admin.create_image(&raw_image(&format!("page-{i}"))).await.unwrap();
    }
    for path in ["/v2/images?limit=100000", "/v2/cloudimages?limit=100000", "/v2/images?limit=1000"] {
        let r = s.raw(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["images"].as_array().unwrap().len(), 3, "{path}");
    }
    for path in ["/v2/images?limit=-1", "/v2/images?limit=many", "/v2/cloudimages?limit=-1"] {
        let status = s.raw(Method::GET, path).send().await.unwrap().status();
        assert_eq!(status, 400, "{path}");
    }
}

#[tokio::test]
async fn an_upload_whose_inspection_runs_out_of_time_fails_and_the_image_stays_queued() {
    let s = TestServer::start_with(|settings| settings.inspection_timeout = 0).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("disk.qcow2");
    let out = std::process::Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&file).arg("16M").output().unwrap();
    assert!(out.status.success());
    let image = s
        .admin
        .create_image(&ims_client::CreateImage { disk_format: Some("qcow2".into()), ..raw_image("slow") })
        .await
        .unwrap();
    let r = s
        .raw(Method::PUT, &format!("/v2/images/{}/file", image.id))
        .header("content-type", "application/octet-stream")
        .body(std::fs::read(&file).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("took longer than"), "{body}");
    let after = s.admin.get_image(&image.id).await.unwrap();
    assert_eq!((after.status.as_str(), after.size), ("queued", None));
}
