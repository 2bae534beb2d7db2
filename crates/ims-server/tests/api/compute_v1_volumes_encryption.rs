//! Volumes of encrypted images stay in the image's encryption domain: what is written over NBD is stored
//! encrypted, survives garbage collection, and an image made from the volume is encrypted under the same
//! key and reads back.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{chunk_files, raw_image, TestServer};

const MARKER: &[u8] = b"VOLUME-ENCRYPTION-MARKER-7c2e";

fn marked(len: usize, salt: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(MARKER);
        out.extend_from_slice(format!(" {salt} {i}\n").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_of_an_encrypted_image_writes_and_images_in_its_domain() {
    let s = TestServer::start_with(|s| s.nbd_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let key = s.admin.create_kms_key("volume-key", None).await.unwrap();
    let mut create = raw_image("secret-base");
    create.properties.insert("__system__cmkid".into(), key.id.clone());
    let image = s.admin.create_image(&create).await.unwrap();
    let base = marked(1 << 20, "base");
    s.admin.upload_bytes(&image.id, base.clone()).await.unwrap();

    let volume = s.admin.create_volume("secret", None, Some(&image.id)).await.unwrap();
    assert_eq!((volume.encrypted, volume.kms_key_id.as_deref()), (true, Some(key.id.as_str())));

    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload.bin");
    let written = marked(256 << 10, "written");
    std::fs::write(&payload, &written).unwrap();
    let before = chunk_files(&s.data_dir);
    let resp = s.raw(Method::POST, &format!("/compute/v1/volumes/{}/attachments", volume.id)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let url = resp.json::<Value>().await.unwrap()["nbd_url"].as_str().unwrap().to_string();
    let write = format!("write -s {} 4M 256k", payload.display());
    let out = tokio::process::Command::new("qemu-io").args(["-f", "raw", "-c", &write, &url]).output().await.unwrap();
    assert!(out.status.success(), "qemu-io: {}", String::from_utf8_lossy(&out.stderr));
    let new_chunks: Vec<PathBuf> = chunk_files(&s.data_dir).difference(&before).cloned().collect();
    assert!(!new_chunks.is_empty(), "the write stored chunks");
    for chunk in &new_chunks {
        let bytes = std::fs::read(chunk).unwrap();
        assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER), "{} holds plaintext", chunk.display());
    }

    // The volume's new chunks are live: a collection with no grace period keeps them.
    s.admin.store_gc(Some(0)).await.unwrap();
    let resp = s.raw(Method::POST, "/v2/cloudimages/action").json(&json!({"name": "from-secret", "volume_id": volume.id})).send().await.unwrap();
    let job_id = resp.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_string();
    let job = s.admin.wait_job(&job_id, Duration::from_millis(50), Duration::from_secs(30), |_| {}).await.unwrap();
    assert_eq!(job.status, "SUCCESS", "{job:?}");
    let made = s.admin.get_image(job.result.unwrap()["image_id"].as_str().unwrap()).await.unwrap();
    assert_eq!(made.properties.get("__system__cmkid").and_then(Value::as_str), Some(key.id.as_str()));
    let head = s.admin.download(&made.id, Some((0, Some((1 << 20) - 1)))).await.unwrap().bytes().await.unwrap();
    assert!(head[..] == base[..], "the image's start is the encrypted base");
    let at = 4u64 << 20;
    let range = Some((at, Some(at + (256 << 10) - 1)));
    let piece = s.admin.download(&made.id, range).await.unwrap().bytes().await.unwrap();
    assert!(piece[..] == written[..], "the image holds what was written over NBD");
}
