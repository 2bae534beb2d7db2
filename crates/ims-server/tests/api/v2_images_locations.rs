//! The locations API of Image API 2.17: `POST /v2/images/{id}/locations` (data read from an http(s)
//! URL or a bucket object by a `location_import` task, checked against `validation_data`) and
//! `GET /v2/images/{id}/locations` (admins).

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use ims_client::{Client, Role};
use md5::Md5;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use tokio::sync::oneshot;

use crate::common::{pattern, raw_image, TestServer};

/// A file server on loopback serving `/disk.raw`; stops when dropped.
struct FileServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl FileServer {
    async fn start(data: Vec<u8>) -> FileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/disk.raw", get(move || async move { data.clone() }))
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

/// A server whose web-download rules admit the loopback file server.
async fn server() -> TestServer {
    TestServer::start_with(|c| c.glance_import.web_download_allow_private_addresses = true).await
}

async fn add_location(client: &Client, id: &str, body: Value) -> (u16, String) {
    let r = client.raw(Method::POST, &format!("/v2/images/{id}/locations")).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn locations(client: &Client, id: &str) -> (u16, Value) {
    let r = client.raw(Method::GET, &format!("/v2/images/{id}/locations")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
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

async fn queued_image(client: &Client, name: &str) -> String {
    client.create_image(&raw_image(name)).await.unwrap().id
}

#[tokio::test]
async fn a_location_over_http_is_imported_verified_and_downloads_byte_for_byte() {
    let s = server().await;
    let data = pattern(3 << 20, 17);
    let files = FileServer::start(data.clone()).await;
    let tenant = s.tenant("loc-owner", Role::Member).await;
    let id = queued_image(&tenant.client, "from-location").await;
    let sha256 = hex::encode(Sha256::digest(&data));
    let (code, body) = add_location(
        &tenant.client,
        &id,
        json!({"url": files.url("/disk.raw"), "validation_data": {"os_hash_algo": "sha256", "os_hash_value": sha256}}),
    )
    .await;
    assert_eq!(code, 202, "{body}");

    let task = finished_task(&tenant.client, &id).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["type"], "location_import");
    assert_eq!(task["input"]["loc_url"], files.url("/disk.raw"));
    let image = tenant.client.get_image(&id).await.unwrap();
    assert_eq!(image.status, "active");
    assert_eq!(image.size, Some(data.len() as u64));
    assert_eq!(image.checksum.as_deref(), Some(hex::encode(Md5::digest(&data)).as_str()));
    assert_eq!(image.os_hash_algo.as_deref(), Some("sha256"));
    assert_eq!(image.os_hash_value.as_deref(), Some(sha256.as_str()));
    let downloaded = tenant.client.download(&id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(hex::encode(Md5::digest(&downloaded)), image.checksum.unwrap());
    assert!(downloaded[..] == data[..]);

    // A second location for the now active image: 409.
    let (code, _) = add_location(&tenant.client, &id, json!({"url": files.url("/disk.raw")})).await;
    assert_eq!(code, 409);
}

#[tokio::test]
async fn without_validation_data_the_usual_hashes_are_computed() {
    let s = server().await;
    let data = pattern(700_000, 3);
    let files = FileServer::start(data.clone()).await;
    let id = queued_image(&s.admin, "no-validation").await;
    // Tempest sends an empty validation_data object when it has none.
    let (code, body) = add_location(&s.admin, &id, json!({"url": files.url("/disk.raw"), "validation_data": {}})).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(finished_task(&s.admin, &id).await["status"], "success");
    let image = s.admin.get_image(&id).await.unwrap();
    assert_eq!(image.status, "active");
    assert_eq!(image.os_hash_algo.as_deref(), Some("sha512"));
    assert_eq!(image.os_hash_value.as_deref(), Some(hex::encode(Sha512::digest(&data)).as_str()));
    assert_eq!(image.checksum.as_deref(), Some(hex::encode(Md5::digest(&data)).as_str()));
}

#[tokio::test]
async fn data_that_does_not_match_the_validation_data_returns_the_image_to_queued() {
    let s = server().await;
    let files = FileServer::start(pattern(200_000, 5)).await;
    for (algo, value) in [("sha512", "beefdead".repeat(16)), ("sha256", "00".repeat(32)), ("md5", "11".repeat(16))] {
        let id = queued_image(&s.admin, "mismatch").await;
        let body = json!({"url": files.url("/disk.raw"), "validation_data": {"os_hash_algo": algo, "os_hash_value": value}});
        assert_eq!(add_location(&s.admin, &id, body).await.0, 202);
        let task = finished_task(&s.admin, &id).await;
        assert_eq!(task["status"], "failure", "{algo}: {task}");
        assert!(task["message"].as_str().unwrap().contains("validation data"), "{task}");
        let image = s.admin.get_image(&id).await.unwrap();
        assert_eq!(image.status, "queued", "{algo}");
        assert_eq!((image.checksum, image.os_hash_algo, image.os_hash_value, image.size), (None, None, None, None));
    }
    // A source that is gone fails the task the same way.
    let id = queued_image(&s.admin, "missing").await;
    assert_eq!(add_location(&s.admin, &id, json!({"url": files.url("/missing")})).await.0, 202);
    assert_eq!(finished_task(&s.admin, &id).await["status"], "failure");
    assert_eq!(s.admin.get_image(&id).await.unwrap().status, "queued");
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let s = server().await;
    let files = FileServer::start(pattern(1000, 1)).await;
    let id = queued_image(&s.admin, "bad-input").await;
    let url = files.url("/disk.raw");
    let sha512 = "ab".repeat(64);
    for body in [
        json!({}),
        json!({"url": 42}),
        json!({"url": url, "validation_data": "sha512"}),
        json!({"url": url, "validation_data": {"os_hash_algo": "sha512", "os_hash_value": "dbc9e0f80d131e64b94913a7b40bb5"}}),
        json!({"url": url, "validation_data": {"os_hash_value": sha512}}),
        json!({"url": url, "validation_data": {"os_hash_algo": "sha512"}}),
        json!({"url": url, "validation_data": {"os_hash_algo": "sha123", "os_hash_value": sha512}}),
        json!({"url": url, "validation_data": {"os_hash_algo": "sha256", "os_hash_value": sha512}}),
        json!({"url": url, "validation_data": {"os_hash_algo": "sha512", "os_hash_value": sha512, "size": 1}}),
        json!({"url": "cinder://lvmdriver-1/39e6ffab-7502-4199-9609-416601615ca3"}),
        json!({"url": "file:///etc/passwd"}),
    ] {
        let (code, text) = add_location(&s.admin, &id, body.clone()).await;
        assert_eq!(code, 400, "{body}: {text}");
    }
    // A bucket that does not exist is not found, as the bucket API answers.
    assert_eq!(add_location(&s.admin, &id, json!({"url": "nobucket:disk.raw"})).await.0, 404);
    // The web-download rules apply: without the loopback allowance, a loopback URL is refused.
    let strict = TestServer::start().await;
    let strict_id = queued_image(&strict.admin, "strict").await;
    assert_eq!(add_location(&strict.admin, &strict_id, json!({"url": url})).await.0, 400);

    let image = s.admin.get_image(&id).await.unwrap();
    assert_eq!(image.status, "queued");
    assert!(s.admin.image_tasks(&id).await.unwrap()["tasks"].as_array().unwrap().is_empty());
    let missing = uuid::Uuid::new_v4().to_string();
    assert_eq!(add_location(&s.admin, &missing, json!({"url": url})).await.0, 404);
    assert_eq!(add_location(&s.admin, "not-an-id", json!({"url": url})).await.0, 404);
}

#[tokio::test]
async fn only_the_owner_may_add_and_only_admins_may_list() {
    let s = server().await;
    let data = pattern(100_000, 9);
    let files = FileServer::start(data.clone()).await;
    let owner = s.tenant("loc-a", Role::Member).await;
    let other = s.tenant("loc-b", Role::Member).await;
    let id = queued_image(&owner.client, "owned").await;
    let body = json!({"url": files.url("/disk.raw")});
    assert_eq!(add_location(&other.client, &id, body.clone()).await.0, 404, "another project's private image");
    let reader = s.admin.create_user("loc-a-reader", &owner.project_id, Role::Reader).await.unwrap();
    let reader = s.admin.with_token(reader.token.token.unwrap());
    assert_eq!(add_location(&reader, &id, body.clone()).await.0, 403, "readers change nothing");

    assert_eq!(locations(&s.admin, &id).await, (200, json!([])), "no data yet");
    assert_eq!(add_location(&owner.client, &id, body).await.0, 202);
    assert_eq!(finished_task(&owner.client, &id).await["status"], "success");
    assert_eq!(locations(&owner.client, &id).await.0, 403);
    let (code, listed) = locations(&s.admin, &id).await;
    assert_eq!(code, 200);
    assert_eq!(listed, json!([{"url": format!("ims://local/{id}"), "metadata": {"store": "local"}}]));
    assert_eq!(locations(&s.admin, &uuid::Uuid::new_v4().to_string()).await.0, 404);
}

#[tokio::test]
async fn a_bucket_object_the_caller_may_use_is_a_location() {
    let s = server().await;
    let data = pattern(2 << 20, 21);
    let owner = s.tenant("loc-bucket", Role::Member).await;
    owner.client.create_bucket("loc-images").await.unwrap();
    owner.client.put_object_bytes("loc-images", "disks/a.raw", data.clone()).await.unwrap();
    let id = queued_image(&owner.client, "from-bucket").await;
    let sha1 = sha1_hex(&data);
    let body = json!({"url": "loc-images:disks/a.raw", "validation_data": {"os_hash_algo": "sha1", "os_hash_value": sha1}});
    let (code, text) = add_location(&owner.client, &id, body).await;
    assert_eq!(code, 202, "{text}");
    assert_eq!(finished_task(&owner.client, &id).await["status"], "success");
    let image = owner.client.get_image(&id).await.unwrap();
    assert_eq!((image.status.as_str(), image.os_hash_algo.as_deref()), ("active", Some("sha1")));
    let downloaded = owner.client.download(&id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(hex::encode(Md5::digest(&downloaded)), hex::encode(Md5::digest(&data)));

    // Another project may not read the bucket (not revealed: 404), and a missing object is bad input.
    let other = s.tenant("loc-stranger", Role::Member).await;
    let theirs = queued_image(&other.client, "stranger").await;
    assert_eq!(add_location(&other.client, &theirs, json!({"url": "loc-images:disks/a.raw"})).await.0, 404);
    let mine = queued_image(&owner.client, "missing-object").await;
    assert_eq!(add_location(&owner.client, &mine, json!({"url": "loc-images:disks/none.raw"})).await.0, 400);
    assert_eq!(owner.client.get_image(&mine).await.unwrap().status, "queued");
}

/// SHA-1 of `data` in hex, from coreutils' `sha1sum`.
fn sha1_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha1sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha1sum runs");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}
