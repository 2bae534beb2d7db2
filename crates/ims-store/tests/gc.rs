//! Garbage collection primitives and the pending manifests that protect writes in progress.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::*;
use ims_store::{ChunkStore, StoreError};

async fn pending_ids(store: &ChunkStore) -> Vec<String> {
    store.list_pending().await.unwrap().into_iter().map(|p| p.id).collect()
}

#[tokio::test]
async fn a_write_names_its_chunks_in_a_pending_manifest_until_released() {
    for t in stores() {
        let data = random_bytes(6 * MIB, 1);
        let summary = write_in_pieces(&t.store, &data, 2).await.unwrap();
        let id = summary.pending_id.clone().expect("a write that stored chunks has a pending manifest");
        assert_eq!(pending_ids(&t.store).await, vec![id.clone()], "{}", t.name);
        let mut named = t.store.pending_chunks(&id).await.unwrap();
        named.sort();
        let mut used: Vec<_> = summary.manifest.chunk_ids().copied().collect();
        used.sort();
        used.dedup();
        assert_eq!(named, used, "{}: every chunk is named before it is used", t.name);

        // Saved under the write's id; the pending manifest is not a saved manifest.
        t.store.save_manifest_as(&id, &summary.manifest).await.unwrap();
        let manifests = t.store.list_manifests().await.unwrap();
        assert_eq!(manifests.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), vec![id.clone()], "{}", t.name);
        assert_eq!(t.store.load_manifest(&id).await.unwrap(), summary.manifest);

        t.store.release_pending(&id).await.unwrap();
        assert!(pending_ids(&t.store).await.is_empty(), "{}", t.name);
        t.store.release_pending(&id).await.unwrap();
        assert!(matches!(t.store.release_pending("../x").await, Err(StoreError::Invalid(_))));
    }
}

#[tokio::test]
async fn writes_of_zeros_and_empty_files_have_no_pending_manifest() {
    let t = memory_store();
    assert_eq!(t.store.writer().finish().await.unwrap().pending_id, None);
    let summary = write_in_pieces(&t.store, &vec![0u8; 3 * MIB], 1).await.unwrap();
    assert_eq!(summary.pending_id, None);
    assert!(pending_ids(&t.store).await.is_empty());
}

#[tokio::test]
async fn an_abandoned_write_discards_its_pending_manifest() {
    let t = file_store();
    let mut writer = t.store.writer();
    writer.write(Bytes::from(random_bytes(9 * MIB, 3))).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pending_ids(&t.store).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the write never recorded a chunk");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(writer);
    while !pending_ids(&t.store).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the pending manifest was not discarded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn reused_chunks_older_than_half_the_grace_are_stored_again() {
    let t = file_store();
    t.store.set_gc_grace(Duration::from_secs(2));
    let data = random_bytes(5 * MIB, 4);
    let first = write_in_pieces(&t.store, &data, 1).await.unwrap();
    let young = write_in_pieces(&t.store, &data, 2).await.unwrap();
    assert_eq!((young.chunks_new, young.chunks_refreshed), (0, 0), "young chunks are reused as they are");
    let before = t.store.list_chunks().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let old = write_in_pieces(&t.store, &data, 3).await.unwrap();
    assert_eq!(old.chunks_new, 0);
    assert_eq!(old.chunks_refreshed, first.chunks_new, "every reused chunk was old enough to renew");
    assert_eq!(old.chunks_deduplicated, old.chunks_total);
    let after = t.store.list_chunks().await.unwrap();
    for chunk in &after {
        let was = before.iter().find(|c| c.id == chunk.id).unwrap();
        assert!(chunk.modified > was.modified, "chunk {} was not renewed", chunk.id);
    }
    assert_eq!(read(&t.store, &Arc::new(old.manifest), 0, data.len() as u64).await.unwrap(), data);
}

#[tokio::test]
async fn a_reused_chunk_that_vanishes_fails_the_write_instead_of_leaving_a_hole() {
    let t = file_store();
    let data = random_bytes(8 * MIB, 5);
    let first = write_in_pieces(&t.store, &data, 1).await.unwrap();
    let mut writer = t.store.writer();
    writer.write(Bytes::from(data.clone())).await.unwrap();
    writer.write(Bytes::from(random_bytes(3 * MIB, 6))).await.unwrap();
    // Let the writer look at (and reuse) the first chunks, then delete one behind its back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = first.manifest.extents[0].chunk.unwrap();
    t.store.objects().delete(&victim.object_path()).await.unwrap();
    let error = writer.finish().await.expect_err("the write must notice the missing chunk");
    assert!(matches!(&error, StoreError::Backend(m) if m.contains(&victim.to_hex()) && m.contains("retry")), "{error}");
    assert!(pending_ids(&t.store).await.len() <= 1, "only the first write's pending manifest may remain");
}

#[tokio::test]
async fn listings_report_sizes_and_ages_and_deletes_respect_the_cutoff() {
    for t in stores() {
        let start = t.store.store_time().await.unwrap();
        let summary = write_in_pieces(&t.store, &random_bytes(4 * MIB, 7), 1).await.unwrap();
        let chunks = t.store.list_chunks().await.unwrap();
        assert_eq!(chunks.len() as u64, summary.chunks_new, "{}", t.name);
        assert_eq!(chunks.iter().map(|c| c.size).sum::<u64>(), summary.bytes_stored, "{}", t.name);
        assert!(chunks.iter().all(|c| c.modified >= start - Duration::from_secs(1)), "{}", t.name);

        let victim = chunks[0].id;
        // A cutoff before the chunk was written: too young, kept.
        let before = SystemTime::UNIX_EPOCH;
        assert_eq!(t.store.delete_chunk_if_older(&victim, before).await.unwrap(), None, "{}", t.name);
        assert!(t.store.has_chunk(&victim).await.unwrap());
        let later = t.store.store_time().await.unwrap() + Duration::from_secs(1);
        assert_eq!(t.store.delete_chunk_if_older(&victim, later).await.unwrap(), Some(chunks[0].size), "{}", t.name);
        assert!(!t.store.has_chunk(&victim).await.unwrap());
        assert_eq!(t.store.delete_chunk_if_older(&victim, later).await.unwrap(), None, "already gone");

        let m = t.store.save_manifest(&summary.manifest).await.unwrap();
        assert!(!t.store.delete_manifest_if_older(&m, before).await.unwrap());
        assert!(t.store.delete_manifest_if_older(&m, later + Duration::from_secs(1)).await.unwrap(), "{}", t.name);
        assert!(t.store.list_manifests().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn verify_chunk_tells_missing_from_corrupt() {
    let t = file_store();
    let summary = write_in_pieces(&t.store, &random_bytes(3 * MIB, 8), 1).await.unwrap();
    let extent = summary.manifest.extents[0].clone();
    let id = extent.chunk.unwrap();
    assert!(t.store.verify_chunk(&id, extent.length).await.unwrap());
    let path = t.dir.as_ref().unwrap().path().join("store").join(id.object_path().as_ref());
    let mut object = std::fs::read(&path).unwrap();
    let last = object.len() - 1;
    object[last] ^= 1;
    std::fs::write(&path, &object).unwrap();
    match t.store.verify_chunk(&id, extent.length).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains(&id.to_hex()) && !m.contains("offset"), "{m}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    std::fs::remove_file(&path).unwrap();
    assert!(!t.store.verify_chunk(&id, extent.length).await.unwrap());
}
