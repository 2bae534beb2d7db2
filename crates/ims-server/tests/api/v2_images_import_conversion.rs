//! Glance interoperable import with the operator's `import_conversions`: `glance-direct` and
//! `web-download` store the converted disk (qemu-img as the oracle) and keep the original's hashes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axum::routing::get;
use ims_client::{Client, CreateImage, Image};
use md5::{Digest, Md5};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::common::{pattern, TestServer};

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().expect("qemu-img is installed");
    assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A guest disk with data, a zero hole and an odd tail, and the QCOW2 qemu-img makes of it in `dir`.
fn guest_qcow2(dir: &Path) -> (Vec<u8>, PathBuf) {
    let mut data = pattern(4 * 1024 * 1024 + 4096, 31);
    data[1024 * 1024..2 * 1024 * 1024].fill(0);
    let raw = dir.join("guest.raw");
    std::fs::write(&raw, &data).unwrap();
    let qcow2 = dir.join("guest.qcow2");
    qemu_img(&["convert", "-f", "raw", "-O", "qcow2", raw.to_str().unwrap(), qcow2.to_str().unwrap()]);
    (data, qcow2)
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn qcow2_image(name: &str) -> CreateImage {
    CreateImage {
        name: Some(name.to_string()),
        disk_format: Some("qcow2".into()),
        container_format: Some("bare".into()),
        ..Default::default()
    }
}

fn conversion_to_raw(s: &mut ims_server::Settings) {
    s.import_conversions.insert("qcow2".into(), "raw".into());
}

async fn import(s: &TestServer, id: &str, method: Value) -> Value {
    let r = s.raw(Method::POST, &format!("/v2/images/{id}/import")).json(&json!({"method": method})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    finished_task(&s.admin, id).await
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

async fn download(s: &TestServer, id: &str) -> Vec<u8> {
    s.admin.download(id, None).await.unwrap().bytes().await.unwrap().to_vec()
}

/// Asserts that `image` is the RAW conversion of `qcow2` (hashes describing the stored result, qemu-img
/// finding the same guest disk) with the original's hashes kept as the IMS pipeline keeps them.
async fn assert_converted(s: &TestServer, image: &Image, data: &[u8], qcow2: &Path, original: &Image) {
    assert_eq!(image.status, "active");
    assert_eq!(image.disk_format.as_deref(), Some("raw"), "the declared format follows the stored data");
    assert_eq!(image.size, Some(data.len() as u64));
    assert_eq!(image.virtual_size, Some(data.len() as u64));
    let stored = download(s, &image.id).await;
    assert_eq!(image.checksum.as_deref(), Some(md5_hex(&stored).as_str()), "hashes describe the stored result");
    assert_ne!(image.os_hash_value, original.os_hash_value);
    let out = qcow2.with_file_name(format!("{}.raw", image.id));
    std::fs::write(&out, &stored).unwrap();
    qemu_img(&["compare", "-f", "raw", "-F", "qcow2", out.to_str().unwrap(), qcow2.to_str().unwrap()]);

    let qcow2_bytes = std::fs::read(qcow2).unwrap();
    assert_eq!(image.property("__original_disk_format"), Some("qcow2"));
    assert_eq!(image.property("__original_size"), Some(qcow2_bytes.len().to_string().as_str()));
    assert_eq!(image.property("__original_checksum"), Some(md5_hex(&qcow2_bytes).as_str()));
    assert_eq!(image.property("__original_os_hash_algo"), original.os_hash_algo.as_deref());
    assert_eq!(image.property("__original_os_hash_value"), original.os_hash_value.as_deref());
    assert!(original.os_hash_value.is_some());
}

#[tokio::test]
async fn glance_direct_converts_per_operator_setting() {
    let s = TestServer::start_with(conversion_to_raw).await;
    let dir = tempfile::tempdir().unwrap();
    let (data, qcow2) = guest_qcow2(dir.path());
    let qcow2_bytes = std::fs::read(&qcow2).unwrap();
    let img = s.admin.create_image(&qcow2_image("converted")).await.unwrap();
    s.admin.stage(&img.id, qcow2_bytes.clone().into(), Some(qcow2_bytes.len() as u64)).await.unwrap();
    let staged = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(staged.checksum.as_deref(), Some(md5_hex(&qcow2_bytes).as_str()));

    let task = import(&s, &img.id, json!({"name": "glance-direct"})).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["result"]["conversion"], json!({"from": "qcow2", "to": "raw"}), "{task}");
    assert_eq!(task["result"]["disk_format"], "raw", "{task}");
    let image = s.admin.get_image(&img.id).await.unwrap();
    assert_converted(&s, &image, &data, &qcow2, &staged).await;
}

#[tokio::test]
async fn web_download_converts_per_operator_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (data, qcow2) = guest_qcow2(dir.path());
    let qcow2_bytes = std::fs::read(&qcow2).unwrap();
    let files = FileServer::start(qcow2_bytes.clone()).await;
    let s = TestServer::start_with(|c| {
        conversion_to_raw(c);
        c.glance_import.web_download_allow_private_addresses = true;
    })
    .await;
    // What the original would have been: the same file staged on an image of a server without conversion.
    let plain = TestServer::start().await;
    let reference = plain.admin.create_image(&qcow2_image("reference")).await.unwrap();
    plain.admin.stage(&reference.id, qcow2_bytes.clone().into(), None).await.unwrap();
    let original = plain.admin.get_image(&reference.id).await.unwrap();

    let img = s.admin.create_image(&qcow2_image("downloaded")).await.unwrap();
    let uri = format!("http://{}/disk.qcow2", files.addr);
    let task = import(&s, &img.id, json!({"name": "web-download", "uri": uri})).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["result"]["conversion"], json!({"from": "qcow2", "to": "raw"}), "{task}");
    let image = s.admin.get_image(&img.id).await.unwrap();
    assert_converted(&s, &image, &data, &qcow2, &original).await;
}

#[tokio::test]
async fn without_the_setting_the_qcow2_is_stored_as_is() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (data, qcow2) = guest_qcow2(dir.path());
    let qcow2_bytes = std::fs::read(&qcow2).unwrap();
    let img = s.admin.create_image(&qcow2_image("kept")).await.unwrap();
    s.admin.stage(&img.id, qcow2_bytes.clone().into(), None).await.unwrap();

    let task = import(&s, &img.id, json!({"name": "glance-direct"})).await;
    assert_eq!(task["status"], "success", "{task}");
    assert_eq!(task["result"].get("conversion"), None, "{task}");
    let image = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(image.status, "active");
    assert_eq!(image.disk_format.as_deref(), Some("qcow2"));
    assert_eq!(image.size, Some(qcow2_bytes.len() as u64));
    assert_eq!(image.virtual_size, Some(data.len() as u64));
    assert_eq!(image.checksum.as_deref(), Some(md5_hex(&qcow2_bytes).as_str()));
    assert_eq!(image.property("__original_disk_format"), None);
    assert_eq!(download(&s, &img.id).await, qcow2_bytes, "a kept file is stored byte for byte");
}

#[tokio::test]
async fn a_file_that_is_not_its_declared_format_fails_and_changes_nothing() {
    let s = TestServer::start_with(conversion_to_raw).await;
    let img = s.admin.create_image(&qcow2_image("not-qcow2")).await.unwrap();
    s.admin.stage(&img.id, pattern(64 * 1024, 3).into(), None).await.unwrap();

    let task = import(&s, &img.id, json!({"name": "glance-direct"})).await;
    assert_eq!(task["status"], "failure", "{task}");
    let image = s.admin.get_image(&img.id).await.unwrap();
    assert_eq!(image.status, "queued");
    assert_eq!(image.disk_format.as_deref(), Some("qcow2"), "the declared format stays");
    assert_eq!((image.size, image.checksum.as_deref()), (None, None));
    assert_eq!(image.property("__original_disk_format"), None);
}

/// A file server on loopback serving one file at `/disk.qcow2`; stops when dropped.
struct FileServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl FileServer {
    async fn start(data: Vec<u8>) -> FileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/disk.qcow2", get(move || async move { data.clone() }));
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
}
