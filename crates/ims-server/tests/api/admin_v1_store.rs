//! `/admin/v1/store/...`: garbage collection, verification and statistics of the chunk store.


use ims_client::{Client, Role};
use sha2::{Digest, Sha256};

use crate::common::{chunk_files, pattern, raw_image, status, TestServer};

const MIB: usize = 1 << 20;


/// Uploads `data` as a new raw image; returns its id.
async fn upload(client: &Client, name: &str, data: Vec<u8>) -> String {
    let image = client.create_image(&raw_image(name)).await.unwrap();
    client.upload_bytes(&image.id, data).await.unwrap();
    image.id
}

async fn sha256_of_download(client: &Client, id: &str) -> String {
    let data = client.download(id, None).await.unwrap().bytes().await.unwrap();
    hex::encode(Sha256::digest(&data))
}

#[tokio::test]
async fn gc_reclaims_the_chunks_of_deleted_images_and_keeps_shared_ones() {
    let s = TestServer::start().await;
    let shared = pattern(6 * MIB, 1);
    let mut a = shared.clone();
    a.extend(pattern(5 * MIB, 2));
    let mut b = shared.clone();
    b.extend(pattern(5 * MIB, 3));
    let a_id = upload(&s.admin, "a", a).await;
    let b_id = upload(&s.admin, "b", b.clone()).await;
    let before = chunk_files(&s.data_dir);

    // Nothing is garbage yet: a collection with zero grace deletes nothing.
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    assert_eq!((report.chunks_deleted, report.manifests_removed), (0, 0), "{report:?}");
    assert_eq!(report.chunks_live as usize, before.len());

    s.admin.delete_image(&a_id).await.unwrap();
    // The default grace (a day) protects even garbage.
    let report = s.admin.store_gc(None).await.unwrap();
    assert_eq!(report.chunks_deleted, 0, "{report:?}");
    assert_eq!(chunk_files(&s.data_dir), before);

    let report = s.admin.store_gc(Some(0)).await.unwrap();
    let after = chunk_files(&s.data_dir);
    assert!(report.chunks_deleted > 0 && report.bytes_reclaimed > 0, "{report:?}");
    assert_eq!(report.chunks_deleted as usize, before.len() - after.len(), "{report:?}");
    assert!(after.is_subset(&before));
    // What is left is exactly what b references, and b reads back whole.
    let stats = s.admin.store_stats().await.unwrap();
    assert_eq!((stats.chunks, stats.unreferenced_chunks), (after.len() as u64, 0), "{stats:?}");
    assert_eq!(sha256_of_download(&s.admin, &b_id).await, hex::encode(Sha256::digest(&b)));
    let verify = s.admin.store_verify(None).await.unwrap();
    assert!(verify.is_clean(), "{verify:?}");

    s.admin.delete_image(&b_id).await.unwrap();
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    assert_eq!(report.chunks_live, 0, "{report:?}");
    assert!(chunk_files(&s.data_dir).is_empty(), "no image left, no chunk left");
}

#[tokio::test]
async fn a_refused_upload_leaves_nothing_behind_after_gc() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.qcow2");
    let top = dir.path().join("top.qcow2");
    let qemu_img = |args: &[&str]| {
        let out = std::process::Command::new("qemu-img").args(args).output().expect("qemu-img is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "16M"]);
    qemu_img(&["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base.to_str().unwrap(), top.to_str().unwrap()]);
    // Enough trailing data for several chunks to be stored before the inspection refuses the file.
    let mut file = std::fs::read(&top).unwrap();
    file.extend(pattern(4 * MIB, 9));
    let kept = upload(&s.admin, "kept", pattern(3 * MIB, 10)).await;
    let mut create = raw_image("unsafe");
    create.disk_format = Some("qcow2".into());
    let image = s.admin.create_image(&create).await.unwrap();
    assert_eq!(status(s.admin.upload_bytes(&image.id, file).await), 400);

    let stats = s.admin.store_stats().await.unwrap();
    assert!(stats.unreferenced_chunks > 0, "the refused upload stored chunks: {stats:?}");
    // The refused upload releases its pending manifest in the background, right after answering.
    let mut deleted = 0;
    for attempt in 0.. {
        let report = s.admin.store_gc(Some(0)).await.unwrap();
        deleted += report.chunks_deleted;
        if report.pending_scanned == 0 {
            break;
        }
        assert!(attempt < 100, "the pending manifest of the refused upload was never released: {report:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(deleted, stats.unreferenced_chunks);
    let stats = s.admin.store_stats().await.unwrap();
    assert_eq!(stats.unreferenced_chunks, 0, "{stats:?}");
    assert_eq!(stats.chunks as usize, chunk_files(&s.data_dir).len());
    assert_eq!(sha256_of_download(&s.admin, &kept).await, hex::encode(Sha256::digest(pattern(3 * MIB, 10))));
}

#[tokio::test]
async fn a_flipped_byte_fails_the_download_and_verify_names_image_and_offset() {
    // No chunk cache: the upload's inspection leaves the first chunks in it, and ranged downloads
    // serve cached chunks (verified when they were fetched) without reading the store again.
    let s = TestServer::start_with(|settings| settings.chunk_cache_bytes = 0).await;
    let data = pattern(8 * MIB, 4);
    let id = upload(&s.admin, "victim", data.clone()).await;
    let other = upload(&s.admin, "bystander", pattern(2 * MIB, 5)).await;
    assert!(s.admin.store_verify(None).await.unwrap().is_clean());

    // Damage the chunk at file offset 0 (read before any header is sent) and one further in.
    let report = s.admin.store_verify(Some(&id)).await.unwrap();
    assert!(report.chunks_checked >= 3, "{report:?}");
    let files = chunk_files(&s.data_dir);
    let manifest = manifest_of(&s);
    let first = &manifest[0];
    let later = &manifest[2];
    for (chunk, _) in [first, later] {
        let path = files.iter().find(|p| p.file_name().unwrap().to_str().unwrap() == chunk).unwrap();
        let mut object = std::fs::read(path).unwrap();
        let middle = object.len() / 2;
        object[middle] ^= 0x40;
        std::fs::write(path, object).unwrap();
    }

    let err = s.admin.download(&id, None).await.expect_err("the first bytes are corrupt");
    assert_eq!(err.status(), Some(500));
    let message = err.to_string();
    assert!(message.contains(&id) && message.contains(&first.0) && message.contains("offset 0"), "{message}");
    // A range past the first damaged chunk starts fine and is cut off at the second: never wrong bytes.
    // (The response may be cut before or after its headers reach the client.)
    let from = later.1 - 1;
    let outcome = match s.admin.download(&id, Some((from, None))).await {
        Ok(response) => response.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(outcome.is_err(), "the transfer must fail, not end short or serve damaged bytes");

    let report = s.admin.store_verify(None).await.unwrap();
    let found: Vec<(String, u64, String)> =
        report.chunk_problems.iter().map(|p| (p.image_id.clone(), p.offset, p.kind.clone())).collect();
    assert_eq!(found, vec![(id.clone(), 0, "corrupt".into()), (id.clone(), later.1, "corrupt".into())], "{report:?}");
    assert!(report.chunk_problems.iter().all(|p| p.detail.contains(&p.chunk)), "{report:?}");
    let only_other = s.admin.store_verify(Some(&other)).await.unwrap();
    assert!(only_other.is_clean() && only_other.images_checked == 1, "{only_other:?}");
    assert_eq!(sha256_of_download(&s.admin, &other).await, hex::encode(Sha256::digest(pattern(2 * MIB, 5))));

    // A missing chunk is reported as missing.
    let path = files.iter().find(|p| p.file_name().unwrap().to_str().unwrap() == manifest[1].0).unwrap();
    std::fs::remove_file(path).unwrap();
    let report = s.admin.store_verify(Some(&id)).await.unwrap();
    assert!(report.chunk_problems.iter().any(|p| p.offset == manifest[1].1 && p.kind == "missing"), "{report:?}");
}

/// (chunk hex, file offset) of each stored extent of the image's manifest, read from the store's files.
/// The manifest is found as the largest one: callers make the image they ask about the largest.
fn manifest_of(s: &TestServer) -> Vec<(String, u64)> {
    let dir = s.data_dir.join("store").join("manifests");
    let largest = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(largest.path()).unwrap()).unwrap();
    json["extents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["chunk"].is_string())
        .map(|e| (e["chunk"].as_str().unwrap().to_string(), e["offset"].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn stats_count_logical_and_physical_bytes_per_project() {
    let s = TestServer::start().await;
    let alpha = s.tenant("alpha", Role::Member).await;
    let beta = s.tenant("beta", Role::Member).await;
    let common = pattern(4 * MIB, 7);
    let a1 = upload(&alpha.client, "a1", common.clone()).await;
    let _a2 = upload(&alpha.client, "a2", pattern(3 * MIB, 8)).await;
    let _b1 = upload(&beta.client, "b1", common.clone()).await;
    let _b2 = upload(&beta.client, "b2", vec![0u8; 2 * MIB]).await;

    let stats = s.admin.store_stats().await.unwrap();
    assert_eq!(stats.images, 4);
    assert_eq!(stats.logical_bytes, (4 + 3 + 4 + 2) as u64 * MIB as u64);
    let project = |id: &str| stats.projects.iter().find(|p| p.project_id == id).unwrap().clone();
    let (pa, pb) = (project(&alpha.project_id), project(&beta.project_id));
    assert_eq!((pa.images, pa.logical_bytes), (2, 7 * MIB as u64));
    assert_eq!((pb.images, pb.logical_bytes), (2, 6 * MIB as u64));
    // Random data does not compress: physical ≈ logical (plus each chunk's frame table, 37 bytes per
    // 64 KiB); zeros cost nothing; shared chunks count in both.
    let on_disk: u64 = chunk_files(&s.data_dir).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(stats.chunk_bytes, on_disk);
    assert_eq!(stats.unreferenced_bytes, 0);
    let about = |bytes: u64| bytes..bytes + bytes / 1024;
    assert!(about(7 * MIB as u64).contains(&pa.physical_bytes), "{pa:?}");
    assert!(about(4 * MIB as u64).contains(&pb.physical_bytes), "{pb:?}");
    assert_eq!(stats.referenced_bytes, pa.physical_bytes, "beta's chunks are all shared with alpha");
    assert!(stats.physical_bytes > stats.chunk_bytes, "manifests count too");

    // Admins only, on every store endpoint.
    assert_eq!(status(alpha.client.store_stats().await), 403);
    assert_eq!(status(alpha.client.store_gc(Some(0)).await), 403);
    assert_eq!(status(alpha.client.store_verify(Some(&a1)).await), 403);
    // Bad input is refused and changes nothing.
    let r = s.raw(reqwest::Method::POST, "/admin/v1/store/gc").json(&serde_json::json!({"grace_seconds": -1})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s.raw(reqwest::Method::POST, "/admin/v1/store/verify").json(&serde_json::json!({"image_id": "nope"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let missing = uuid::Uuid::new_v4().to_string();
    assert_eq!(status(s.admin.store_verify(Some(&missing)).await), 404);
    assert_eq!(s.admin.store_stats().await.unwrap().chunks, stats.chunks);
}

/// `node_chunk_reads` of the statistics: chunk objects this node fetched from its store, and their bytes.
async fn node_chunk_reads(s: &TestServer) -> (u64, u64) {
    let stats: serde_json::Value =
        s.raw(reqwest::Method::GET, "/admin/v1/store/stats").send().await.unwrap().json().await.unwrap();
    let reads = &stats["node_chunk_reads"];
    (reads["chunks"].as_u64().unwrap(), reads["bytes"].as_u64().unwrap())
}

#[tokio::test]
async fn stats_count_the_chunk_objects_the_node_fetched() {
    let s = TestServer::start().await;
    let data = pattern(6 * MIB, 21);
    let id = upload(&s.admin, "fetched", data.clone()).await;
    let stored = s.admin.store_stats().await.unwrap();
    let (chunks_before, bytes_before) = node_chunk_reads(&s).await;
    let body = s.admin.download(&id, None).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], &data[..]);
    let (chunks_after, bytes_after) = node_chunk_reads(&s).await;
    // Random data: every chunk is distinct. A chunk already in the node's cache may be served from it,
    // so the download fetches at least one chunk and at most all of them, never more bytes than stored.
    let (fetched, fetched_bytes) = (chunks_after - chunks_before, bytes_after - bytes_before);
    assert!(fetched >= 1 && fetched <= stored.chunks, "{fetched} of {} chunks", stored.chunks);
    assert!(fetched_bytes > 0 && fetched_bytes <= stored.chunk_bytes, "{fetched_bytes} of {}", stored.chunk_bytes);
    // Statistics themselves fetch no chunk.
    assert_eq!(node_chunk_reads(&s).await, (chunks_after, bytes_after));
}
