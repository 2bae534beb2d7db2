//! Images from servers: a server's disk rewritten over NBD by the real `qemu-io`, then a whole-server
//! image (IMS `CreateWholeImage`) that stores only what changed, read back over NBD; data disk images
//! (`CreateImage` with `data_images` or `volume_id`); a server restored from a whole-server image.

use std::path::Path;
use std::time::{Duration, Instant};

use ims_client::{CreateImage, JobInfo, NewServerDataVolume, NewServerRequest};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, raw_image, TestServer};

async fn must(program: &str, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program).args(args).output().await.expect("qemu tools are installed");
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn start() -> TestServer {
    TestServer::start_with(|s| s.nbd_listen = Some("127.0.0.1:0".parse().unwrap())).await
}

/// POSTs an IMS action and waits for its job to succeed.
async fn run_job(s: &TestServer, path: &str, body: Value) -> JobInfo {
    let resp = s.raw(Method::POST, path).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    let job_id = body["job_id"].as_str().unwrap();
    let job = s.admin.wait_job(job_id, Duration::from_millis(50), Duration::from_secs(60), |_| {}).await.unwrap();
    assert_eq!(job.status, "SUCCESS", "{job:?}");
    job
}

async fn nbd_url(s: &TestServer, path: &str) -> String {
    let resp = s.raw(Method::POST, path).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    body["nbd_url"].as_str().unwrap().to_string()
}

fn server(name: &str, image_id: &str, data_volumes: Vec<NewServerDataVolume>) -> NewServerRequest {
    NewServerRequest {
        name: name.into(),
        server_type: "ecs".into(),
        vcpus: 2,
        ram_mb: 2048,
        image_id: image_id.into(),
        capsule_id: None,
        architecture: None,
        firmware: None,
        system_volume_size: None,
        data_volumes,
    }
}

/// A 4 GiB qcow2 guest disk, mostly unallocated, with 3 MiB of data.
async fn base_disk(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("base.qcow2");
    let p = path.to_str().unwrap();
    must("qemu-img", &["create", "-q", "-f", "qcow2", p, "4G"]).await;
    must("qemu-io", &["-c", "write -P 0x11 0 2M", "-c", "write -P 0x22 3G 1M", p]).await;
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_server_image_after_an_nbd_write_stores_only_the_change_and_reads_back() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let base = base_disk(dir.path()).await;
    let create = CreateImage {
        name: Some("base".into()),
        disk_format: Some("qcow2".into()),
        container_format: Some("bare".into()),
        min_disk: Some(4),
        ..Default::default()
    };
    let image = s.admin.create_image(&create).await.unwrap();
    s.admin.upload_file(&image.id, &base).await.unwrap();
    let data_disk = vec![NewServerDataVolume { image_id: None, size: Some(1) }];
    let created = s.admin.create_server(&server("web", &image.id, data_disk)).await.unwrap();
    let system = created.volumes.unwrap()[0].clone();
    assert_eq!(system.size_bytes, 4 << 30);

    // 8 MiB of incompressible data written at 100 MiB through the volume's NBD export.
    let payload = dir.path().join("payload.bin");
    std::fs::write(&payload, pattern(8 << 20, 42)).unwrap();
    let write = format!("write -s {} 100M 8M", payload.display());
    let before = s.admin.store_stats().await.unwrap().chunk_bytes;
    let volume_url = nbd_url(&s, &format!("/compute/v1/volumes/{}/attachments", system.id)).await;
    // qemu flushes before it disconnects; the flush persists the volume's new manifest.
    must("qemu-io", &["-f", "raw", "-c", &write, &volume_url]).await;
    let written = s.admin.store_stats().await.unwrap().chunk_bytes;

    let started = Instant::now();
    let job = run_job(&s, "/v1/cloudimages/wholeimages/action", json!({"name": "web-whole", "instance_id": created.id})).await;
    let elapsed = started.elapsed();
    let after = s.admin.store_stats().await.unwrap().chunk_bytes;
    let new_bytes = after - before;
    eprintln!("8 MiB rewritten + whole-server image: {new_bytes} new chunk bytes ({} by the image), {elapsed:?}", after - written);
    assert!(new_bytes < 16 << 20, "the write plus the whole-server image stored {new_bytes} bytes");
    assert!(new_bytes >= 8 << 20, "the 8 MiB written are stored ({new_bytes} bytes)");
    assert_eq!(after, written, "the images share the volumes' chunks: no chunk is stored for them");
    assert!(elapsed < Duration::from_secs(5), "the whole-server image took {elapsed:?}");

    let result = job.result.unwrap();
    let parent = s.admin.get_image(result["image_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(parent.status, "active");
    assert_eq!(parent.properties.get("__whole_image"), Some(&json!("true")), "{parent:?}");
    let system_image_id = parent.properties["__system_image_id"].as_str().unwrap().to_string();
    assert_eq!(result["system_image_id"].as_str(), Some(system_image_id.as_str()));
    let data_images = parent.properties["__data_image_ids"].as_str().unwrap();
    assert_eq!(data_images.split(',').count(), 1, "one data disk image: {data_images}");
    let system_image = s.admin.get_image(&system_image_id).await.unwrap();
    assert_eq!((system_image.disk_format.as_deref(), system_image.size), (Some("raw"), Some(4 << 30)));

    // The system disk image is the base with exactly the write applied.
    let expected = dir.path().join("expected.raw");
    let e = expected.to_str().unwrap();
    must("qemu-img", &["convert", "-O", "raw", base.to_str().unwrap(), e]).await;
    must("qemu-io", &["-f", "raw", "-c", &write, e]).await;
    let image_url = nbd_url(&s, &format!("/v1/cloudimages/{system_image_id}/nbd")).await;
    must("qemu-img", &["compare", "-f", "raw", "-F", "raw", e, &image_url]).await;

    // A server from the whole-server image gets every disk back.
    let restored = s.admin.create_server(&server("restored", &parent.id, Vec::new())).await.unwrap();
    assert_eq!(restored.image_id.as_deref(), Some(parent.id.as_str()));
    let volumes = restored.volumes.unwrap();
    assert_eq!(volumes.iter().map(|v| (v.device_index, v.size_bytes)).collect::<Vec<_>>(), [(Some(0), 4 << 30), (Some(1), 1 << 30)]);
    let restored_url = nbd_url(&s, &format!("/compute/v1/volumes/{}/attachments", volumes[0].id)).await;
    must("qemu-img", &["compare", "-f", "raw", "-F", "raw", e, &restored_url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_disk_images_come_from_listed_volumes_and_from_a_volume_alone() {
    let s = start().await;
    let img = s.admin.create_image(&raw_image("small")).await.unwrap();
    s.admin.upload_bytes(&img.id, pattern(2 << 20, 9)).await.unwrap();
    let created = s
        .admin
        .create_server(&server("db", &img.id, vec![NewServerDataVolume { image_id: Some(img.id.clone()), size: Some(2) }]))
        .await
        .unwrap();
    let data = created.volumes.unwrap()[1].clone();

    let body = json!({"name": "db-sys", "instance_id": created.id, "min_ram": 1024,
        "data_images": [{"name": "db-data", "volume_id": data.id, "description": "the data disk"}]});
    let job = run_job(&s, "/v2/cloudimages/action", body).await;
    let result = job.result.unwrap();
    let system = s.admin.get_image(result["image_id"].as_str().unwrap()).await.unwrap();
    assert_eq!((system.name.as_deref(), system.min_ram), (Some("db-sys"), 1024));
    let sub: Vec<String> = serde_json::from_value(result["sub_images"].clone()).unwrap();
    let data_image = s.admin.get_image(&sub[0]).await.unwrap();
    assert_eq!(data_image.properties.get("virtual_env_type"), Some(&json!("DataImage")));
    assert_eq!(data_image.size, Some(2 << 30));
    let head = s.admin.download(&data_image.id, Some((0, Some((4 << 20) - 1)))).await.unwrap().bytes().await.unwrap();
    assert_eq!(head.len(), 4 << 20);
    assert!(head[..2 << 20] == pattern(2 << 20, 9)[..], "a data disk image holds the volume's data");
    assert!(head[2 << 20..].iter().all(|b| *b == 0), "and zeros past the image it was made from");

    let job = run_job(&s, "/v2/cloudimages/action", json!({"name": "alone", "volume_id": data.id})).await;
    let alone = s.admin.get_image(job.result.unwrap()["image_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(alone.properties.get("virtual_env_type"), Some(&json!("DataImage")));

    let other = s.admin.create_volume("loose", Some(1), None).await.unwrap();
    let resp = s
        .raw(Method::POST, "/v2/cloudimages/action")
        .json(&json!({"name": "x", "instance_id": created.id, "data_images": [{"name": "y", "volume_id": other.id}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "a volume not attached to the server is refused");
}
