//! Random access through the shared chunk cache: same bytes as `read_range`, a byte budget that
//! holds, read-ahead, encryption domains kept apart, and concurrent readers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ims_store::{ChunkStore, EncryptionDomain, Manifest};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Random data with zero runs (zero extents), written through the store.
async fn stored_file(store: &ChunkStore, seed: u64) -> (Vec<u8>, Arc<Manifest>) {
    let mut data = random_bytes(5 * MIB, seed);
    data.extend(std::iter::repeat_n(0u8, 16 * MIB));
    data.extend(random_bytes(3 * MIB + 12_345, seed + 1));
    let summary = write_in_pieces(store, &data, seed).await.unwrap();
    assert!(summary.manifest.extents.iter().any(|e| e.chunk.is_none()), "the file has zero extents");
    assert!(summary.manifest.extents.iter().filter(|e| e.chunk.is_some()).count() >= 4);
    (data, Arc::new(summary.manifest))
}

#[tokio::test]
async fn random_reads_match_read_range() {
    for t in stores() {
        let (data, manifest) = stored_file(&t.store, 11).await;
        let access = t.store.random_access(manifest.clone());
        let size = manifest.size;
        assert_eq!(access.size(), size);
        let mut rng = StdRng::seed_from_u64(7);
        // Ranges that cross every extent boundary, plus random ones of every scale.
        let mut ranges: Vec<(u64, u64)> = manifest
            .extents
            .iter()
            .skip(1)
            .map(|e| (e.offset.saturating_sub(100), 200.min(size - e.offset + 100)))
            .collect();
        for _ in 0..200 {
            let at = rng.gen_range(0..size);
            let len = match rng.gen_range(0..3) {
                0 => rng.gen_range(1..4096),
                1 => rng.gen_range(1..MIB as u64),
                _ => rng.gen_range(1..4 * MIB as u64),
            };
            ranges.push((at, len.min(size - at)));
        }
        for (at, len) in ranges {
            let mut buf = vec![0xa5u8; len as usize];
            let n = access.read_at(&mut buf, at).await.unwrap();
            assert_eq!(n as u64, len, "{}: read at {at}", t.name);
            let expected = read(&t.store, &manifest, at, at + len).await.unwrap();
            assert_eq!(buf, expected, "{}: bytes at {at}+{len}", t.name);
            assert_eq!(&buf[..], &data[at as usize..(at + len) as usize]);
        }
        // Reads that run past the end stop there; at the end they read nothing.
        let mut buf = vec![1u8; 1000];
        assert_eq!(access.read_at(&mut buf, size - 10).await.unwrap(), 10);
        assert_eq!(&buf[..10], &data[data.len() - 10..]);
        assert_eq!(access.read_at(&mut buf, size).await.unwrap(), 0);
        assert_eq!(access.read_at(&mut buf, size + 5).await.unwrap(), 0);
        let stats = t.store.chunk_cache().stats();
        assert!(stats.hits > 0 && stats.misses > 0, "{}: {stats:?}", t.name);
    }
}

#[tokio::test]
async fn the_cache_stays_within_its_byte_budget() {
    let t = memory_store();
    let budget = 3 * MIB as u64;
    assert!(t.store.set_chunk_cache_bytes(budget));
    let (data, manifest) = stored_file(&t.store, 21).await;
    let access = t.store.random_access(manifest.clone());
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..100 {
        let at = rng.gen_range(0..manifest.size);
        let len = rng.gen_range(1..2 * MIB as u64).min(manifest.size - at);
        let mut buf = vec![0u8; len as usize];
        access.read_at(&mut buf, at).await.unwrap();
        assert_eq!(&buf[..], &data[at as usize..(at + len) as usize]);
        let stats = t.store.chunk_cache().stats();
        assert!(stats.bytes <= budget, "{stats:?}");
    }
    let stats = t.store.chunk_cache().stats();
    assert!(stats.evictions > 0, "{stats:?}");
    assert_eq!(t.store.chunk_cache().budget(), budget);
    // Once used, the cache cannot be replaced.
    assert!(!t.store.set_chunk_cache_bytes(MIB as u64));
}

#[tokio::test]
async fn a_cache_of_zero_bytes_caches_nothing_and_still_reads() {
    let t = memory_store();
    assert!(t.store.set_chunk_cache_bytes(0));
    let (data, manifest) = stored_file(&t.store, 31).await;
    let access = t.store.random_access(manifest);
    let mut buf = vec![0u8; 3 * MIB];
    access.read_at(&mut buf, 1000).await.unwrap();
    assert_eq!(&buf[..], &data[1000..1000 + 3 * MIB]);
    let stats = t.store.chunk_cache().stats();
    assert_eq!((stats.bytes, stats.chunks, stats.hits), (0, 0, 0), "{stats:?}");
}

#[tokio::test]
async fn sequential_reads_fetch_the_next_chunks_ahead() {
    let t = memory_store();
    let data = random_bytes(12 * MIB, 41);
    let manifest = Arc::new(write_in_pieces(&t.store, &data, 41).await.unwrap().manifest);
    let access = t.store.random_access(manifest.clone());
    let mut buf = vec![0u8; 64 << 10];
    access.read_at(&mut buf, 0).await.unwrap();
    assert_eq!(t.store.chunk_cache().stats().chunks, 1, "a first read is not sequential");
    access.read_at(&mut buf, 64 << 10).await.unwrap();
    // The following chunks arrive in the background.
    let mut chunks = 0;
    for _ in 0..200 {
        chunks = t.store.chunk_cache().stats().chunks;
        if chunks >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(chunks >= 3, "read-ahead cached {chunks} chunks");
    // Reading on is served from memory and is still right.
    let before = t.store.chunk_cache().stats();
    let second = manifest.extents[1].clone();
    let mut buf = vec![0u8; second.length as usize];
    access.read_at(&mut buf, second.offset).await.unwrap();
    assert_eq!(&buf[..], &data[second.offset as usize..second.end() as usize]);
    assert!(t.store.chunk_cache().stats().hits > before.hits);
}

#[tokio::test]
async fn encryption_domains_do_not_share_cached_plaintext() {
    let t = memory_store();
    let domain = EncryptionDomain::new(&EncryptionDomain::generate_data_key());
    let sealed = t.store.in_domain(domain);
    let data = random_bytes(3 * MIB, 51);
    let manifest = Arc::new(write_in_pieces(&sealed, &data, 51).await.unwrap().manifest);
    let mut buf = vec![0u8; data.len()];
    sealed.random_access(manifest.clone()).read_at(&mut buf, 0).await.unwrap();
    assert_eq!(buf, data);
    // The plaintext view shares the cache, but must not be served the decrypted chunks.
    let err = t.store.without_domain().random_access(manifest).read_at(&mut buf, 0).await.unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
}

#[tokio::test]
async fn a_damaged_chunk_is_an_error_and_is_not_cached() {
    let t = memory_store();
    let data = random_bytes(3 * MIB, 61);
    let manifest = write_in_pieces(&t.store, &data, 61).await.unwrap().manifest;
    let id = manifest.extents[0].chunk.unwrap();
    t.store.objects().put(&id.object_path(), vec![0u8, 1, 2, 3].into()).await.unwrap();
    let access = t.store.random_access(Arc::new(manifest));
    let mut buf = vec![0u8; 100];
    let err = access.read_at(&mut buf, 0).await.unwrap_err();
    assert!(err.to_string().contains(&id.to_hex()), "{err}");
    assert!(access.read_at(&mut buf, 0).await.is_err(), "the failure was not cached as data");
    assert_eq!(t.store.chunk_cache().stats().chunks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_share_the_cache() {
    let t = file_store();
    assert!(t.store.set_chunk_cache_bytes(4 * MIB as u64));
    let (data, manifest) = stored_file(&t.store, 71).await;
    let data = Arc::new(data);
    let mut tasks = Vec::new();
    for reader in 0..8u64 {
        let access = t.store.random_access(manifest.clone());
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(reader);
            for _ in 0..60 {
                let at = rng.gen_range(0..access.size());
                let len = rng.gen_range(1..MIB as u64).min(access.size() - at);
                let mut buf = vec![0u8; len as usize];
                assert_eq!(access.read_at(&mut buf, at).await.unwrap() as u64, len);
                assert_eq!(&buf[..], &data[at as usize..(at + len) as usize], "reader {reader} at {at}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = t.store.chunk_cache().stats();
    assert!(stats.bytes <= 4 * MIB as u64 && stats.hits > 0, "{stats:?}");
}
