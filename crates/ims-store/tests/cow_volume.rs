//! Copy-on-write volumes: reads, writes, zeroing and flushes against a byte model of the disk.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use common::*;
use ims_store::{ChunkId, ChunkStore, CowVolume, EncryptionDomain, Extent, Manifest, StoreError};
use rand::{rngs::StdRng, Rng, SeedableRng};

const KIB: u64 = 1024;
const MIB64: u64 = MIB as u64;

/// A base disk with data, holes and a size that is not a multiple of the block size; its bytes.
async fn base_disk(store: &ChunkStore, seed: u64) -> (Arc<Manifest>, Vec<u8>) {
    let mut data = random_bytes(2 * MIB, seed);
    data.extend(std::iter::repeat_n(0u8, 3 * MIB));
    data.extend(random_bytes(2 * MIB + 12_345, seed + 1));
    data.extend(std::iter::repeat_n(0u8, MIB + 77));
    (Arc::new(stored_image(store, &data, seed).await), data)
}

/// Writes `data` as an image whose manifest the catalog references: no pending manifest is left.
async fn stored_image(store: &ChunkStore, data: &[u8], seed: u64) -> Manifest {
    let summary = write_in_pieces(store, data, seed).await.unwrap();
    if let Some(pending) = summary.pending_id {
        store.release_pending(&pending).await.unwrap();
    }
    summary.manifest
}

async fn read_all(volume: &CowVolume) -> Vec<u8> {
    let mut buf = vec![0u8; volume.size() as usize];
    volume.read_at(&mut buf, 0).await.unwrap();
    buf
}

fn chunk_set(manifest: &Manifest) -> HashSet<ChunkId> {
    manifest.chunk_ids().copied().collect()
}

#[tokio::test]
async fn random_writes_reads_and_flushes_match_a_model() {
    let domain = EncryptionDomain::new(&[7; 32]);
    let memory = memory_store();
    // (store, steps): every backend in plaintext, and an encryption domain (slow in debug builds).
    let cases = stores()
        .into_iter()
        .map(|t| (t.name, t.store.clone(), 300, Some(t)))
        .chain([("memory, encrypted", memory.store.in_domain(domain), 60, None)]);
    for (name, store, steps, _keep) in cases {
        let (base, mut model) = base_disk(&store, 11).await;
        // A small budget: writes flush by themselves along the way.
        let volume = CowVolume::new(store.clone(), base.clone()).with_dirty_budget(MIB64);
        let size = volume.size();
        let mut rng = StdRng::seed_from_u64(5);
        for step in 0..steps {
            let offset = rng.gen_range(0..size);
            let len = rng.gen_range(1..=(size - offset).min(300 * KIB));
            let (from, to) = (offset as usize, (offset + len) as usize);
            match rng.gen_range(0..10) {
                0..=4 => {
                    let data = random_bytes(len as usize, step);
                    volume.write_at(&data, offset).await.unwrap();
                    model[from..to].copy_from_slice(&data);
                }
                5 => {
                    volume.write_zeroes(offset, len).await.unwrap();
                    model[from..to].fill(0);
                }
                6 => {
                    let manifest = Arc::new(volume.flush().await.unwrap());
                    manifest.validate().unwrap();
                    assert!(read(&store, &manifest, 0, size).await.unwrap() == model, "{name} step {step}");
                }
                _ => {
                    let mut buf = vec![0u8; len as usize];
                    volume.read_at(&mut buf, offset).await.unwrap();
                    assert!(buf == model[from..to], "{name} step {step}: read of {len} at {offset}");
                }
            }
        }
        assert!(read_all(&volume).await == model, "{name}");
        assert!(volume.stats().flushes > 1, "the budget made writes flush: {:?}", volume.stats());

        // Saved, loaded and reopened, the flushed manifest is the disk.
        let flushed = volume.flush().await.unwrap();
        assert_eq!(volume.stats().dirty_bytes, 0);
        let id = store.save_manifest(&flushed).await.unwrap();
        let loaded = Arc::new(store.load_manifest(&id).await.unwrap());
        let reopened = CowVolume::new(store.clone(), loaded.clone());
        assert!(read_all(&reopened).await == model, "{name}");
        assert_eq!(reopened.flush().await.unwrap(), *loaded, "a clean volume's flush changes nothing");
        // New chunks are no larger than the store's largest.
        for extent in flushed.extents.iter().filter(|e| e.chunk.is_some()) {
            assert!(u64::from(extent.length) <= 4 * MIB64, "{extent:?}");
        }
    }
}

#[tokio::test]
async fn untouched_extents_keep_their_chunks_and_zeros_store_nothing() {
    let t = memory_store();
    let runs = [(0, random_bytes(4 * MIB, 21)), (6 * MIB64, random_bytes(6 * MIB, 22))];
    let base = Arc::new(sparse_disk(&t.store, 16 * MIB64, &runs).await);
    let mut model = vec![0u8; 16 * MIB];
    model[..4 * MIB].copy_from_slice(&runs[0].1);
    model[6 * MIB..12 * MIB].copy_from_slice(&runs[1].1);
    let volume = CowVolume::new(t.store.clone(), base.clone());
    // 4 KiB in the middle of the second data run, unaligned, across a block boundary.
    let offset = 8 * MIB64 + 700 * KIB + 123;
    assert_ne!(offset / ims_store::cow_volume::BLOCK_SIZE, (offset + 4095) / ims_store::cow_volume::BLOCK_SIZE);
    volume.write_at(&[0xab; 4096], offset).await.unwrap();
    model[offset as usize..offset as usize + 4096].fill(0xab);
    // Zeros over data of the first run, and over the hole (which changes nothing).
    volume.write_zeroes(128 * KIB, 192 * KIB).await.unwrap();
    model[128 * KIB as usize..320 * KIB as usize].fill(0);
    volume.write_zeroes(5 * MIB64, 64 * KIB).await.unwrap();
    assert_eq!(volume.stats().dirty_bytes, 2 * 64 * KIB + 3 * ims_store::cow_volume::ZERO_BLOCK_COST);
    let flushed = volume.flush().await.unwrap();
    flushed.validate().unwrap();
    let flushed = Arc::new(flushed);
    assert!(read(&t.store, &flushed, 0, flushed.size).await.unwrap() == model);

    let touched = |e: &Extent| e.offset < 320 * KIB || (e.offset < offset + 4096 && e.end() > offset);
    let (touched, kept): (Vec<&Extent>, Vec<&Extent>) = base.extents.iter().filter(|e| e.chunk.is_some()).partition(|e| touched(e));
    assert!(kept.len() >= 4, "the base has untouched chunks: {:?}", base.extents);
    for extent in kept {
        assert!(flushed.extents.contains(extent), "untouched extent kept as is: {extent:?}");
    }
    // New chunks replace only the chunks the changes touched.
    let base_chunks = chunk_set(&base);
    let new_bytes: u64 =
        flushed.extents.iter().filter(|e| e.chunk.is_some_and(|c| !base_chunks.contains(&c))).map(|e| u64::from(e.length)).sum();
    let touched_bytes: u64 = touched.iter().map(|e| u64::from(e.length)).sum();
    assert!(new_bytes <= touched_bytes, "{new_bytes} new bytes for {touched_bytes} touched");
    assert_eq!(volume.stats().new_chunk_bytes, new_bytes);
    // The zeroed range became a zero extent; the hole stayed one.
    assert!(flushed.extents.contains(&Extent { offset: 128 * KIB, length: 192 * 1024, chunk: None }), "{:?}", flushed.extents);
    assert!(flushed.extents.contains(&Extent { offset: 4 * MIB64, length: 2 * MIB as u32, chunk: None }));
    let status = volume.block_status(0, MIB64);
    assert_eq!(status[..2], [(0, 128 * KIB, true), (128 * KIB, 192 * KIB, false)]);
}

#[tokio::test]
async fn block_status_follows_dirty_blocks_and_the_manifest() {
    let t = memory_store();
    let runs = [(0, random_bytes(MIB, 1)), (3 * MIB64, random_bytes(MIB, 2))];
    let base = Arc::new(sparse_disk(&t.store, 4 * MIB64, &runs).await);
    let volume = CowVolume::new(t.store.clone(), base);
    assert_eq!(volume.block_status(0, 4 * MIB64), vec![(0, MIB64, true), (MIB64, 2 * MIB64, false), (3 * MIB64, MIB64, true)]);
    volume.write_at(&[1], 2 * MIB64 + 5).await.unwrap();
    volume.write_zeroes(3 * MIB64, 64 * KIB).await.unwrap();
    let expected = vec![
        (0, MIB64, true),
        (MIB64, MIB64, false),
        (2 * MIB64, 64 * KIB, true),
        (2 * MIB64 + 64 * KIB, MIB64 - 64 * KIB + 64 * KIB, false),
        (3 * MIB64 + 64 * KIB, MIB64 - 64 * KIB, true),
    ];
    assert_eq!(volume.block_status(0, 4 * MIB64), expected);
    assert_eq!(volume.block_status(2 * MIB64 + 10, 10), vec![(2 * MIB64 + 10, 10, true)]);
    assert_eq!(volume.block_status(4 * MIB64 - 1, 100), vec![(4 * MIB64 - 1, 1, true)], "clipped to the end");
    assert!(volume.block_status(4 * MIB64, 1).is_empty());
    volume.flush().await.unwrap();
    assert_eq!(volume.block_status(0, 4 * MIB64), expected, "the same after a flush");
}

#[tokio::test]
async fn ranges_past_the_end_are_refused_and_change_nothing() {
    let t = memory_store();
    let (base, model) = base_disk(&t.store, 31).await;
    let volume = CowVolume::new(t.store.clone(), base.clone());
    let size = volume.size();
    let mut buf = vec![0u8; 10];
    assert!(matches!(volume.read_at(&mut buf, size - 9).await, Err(StoreError::Invalid(_))));
    assert!(matches!(volume.read_at(&mut buf, u64::MAX - 2).await, Err(StoreError::Invalid(_))));
    assert!(matches!(volume.write_at(&[1; 10], size - 9).await, Err(StoreError::Invalid(_))));
    assert!(matches!(volume.write_at(&[1; 10], u64::MAX - 2).await, Err(StoreError::Invalid(_))));
    assert!(matches!(volume.write_zeroes(0, size + 1).await, Err(StoreError::Invalid(_))));
    assert!(matches!(volume.write_zeroes(u64::MAX, 2).await, Err(StoreError::Invalid(_))));
    volume.read_at(&mut buf, size - 10).await.unwrap();
    volume.read_at(&mut [], size).await.unwrap();
    volume.write_at(&[], size).await.unwrap();
    assert_eq!(volume.stats().bytes_written, 0);
    assert_eq!(volume.stats().dirty_bytes, 0);
    assert_eq!(volume.flush().await.unwrap(), *base, "nothing changed");
    assert!(read_all(&volume).await == model);
}

#[tokio::test]
async fn zeroing_the_whole_disk_leaves_only_zero_extents() {
    let t = memory_store();
    let (base, _) = base_disk(&t.store, 41).await;
    let volume = CowVolume::new(t.store.clone(), base);
    volume.write_zeroes(0, volume.size()).await.unwrap();
    let flushed = volume.flush().await.unwrap();
    flushed.validate().unwrap();
    assert!(flushed.extents.iter().all(|e| e.chunk.is_none()), "{:?}", flushed.extents);
    assert_eq!(volume.stats().chunks_new, 0);
    assert!(read_all(&volume).await.iter().all(|&b| b == 0));
    assert_eq!(volume.block_status(0, volume.size()), vec![(0, volume.size(), false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_flushes_are_never_lost() {
    let t = memory_store();
    let (base, model) = base_disk(&t.store, 51).await;
    let volume = Arc::new(CowVolume::new(t.store.clone(), base).with_dirty_budget(512 * KIB));
    let size = volume.size();
    let slice = size / 4;
    let mut tasks = Vec::new();
    for worker in 0..4u64 {
        let volume = volume.clone();
        tasks.push(tokio::spawn(async move {
            // Each worker owns a quarter of the disk; returns what it last wrote there.
            let mut rng = StdRng::seed_from_u64(worker);
            let mut mine = vec![0u8; slice as usize];
            let mut buf = vec![0u8; slice as usize];
            volume.read_at(&mut mine, worker * slice).await.unwrap();
            for step in 0..60 {
                let at = rng.gen_range(0..slice - 1);
                let len = rng.gen_range(1..=(slice - at).min(100 * KIB));
                let data = random_bytes(len as usize, worker * 1000 + step);
                volume.write_at(&data, worker * slice + at).await.unwrap();
                mine[at as usize..(at + len) as usize].copy_from_slice(&data);
                if step % 7 == 0 {
                    volume.flush().await.unwrap();
                }
                volume.read_at(&mut buf, worker * slice).await.unwrap();
                assert!(buf == mine, "worker {worker} step {step} sees its writes at once");
            }
            mine
        }));
    }
    let mut expected = Vec::new();
    for task in tasks {
        expected.extend(task.await.unwrap());
    }
    expected.extend_from_slice(&model[expected.len()..]);
    let flushed = Arc::new(volume.flush().await.unwrap());
    assert!(read(&t.store, &flushed, 0, size).await.unwrap() == expected);
}

#[tokio::test]
async fn flushed_chunks_stay_pending_until_released() {
    let t = memory_store();
    let (base, _) = base_disk(&t.store, 61).await;
    let volume = CowVolume::new(t.store.clone(), base);
    volume.write_at(&random_bytes(300_000, 9), 100_000).await.unwrap();
    let flushed = volume.flush_with_pending().await.unwrap();
    assert_eq!(flushed.version, 1);
    assert_eq!(flushed.pending.len(), 1);
    let listed: Vec<String> = t.store.list_pending().await.unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(listed, flushed.pending);
    let protected: HashSet<ChunkId> = t.store.pending_chunks(&flushed.pending[0]).await.unwrap().into_iter().collect();
    let in_manifest = chunk_set(&flushed.manifest);
    assert!(protected.iter().all(|c| in_manifest.contains(c)));
    assert!(!protected.is_empty());
    // Nothing new: same version, same pending list.
    let again = volume.flush_with_pending().await.unwrap();
    assert_eq!((again.version, &again.pending), (1, &flushed.pending));
    volume.release_pending(&flushed.pending).await.unwrap();
    assert!(t.store.list_pending().await.unwrap().is_empty());
    assert!(volume.flush_with_pending().await.unwrap().pending.is_empty());
}

/// A disk of `size` bytes that reads as zeros except for `runs` (offset, bytes; sorted, disjoint),
/// each stored on its own, so that extent boundaries fall exactly at the runs' ends.
async fn sparse_disk(store: &ChunkStore, size: u64, runs: &[(u64, Vec<u8>)]) -> Manifest {
    fn zeros(extents: &mut Vec<Extent>, to: u64) {
        let mut at = extents.last().map_or(0, Extent::end);
        while at < to {
            let n = (to - at).min(1 << 30);
            extents.push(Extent { offset: at, length: n as u32, chunk: None });
            at += n;
        }
    }
    let mut extents: Vec<Extent> = Vec::new();
    for (i, (at, data)) in runs.iter().enumerate() {
        zeros(&mut extents, *at);
        let run = stored_image(store, data, i as u64).await;
        extents.extend(run.extents.into_iter().map(|e| Extent { offset: e.offset + at, ..e }));
    }
    zeros(&mut extents, size);
    let manifest = Manifest { size, extents };
    manifest.validate().unwrap();
    manifest
}

/// A 4 GiB disk that is mostly zeros: three 8 MiB data runs (at 0, 1 GiB and 3 GiB).
async fn large_sparse_base(store: &ChunkStore) -> Manifest {
    const GIB: u64 = 1 << 30;
    let runs: Vec<(u64, Vec<u8>)> =
        [0, GIB, 3 * GIB].into_iter().enumerate().map(|(i, at)| (at, random_bytes(8 * MIB, 100 + i as u64))).collect();
    sparse_disk(store, 4 * GIB, &runs).await
}

async fn stored_chunk_bytes(store: &ChunkStore) -> u64 {
    store.list_chunks().await.unwrap().iter().map(|c| c.size).sum()
}

#[tokio::test]
async fn rewriting_8_mib_of_a_4_gib_disk_stores_under_16_mib() {
    let t = file_store();
    let base = Arc::new(large_sparse_base(&t.store).await);
    let before = stored_chunk_bytes(&t.store).await;
    let volume = CowVolume::new(t.store.clone(), base.clone());
    // 8 MiB of new data, unaligned, half over the data run at 1 GiB and half over the zeros after it.
    let offset = (1 << 30) + 4 * MIB64 + 12_345;
    let data = random_bytes(8 * MIB, 77);
    for (i, piece) in data.chunks(512 * 1024).enumerate() {
        volume.write_at(piece, offset + (i * 512 * 1024) as u64).await.unwrap();
    }
    let started = Instant::now();
    let flushed = Arc::new(volume.flush().await.unwrap());
    let flush_time = started.elapsed();
    let stats = volume.stats();
    let physical = stored_chunk_bytes(&t.store).await - before;
    println!(
        "8 MiB rewrite of a 4 GiB disk: {} new chunks, {} new chunk bytes, {} bytes stored, {} bytes of new objects, flush {:?}",
        stats.chunks_new, stats.new_chunk_bytes, stats.bytes_stored, physical, flush_time
    );
    assert!(stats.new_chunk_bytes < 16 * MIB64, "{stats:?}");
    assert!(physical < 16 * MIB64, "{physical}");
    assert!(flush_time.as_secs_f64() < 5.0, "{flush_time:?}");
    // The changed range and its surroundings read back; everything else kept its extents.
    let around = (offset - MIB64, offset + 9 * MIB64);
    let got = read(&t.store, &flushed, around.0, around.1).await.unwrap();
    let mut expected = vec![0u8; (around.1 - around.0) as usize];
    let mut before_data = vec![0u8; MIB];
    CowVolume::new(t.store.clone(), base.clone()).read_at(&mut before_data, around.0).await.unwrap();
    expected[..MIB].copy_from_slice(&before_data);
    expected[MIB..MIB + 8 * MIB].copy_from_slice(&data);
    assert!(got == expected);
    let changed = |e: &Extent| e.offset < offset + 8 * MIB64 + 4 * MIB64 && e.end() + 4 * MIB64 > offset;
    for extent in base.extents.iter().filter(|e| e.chunk.is_some() && !changed(e)) {
        assert!(flushed.extents.contains(extent), "{extent:?}");
    }
}
