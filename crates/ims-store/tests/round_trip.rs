//! Files read back byte for byte, whole and in random sub-ranges.

mod common;

use std::sync::Arc;

use common::*;
use ims_store::{frames, StoreError, MANIFEST_VERSION};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_data_of_several_sizes_round_trips() {
    for t in stores() {
        for (i, &size) in [0usize, 1, 1000, 200 * 1024, 5 * MIB + 12_345].iter().enumerate() {
            let data = random_bytes(size, i as u64);
            let summary = write_in_pieces(&t.store, &data, 100 + i as u64).await.unwrap();
            let m = Arc::new(summary.manifest);
            m.validate().unwrap();
            assert_eq!(m.size, size as u64, "{}", t.name);
            assert_eq!(summary.chunks_total, m.chunk_ids().count() as u64);
            assert_eq!(summary.chunks_new + summary.chunks_deduplicated, summary.chunks_total);
            assert_eq!(summary.zero_bytes, 0);
            if size > 0 {
                // Random data does not compress: stored raw, behind one tag byte (and a frame table).
                let overhead: usize = m
                    .extents
                    .iter()
                    .map(|e| e.length as usize)
                    .map(|length| if frames::is_framed(length) { frames::table_len(length, false) } else { 1 })
                    .sum();
                assert_eq!(summary.bytes_stored, (size + overhead) as u64, "{}", t.name);
            }
            assert_eq!(read(&t.store, &m, 0, size as u64).await.unwrap(), data, "{} size {size}", t.name);

            let mut rng = StdRng::seed_from_u64(size as u64);
            for _ in 0..12 {
                let a = rng.gen_range(0..=size);
                let b = rng.gen_range(0..=size);
                let (start, end) = (a.min(b), a.max(b));
                let got = read(&t.store, &m, start as u64, end as u64).await.unwrap();
                assert_eq!(got, &data[start..end], "{} size {size} range {start}..{end}", t.name);
            }
            // Empty ranges, including at the very end.
            assert!(read(&t.store, &m, size as u64, size as u64).await.unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn compressible_data_is_stored_smaller_and_reads_back() {
    for t in stores() {
        let text: Vec<u8> = (0..3 * MIB).map(|i| b"the quick brown fox "[i % 20] ^ (i / 4096) as u8).collect();
        let summary = write_in_pieces(&t.store, &text, 1).await.unwrap();
        assert!(summary.bytes_stored < text.len() as u64 / 4, "{}: {}", t.name, summary.bytes_stored);
        let m = Arc::new(summary.manifest);
        assert_eq!(read(&t.store, &m, 0, m.size).await.unwrap(), text);
        assert_eq!(read(&t.store, &m, 1_000_001, 2_500_000).await.unwrap(), &text[1_000_001..2_500_000]);
    }
}

#[tokio::test]
async fn same_content_gives_same_manifest_whatever_the_write_sizes() {
    let t = memory_store();
    let data = random_bytes(6 * MIB, 9);
    let a = write_in_pieces(&t.store, &data, 1).await.unwrap();
    let b = write_in_pieces(&t.store, &data, 2).await.unwrap();
    let mut w = t.store.writer();
    w.write(bytes::Bytes::from(data.clone())).await.unwrap();
    let c = w.finish().await.unwrap();
    assert_eq!(a.manifest, b.manifest);
    assert_eq!(a.manifest, c.manifest);
    assert!(a.manifest.extents.len() > 1);
}

#[tokio::test]
async fn out_of_bounds_ranges_are_invalid() {
    let t = memory_store();
    let m = Arc::new(write_in_pieces(&t.store, &random_bytes(1000, 1), 1).await.unwrap().manifest);
    assert!(matches!(read(&t.store, &m, 0, 1001).await, Err(StoreError::Invalid(_))));
    assert!(matches!(read(&t.store, &m, 10, 5).await, Err(StoreError::Invalid(_))));
    assert_eq!(MANIFEST_VERSION, 1);
}
