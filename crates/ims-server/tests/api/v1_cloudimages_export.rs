//! ExportImage (`POST /v1/cloudimages/{image_id}/file`) through the job runner: every export format,
//! each output checked by qemu-img or by our own ZVHD/ZVHD2 readers; and the refusals.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ims_client::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, raw_image, TestServer, Tenant};

/// A token-authenticated IMS request: (status, JSON body).
pub async fn ims(t: &Tenant, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = t.client.raw(method, path);
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let response = rb.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Polls ShowJob until the job is final (at most 60 s) and returns it.
pub async fn wait_job(t: &Tenant, job_id: &str) -> Value {
    for _ in 0..600 {
        let (status, job) = ims(t, Method::GET, &format!("/v1/{}/jobs/{job_id}", t.project_id), None).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] == "SUCCESS" || job["status"] == "FAIL" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job_id} did not end");
}

/// A disk with data, a zero hole and an odd tail: 6 MiB + 512 bytes.
fn disk() -> Vec<u8> {
    let mut d = pattern(6 * 1024 * 1024 + 512, 11);
    d[2 * 1024 * 1024..4 * 1024 * 1024].fill(0);
    d
}

fn qemu_compare(raw: &std::path::Path, other: &std::path::Path, qemu_format: &str) {
    let out = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", qemu_format])
        .arg(raw)
        .arg(other)
        .output()
        .expect("qemu-img is installed");
    assert!(out.status.success(), "qemu-img compare {qemu_format}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// Reads the whole guest disk of `file` as `format` with our own reader.
fn guest_disk(file: Vec<u8>, format: ims_formats::Format) -> Vec<u8> {
    let image = ims_formats::open(Arc::new(file), format, &ims_formats::Limits::default()).unwrap();
    let mut out = vec![0u8; image.virtual_size() as usize];
    image.read_at(&mut out, 0).unwrap();
    out
}

async fn active_raw_image(t: &Tenant, name: &str, data: Vec<u8>) -> String {
    let img = t.client.create_image(&raw_image(name)).await.unwrap();
    t.client.upload_bytes(&img.id, data).await.unwrap();
    assert_eq!(t.client.get_image(&img.id).await.unwrap().status, "active");
    img.id
}

#[tokio::test]
async fn export_in_every_format() {
    let server = TestServer::start().await;
    let t = server.tenant("alice", Role::Member).await;
    let data = disk();
    let id = active_raw_image(&t, "exported", data.clone()).await;
    t.client.create_bucket("exports").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let raw_path = dir.path().join("source.raw");
    std::fs::write(&raw_path, &data).unwrap();

    for (file_format, qemu) in [("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vhd", "vpc"), ("raw", "raw"), ("zvhd", ""), ("zvhd2", "")] {
        let body = json!({"bucket_url": format!("exports:out/disk.{file_format}"), "file_format": file_format});
        let (status, answer) = ims(&t, Method::POST, &format!("/v1/cloudimages/{id}/file"), Some(body)).await;
        assert_eq!(status, 200, "{file_format}: {answer}");
        let job_id = answer["job_id"].as_str().unwrap().to_string();
        let job = wait_job(&t, &job_id).await;
        assert_eq!(job["status"], "SUCCESS", "{file_format}: {job}");
        assert_eq!(job["job_type"], "exportImage");
        assert_eq!(job["entities"]["image_id"], id.as_str());

        let file = t.client.get_object_bytes("exports", &format!("out/disk.{file_format}")).await.unwrap().to_vec();
        match file_format {
            "zvhd" => assert_eq!(guest_disk(file, ims_formats::Format::Zvhd), data, "zvhd"),
            "zvhd2" => assert_eq!(guest_disk(file, ims_formats::Format::Zvhd2), data, "zvhd2"),
            _ => {
                let path = dir.path().join(format!("out.{file_format}"));
                std::fs::write(&path, &file).unwrap();
                qemu_compare(&raw_path, &path, qemu);
            }
        }
    }
    let (_, progress) = ims(&t, Method::GET, "/v1/cloudimages/job/none", None).await;
    assert!(progress.get("error_code").is_some(), "unknown jobs answer an IMS error: {progress}");
    assert_eq!(t.client.get_image(&id).await.unwrap().status, "active", "the source is untouched");
}

#[tokio::test]
async fn bad_exports_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let t = server.tenant("alice", Role::Member).await;
    let other = server.tenant("bob", Role::Member).await;
    let id = active_raw_image(&t, "src", disk()).await;
    t.client.create_bucket("exports").await.unwrap();
    other.client.create_bucket("bobs-bucket").await.unwrap();
    let queued = t.client.create_image(&raw_image("empty")).await.unwrap();
    let export = |image: &str, url: &str, format: &str| {
        (format!("/v1/cloudimages/{image}/file"), json!({"bucket_url": url, "file_format": format}))
    };
    let cases = [
        (export(&id, "exports:a.bin", "vdi"), 400, "unsupported format"),
        (export(&id, "no-colon", "qcow2"), 400, "bad bucket URL"),
        (export(&id, "exports:../x", "qcow2"), 400, "bad key"),
        (export(&id, "missing-bucket:a", "qcow2"), 404, "missing bucket"),
        (export(&id, "bobs-bucket:a", "qcow2"), 404, "another project's bucket"),
        (export(&queued.id, "exports:a", "qcow2"), 409, "image not active"),
        (export("00000000-0000-0000-0000-000000000000", "exports:a", "qcow2"), 404, "missing image"),
    ];
    for ((path, body), expected, what) in cases {
        let (status, answer) = ims(&t, Method::POST, &path, Some(body)).await;
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(answer["error_code"].as_str().is_some_and(|c| c.starts_with("IMG.")), "{what}: {answer}");
    }
    // Another project cannot export alice's image, even to its own bucket.
    let (status, _) = ims(&other, Method::POST, &format!("/v1/cloudimages/{id}/file"), Some(json!({"bucket_url": "bobs-bucket:a", "file_format": "raw"}))).await;
    assert_eq!(status, 404);
    assert!(t.client.list_objects("exports", None).await.unwrap().is_empty(), "nothing was written");
    assert!(other.client.list_objects("bobs-bucket", None).await.unwrap().is_empty());
    assert_eq!(t.client.get_image(&id).await.unwrap().status, "active");
}
