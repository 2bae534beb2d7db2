//! `ChunkStore::migrate_objects`: live manifests and their chunks copied to another store and verified
//! (encrypted chunks in their domain), objects already there skipped, damaged copies at the target
//! rewritten, and a corrupt or missing source object named.

mod common;

use std::sync::Arc;

use common::*;
use ims_store::{ChunkStore, EncryptionDomain, Manifest};
use object_store::PutPayload;

fn domain(seed: u8) -> EncryptionDomain {
    EncryptionDomain::new(&[seed; 32])
}

/// Writes `data` through `view` and saves its manifest; returns the manifest and its id.
async fn stored_file(view: &ChunkStore, data: &[u8], seed: u64) -> (Arc<Manifest>, String) {
    let summary = write_in_pieces(view, data, seed).await.unwrap();
    let id = view.save_manifest(&summary.manifest).await.unwrap();
    (Arc::new(summary.manifest), id)
}

#[tokio::test]
async fn live_objects_move_verified_and_a_rerun_skips_them() {
    let source = memory_store().store;
    let target = memory_store().store;
    let plain = random_bytes(2 * MIB, 1);
    let secret = random_bytes(2 * MIB, 2);
    let (plain_manifest, plain_id) = stored_file(&source, &plain, 1).await;
    let (secret_manifest, secret_id) = stored_file(&source.in_domain(domain(7)), &secret, 2).await;
    // Garbage: a manifest nothing names is not copied.
    stored_file(&source, &random_bytes(MIB, 3), 3).await;
    let live = vec![plain_id.clone(), secret_id.clone()];
    let chunks = (plain_manifest.chunk_ids().count() + secret_manifest.chunk_ids().count()) as u64;

    // The right domain is found among several.
    let report = source.migrate_objects(&target, &live, vec![domain(9), domain(7)], 4, &|_| {}).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let p = &report.progress;
    assert_eq!((p.chunks_total, p.chunks_done, p.manifests_done, p.objects_present), (chunks, chunks, 2, 0));
    assert!(p.bytes_written > (plain.len() + secret.len()) as u64);
    let back = target.load_manifest(&plain_id).await.unwrap();
    assert_eq!(read(&target, &Arc::new(back), 0, plain.len() as u64).await.unwrap(), plain);
    let back = target.load_manifest(&secret_id).await.unwrap();
    let view = target.in_domain(domain(7));
    assert_eq!(read(&view, &Arc::new(back), 0, secret.len() as u64).await.unwrap(), secret);
    assert_eq!(target.list_manifests().await.unwrap().len(), 2, "garbage stays behind");

    let again = source.migrate_objects(&target, &live, vec![domain(7)], 4, &|_| {}).await.unwrap();
    assert!(again.failures.is_empty());
    assert_eq!((again.progress.objects_present, again.progress.bytes_written), (chunks + 2, 0));

    // A damaged copy at the target is written again.
    let victim = plain_manifest.chunk_ids().next().unwrap().object_path();
    target.objects().put(&victim, PutPayload::from_static(b"\x00garbage")).await.unwrap();
    let repaired = source.migrate_objects(&target, &live, vec![domain(7)], 4, &|_| {}).await.unwrap();
    assert!(repaired.failures.is_empty());
    assert_eq!(repaired.progress.objects_present, chunks + 1);
    let back = target.load_manifest(&plain_id).await.unwrap();
    assert_eq!(read(&target, &Arc::new(back), 0, plain.len() as u64).await.unwrap(), plain);

    // Without the data key, encrypted chunks cannot be verified: each is named.
    let fresh = memory_store().store;
    let keyless = source.migrate_objects(&fresh, &live, Vec::new(), 4, &|_| {}).await.unwrap();
    assert_eq!(keyless.failures.len(), secret_manifest.chunk_ids().count(), "{:?}", keyless.failures);
    assert!(keyless.failures.iter().all(|f| f.object.starts_with("chunks/") && f.detail.contains("no data key")));
    assert!(fresh.list_manifests().await.unwrap().is_empty(), "no manifest goes ahead of its chunks");
}

#[tokio::test]
async fn corrupt_and_missing_source_objects_are_named() {
    let source = memory_store().store;
    let target = memory_store().store;
    let data = random_bytes(2 * MIB, 4);
    let (manifest, id) = stored_file(&source, &data, 4).await;
    let victim = manifest.chunk_ids().next().unwrap().object_path();
    let mut object = source.objects().get(&victim).await.unwrap().bytes().await.unwrap().to_vec();
    object[10] ^= 0xff;
    source.objects().put(&victim, PutPayload::from(object)).await.unwrap();
    let missing = uuid::Uuid::new_v4().to_string();

    let report = source.migrate_objects(&target, &[id, missing.clone()], Vec::new(), 4, &|_| {}).await.unwrap();
    let named: Vec<(&str, &str)> = report.failures.iter().map(|f| (f.object.as_str(), f.detail.as_str())).collect();
    assert_eq!(named.len(), 2, "{named:?}");
    assert!(named.iter().any(|(o, d)| *o == victim.as_ref() && d.contains("corrupt at the source")), "{named:?}");
    assert!(named.iter().any(|(o, d)| o.ends_with(&missing) && d.contains("missing at the source")), "{named:?}");
    assert!(!ims_store::ChunkStore::has_chunk(&target, manifest.chunk_ids().next().unwrap()).await.unwrap());
}
