//! Random access through the shared chunk cache: same bytes as `read_range`, a byte budget that
//! holds, read-ahead, encryption domains kept apart, and concurrent readers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use ims_store::{frames, ChunkStore, EncryptionDomain, Manifest, StoreError};
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
    assert_eq!((stats.bytes, stats.frames, stats.hits), (0, 0, 0), "{stats:?}");
}

/// Waits (up to 5 s) for the background fetches of `store` to bring its fetched-chunk count to
/// `expected`, then returns the count (which the caller checks: more than expected is an error too).
async fn chunks_fetched_once_settled(store: &ChunkStore, expected: u64) -> u64 {
    for _ in 0..500 {
        if store.chunk_reads().chunks >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let any fetch beyond the expected ones show up too.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.chunk_reads().chunks
}

/// The index of the extent holding byte `at`.
fn extent_at(manifest: &Manifest, at: u64) -> usize {
    manifest.extent_indices_overlapping(at, at + 1).start
}

#[tokio::test]
async fn scattered_reads_fetch_only_the_chunks_they_read() {
    let t = memory_store();
    let data = random_bytes(24 * MIB, 43);
    let manifest = Arc::new(write_in_pieces(&t.store, &data, 43).await.unwrap().manifest);
    let chunks = manifest.extents.len();
    assert!(chunks >= 12 && manifest.extents.iter().all(|e| e.chunk.is_some()), "{chunks} chunks");
    let access = t.store.random_access(manifest.clone());
    // 4 KiB reads in chunks far apart, in no order: each fetches its chunk and nothing else.
    let mut buf = vec![0u8; 4096];
    let picks = [chunks - 2, 1, chunks / 2, 4, chunks - 5, 7];
    for (n, &index) in picks.iter().enumerate() {
        let at = manifest.extents[index].offset + 1000;
        access.read_at(&mut buf, at).await.unwrap();
        assert_eq!(&buf[..], &data[at as usize..at as usize + 4096]);
        assert_eq!(chunks_fetched_once_settled(&t.store, n as u64 + 1).await, n as u64 + 1, "after read {n}");
    }
    // A run of 64 KiB reads that starts in one chunk and runs on into the next (a guest reading a
    // file) fetches those two chunks only: the first read its frames, the second the rest of its
    // chunk, the one entering the next chunk all of it; nothing after them is read ahead.
    let (a, b) = (chunks / 2 + 3, chunks / 2 + 4);
    let mut at = manifest.extents[a].end() - 200 * 1024;
    let run_end = manifest.extents[b].offset + 300 * 1024;
    let mut buf = vec![0u8; 64 << 10];
    while at < run_end {
        access.read_at(&mut buf, at).await.unwrap();
        assert_eq!(&buf[..], &data[at as usize..at as usize + buf.len()]);
        at += buf.len() as u64;
    }
    let expected = picks.len() as u64 + 3;
    assert_eq!(chunks_fetched_once_settled(&t.store, expected).await, expected);
}

#[tokio::test]
async fn a_sequential_scan_ramps_up_its_read_ahead_and_a_seek_closes_it() {
    let t = memory_store();
    let data = random_bytes(24 * MIB, 47);
    let manifest = Arc::new(write_in_pieces(&t.store, &data, 47).await.unwrap().manifest);
    let chunks = manifest.extents.len();
    assert!(chunks >= 16 && manifest.extents.iter().all(|e| e.chunk.is_some()), "{chunks} chunks");
    let access = t.store.random_access(manifest.clone());
    // Scan the file in 64 KiB reads up to chunk 7. On entering chunk `n` (the scan started in chunk
    // 0), the reader has crossed `n` boundaries: nothing is read ahead for the first two, then 1, 2
    // and 4 chunks (the most) are kept fetched past chunk `n`. Chunk 0 takes two fetches: the first
    // read fetches its own frames only, the next (sequential) one the rest of the chunk.
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0;
    let mut furthest = 0;
    while furthest < 7 {
        let n = access.read_at(&mut buf, at).await.unwrap();
        assert_eq!(&buf[..n], &data[at as usize..at as usize + n]);
        let last = extent_at(&manifest, at + n as u64 - 1);
        at += n as u64;
        if last == furthest && at > buf.len() as u64 {
            continue;
        }
        furthest = last;
        let window = match last {
            0 | 1 => 0,
            2 => 1,
            3 => 2,
            _ => 4,
        };
        let expected = (last + 1 + window) as u64 + u64::from(last > 0);
        assert_eq!(chunks_fetched_once_settled(&t.store, expected).await, expected, "entering chunk {last}");
    }
    let fetched = t.store.chunk_reads().chunks;
    assert_eq!(fetched, 13, "chunks 0 (in two parts) to 7 and 4 ahead");
    let stats = t.store.chunk_cache().stats();
    assert!(stats.hits > stats.misses, "the scan was served from memory: {stats:?}");

    // A seek closes the window: a read far on fetches its frames only, and reading on from there
    // into the next chunk (one crossing since the seek) the rest of that chunk, if any is left, and
    // the next one, nothing ahead.
    let far = manifest.extents[chunks - 3].clone();
    let mut at = far.end() - 100 * 1024;
    access.read_at(&mut buf, at).await.unwrap();
    assert_eq!(chunks_fetched_once_settled(&t.store, fetched + 1).await, fetched + 1);
    at += buf.len() as u64;
    access.read_at(&mut buf, at).await.unwrap();
    assert_eq!(&buf[..], &data[at as usize..at as usize + buf.len()]);
    let fetched = chunks_fetched_once_settled(&t.store, fetched + 2).await - fetched;
    assert!((2..=3).contains(&fetched), "{fetched} fetches after the seek");
    // Another reader of the same file has its own state: its first read reads nothing ahead, even
    // where this reader is streaming.
    let fetched = t.store.chunk_reads().chunks;
    let other = t.store.random_access(manifest.clone());
    other.read_at(&mut buf, manifest.extents[chunks - 1].offset).await.unwrap();
    assert_eq!(chunks_fetched_once_settled(&t.store, fetched + 1).await, fetched + 1);
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
    assert_eq!(t.store.chunk_cache().stats().frames, 0);
}

#[tokio::test]
async fn a_damaged_frame_fails_the_reads_of_that_frame_only() {
    let t = memory_store();
    let text: Vec<u8> = (0..2 * MIB).map(|i| b"framed and compressed "[i % 22] ^ (i / 5000) as u8).collect();
    let manifest = Arc::new(write_in_pieces(&t.store, &text, 62).await.unwrap().manifest);
    let extent = manifest.extents[0].clone();
    let (id, length) = (extent.chunk.unwrap(), extent.length as usize);
    assert!(frames::frame_count(length) >= 4, "{length}");
    // Damage the last stored byte: the chunk's last frame.
    let path = id.object_path();
    let mut object = t.store.objects().get(&path).await.unwrap().bytes().await.unwrap().to_vec();
    assert_eq!(object[0], frames::CODEC_FRAMED);
    *object.last_mut().unwrap() ^= 0x20;
    t.store.objects().put(&path, object.into()).await.unwrap();

    let access = t.store.random_access(manifest.clone());
    let mut buf = vec![0u8; 4096];
    for at in [0, frames::FRAME_LEN as u64 + 10, 2 * frames::FRAME_LEN as u64 - 100] {
        access.read_at(&mut buf, at).await.unwrap();
        assert_eq!(&buf[..], &text[at as usize..at as usize + 4096], "intact frames read at {at}");
    }
    let last = (length - 100) as u64;
    let err = access.read_at(&mut buf, last).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(m) if m.contains(&id.to_hex()) && m.contains("frame")), "{err}");
    assert!(read(&t.store, &manifest, 0, 10).await.is_err(), "a whole-chunk read sees the damage");
}

#[tokio::test]
async fn a_damaged_frame_table_fails_every_partial_read() {
    let t = memory_store();
    let data = random_bytes(2 * MIB, 63);
    let manifest = Arc::new(write_in_pieces(&t.store, &data, 63).await.unwrap().manifest);
    let id = manifest.extents[0].chunk.unwrap();
    let path = id.object_path();
    let mut object = t.store.objects().get(&path).await.unwrap().bytes().await.unwrap().to_vec();
    object[1 + 4 + 7] ^= 0x01; // a bit of frame 0's chaining value
    t.store.objects().put(&path, object.into()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let err = t.store.random_access(manifest.clone()).read_at(&mut buf, 300_000).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt(m) if m.contains("frame table")), "{err}");
    assert_eq!(t.store.chunk_cache().stats().frames, 0);
}

#[tokio::test]
async fn chunks_stored_unframed_are_still_read_in_part() {
    // A long chunk stored whole under tag 0 (raw), as chunks were before frames existed.
    let t = memory_store();
    let data = random_bytes(700_000, 64);
    let id = ims_store::ChunkId::of(&data);
    let object = [&[ims_store::chunk::CODEC_RAW][..], &data].concat();
    t.store.objects().put(&id.object_path(), object.into()).await.unwrap();
    let extent = ims_store::Extent { offset: 0, length: data.len() as u32, chunk: Some(id) };
    let manifest = Arc::new(Manifest { size: data.len() as u64, extents: vec![extent] });
    let access = t.store.random_access(manifest.clone());
    let mut buf = vec![0u8; 5000];
    for at in [300_000u64, 10, 650_000] {
        access.read_at(&mut buf, at).await.unwrap();
        assert_eq!(&buf[..], &data[at as usize..at as usize + 5000]);
    }
    assert_eq!(t.store.chunk_reads().chunks, 1, "fetched whole once, then served from the cache");
    assert_eq!(read(&t.store, &manifest, 0, manifest.size).await.unwrap(), data);
}

#[tokio::test]
async fn encrypted_chunks_are_read_in_part() {
    let t = memory_store();
    let sealed = t.store.in_domain(EncryptionDomain::new(&[5; 32]));
    let data = random_bytes(3 * MIB, 65);
    let manifest = Arc::new(write_in_pieces(&sealed, &data, 65).await.unwrap().manifest);
    let access = sealed.random_access(manifest.clone());
    let mut buf = vec![0u8; 4096];
    access.read_at(&mut buf, 1_000_000).await.unwrap();
    assert_eq!(&buf[..], &data[1_000_000..1_004_096]);
    let reads = t.store.chunk_reads();
    assert_eq!(reads.chunks, 1);
    assert!(reads.bytes < 2 * frames::FRAME_LEN as u64, "{} bytes fetched for 4 KiB", reads.bytes);
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

#[tokio::test]
async fn chunk_reads_count_each_fetched_object_and_its_stored_bytes() {
    let t = memory_store();
    let (_, manifest) = stored_file(&t.store, 51).await;
    assert_eq!(t.store.chunk_reads(), ims_store::ChunkReads::default(), "writing fetches nothing");
    let stored: std::collections::HashMap<_, _> =
        t.store.list_chunks().await.unwrap().into_iter().map(|c| (c.id, c.size)).collect();
    let first = manifest.extents.iter().find(|e| e.chunk.is_some()).unwrap().clone();
    let access = t.store.random_access(manifest.clone());
    let mut buf = vec![0u8; 4096];
    access.read_at(&mut buf, first.offset).await.unwrap();
    let one = t.store.chunk_reads();
    let (first_length, first_stored) = (first.length as usize, stored[&first.chunk.unwrap()]);
    // Its frame table, then the one frame it reads (random data: stored raw).
    let expected = (frames::table_len(first_length, false) + frames::FRAME_LEN) as u64;
    assert_eq!((one.chunks, one.bytes), (1, expected), "one 4 KiB read fetches one frame of a chunk of {first_stored}");
    // A cached chunk is not fetched again; a zero extent fetches nothing (neither read is sequential,
    // so nothing is read ahead).
    access.read_at(&mut buf, first.offset + 100).await.unwrap();
    let zeros = manifest.extents.iter().find(|e| e.chunk.is_none()).unwrap();
    access.read_at(&mut buf, zeros.offset).await.unwrap();
    assert_eq!(t.store.chunk_reads(), one);
    // Prefetching another chunk is one more read, of its stored size.
    let other = manifest.extents.iter().filter(|e| e.chunk.is_some()).nth(2).unwrap().clone();
    let single = Manifest { size: other.end(), extents: vec![other.clone()] };
    t.store.prefetch(&single).await.unwrap();
    let two = t.store.chunk_reads();
    assert_eq!((two.chunks, two.bytes), (2, one.bytes + stored[&other.chunk.unwrap()]));
}
