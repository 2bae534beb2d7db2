//! Glance interoperable import: `/v2/images/{id}/stage`, `/v2/images/{id}/import` (glance-direct,
//! web-download with its address rules), `/v2/info/import`, and the task views of the import jobs.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use ims_client::{Client, Image, ListParams, Role};
use md5::{Digest, Md5};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::common::{pattern, raw_image, status, TestServer};

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// Waits until the image leaves `uploading`/`importing`.
async fn settled(client: &Client, id: &str) -> Image {
    for _ in 0..300 {
        let image = client.get_image(id).await.unwrap();
        if image.status != "importing" && image.status != "uploading" {
            return image;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("image {id} is still importing");
}

/// The image's only task, once it ended.
async fn finished_task(client: &Client, id: &str) -> Value {
    for _ in 0..300 {
        let tasks = client.image_tasks(id).await.unwrap();
        let list = tasks["tasks"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{tasks}");
        if matches!(list[0]["status"].as_str(), Some("success" | "failure")) {
            return list[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the task of image {id} did not end");
}

async fn import(s: &TestServer, id: &str, body: Value) -> (u16, String) {
    let r = s.raw(Method::POST, &format!("/v2/images/{id}/import")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A file server on loopback for web-download sources; stops when dropped.
struct FileServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl FileServer {
    async fn start(data: Vec<u8>) -> FileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = data.clone();
        let app = axum::Router::new()
            .route("/disk.raw", get(move || async move { served.clone() }))
            .route("/moved", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/disk.raw")]).into_response() }))
            .route(
                "/elsewhere",
                get(move || async move {
                    let to = format!("http://localhost:{}/disk.raw", addr.port());
                    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
                }),
            )
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        FileServer { addr, _stop: tx }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

#[tokio::test]
async fn info_import_and_the_create_header_list_the_enabled_methods() {
    let s = TestServer::start().await;
    let info: Value = s.raw(Method::GET, "/v2/info/import").send().await.unwrap().json().await.unwrap();
    assert_eq!(info["import-methods"]["value"], json!(["glance-direct", "web-download", "copy-image"]));
    let r = s.raw(Method::POST, "/v2/images").json(&json!({"name": "x"})).send().await.unwrap();
    assert_eq!(r.headers()["openstack-image-import-methods"], "glance-direct,web-download,copy-image");

    let only_direct = TestServer::start_with(|c| c.glance_import.methods = vec!["glance-direct".into()]).await;
    let info: Value = only_direct.raw(Method::GET, "/v2/info/import").send().await.unwrap().json().await.unwrap();
    assert_eq!(info["import-methods"]["value"], json!(["glance-direct"]));
    let img = only_direct.admin.create_image(&raw_image("w")).await.unwrap();
    let (code, body) = import(&only_direct, &img.id, json!({"method": {"name": "web-download", "uri": "https://example.com/x"}})).await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn stage_then_glance_direct_activates_the_staged_data() {
    let s = TestServer::start().await;
    let data = pattern((3 << 20) + 123, 9);
    let img = s.admin.create_image(&raw_image("staged")).await.unwrap();
    s.admin.stage(&img.id, data.clone().into(), Some(data.len() as u64)).await.unwrap();
    let staged = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(staged.status, "uploading");
    assert_eq!(status(s.admin.stage(&img.id, vec![1u8; 10].into(), None).await), 409, "staged twice");
    let file = s.raw(reqwest::Method::GET, &format!("/v2/images/{}/file", img.id)).send().await.unwrap();
    assert_eq!(file.status(), 204, "staged data is not the image's data before the import");

    let (code, body) = import(&s, &img.id, json!({"method": {"name": "glance-direct"}, "stores": ["local"]})).await;
    assert_eq!(code, 202, "{body}");
    let image = settled(&s.admin, &img.id).await;
    assert_eq!(image.status, "active");
    assert_eq!(image.size, Some(data.len() as u64));
    assert_eq!(image.virtual_size, Some(data.len() as u64));
    assert_eq!(image.checksum.as_deref(), Some(md5_hex(&data).as_str()));
    assert_eq!(image.property("os_glance_importing_to_stores"), Some(""));
    let download = s.admin.download(&img.id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(download.as_ref(), data.as_slice());

    let task = finished_task(&s.admin, &img.id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["type"], "api_image_import");
    assert_eq!(task["image_id"], img.id);
    assert_eq!(task["input"]["import_req"]["method"]["name"], "glance-direct");
    let id = task["id"].as_str().unwrap();
    let shown: Value = s.raw(Method::GET, &format!("/v2/tasks/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["id"], id);
    let all: Value = s.raw(Method::GET, "/v2/tasks").send().await.unwrap().json().await.unwrap();
    assert!(all["tasks"].as_array().unwrap().iter().any(|t| t["id"] == id), "{all}");
    let schema: Value = s.raw(Method::GET, "/v2/schemas/task").send().await.unwrap().json().await.unwrap();
    assert_eq!(schema["name"], "task");

    let member = s.tenant("other", Role::Member).await;
    assert_eq!(member.client.raw(Method::GET, "/v2/tasks").send().await.unwrap().status(), 403);
    assert_eq!(member.client.raw(Method::GET, &format!("/v2/tasks/{id}")).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_task_names_the_request_and_the_user_that_started_it() {
    let s = TestServer::start().await;
    let t = s.tenant("importer", Role::Member).await;
    let user_id = t.client.whoami().await.unwrap().user.id;
    let img = t.client.create_image(&raw_image("requested")).await.unwrap();
    t.client.stage(&img.id, vec![7u8; 4096].into(), Some(4096)).await.unwrap();
    let r = t
        .client
        .raw(Method::POST, &format!("/v2/images/{}/import", img.id))
        .json(&json!({"method": {"name": "glance-direct"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let request_id = r.headers()["x-openstack-request-id"].to_str().unwrap().to_string();
    assert!(request_id.starts_with("req-"), "{request_id}");

    // Glance records both on the task (tempest compares the request id with the import's response).
    let task = finished_task(&t.client, &img.id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["request_id"], request_id, "{task}");
    assert_eq!(task["user_id"], user_id, "{task}");
    let id = task["id"].as_str().unwrap();
    let shown: Value = s.raw(Method::GET, &format!("/v2/tasks/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["request_id"], request_id, "{shown}");
}

#[tokio::test]
async fn a_failed_stage_leaves_the_image_queued_without_data() {
    let s = TestServer::start_with(|c| c.image_size_cap = 1000).await;
    let img = s.admin.create_image(&raw_image("short")).await.unwrap();
    assert_eq!(status(s.admin.stage(&img.id, vec![1u8; 100].into(), Some(200)).await), 400, "size mismatch");
    assert_eq!(status(s.admin.stage(&img.id, vec![1u8; 2000].into(), None).await), 413, "over the cap");
    let image = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(image.status, "queued");
    assert_eq!(image.size, None);
    assert_eq!(image.checksum, None);
    let other = s.tenant("stranger", Role::Member).await;
    assert_eq!(status(other.client.stage(&img.id, vec![1u8; 10].into(), None).await), 404);

    s.admin.stage(&img.id, vec![1u8; 100].into(), Some(100)).await.unwrap();
    let staged = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!((staged.status.as_str(), staged.size), ("uploading", Some(100)));
}

#[tokio::test]
async fn import_refusals_change_nothing() {
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("refused")).await.unwrap();
    let direct = json!({"method": {"name": "glance-direct"}});
    assert_eq!(import(&s, &img.id, direct.clone()).await.0, 409, "nothing staged");
    assert_eq!(import(&s, &img.id, json!({"method": {"name": "glance-download"}})).await.0, 400);
    assert_eq!(import(&s, &img.id, json!({"method": {"name": "nonsense"}})).await.0, 400);
    assert_eq!(import(&s, &img.id, json!({"nomethod": {}})).await.0, 400);
    assert_eq!(import(&s, &img.id, json!({"method": {"name": "web-download"}})).await.0, 400, "no uri");
    for uri in ["ftp://example.com/x", "file:///etc/passwd", "http://169.254.169.254/latest/meta-data/"] {
        let (code, body) = import(&s, &img.id, json!({"method": {"name": "web-download", "uri": uri}})).await;
        assert_eq!(code, 400, "{uri}: {body}");
    }
    s.admin.stage(&img.id, vec![7u8; 4096].into(), None).await.unwrap();
    let (code, body) = import(&s, &img.id, json!({"method": {"name": "glance-direct"}, "stores": ["nowhere"]})).await;
    assert_eq!(code, 409, "{body}");
    let r = s.raw(Method::POST, &format!("/v2/images/{}/import", img.id))
        .header("x-image-meta-store", "nowhere")
        .json(&direct)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let (code, _) = import(&s, &img.id, json!({"method": {"name": "web-download", "uri": "https://example.com/x"}})).await;
    assert_eq!(code, 409, "web-download needs a queued image");
    assert_eq!(s.admin.get_image(&img.id).await.unwrap().status, "uploading");
    assert!(s.admin.image_tasks(&img.id).await.unwrap()["tasks"].as_array().unwrap().is_empty());

    let reader = s.tenant("readers", Role::Reader).await;
    let (code, _) = {
        let r = reader.client.raw(Method::POST, &format!("/v2/images/{}/import", img.id)).json(&direct).send().await.unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(code, 404, "another project's private image is not visible");
}

#[tokio::test]
async fn glance_direct_inspects_the_staged_file_as_its_declared_format() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = (dir.path().join("base.qcow2"), dir.path().join("top.qcow2"));
    for args in [
        vec!["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "16M"],
        vec!["create", "-q", "-f", "qcow2", "-b", base.to_str().unwrap(), "-F", "qcow2", top.to_str().unwrap()],
    ] {
        let out = Command::new("qemu-img").args(&args).output().expect("qemu-img is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut create = raw_image("backed");
    create.disk_format = Some("qcow2".into());
    let img = s.admin.create_image(&create).await.unwrap();
    s.admin.stage(&img.id, std::fs::read(&top).unwrap().into(), None).await.unwrap();
    assert_eq!(import(&s, &img.id, json!({"method": {"name": "glance-direct"}})).await.0, 202);
    let image = settled(&s.admin, &img.id).await;
    assert_eq!(image.status, "queued");
    assert_eq!(image.size, None);
    assert_eq!(image.property("os_glance_failed_import"), Some("local"));
    let task = finished_task(&s.admin, &img.id).await;
    assert_eq!(task["status"], "failure");
    assert!(task["message"].as_str().unwrap().contains("backing"), "{task}");

    // A good qcow2 staged afterwards imports, with the virtual size from the format.
    let good = dir.path().join("good.qcow2");
    let out = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2", good.to_str().unwrap(), "24M"]).output().unwrap();
    assert!(out.status.success());
    s.admin.stage(&img.id, std::fs::read(&good).unwrap().into(), None).await.unwrap();
    assert_eq!(import(&s, &img.id, json!({"method": {"name": "glance-direct"}})).await.0, 202);
    let image = settled(&s.admin, &img.id).await;
    assert_eq!(image.status, "active");
    assert_eq!(image.virtual_size, Some(24 << 20));
    assert_eq!(image.property("os_glance_failed_import"), Some(""));
}

#[tokio::test]
async fn web_download_to_loopback_is_refused_by_default() {
    let files = FileServer::start(pattern(4096, 1)).await;
    let s = TestServer::start().await;
    let img = s.admin.create_image(&raw_image("ssrf")).await.unwrap();
    for uri in [files.url("/disk.raw"), format!("http://localhost:{}/disk.raw", files.addr.port())] {
        let (code, body) = import(&s, &img.id, json!({"method": {"name": "web-download", "uri": uri}})).await;
        assert_eq!(code, 400, "{uri}: {body}");
        assert!(body.contains("loopback"), "{body}");
    }
    let image = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(image.status, "queued");
    assert!(s.admin.image_tasks(&img.id).await.unwrap()["tasks"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn web_download_fetches_when_private_addresses_are_allowed() {
    let data = pattern((2 << 20) + 77, 5);
    let files = FileServer::start(data.clone()).await;
    let s = TestServer::start_with(|c| c.glance_import.web_download_allow_private_addresses = true).await;

    for path in ["/disk.raw", "/moved"] {
        let img = s.admin.create_image(&raw_image(path)).await.unwrap();
        let (code, body) = import(&s, &img.id, json!({"method": {"name": "web-download", "uri": files.url(path)}})).await;
        assert_eq!(code, 202, "{body}");
        let image = settled(&s.admin, &img.id).await;
        assert_eq!(image.status, "active", "{path}");
        assert_eq!(image.checksum.as_deref(), Some(md5_hex(&data).as_str()));
        assert_eq!(s.admin.download(&img.id, None).await.unwrap().bytes().await.unwrap().as_ref(), data.as_slice());
        assert_eq!(finished_task(&s.admin, &img.id).await["status"], "success");
    }

    // A redirect to another host, and a missing file: the task fails and the image is queued again.
    for path in ["/elsewhere", "/missing"] {
        let img = s.admin.create_image(&raw_image(path)).await.unwrap();
        assert_eq!(import(&s, &img.id, json!({"method": {"name": "web-download", "uri": files.url(path)}})).await.0, 202);
        let image = settled(&s.admin, &img.id).await;
        assert_eq!(image.status, "queued", "{path}");
        assert_eq!(image.property("os_glance_failed_import"), Some("local"));
        let task = finished_task(&s.admin, &img.id).await;
        assert_eq!(task["status"], "failure");
        let expected = if path == "/elsewhere" { "another host" } else { "404" };
        assert!(task["message"].as_str().unwrap().contains(expected), "{task}");
    }
}

/// Polls `/v2/tasks/{id}` until the task ends.
async fn ended_task(s: &TestServer, id: &str) -> Value {
    for _ in 0..300 {
        let task: Value = s.raw(Method::GET, &format!("/v2/tasks/{id}")).send().await.unwrap().json().await.unwrap();
        if matches!(task["status"].as_str(), Some("success" | "failure")) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {id} did not end");
}

#[tokio::test]
async fn a_legacy_import_task_creates_and_fills_an_image() {
    let data = pattern((1 << 20) + 5, 8);
    let files = FileServer::start(data.clone()).await;
    let s = TestServer::start_with(|c| c.glance_import.web_download_allow_private_addresses = true).await;
    let task_body = |uri: &str| {
        json!({"type": "import", "input": {"import_from": uri, "import_from_format": "raw",
            "image_properties": {"name": "from-task", "disk_format": "raw", "container_format": "bare"}}})
    };
    let images_before = s.admin.list_all_images(&ListParams::default()).await.unwrap().len();

    let r = s.raw(Method::POST, "/v2/tasks").json(&task_body(&files.url("/disk.raw"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let created: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/v2/tasks/{}", created["id"].as_str().unwrap()));
    assert_eq!(created["type"], "import");
    assert_eq!(created["input"], task_body(&files.url("/disk.raw"))["input"], "the input as given");
    let task = ended_task(&s, created["id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "success", "{task}");
    let image_id = task["result"]["image_id"].as_str().unwrap();
    let image = s.admin.get_image(image_id).await.unwrap();
    assert_eq!((image.status.as_str(), image.name.as_deref()), ("active", Some("from-task")));
    assert_eq!(image.checksum.as_deref(), Some(md5_hex(&data).as_str()));

    // A missing file fails the task; the image stays queued without data.
    let r = s.raw(Method::POST, "/v2/tasks").json(&task_body(&files.url("/missing"))).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let task = ended_task(&s, created["id"].as_str().unwrap()).await;
    assert_eq!(task["status"], "failure", "{task}");
    let failed = s.admin.get_image(task["image_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(failed.status, "queued");

    // Refused before anything is created: a host that does not resolve, a missing field, another type,
    // and a caller who is not an admin.
    let images_now = s.admin.list_all_images(&ListParams::default()).await.unwrap().len();
    assert_eq!(images_now, images_before + 2);
    for (body, expected) in [
        (task_body("http://no-such-host.invalid/disk.qcow2"), 400),
        (json!({"type": "import", "input": {"import_from": files.url("/disk.raw"), "import_from_format": "raw"}}), 400),
        (json!({"type": "api_image_import", "input": {}}), 400),
        (json!({"input": {}}), 400),
    ] {
        let r = s.raw(Method::POST, "/v2/tasks").json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), expected, "{body}");
    }
    let member = s.tenant("tasks", Role::Member).await;
    let r = member.client.raw(Method::POST, "/v2/tasks").json(&task_body(&files.url("/disk.raw"))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.admin.list_all_images(&ListParams::default()).await.unwrap().len(), images_now, "refusals create no image");
}

#[tokio::test]
async fn web_download_honours_the_host_allowlist_and_the_size_cap() {
    let files = FileServer::start(pattern(64 * 1024, 2)).await;
    let listed = TestServer::start_with(|c| {
        c.glance_import.web_download_allow_private_addresses = true;
        c.glance_import.web_download_allowed_hosts = vec!["images.example.com".into()];
    })
    .await;
    let img = listed.admin.create_image(&raw_image("listed")).await.unwrap();
    let (code, body) = import(&listed, &img.id, json!({"method": {"name": "web-download", "uri": files.url("/disk.raw")}})).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("allowlist"), "{body}");

    let capped = TestServer::start_with(|c| {
        c.glance_import.web_download_allow_private_addresses = true;
        c.glance_import.web_download_max_size = Some(1000);
    })
    .await;
    let img = capped.admin.create_image(&raw_image("capped")).await.unwrap();
    assert_eq!(import(&capped, &img.id, json!({"method": {"name": "web-download", "uri": files.url("/disk.raw")}})).await.0, 202);
    assert_eq!(settled(&capped.admin, &img.id).await.status, "queued");
    let task = finished_task(&capped.admin, &img.id).await;
    assert!(task["message"].as_str().unwrap().contains("at most 1000 bytes"), "{task}");
}

#[tokio::test]
async fn an_unknown_import_method_in_the_settings_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = ims_server::Settings { data_dir: dir.path().join("data"), ..ims_server::Settings::default() };
    settings.glance_import.methods = vec!["glance-direct".into(), "carrier-pigeon".into()];
    let error = ims_server::Node::open(settings).await.err().expect("the node does not open");
    assert!(format!("{error:#}").contains("carrier-pigeon"), "{error:#}");
}
