//! `/v1/cloudimages/{id}/nbd`: secret NBD export names of images' guest disks, read by real qemu clients.

use std::path::Path;
use std::sync::Arc;

use ims_client::CreateImage;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::TestServer;

/// Runs a qemu tool off the runtime's threads; returns its stdout, or its stderr as the error.
async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new(program).args(args).output().await.expect("qemu tools are installed");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

async fn must(program: &str, args: &[&str]) -> String {
    run(program, args).await.unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

async fn start() -> TestServer {
    TestServer::start_with(|s| s.nbd_listen = Some("127.0.0.1:0".parse().unwrap())).await
}

async fn upload(s: &TestServer, disk_format: &str, path: &Path) -> String {
    let create = CreateImage {
        name: Some(format!("nbd-{disk_format}")),
        disk_format: Some(disk_format.into()),
        container_format: Some("bare".into()),
        ..Default::default()
    };
    let img = s.admin.create_image(&create).await.unwrap();
    s.admin.upload_file(&img.id, path).await.unwrap_or_else(|e| panic!("{disk_format}: {e}"));
    img.id
}

/// Mints a name; returns the status and the body.
async fn mint(s: &TestServer, id: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.raw(Method::POST, &format!("/v1/cloudimages/{id}/nbd"));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn mint_url(s: &TestServer, id: &str, body: Option<Value>) -> String {
    let (status, body) = mint(s, id, body).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["expires_at"].is_string(), "{body}");
    let url = body["nbd_url"].as_str().unwrap().to_string();
    let name = url.rsplit('/').next().unwrap();
    assert_eq!(name.len(), 64, "256-bit names in hex: {url}");
    assert!(url.starts_with("nbd://127.0.0.1:"), "{url}");
    url
}

/// A 64 MiB guest disk with data at 0-3M, 20-25M and 63-64M, and holes elsewhere, as a qcow2 file.
async fn qcow2_disk(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("disk.qcow2");
    let p = path.to_str().unwrap();
    must("qemu-img", &["create", "-q", "-f", "qcow2", p, "64M"]).await;
    must("qemu-io", &["-c", "write -P 0x11 0 3M", "-c", "write -P 0x22 20M 5M", "-c", "write -P 0x33 63M 1M", p]).await;
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_reads_the_guest_disk_of_qcow2_vmdk_and_zvhd2_images_with_their_holes() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let qcow2 = qcow2_disk(dir.path()).await;
    let expected_path = dir.path().join("expected.raw");
    must("qemu-img", &["convert", "-O", "raw", qcow2.to_str().unwrap(), expected_path.to_str().unwrap()]).await;
    let expected = std::fs::read(&expected_path).unwrap();
    let vmdk = dir.path().join("disk.vmdk");
    must("qemu-img", &["convert", "-O", "vmdk", qcow2.to_str().unwrap(), vmdk.to_str().unwrap()]).await;
    let zvhd2 = dir.path().join("disk.zvhd2");
    {
        let file = Arc::new(std::fs::File::open(&qcow2).unwrap());
        let disk = ims_formats::open(file, ims_formats::Format::Qcow2, &Default::default()).unwrap();
        let opts = ims_formats::WriteOptions::default();
        ims_formats::convert::convert_to_file(&*disk, ims_formats::Format::Zvhd2, &zvhd2, &opts, &|_| {}).unwrap();
    }

    for (format, path) in [("qcow2", &qcow2), ("vmdk", &vmdk), ("zvhd2", &zvhd2)] {
        let id = upload(&s, format, path).await;
        let url = mint_url(&s, &id, None).await;
        let out = dir.path().join(format!("{format}.out.raw"));
        must("qemu-img", &["convert", "-f", "raw", "-O", "raw", &url, out.to_str().unwrap()]).await;
        assert!(std::fs::read(&out).unwrap() == expected, "{format}: the NBD export is the guest disk");

        let map: Vec<Value> = serde_json::from_str(&must("qemu-img", &["map", "--output=json", "-f", "raw", &url]).await).unwrap();
        let covers = |offset: u64| {
            map.iter().find(|e| {
                let (start, len) = (e["start"].as_u64().unwrap(), e["length"].as_u64().unwrap());
                start <= offset && offset < start + len
            })
        };
        let hole = covers(10 << 20).unwrap_or_else(|| panic!("{format}: {map:?}"));
        assert_eq!(hole["data"], json!(false), "{format}: 10 MiB is a hole: {map:?}");
        let data = covers(21 << 20).unwrap();
        assert_eq!(data["data"], json!(true), "{format}: 21 MiB holds data: {map:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_expired_and_unknown_names_are_refused_and_none_is_listed() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&s, "qcow2", &qcow2_disk(dir.path()).await).await;

    let kept = mint_url(&s, &id, None).await;
    let revoked = mint_url(&s, &id, None).await;
    let expiring = mint_url(&s, &id, Some(json!({"ttl_seconds": 1}))).await;
    for url in [&kept, &revoked, &expiring] {
        assert!(must("qemu-img", &["info", "-f", "raw", url]).await.contains("67108864"), "{url}");
    }

    let resp = s
        .raw(Method::DELETE, &format!("/v1/cloudimages/{id}/nbd"))
        .json(&json!({"nbd_url": revoked}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let again = s.raw(Method::DELETE, &format!("/v1/cloudimages/{id}/nbd")).json(&json!({"nbd_url": revoked})).send();
    assert_eq!(again.await.unwrap().status().as_u16(), 404, "a revoked name is gone");
    run("qemu-img", &["info", "-f", "raw", &revoked]).await.expect_err("a revoked name is refused");

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    run("qemu-img", &["info", "-f", "raw", &expiring]).await.expect_err("an expired name is refused");
    let port = kept.trim_start_matches("nbd://127.0.0.1:").split('/').next().unwrap().to_string();
    let unknown = format!("nbd://127.0.0.1:{port}/{}", "0".repeat(64));
    run("qemu-img", &["info", "-f", "raw", &unknown]).await.expect_err("an unknown name is refused");
    must("qemu-img", &["info", "-f", "raw", &kept]).await;

    let listed = run("qemu-nbd", &["--list", "-b", "127.0.0.1", "-p", &port]).await.unwrap_or_else(|e| e);
    for url in [&kept, &revoked, &expiring] {
        assert!(!listed.contains(url.rsplit('/').next().unwrap()), "qemu-nbd --list reveals no name: {listed}");
    }
}

#[tokio::test]
async fn minting_needs_a_readable_active_image_a_valid_ttl_and_an_nbd_server() {
    let s = start().await;
    let tenant = s.tenant("other", ims_client::Role::Member).await;
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&s, "qcow2", &qcow2_disk(dir.path()).await).await;

    let resp = tenant.client.raw(Method::POST, &format!("/v1/cloudimages/{id}/nbd")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404, "another project's private image cannot be exported");
    let queued = s.admin.create_image(&crate::common::raw_image("empty")).await.unwrap();
    assert_eq!(mint(&s, &queued.id, None).await.0, 409, "an image without data cannot be exported");
    assert_eq!(mint(&s, &id, Some(json!({"ttl_seconds": 0}))).await.0, 400);
    assert_eq!(mint(&s, &id, Some(json!({"ttl_seconds": "soon"}))).await.0, 400);
    assert_eq!(mint(&s, &uuid::Uuid::new_v4().to_string(), None).await.0, 404);

    let without = TestServer::start().await;
    let id = upload(&without, "qcow2", &dir.path().join("disk.qcow2")).await;
    assert_eq!(mint(&without, &id, None).await.0, 501, "a node without an NBD server mints nothing");
}

/// `nbd://host:port/name` → (`host:port`, `name`).
fn split_url(url: &str) -> (&str, &str) {
    url.trim_start_matches("nbd://").split_once('/').unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_minted_on_one_node_is_served_and_revoked_on_another() {
    let a = start().await;
    let shared = a.data_dir.clone();
    let b = TestServer::start_with(|s| {
        s.nbd_listen = Some("127.0.0.1:0".parse().unwrap());
        s.database = Some(format!("sqlite://{}", shared.join("ims.db").display()));
        s.store = Some(format!("file://{}", shared.join("store").display()));
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&a, "qcow2", &qcow2_disk(dir.path()).await).await;

    let on_a = mint_url(&a, &id, None).await;
    let (a_host, name) = split_url(&on_a);
    let on_b = mint_url(&b, &id, None).await;
    let (b_host, _) = split_url(&on_b);
    assert_ne!(a_host, b_host);
    let via_b = format!("nbd://{b_host}/{name}");
    assert!(must("qemu-img", &["info", "-f", "raw", &via_b]).await.contains("67108864"), "node b serves a's name");

    let resp = b.raw(Method::DELETE, &format!("/v1/cloudimages/{id}/nbd")).json(&json!({"name": name})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    run("qemu-img", &["info", "-f", "raw", &on_a]).await.expect_err("revoked on b, refused on a");
}
