//! The behaviours every object store backend must give the chunk store. Each function takes a fresh, empty
//! store and panics on the first deviation.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use ims_store::{ChunkId, ChunkStore, Extent, Manifest, StoreError};
use object_store::PutPayload;
use sha2::{Digest, Sha256};

use crate::common::*;

/// sha256 of bytes `[start, end)` read back through `read_range`, streamed (never held whole).
async fn sha256_of_range(store: &ChunkStore, manifest: &Arc<Manifest>, start: u64, end: u64) -> [u8; 32] {
    let mut stream = store.read_range(manifest.clone(), start, end);
    let mut hasher = Sha256::new();
    let mut length = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        length += piece.len() as u64;
        hasher.update(&piece);
    }
    assert_eq!(length, end - start);
    hasher.finalize().into()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Files of several sizes come back with the same sha256, whole and as a sum of parts.
pub async fn round_trip_keeps_the_sha256(store: ChunkStore) {
    for (i, size) in [0usize, 1, 4095, 300 * 1024 + 7, 5 * MIB + 12_345].into_iter().enumerate() {
        let data = random_bytes(size, 40 + i as u64);
        let summary = write_in_pieces(&store, &data, i as u64).await.unwrap();
        let manifest = Arc::new(summary.manifest);
        assert_eq!(manifest.size, size as u64);
        assert_eq!(sha256_of_range(&store, &manifest, 0, size as u64).await, sha256(&data), "size {size}");
        let id = store.save_manifest(&manifest).await.unwrap();
        let loaded = Arc::new(store.load_manifest(&id).await.unwrap());
        assert_eq!(read(&store, &loaded, 0, size as u64).await.unwrap(), data, "size {size} via the saved manifest");
    }
}

/// Segment `k` (8 MiB) of the large file: segments 1, 4 and 6 are zeros, the others pseudo-random.
fn large_file_segment(k: usize) -> Bytes {
    const SEGMENT: usize = 8 * MIB;
    if matches!(k, 1 | 4 | 6) {
        Bytes::from(vec![0u8; SEGMENT])
    } else {
        Bytes::from(random_bytes(SEGMENT, 1000 + k as u64))
    }
}

/// A 64 MiB file with long zero runs, written in odd-sized pieces: same sha256 back, the zero runs are (mostly)
/// zero extents, and exactly the new chunks became objects.
pub async fn a_64_mib_file_with_zero_runs_round_trips(store: ChunkStore) {
    let mut writer = store.writer();
    let mut hasher = Sha256::new();
    for k in 0..8 {
        let segment = large_file_segment(k);
        hasher.update(&segment);
        for (from, to) in [(0, 1_000_003), (1_000_003, 5_000_011), (5_000_011, segment.len())] {
            writer.write(segment.slice(from..to)).await.unwrap();
        }
    }
    let expected: [u8; 32] = hasher.finalize().into();
    let summary = writer.finish().await.unwrap();
    let manifest = Arc::new(summary.manifest.clone());
    assert_eq!(manifest.size, 64 * MIB as u64);
    assert_eq!(sha256_of_range(&store, &manifest, 0, manifest.size).await, expected);
    assert!(summary.zero_bytes >= 12 * MIB as u64, "only {} zero bytes recognised", summary.zero_bytes);
    assert!(summary.zero_bytes <= 24 * MIB as u64);
    // Zero extents cost nothing; a chunk object is at most its bytes plus a header byte.
    assert!(summary.bytes_stored <= manifest.size - summary.zero_bytes + summary.chunks_new, "{summary:?}");
    assert_eq!(chunk_objects(&store).await as u64, summary.chunks_new);
    // A range inside the second zero run (segment 4), and one across the end of the first (segment 1).
    let zeros = read(&store, &manifest, 33 * MIB as u64 + 5, 39 * MIB as u64).await.unwrap();
    assert!(zeros.iter().all(|&b| b == 0));
    let edge = read(&store, &manifest, 16 * MIB as u64 - 3, 16 * MIB as u64 + 3).await.unwrap();
    assert_eq!(&edge[..3], &[0, 0, 0]);
    assert_eq!(&edge[3..], &large_file_segment(2)[..3]);
}

/// An all-zero file is all zero extents and stores no object; its bytes still read back.
pub async fn zero_files_store_nothing(store: ChunkStore) {
    let data = vec![0u8; 9 * MIB + 3];
    let summary = write_in_pieces(&store, &data, 7).await.unwrap();
    assert!(summary.manifest.extents.iter().all(|e| e.chunk.is_none()));
    assert_eq!((summary.zero_bytes, summary.chunks_total, summary.bytes_stored), (data.len() as u64, 0, 0));
    assert_eq!(chunk_objects(&store).await, 0);
    let manifest = Arc::new(summary.manifest);
    assert_eq!(sha256_of_range(&store, &manifest, 0, manifest.size).await, sha256(&data));
    assert_eq!(read(&store, &manifest, 4 * MIB as u64 + 1, 4 * MIB as u64 + 2).await.unwrap(), [0]);
}

/// Writing the same data again puts no new chunk object; every chunk of the manifest is there.
pub async fn second_write_of_the_same_data_stores_nothing(store: ChunkStore) {
    let data = random_bytes(7 * MIB + 1, 50);
    let first = write_in_pieces(&store, &data, 1).await.unwrap();
    assert!(first.chunks_new >= 2);
    let objects = chunk_objects(&store).await;
    assert_eq!(objects as u64, first.chunks_new);
    let second = write_in_pieces(&store, &data, 2).await.unwrap();
    assert_eq!((second.chunks_new, second.bytes_stored), (0, 0));
    assert_eq!(second.chunks_deduplicated, first.chunks_total);
    assert_eq!(second.manifest, first.manifest);
    assert_eq!(chunk_objects(&store).await, objects, "no chunk object was added");
}

/// `has_chunk` is true for stored chunks and false for others.
pub async fn has_chunk_tells_stored_from_absent(store: ChunkStore) {
    let data = random_bytes(3 * MIB, 51);
    let manifest = write_in_pieces(&store, &data, 3).await.unwrap().manifest;
    for id in manifest.chunk_ids() {
        assert!(store.has_chunk(id).await.unwrap(), "{id}");
    }
    assert!(!store.has_chunk(&ChunkId::of(b"never stored")).await.unwrap());
}

/// A manifest of `extents` one-byte-short-of-a-MiB data extents (chunks need not exist to save one).
fn synthetic_manifest(extents: u64) -> Manifest {
    let length = MIB as u32 - 1;
    let extents: Vec<Extent> = (0..extents)
        .map(|i| Extent {
            offset: i * u64::from(length),
            length,
            chunk: (i % 5 != 0).then(|| ChunkId::of(&i.to_le_bytes())),
        })
        .collect();
    Manifest { size: extents.len() as u64 * u64::from(length), extents }
}

/// Manifests save, load and delete: missing is `NotFound`, delete is idempotent, ids are checked, and a
/// manifest of many megabytes (uploaded in parts) loads back equal.
pub async fn manifests_save_load_and_delete(store: ChunkStore) {
    let small = synthetic_manifest(3);
    let id = store.save_manifest(&small).await.unwrap();
    assert_eq!(store.load_manifest(&id).await.unwrap(), small);
    let other = store.save_manifest(&small).await.unwrap();
    assert_ne!(id, other, "every save is a new manifest");

    store.delete_manifest(&id).await.unwrap();
    assert!(matches!(store.load_manifest(&id).await, Err(StoreError::NotFound(_))));
    store.delete_manifest(&id).await.unwrap();
    assert_eq!(store.load_manifest(&other).await.unwrap(), small, "deleting one leaves the other");

    let missing = uuid::Uuid::new_v4().to_string();
    assert!(matches!(store.load_manifest(&missing).await, Err(StoreError::NotFound(_))));
    store.delete_manifest(&missing).await.unwrap();
    for bad in ["", "../chunks", "not-a-uuid"] {
        assert!(matches!(store.load_manifest(bad).await, Err(StoreError::Invalid(_))), "{bad:?}");
        assert!(matches!(store.delete_manifest(bad).await, Err(StoreError::Invalid(_))), "{bad:?}");
    }
    let mut broken = small.clone();
    broken.size += 1;
    assert!(matches!(store.save_manifest(&broken).await, Err(StoreError::Invalid(_))));

    // ~200k extents: about 20 MiB of JSON, several parts.
    let large = synthetic_manifest(200_000);
    assert!(large.to_json().len() > 16 * MIB);
    let id = store.save_manifest(&large).await.unwrap();
    assert_eq!(store.load_manifest(&id).await.unwrap(), large);
    store.delete_manifest(&id).await.unwrap();
    assert!(matches!(store.load_manifest(&id).await, Err(StoreError::NotFound(_))));
}

/// Ranges at odd offsets: inside one chunk, across chunk edges, into zero runs, single bytes, empty ranges and
/// the end of the file; ranges outside the file are `Invalid`.
pub async fn ranged_reads_at_odd_offsets(store: ChunkStore) {
    let mut data = random_bytes(3 * MIB + 333, 52);
    data.extend(std::iter::repeat_n(0u8, 9 * MIB + 1));
    data.extend(random_bytes(2 * MIB + 77, 53));
    let manifest = Arc::new(write_in_pieces(&store, &data, 4).await.unwrap().manifest);
    let size = data.len() as u64;
    let mut ranges = vec![(0, 1), (1, 2), (size - 1, size), (size, size), (0, 0), (777, 777), (12_345, 3 * MIB as u64 + 999)];
    for extent in &manifest.extents {
        let edge = extent.offset;
        ranges.push((edge.saturating_sub(3), (edge + 5).min(size)));
        ranges.push((edge.saturating_sub(1), edge + u64::from(extent.length)));
    }
    for (start, end) in ranges {
        let got = read(&store, &manifest, start, end).await.unwrap();
        assert_eq!(got, &data[start as usize..end as usize], "range {start}..{end}");
    }
    for (start, end) in [(0, size + 1), (10, 9), (size + 1, size + 2)] {
        assert!(matches!(read(&store, &manifest, start, end).await, Err(StoreError::Invalid(_))), "{start}..{end}");
    }
}

/// Several writers at once, of files that share most of their content: every file reads back, and the store
/// holds exactly one object per distinct chunk.
pub async fn concurrent_writers_of_overlapping_data(store: ChunkStore) {
    let base = Arc::new(random_bytes(12 * MIB, 54));
    let tasks: Vec<_> = (0..4u8)
        .map(|w| {
            let (store, base) = (store.clone(), base.clone());
            tokio::spawn(async move {
                let mut data = base.to_vec();
                // Each writer changes a different small region and appends its own tail.
                let at = (2 + 2 * w as usize) * MIB;
                data[at..at + 1000].fill(w + 1);
                data.extend(random_bytes(MIB, 60 + u64::from(w)));
                let summary = write_in_pieces(&store, &data, u64::from(w)).await.unwrap();
                (data, summary)
            })
        })
        .collect();
    let mut distinct = HashSet::new();
    let mut written = Vec::new();
    for task in tasks {
        let (data, summary) = task.await.unwrap();
        distinct.extend(summary.manifest.chunk_ids().copied());
        written.push((data, Arc::new(summary.manifest)));
    }
    assert_eq!(chunk_objects(&store).await, distinct.len(), "one object per distinct chunk");
    for (data, manifest) in &written {
        assert_eq!(sha256_of_range(&store, manifest, 0, manifest.size).await, sha256(data));
    }
}

/// A damaged chunk object and a missing one are `Corrupt`, naming the chunk and its file offset; the bytes
/// before the damage are served, nothing after.
pub async fn damaged_or_missing_chunks_are_corrupt(store: ChunkStore) {
    let data = random_bytes(6 * MIB, 55);
    let manifest = Arc::new(write_in_pieces(&store, &data, 5).await.unwrap().manifest);
    assert!(manifest.extents.len() >= 3);
    let damaged = manifest.extents[1].clone();
    let id = damaged.chunk.unwrap();
    let object = store.objects().get(&id.object_path()).await.unwrap().bytes().await.unwrap();
    let mut flipped = object.to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x20;
    store.objects().put(&id.object_path(), PutPayload::from(flipped)).await.unwrap();

    let mut stream = store.read_range(manifest.clone(), 0, manifest.size);
    let mut served = Vec::new();
    let error = loop {
        match stream.next().await {
            Some(Ok(bytes)) => served.extend_from_slice(&bytes),
            Some(Err(e)) => break e,
            None => panic!("a damaged chunk was read without error"),
        }
    };
    assert!(stream.next().await.is_none(), "nothing follows the error");
    // `stream` stays alive, unpolled, through the reads below: it must not hold them up.
    assert_eq!(served, &data[..served.len()]);
    assert!(served.len() as u64 <= damaged.offset);
    let StoreError::Corrupt(message) = &error else { panic!("expected Corrupt, got {error:?}") };
    assert!(message.contains(&id.to_string()) && message.contains(&damaged.offset.to_string()), "{message}");
    // The extent before it is unaffected.
    let first = &manifest.extents[0];
    assert_eq!(read(&store, &manifest, 0, first.end()).await.unwrap(), &data[..first.end() as usize]);

    let missing = manifest.extents[2].clone();
    let missing_id = missing.chunk.unwrap();
    store.objects().delete(&missing_id.object_path()).await.unwrap();
    let error = read(&store, &manifest, missing.offset + 1, missing.offset + 2).await.unwrap_err();
    let StoreError::Corrupt(message) = &error else { panic!("expected Corrupt, got {error:?}") };
    assert!(message.contains("missing") && message.contains(&missing.offset.to_string()), "{message}");
}

/// A read whose consumer stops polling (a stalled download) holds up no other read or write.
pub async fn a_stalled_read_holds_up_nothing(store: ChunkStore) {
    let data = random_bytes(12 * MIB, 56);
    let manifest = Arc::new(write_in_pieces(&store, &data, 6).await.unwrap().manifest);
    let mut stalled = store.read_range(manifest.clone(), 0, manifest.size);
    let first = stalled.next().await.unwrap().unwrap();
    assert_eq!(first, &data[..first.len()]);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let others = async {
        assert_eq!(sha256_of_range(&store, &manifest, 0, manifest.size).await, sha256(&data));
        let more = random_bytes(3 * MIB, 57);
        let again = Arc::new(write_in_pieces(&store, &more, 7).await.unwrap().manifest);
        assert_eq!(read(&store, &again, 0, again.size).await.unwrap(), more);
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), others).await.expect("other reads and writes went on");
    let mut rest = first.to_vec();
    while let Some(piece) = stalled.next().await {
        rest.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(sha256(&rest), sha256(&data), "the stalled read still completes");
}
