//! Copying a stored file into another store (`ChunkStore::copy_file_from`): journaled like a write, the
//! manifest saved last, idempotent, and leaving nothing pending behind when it fails.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::*;
use ims_store::{ChunkId, StoreError};

fn ids(manifest: &ims_store::Manifest) -> BTreeSet<ChunkId> {
    manifest.chunk_ids().copied().collect()
}

#[tokio::test]
async fn a_copy_names_its_chunks_in_a_pending_manifest_until_the_caller_releases_it() {
    for (source, target) in stores().into_iter().zip([file_store(), memory_store()]) {
        let data = random_bytes(5 * MIB + 77, 9);
        let written = write_in_pieces(&source.store, &data, 3).await.unwrap();
        let manifest_id = uuid::Uuid::new_v4().to_string();
        let calls = AtomicU64::new(0);
        let progress = |done: u64, total: u64| {
            calls.fetch_add(1, Ordering::Relaxed);
            assert!(done <= total && total == ids(&written.manifest).len() as u64);
        };
        let copied = target.store.copy_file_from(&source.store, &manifest_id, &written.manifest, &progress).await.unwrap();
        assert_eq!(copied.chunks_written, ids(&written.manifest).len() as u64, "{}", target.name);
        assert_eq!(calls.load(Ordering::Relaxed), copied.chunks_written);
        assert!(copied.bytes_written > 0);

        // The pending manifest names every chunk and protects the copy until released.
        let pending = copied.pending_id.clone().expect("a copy that stored chunks has a pending manifest");
        let named: BTreeSet<ChunkId> = target.store.pending_chunks(&pending).await.unwrap().into_iter().collect();
        assert_eq!(named, ids(&written.manifest), "{}", target.name);
        let manifest = Arc::new(target.store.load_manifest(&manifest_id).await.unwrap());
        assert_eq!(read(&target.store, &manifest, 0, manifest.size).await.unwrap(), data);
        target.store.release_pending(&pending).await.unwrap();
        assert!(target.store.list_pending().await.unwrap().is_empty());

        // Again: nothing is sent, the chunks there are young enough to reuse.
        let again = target.store.copy_file_from(&source.store, &manifest_id, &written.manifest, &|_, _| {}).await.unwrap();
        assert_eq!((again.chunks_written, again.bytes_written), (0, 0), "{}", target.name);
        target.store.release_pending(&again.pending_id.unwrap()).await.unwrap();
    }
}

#[tokio::test]
async fn a_copy_missing_a_source_chunk_saves_nothing_and_leaves_nothing_pending() {
    let (source, target) = (memory_store(), memory_store());
    let written = write_in_pieces(&source.store, &random_bytes(4 * MIB, 4), 1).await.unwrap();
    let lost = *written.manifest.chunk_ids().nth(1).unwrap();
    source.store.objects().delete(&lost.object_path()).await.unwrap();
    let manifest_id = uuid::Uuid::new_v4().to_string();
    let result = target.store.copy_file_from(&source.store, &manifest_id, &written.manifest, &|_, _| {}).await;
    assert!(matches!(result, Err(StoreError::Corrupt(ref m)) if m.contains(&lost.to_string())), "{result:?}");
    assert!(matches!(target.store.load_manifest(&manifest_id).await, Err(StoreError::NotFound(_))));
    assert!(target.store.list_pending().await.unwrap().is_empty(), "the failed copy's pending manifest is gone");
    let bad = target.store.copy_file_from(&source.store, "not-a-uuid", &written.manifest, &|_, _| {}).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
}
