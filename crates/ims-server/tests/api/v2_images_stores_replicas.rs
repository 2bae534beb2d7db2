//! Copies of images in extra Glance stores as real replicas: garbage collection sweeps every store (a copy
//! lives as long as its image, binned ones included), purging drops the copy, and reads fall back on the
//! copy for chunks the default store lost.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ims_server::config::StoreConfig;
use ims_store::{ChunkId, ChunkStore, Manifest};
use object_store::PutPayload;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::common::{pattern, raw_image, TestServer};

/// A server with an extra store `second` (its URL and directory returned), the recycle bin on and an NBD
/// server.
async fn server() -> (TestServer, String, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let config = StoreConfig { url: url.clone(), description: "Second chunk store".into() };
    let s = TestServer::start_with(|c| {
        c.stores.insert("second".into(), config);
        c.recycle_bin_retention = 3600;
        c.nbd_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    (s, url, dir)
}

/// The node's default store, opened from the outside.
fn default_store(s: &TestServer) -> ChunkStore {
    ChunkStore::open(&format!("file://{}", s.data_dir.join("store").display())).unwrap()
}

async fn active_image(s: &TestServer, name: &str, data: &[u8]) -> String {
    let img = s.admin.create_image(&raw_image(name)).await.unwrap();
    s.admin.upload_bytes(&img.id, data.to_vec()).await.unwrap();
    img.id
}

/// Copies image `id` to the store `second` with `copy-image` and waits until that is done.
async fn copy_to_second(s: &TestServer, id: &str) {
    let r = s.raw(Method::POST, &format!("/v2/images/{id}/import")).json(&json!({"method": {"name": "copy-image"}, "stores": ["second"]}));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    for _ in 0..300 {
        let image: Value = s.raw(Method::GET, &format!("/v2/images/{id}")).send().await.unwrap().json().await.unwrap();
        if image["stores"] == "local,second" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("image {id} was not copied to the second store");
}

/// Manifest ids held by `store`.
async fn manifest_ids(store: &ChunkStore) -> BTreeSet<String> {
    store.list_manifests().await.unwrap().into_iter().map(|m| m.id).collect()
}

async fn chunks_of(store: &ChunkStore, manifest_id: &str) -> BTreeSet<ChunkId> {
    store.load_manifest(manifest_id).await.unwrap().chunk_ids().copied().collect()
}

async fn present(store: &ChunkStore) -> BTreeSet<ChunkId> {
    store.list_chunks().await.unwrap().into_iter().map(|c| c.id).collect()
}

async fn download(s: &TestServer, id: &str) -> Vec<u8> {
    s.admin.download(id, None).await.unwrap().bytes().await.unwrap().to_vec()
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[tokio::test]
async fn gc_sweeps_the_extra_store_keeping_shared_and_binned_copies() {
    let (s, url, _dir) = server().await;
    let second = ChunkStore::open(&url).unwrap();
    // Two images sharing their first 4 MiB (content-defined chunks: the shared prefix gives shared chunks).
    let first = pattern(8 << 20, 41);
    let mut other = first[..4 << 20].to_vec();
    other.extend_from_slice(&pattern(4 << 20, 42));
    let doomed = active_image(&s, "doomed", &first).await;
    copy_to_second(&s, &doomed).await;
    let doomed_manifest = manifest_ids(&second).await.into_iter().next().unwrap();
    let kept = active_image(&s, "kept", &other).await;
    copy_to_second(&s, &kept).await;
    let kept_manifest = manifest_ids(&second).await.into_iter().find(|m| *m != doomed_manifest).unwrap();
    let doomed_chunks = chunks_of(&second, &doomed_manifest).await;
    let kept_chunks = chunks_of(&second, &kept_manifest).await;
    let shared: BTreeSet<ChunkId> = doomed_chunks.intersection(&kept_chunks).copied().collect();
    let unshared: BTreeSet<ChunkId> = doomed_chunks.difference(&kept_chunks).copied().collect();
    assert!(!shared.is_empty() && !unshared.is_empty(), "shared {} unshared {}", shared.len(), unshared.len());

    // Binned: its copy is still live for the extra store's garbage collection.
    s.admin.delete_image(&doomed).await.unwrap();
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    let in_second = &report.extra_stores["second"];
    assert_eq!((in_second.chunks_deleted, in_second.manifests_removed), (0, 0), "{report:?}");
    assert!(present(&second).await.is_superset(&doomed_chunks), "a binned image's copy stays whole");

    // Purged: its manifest leaves the extra store at once, its unshared chunks with the next collection.
    s.admin.purge_image(&doomed).await.unwrap();
    assert_eq!(manifest_ids(&second).await, BTreeSet::from([kept_manifest.clone()]), "the purge drops the copy");
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    let in_second = &report.extra_stores["second"];
    assert_eq!(in_second.chunks_deleted, unshared.len() as u64, "{report:?}");
    assert!(in_second.bytes_reclaimed > 0, "{report:?}");
    let left = present(&second).await;
    assert!(left.is_disjoint(&unshared), "the purged image's own chunks are gone from the extra store");
    assert!(left.is_superset(&kept_chunks), "the shared ones and the other image's stay");
    assert!(report.chunks_deleted > 0, "the default store is collected too: {report:?}");

    // The other image's copy is whole: with its default store's chunks gone, it downloads from the copy.
    let local = default_store(&s);
    for chunk in present(&local).await {
        local.objects().delete(&chunk.object_path()).await.unwrap();
    }
    assert_eq!(sha256(&download(&s, &kept).await), sha256(&other));

    // The CLI-facing report names the store; a collection with nothing to do reports zeros there.
    let again = s.admin.store_gc(Some(0)).await.unwrap();
    assert_eq!(again.extra_stores["second"].chunks_deleted, 0, "{again:?}");
    assert_eq!(again.extra_stores["second"].chunks_live, kept_chunks.len() as u64, "{again:?}");
}

#[tokio::test]
async fn gc_reclaims_a_deleted_store_copy() {
    let (s, url, _dir) = server().await;
    let second = ChunkStore::open(&url).unwrap();
    let data = pattern(3 << 20, 5);
    let id = active_image(&s, "copied", &data).await;
    copy_to_second(&s, &id).await;
    assert_eq!(manifest_ids(&second).await.len(), 1);
    assert_eq!(s.raw(Method::DELETE, &format!("/v2/stores/second/{id}")).send().await.unwrap().status(), 204);
    let report = s.admin.store_gc(Some(0)).await.unwrap();
    assert_eq!(report.extra_stores["second"].manifests_removed, 1, "the copy's manifest is no root: {report:?}");
    assert!(manifest_ids(&second).await.is_empty(), "the copy's manifest is gone");
    assert!(report.extra_stores["second"].chunks_deleted >= 1, "{report:?}");
    assert!(present(&second).await.is_empty(), "nothing of the copy is left");
    assert_eq!(download(&s, &id).await, data, "the image itself is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_fall_back_on_the_copy_for_chunks_the_default_store_lost() {
    let (s, _url, _dir) = server().await;
    let local = default_store(&s);
    let data = pattern((6 << 20) + 1536, 7);
    let id = active_image(&s, "replicated", &data).await;
    let manifest_id = manifest_ids(&local).await.into_iter().next().unwrap();
    copy_to_second(&s, &id).await;
    let manifest: Manifest = local.load_manifest(&manifest_id).await.unwrap();
    let chunks: Vec<ChunkId> = manifest.chunk_ids().copied().collect();
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    // One chunk gone, one damaged, in the default store.
    local.objects().delete(&chunks[1].object_path()).await.unwrap();
    let garbage = PutPayload::from(Bytes::from(vec![0x5a; 4096]));
    local.objects().put(&chunks[3].object_path(), garbage).await.unwrap();

    let before = ims_core::replica_reads::replica_fallback_reads();
    assert_eq!(sha256(&download(&s, &id).await), sha256(&data), "the whole file, from both stores");
    let fallbacks = ims_core::replica_reads::replica_fallback_reads() - before;
    assert_eq!(fallbacks, 2, "the lost and the damaged chunk came from the copy, and only they");
    let extent = &manifest.extents[3];
    let (from, to) = (extent.offset + 10, extent.offset + u64::from(extent.length) + 100);
    let ranged = s.admin.download(&id, Some((from, Some(to - 1)))).await.unwrap().bytes().await.unwrap();
    assert_eq!(ranged.as_ref(), &data[from as usize..to as usize], "a range across the damaged chunk");

    // The guest disk over NBD reads the copy too.
    let r = s.raw(Method::POST, &format!("/v1/cloudimages/{id}/nbd")).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let url = r.json::<Value>().await.unwrap()["nbd_url"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("guest.raw");
    let status = tokio::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "raw", &url, out.to_str().unwrap()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    assert_eq!(sha256(&std::fs::read(&out).unwrap()), sha256(&data));

    // Without a copy the lost chunk is the error it always was.
    let alone = active_image(&s, "alone", &pattern(4 << 20, 8)).await;
    let alone_manifest = manifest_ids(&local).await.into_iter().find(|m| *m != manifest_id).unwrap();
    // A chunk past the first (the upload's format inspection read the first one, which the node may
    // still hold in its chunk cache), read by a range starting there: the error comes before any byte.
    let alone_extents = local.load_manifest(&alone_manifest).await.unwrap().extents;
    let lost_extent = alone_extents.iter().filter(|e| e.chunk.is_some()).nth(1).unwrap().clone();
    let lost = lost_extent.chunk.unwrap();
    local.objects().delete(&lost.object_path()).await.unwrap();
    let range = format!("bytes={}-{}", lost_extent.offset, lost_extent.offset + 99);
    let r = s.raw(Method::GET, &format!("/v2/images/{alone}/file")).header("Range", range).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let body = r.text().await.unwrap();
    assert!(body.contains(&format!("chunk {lost}")) && body.contains("missing"), "{body}");

    // With the damaged copy in the default store deleted, reads start in the whole copy: no fallback.
    let r = s.raw(Method::DELETE, &format!("/v2/stores/local/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let before = ims_core::replica_reads::replica_fallback_reads();
    assert_eq!(sha256(&download(&s, &id).await), sha256(&data));
    assert_eq!(ims_core::replica_reads::replica_fallback_reads(), before, "read from its home store, the copy");
}

/// The newest import task of image `id`, once it ended.
async fn copy_task_end(s: &TestServer, id: &str) -> Value {
    for _ in 0..600 {
        let tasks = s.admin.image_tasks(id).await.unwrap();
        let list = tasks["tasks"].as_array().unwrap().clone();
        let newest = list.iter().max_by_key(|t| t["created_at"].as_str().unwrap_or_default().to_string()).cloned();
        if let Some(task) = newest.filter(|t| matches!(t["status"].as_str(), Some("success" | "failure"))) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the copy of image {id} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_image_racing_gc_of_the_extra_store_never_loses_a_chunk() {
    const GRACE_SECONDS: u64 = 2;
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig { url: format!("file://{}", dir.path().display()), description: "Second".into() };
    let s = TestServer::start_with(|c| {
        c.stores.insert("second".into(), config);
        c.gc_grace = GRACE_SECONDS;
        c.gc_interval = 0;
    })
    .await;
    let pool: Vec<Vec<u8>> = (0..10).map(|i| pattern(MIB, 300 + i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let client = s.admin.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut runs, mut deleted) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let report = client.store_gc(Some(GRACE_SECONDS)).await.expect("collection");
                runs += 1;
                deleted += report.extra_stores["second"].chunks_deleted;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            (runs, deleted)
        })
    };

    // Images sharing blocks, each copied to the extra store; every third deleted again (its copy becomes
    // garbage that later copies find there and reuse while collections sweep it).
    let started = std::time::Instant::now();
    let mut kept = Vec::new();
    let mut round = 0usize;
    while started.elapsed() < Duration::from_secs(8) {
        let mut data = Vec::new();
        for i in 0..3 {
            data.extend_from_slice(&pool[(round * 3 + i * 7) % pool.len()]);
        }
        data.extend(pattern(MIB / 2, 5000 + round as u64));
        let id = active_image(&s, &format!("racing-{round}"), &data).await;
        let r = s.raw(Method::POST, &format!("/v2/images/{id}/import")).json(&json!({"method": {"name": "copy-image"}, "stores": ["second"]}));
        assert_eq!(r.send().await.unwrap().status(), 202);
        let task = copy_task_end(&s, &id).await;
        if task["status"] == "success" {
            if round % 3 == 0 {
                s.admin.delete_image(&id).await.unwrap();
            } else {
                kept.push((id, sha256(&data)));
            }
        } else {
            // A copy that found a reused chunk gone fails cleanly (retryable): never a copy with a hole.
            assert!(task["message"].as_str().unwrap_or_default().contains("retry"), "{task}");
        }
        round += 1;
        if round % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (runs, deleted) = collector.await.unwrap();
    eprintln!("copy race: {runs} collections deleted {deleted} chunks of the extra store; {} copies kept", kept.len());
    assert!(runs >= 5 && deleted > 0, "the race was not exercised: {runs} collections, {deleted} chunks deleted");
    assert!(kept.len() >= 4, "only {} copies kept", kept.len());

    // Once everything is old: one more collection, then every kept image reads whole from its copy alone.
    tokio::time::sleep(Duration::from_secs(GRACE_SECONDS + 1)).await;
    s.admin.store_gc(Some(GRACE_SECONDS)).await.unwrap();
    let local = default_store(&s);
    for chunk in present(&local).await {
        local.objects().delete(&chunk.object_path()).await.unwrap();
    }
    for (id, digest) in &kept {
        assert_eq!(&sha256(&download(&s, id).await), digest, "image {id} from its copy");
    }
}
