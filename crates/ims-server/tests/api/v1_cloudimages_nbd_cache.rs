//! NBD exports of images read their guest disks through the node's chunk cache: a region read again
//! (on a new connection) fetches nothing from the store.
//!
//! That nothing is fetched is told by removing every chunk object from the store directory between
//! the two reads: the second read still returns the right bytes.

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{pattern, raw_image, TestServer};

const MIB: u64 = 1 << 20;

/// Bytes `[offset, offset + len)` of the disk behind `nbd_url` (`nbd://HOST:PORT/NAME`), read by
/// `qemu-img convert` over NBD (a raw driver with an offset and a size over the NBD export).
async fn read_region(nbd_url: &str, offset: u64, len: u64, out: &Path) -> Result<Vec<u8>, String> {
    let rest = nbd_url.strip_prefix("nbd://").expect("an nbd URL");
    let (address, name) = rest.split_once('/').expect("an export name");
    let (host, port) = address.rsplit_once(':').expect("a port");
    let spec = json!({
        "driver": "raw",
        "offset": offset,
        "size": len,
        "file": {"driver": "nbd", "server": {"type": "inet", "host": host, "port": port}, "export": name},
    });
    let output = tokio::process::Command::new("qemu-img")
        .args(["convert", "-O", "raw", &format!("json:{spec}"), out.to_str().unwrap()])
        .output()
        .await
        .expect("qemu-img is installed");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(std::fs::read(out).unwrap())
}

/// Removes every chunk object of the server's store; returns how many there were.
fn remove_chunk_objects(data_dir: &Path) -> usize {
    let root = data_dir.join("store").join("chunks");
    let mut removed = 0;
    for dir in std::fs::read_dir(&root).unwrap().flatten() {
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            std::fs::remove_file(file.path()).unwrap();
            removed += 1;
        }
    }
    removed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nbd_region_read_twice_is_fetched_from_the_store_once() {
    let s = TestServer::start_with(|s| s.nbd_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let data = pattern(24 * MIB as usize, 41);
    let image = s.admin.create_image(&raw_image("nbd-cached")).await.unwrap();
    s.admin.upload_bytes(&image.id, data.clone()).await.unwrap();
    let resp = s.raw(Method::POST, &format!("/v1/cloudimages/{}/nbd", image.id)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let body: Value = resp.json().await.unwrap();
    let url = body["nbd_url"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    // 3 MiB across several chunks, away from both ends of the disk.
    let (offset, len) = (10 * MIB + 12_288, 3 * MIB);
    let expected = &data[offset as usize..(offset + len) as usize];
    let first = read_region(&url, offset, len, &dir.path().join("first.raw")).await.unwrap();
    assert!(first == expected, "the NBD export serves the image's bytes");

    assert!(remove_chunk_objects(&s.data_dir) >= 10);
    let second = read_region(&url, offset, len, &dir.path().join("second.raw")).await.unwrap();
    assert!(second == expected, "the second read is served from the cache");
    // The objects are really gone: a region never read fails to read.
    let cold = read_region(&url, MIB, 64 * 1024, &dir.path().join("cold.raw")).await;
    assert!(cold.is_err(), "a region never read is fetched, and its chunks are gone");
}
