//! Encrypted chunks: confidentiality, dedup within a domain only, key separation, re-encryption.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use futures::{StreamExt, TryStreamExt};
use ims_store::{ChunkStore, EncryptionDomain, StoreError};
use object_store::path::Path;

const MARKER: &[u8] = b"PLAINTEXT-MARKER-7c1e";

/// Compressible data made of the marker and a counter, so it compresses (zstd path) and is easy to spot.
fn marked(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(MARKER);
        out.extend_from_slice(format!("{i:08}").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn domain(seed: u8) -> EncryptionDomain {
    EncryptionDomain::new(&[seed; 32])
}

/// Every chunk object: (path, content).
async fn objects(store: &ChunkStore) -> Vec<(Path, bytes::Bytes)> {
    let metas: Vec<_> = store.objects().list(Some(&Path::from("chunks"))).try_collect().await.unwrap();
    let mut out = Vec::new();
    for meta in metas {
        let data = store.objects().get(&meta.location).await.unwrap().bytes().await.unwrap();
        out.push((meta.location, data));
    }
    out
}

fn paths(objects: &[(Path, bytes::Bytes)]) -> HashSet<String> {
    objects.iter().map(|(p, _)| p.to_string()).collect()
}

#[tokio::test]
async fn encrypted_objects_hold_no_plaintext_and_read_back() {
    for t in stores() {
        let view = t.store.in_domain(domain(1));
        let mut data = marked(6 * MIB);
        data.extend(random_bytes(3 * MIB, 5)); // an incompressible part: stored raw, still encrypted
        let summary = write_in_pieces(&view, &data, 1).await.unwrap();
        let manifest = Arc::new(summary.manifest);
        assert_eq!(read(&view, &manifest, 0, data.len() as u64).await.unwrap(), data, "{}", t.name);
        assert_eq!(read(&view, &manifest, 1000, 5_000_000).await.unwrap(), &data[1000..5_000_000]);
        let stored = objects(&t.store).await;
        assert_eq!(stored.len() as u64, summary.chunks_new);
        let mut tags = HashSet::new();
        for (path, content) in &stored {
            tags.insert(content[0]);
            assert!(
                !content.windows(MARKER.len()).any(|w| w == MARKER),
                "{}: object {path} contains plaintext",
                t.name
            );
        }
        assert!(tags.contains(&0x82) && tags.is_subset(&HashSet::from([0x80, 0x81, 0x82])), "{}: {tags:?}", t.name);
        // Chunks are framed: their frames were sealed raw (the random part) and zstd compressed.
        let entry = 1 + 4 + 12 + 32;
        let mut codecs = HashSet::new();
        for extent in &manifest.extents {
            let (Some(id), length) = (extent.chunk, extent.length as usize) else { continue };
            let (_, content) = stored.iter().find(|(path, _)| *path == id.object_path()).unwrap();
            if content[0] == 0x82 {
                codecs.extend((0..ims_store::frames::frame_count(length)).map(|i| content[1 + i * entry]));
            }
        }
        assert_eq!(codecs, HashSet::from([0, 1]), "{}: both the raw and the zstd encrypted frames", t.name);
    }
}

#[tokio::test]
async fn dedup_within_a_domain_and_never_across() {
    for t in stores() {
        let data = marked(5 * MIB);
        let a = t.store.in_domain(domain(1));
        let first = write_in_pieces(&a, &data, 1).await.unwrap();
        let after_first = paths(&objects(&t.store).await);
        let second = write_in_pieces(&t.store.in_domain(domain(1)), &data, 2).await.unwrap();
        assert_eq!(second.chunks_new, 0, "{}: same key dedups", t.name);
        assert_eq!(second.manifest, first.manifest);
        assert_eq!(paths(&objects(&t.store).await), after_first);

        let other = write_in_pieces(&t.store.in_domain(domain(2)), &data, 3).await.unwrap();
        assert_eq!(other.chunks_new, first.chunks_new, "{}: another key stores everything again", t.name);
        let plain = write_in_pieces(&t.store, &data, 4).await.unwrap();
        assert_eq!(plain.chunks_new, first.chunks_new, "{}: plaintext stores everything again", t.name);
        let all = paths(&objects(&t.store).await);
        assert_eq!(all.len() as u64, 3 * first.chunks_new, "{}: three disjoint sets of objects", t.name);
        let ids = |m: &ims_store::Manifest| m.chunk_ids().copied().collect::<HashSet<_>>();
        assert!(ids(&first.manifest).is_disjoint(&ids(&other.manifest)));
        assert!(ids(&first.manifest).is_disjoint(&ids(&plain.manifest)));
    }
}

#[tokio::test]
async fn a_wrong_key_or_no_key_cannot_read() {
    let t = file_store();
    let data = marked(3 * MIB);
    let encrypted = Arc::new(write_in_pieces(&t.store.in_domain(domain(1)), &data, 1).await.unwrap().manifest);
    let plain = Arc::new(write_in_pieces(&t.store, &data, 1).await.unwrap().manifest);
    let size = data.len() as u64;
    let corrupt = |r: Result<Vec<u8>, StoreError>, what: &str| match r {
        Err(StoreError::Corrupt(m)) => m,
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    };
    let m = corrupt(read(&t.store.in_domain(domain(2)), &encrypted, 0, size).await, "wrong key");
    assert!(m.contains("does not decrypt"), "{m}");
    let m = corrupt(read(&t.store, &encrypted, 0, size).await, "no key");
    assert!(m.contains("encrypted"), "{m}");
    let m = corrupt(read(&t.store.in_domain(domain(1)), &plain, 0, size).await, "plaintext under a key");
    assert!(m.contains("not encrypted"), "{m}");
    assert_eq!(read(&t.store.in_domain(domain(1)).without_domain(), &plain, 0, size).await.unwrap(), data);
}

#[tokio::test]
async fn a_damaged_encrypted_object_is_corrupt() {
    let t = file_store();
    let view = t.store.in_domain(domain(1));
    let data = marked(2 * MIB);
    let manifest = Arc::new(write_in_pieces(&view, &data, 1).await.unwrap().manifest);
    let (path, content) = objects(&t.store).await.into_iter().next().unwrap();
    let mut damaged = content.to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    t.store.objects().put(&path, damaged.into()).await.unwrap();
    let result = read(&view, &manifest, 0, data.len() as u64).await;
    assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
}

#[tokio::test]
async fn copy_file_re_encrypts_and_decrypts() {
    let t = memory_store();
    let a = t.store.in_domain(domain(1));
    let b = t.store.in_domain(domain(2));
    let mut data = marked(4 * MIB);
    data.extend(vec![0u8; 2 * MIB]);
    data.extend(random_bytes(MIB, 9));
    let source = Arc::new(write_in_pieces(&a, &data, 1).await.unwrap().manifest);
    let before = paths(&objects(&t.store).await);

    let copied = a.copy_file(source.clone(), &b).await.unwrap();
    let target = Arc::new(copied.manifest);
    assert_eq!(target.size, source.size);
    let offsets = |m: &ims_store::Manifest| m.extents.iter().map(|e| (e.offset, e.length, e.chunk.is_some())).collect::<Vec<_>>();
    assert_eq!(offsets(&target), offsets(&source), "same chunk boundaries and zero extents");
    assert_eq!(read(&b, &target, 0, target.size).await.unwrap(), data);
    assert!(read(&a, &target, 0, target.size).await.is_err(), "the copy is not readable with the old key");
    let after = paths(&objects(&t.store).await);
    assert!(before.is_subset(&after), "the source is untouched");
    assert_eq!(after.len() - before.len(), copied.chunks_new as usize);
    assert_eq!(read(&a, &source, 0, source.size).await.unwrap(), data);

    let decrypted = Arc::new(a.copy_file(source.clone(), &t.store.without_domain()).await.unwrap().manifest);
    let pieces: Vec<bytes::Bytes> = t.store.read_range(decrypted.clone(), 0, decrypted.size).try_collect().await.unwrap();
    assert_eq!(pieces.concat(), data);
    let plain_tags: HashSet<u8> = objects(&t.store)
        .await
        .iter()
        .filter(|(p, _)| decrypted.chunk_ids().any(|id| id.object_path() == *p))
        .map(|(_, c)| c[0])
        .collect();
    assert!(plain_tags.iter().all(|&tag| tag < 0x80), "{plain_tags:?}");
    assert!(t.store.read_range(source.clone(), 0, 1).next().await.unwrap().is_err(), "no key, no data");
}
