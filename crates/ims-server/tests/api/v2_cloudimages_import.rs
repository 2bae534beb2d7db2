//! Images from bucket files (CreateImage with image_url, CreateDataImage, ImportImageQuick, RegisterImage)
//! and CopyImageInRegion, through the HTTP API and the job runner; with qemu-img as the oracle.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ims_client::Role;
use md5::{Digest, Md5};
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{chunk_files, pattern, raw_image, TestServer, Tenant};
use crate::v1_cloudimages_export::{ims, wait_job};

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img").args(args).output().expect("qemu-img is installed");
    assert!(out.status.success(), "qemu-img {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A guest disk with data, a zero hole and an odd tail.
fn disk() -> Vec<u8> {
    let mut d = pattern(5 * 1024 * 1024 + 4096, 23);
    d[1024 * 1024..3 * 1024 * 1024].fill(0);
    d
}

/// `data` converted by qemu-img to `format`, as a file in `dir`.
fn qemu_file(dir: &Path, data: &[u8], format: &str) -> std::path::PathBuf {
    let raw = dir.join("guest.raw");
    std::fs::write(&raw, data).unwrap();
    let out = dir.join(format!("guest.{format}"));
    qemu_img(&["convert", "-f", "raw", "-O", format, raw.to_str().unwrap(), out.to_str().unwrap()]);
    out
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// Starts the import request and waits for its job; returns (job, image id).
async fn run_job(t: &Tenant, method: Method, path: &str, body: Value) -> (Value, String) {
    let (status, answer) = ims(t, method, path, Some(body)).await;
    assert_eq!(status, 200, "{path}: {answer}");
    let job = wait_job(t, answer["job_id"].as_str().unwrap()).await;
    let image_id = job["entities"]["image_id"].as_str().unwrap().to_string();
    (job, image_id)
}

async fn download(t: &Tenant, id: &str) -> Vec<u8> {
    t.client.download(id, None).await.unwrap().bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn import_converts_per_operator_setting() {
    let server = TestServer::start_with(|s| {
        s.import_conversions.insert("qcow2".into(), "raw".into());
        s.import_conversions.insert("vmdk".into(), "zvhd2".into());
    })
    .await;
    let t = server.tenant("alice", Role::Member).await;
    let dir = tempfile::tempdir().unwrap();
    let data = disk();
    let qcow2 = qemu_file(dir.path(), &data, "qcow2");
    let qcow2_bytes = std::fs::read(&qcow2).unwrap();
    t.client.put_object_file("imports", "disks/guest.qcow2", &qcow2).await.unwrap();

    // QCOW2 → RAW: the stored image is the converted disk; the original's hashes are kept.
    let body = json!({"name": "from-qcow2", "image_url": "imports:disks/guest.qcow2", "min_disk": 1, "os_version": "Ubuntu 22.04 server 64bit"});
    let (job, id) = run_job(&t, Method::POST, "/v2/cloudimages/action", body).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let image = t.client.get_image(&id).await.unwrap();
    assert_eq!(image.status, "active");
    assert_eq!(image.disk_format.as_deref(), Some("raw"));
    assert_eq!(image.size, Some(data.len() as u64));
    assert_eq!(image.virtual_size, Some(data.len() as u64));
    assert_eq!(image.property("__original_disk_format"), Some("qcow2"));
    assert_eq!(image.property("__original_checksum"), Some(md5_hex(&qcow2_bytes).as_str()));
    assert_eq!(image.property("__original_size"), Some(qcow2_bytes.len().to_string().as_str()));
    let stored = download(&t, &id).await;
    assert_eq!(image.checksum.as_deref(), Some(md5_hex(&stored).as_str()), "hashes describe the stored result");
    let out = dir.path().join("stored.raw");
    std::fs::write(&out, &stored).unwrap();
    qemu_img(&["compare", "-f", "raw", "-F", "qcow2", out.to_str().unwrap(), qcow2.to_str().unwrap()]);

    // VMDK → ZVHD2, as a data disk image: read back with our ZVHD2 reader.
    let vmdk = qemu_file(dir.path(), &data, "vmdk");
    t.client.put_object_file("imports", "guest.vmdk", &vmdk).await.unwrap();
    let body = json!({"name": "data-disk", "image_url": "imports:guest.vmdk", "min_disk": 40});
    let (job, id) = run_job(&t, Method::POST, "/v1/cloudimages/dataimages/action", body).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let image = t.client.get_image(&id).await.unwrap();
    assert_eq!(image.disk_format.as_deref(), Some("zvhd2"));
    assert_eq!(image.property("virtual_env_type"), Some("DataImage"));
    assert_eq!(image.virtual_size, Some(data.len() as u64));
    let zvhd2 = download(&t, &id).await;
    let reader = ims_formats::open(Arc::new(zvhd2), ims_formats::Format::Zvhd2, &ims_formats::Limits::default()).unwrap();
    let mut guest = vec![0u8; data.len()];
    reader.read_at(&mut guest, 0).unwrap();
    assert_eq!(guest, data);

    // VHD is not converted (kept as is by default).
    let vhd = qemu_file(dir.path(), &data, "vpc");
    t.client.put_object_file("imports", "guest.vhd", &vhd).await.unwrap();
    let (job, id) = run_job(&t, Method::POST, "/v2/cloudimages/action", json!({"name": "kept", "image_url": "imports:guest.vhd", "min_disk": 1})).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(t.client.get_image(&id).await.unwrap().disk_format.as_deref(), Some("vhd"));
    assert_eq!(download(&t, &id).await, std::fs::read(&vhd).unwrap(), "a kept file is stored byte for byte");
}

#[tokio::test]
async fn quick_import_register_and_copy() {
    let server = TestServer::start().await;
    let t = server.tenant("alice", Role::Member).await;
    let data = disk();
    let source = t.client.create_image(&raw_image("source")).await.unwrap();
    t.client.upload_bytes(&source.id, data.clone()).await.unwrap();

    // A ZVHD2 file made by an export, imported quickly: stored as it is, lazily readable.
    let (status, answer) = ims(&t, Method::POST, &format!("/v1/cloudimages/{}/file", source.id), Some(json!({"bucket_url": "files:guest.zvhd2", "file_format": "zvhd2"}))).await;
    assert_eq!(status, 404, "exports need an existing bucket: {answer}");
    t.client.create_bucket("files").await.unwrap();
    let (_, answer) = ims(&t, Method::POST, &format!("/v1/cloudimages/{}/file", source.id), Some(json!({"bucket_url": "files:guest.zvhd2", "file_format": "zvhd2"}))).await;
    assert_eq!(wait_job(&t, answer["job_id"].as_str().unwrap()).await["status"], "SUCCESS");
    let zvhd2 = t.client.get_object_bytes("files", "guest.zvhd2").await.unwrap().to_vec();
    let body = json!({"name": "quick", "image_url": "files:guest.zvhd2", "min_disk": 1, "type": "ECS"});
    let (job, quick) = run_job(&t, Method::POST, "/v2/cloudimages/quickimport/action", body).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let image = t.client.get_image(&quick).await.unwrap();
    assert_eq!((image.status.as_str(), image.disk_format.as_deref()), ("active", Some("zvhd2")));
    assert_eq!(image.property("__lazyloading"), Some("true"));
    assert_eq!(image.virtual_size, Some(data.len() as u64));
    assert_eq!(download(&t, &quick).await, zvhd2);
    let (status, answer) = ims(&t, Method::POST, "/v2/cloudimages/quickimport/action", Some(json!({"name": "q", "image_url": "files:x.qcow2", "min_disk": 1}))).await;
    assert_eq!((status, answer["error_code"].as_str()), (400, Some("IMG.0001")), "quick import takes RAW or ZVHD2 only");

    // RegisterImage fills a queued image from a bucket file.
    t.client.put_object_bytes("files", "plain.raw", data.clone()).await.unwrap();
    let queued = t.client.create_image(&raw_image("registered")).await.unwrap();
    let (job, id) = run_job(&t, Method::PUT, &format!("/v1/cloudimages/{}/upload", queued.id), json!({"image_url": "files:plain.raw"})).await;
    assert_eq!((job["status"].as_str(), id.as_str()), (Some("SUCCESS"), queued.id.as_str()), "{job}");
    assert_eq!(download(&t, &queued.id).await, data);
    let (status, _) = ims(&t, Method::PUT, &format!("/v1/cloudimages/{}/upload", queued.id), Some(json!({"image_url": "files:plain.raw"}))).await;
    assert_eq!(status, 409, "an active image cannot be registered again");

    // CopyImageInRegion: a new image sharing every chunk with the source.
    let chunks_before = count_files(&server.data_dir.join("store"), "manifests");
    let (job, copy) = run_job(&t, Method::POST, &format!("/v1/cloudimages/{}/copy", source.id), json!({"name": "the-copy", "description": "a copy"})).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_ne!(copy, source.id);
    let copied = t.client.get_image(&copy).await.unwrap();
    let original = t.client.get_image(&source.id).await.unwrap();
    assert_eq!((copied.status.as_str(), copied.name.as_deref()), ("active", Some("the-copy")));
    assert_eq!((copied.checksum.clone(), copied.size), (original.checksum.clone(), original.size));
    assert_eq!(count_files(&server.data_dir.join("store"), "manifests"), chunks_before, "no chunk was written");
    t.client.delete_image(&source.id).await.unwrap();
    assert_eq!(download(&t, &copy).await, data, "the copy outlives its source");
}

/// Files under `dir`, not counting the subtree `skip`.
fn count_files(dir: &Path, skip: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == skip {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            n += count_files(&entry.path(), skip);
        } else {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn bad_imports_fail_with_specific_codes() {
    let server = TestServer::start().await;
    let t = server.tenant("alice", Role::Member).await;
    t.client.put_object_bytes("imports", "garbage.qcow2", pattern(200_000, 3)).await.unwrap();
    let create = |name: &str, url: &str| json!({"name": name, "image_url": url, "min_disk": 1});

    // Missing bucket object and corrupt source: the job fails with its code; the image goes back to queued.
    for (name, url, code) in [("missing", "imports:nope.qcow2", "IMG.0102"), ("corrupt", "imports:garbage.qcow2", "IMG.0103")] {
        let (job, id) = run_job(&t, Method::POST, "/v2/cloudimages/action", create(name, url)).await;
        assert_eq!((job["status"].as_str(), job["error_code"].as_str()), (Some("FAIL"), Some(code)), "{name}: {job}");
        assert!(job["fail_reason"].as_str().is_some_and(|r| !r.is_empty()), "{job}");
        let image = t.client.get_image(&id).await.unwrap();
        assert_eq!((image.status.as_str(), image.size), ("queued", None), "{name}: no data attached");
    }

    // Refused before any job: bad extension, bad min_disk, another project's bucket, a missing image to copy.
    let other = server.tenant("bob", Role::Member).await;
    other.client.put_object_bytes("bobs", "disk.raw", b"x".to_vec()).await.unwrap();
    let refusals = [
        ("/v2/cloudimages/action", create("x", "imports:disk.exe"), 400),
        ("/v2/cloudimages/action", json!({"name": "x", "image_url": "imports:a.raw", "min_disk": 0}), 400),
        ("/v2/cloudimages/action", create("x", "bobs:disk.raw"), 404),
        ("/v1/cloudimages/00000000-0000-0000-0000-000000000000/copy", json!({"name": "c"}), 404),
    ];
    for (path, body, expected) in refusals {
        let (status, answer) = ims(&t, Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    // Copying a queued image is refused, and the image is untouched.
    let queued = t.client.create_image(&raw_image("q")).await.unwrap();
    let (status, _) = ims(&t, Method::POST, &format!("/v1/cloudimages/{}/copy", queued.id), Some(json!({"name": "c"}))).await;
    assert_eq!(status, 409);
    assert_eq!(t.client.get_image(&queued.id).await.unwrap().status, "queued");
}

/// With conversion the bucket object is read in place, never stored: it is inspected first as an upload
/// would be, so an unsafe or corrupt file fails the job with `IMG.0103`, stores nothing and leaves the
/// image queued; a good one after them converts.
#[tokio::test]
async fn imports_with_conversion_inspect_the_object_in_place() {
    let server = TestServer::start_with(|s| {
        s.import_conversions.insert("qcow2".into(), "raw".into());
    })
    .await;
    let t = server.tenant("alice", Role::Member).await;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.raw");
    std::fs::write(&base, pattern(1 << 20, 5)).unwrap();
    let child = dir.path().join("child.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", "-b", base.to_str().unwrap(), "-F", "raw", child.to_str().unwrap()]);
    t.client.put_object_file("imports", "child.qcow2", &child).await.unwrap();
    t.client.put_object_bytes("imports", "garbage.qcow2", pattern(200_000, 3)).await.unwrap();
    let chunks_before = chunk_files(&server.data_dir).len();

    for (key, reason) in [("child.qcow2", "backing"), ("garbage.qcow2", "")] {
        let body = json!({"name": key, "image_url": format!("imports:{key}"), "min_disk": 1});
        let (job, id) = run_job(&t, Method::POST, "/v2/cloudimages/action", body).await;
        assert_eq!((job["status"].as_str(), job["error_code"].as_str()), (Some("FAIL"), Some("IMG.0103")), "{key}: {job}");
        assert!(job["fail_reason"].as_str().is_some_and(|r| r.contains(key) && r.contains(reason)), "{key}: {job}");
        let image = t.client.get_image(&id).await.unwrap();
        assert_eq!((image.status.as_str(), image.size, image.checksum), ("queued", None, None), "{key}: nothing attached");
    }
    assert_eq!(chunk_files(&server.data_dir).len(), chunks_before, "nothing was stored for the refused files");

    let data = disk();
    let qcow2 = qemu_file(dir.path(), &data, "qcow2");
    t.client.put_object_file("imports", "good.qcow2", &qcow2).await.unwrap();
    let body = json!({"name": "good", "image_url": "imports:good.qcow2", "min_disk": 1});
    let (job, id) = run_job(&t, Method::POST, "/v2/cloudimages/action", body).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(download(&t, &id).await, data);
}



/// The size limits of imports, quick imports and exports are the operator's settings, and each refusal
/// says which limit was passed; nothing is attached to the image.
#[tokio::test]
async fn import_quick_import_and_export_limits_are_configurable_and_refusals_are_clear() {
    let server = TestServer::start_with(|s| {
        s.max_import_size = 1 << 20;
        s.max_quick_import_size = 2 << 20;
        s.max_export_size = 1 << 20;
    })
    .await;
    let t = server.tenant("alice", Role::Member).await;
    let data = pattern(3 << 19, 9); // 1.5 MiB: past the import limit, within the quick one.
    t.client.put_object_bytes("imports", "mid.raw", data.clone()).await.unwrap();
    t.client.put_object_bytes("imports", "big.raw", pattern(3 << 20, 10)).await.unwrap();

    let cases = [
        ("/v2/cloudimages/action", "imports:mid.raw", "1048576 bytes"),
        ("/v2/cloudimages/quickimport/action", "imports:big.raw", "2097152 bytes"),
    ];
    for (path, url, limit) in cases {
        let body = json!({"name": url, "image_url": url, "min_disk": 1, "type": "ECS"});
        let (job, id) = run_job(&t, Method::POST, path, body).await;
        assert_eq!((job["status"].as_str(), job["error_code"].as_str()), (Some("FAIL"), Some("IMG.0106")), "{url}: {job}");
        assert!(job["fail_reason"].as_str().is_some_and(|r| r.contains(limit)), "{url}: {job}");
        let image = t.client.get_image(&id).await.unwrap();
        assert_eq!((image.status.as_str(), image.size), ("queued", None), "{url}: nothing attached");
    }

    // The quick import limit is its own: 1.5 MiB passes it.
    let body = json!({"name": "quick", "image_url": "imports:mid.raw", "min_disk": 1, "type": "ECS"});
    let (job, quick) = run_job(&t, Method::POST, "/v2/cloudimages/quickimport/action", body).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(download(&t, &quick).await, data);

    // Exports must be smaller than their limit: refused before any job, with the IMS error form.
    t.client.create_bucket("out").await.unwrap();
    let path = format!("/v1/cloudimages/{quick}/file");
    let (status, answer) = ims(&t, Method::POST, &path, Some(json!({"bucket_url": "out:x.raw", "file_format": "raw"}))).await;
    assert_eq!((status, answer["error_code"].as_str()), (413, Some("IMG.0006")), "{answer}");
    assert!(answer["error_msg"].as_str().is_some_and(|m| m.contains("smaller than 1048576 bytes")), "{answer}");
    assert!(t.client.list_objects("out", None).await.unwrap().is_empty(), "nothing was exported");
}
