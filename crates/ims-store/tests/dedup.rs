//! Content already stored is not stored again.

mod common;

use std::sync::Arc;

use common::*;

#[tokio::test]
async fn writing_the_same_file_twice_writes_nothing_new() {
    for t in stores() {
        let data = random_bytes(8 * MIB, 11);
        let first = write_in_pieces(&t.store, &data, 1).await.unwrap();
        assert!(first.chunks_new >= 3, "{}", t.name);
        assert_eq!(first.chunks_deduplicated, 0);
        let objects = chunk_objects(&t.store).await;
        assert_eq!(objects as u64, first.chunks_new);

        let second = write_in_pieces(&t.store, &data, 2).await.unwrap();
        assert_eq!(second.chunks_new, 0, "{}", t.name);
        assert_eq!(second.bytes_stored, 0);
        assert_eq!(second.chunks_deduplicated, first.chunks_total);
        assert_eq!(second.manifest, first.manifest);
        assert_eq!(chunk_objects(&t.store).await, objects);
    }
}

#[tokio::test]
async fn a_small_change_stores_only_a_few_chunks() {
    for t in stores() {
        let base = random_bytes(24 * MIB, 12);
        let first = write_in_pieces(&t.store, &base, 1).await.unwrap();
        let mut changed = base.clone();
        for b in &mut changed[10 * MIB..10 * MIB + 4096] {
            *b = !*b;
        }
        // Also an insertion: content-defined boundaries resynchronize after it.
        changed.splice(17 * MIB..17 * MIB, b"inserted bytes".iter().copied());
        let second = write_in_pieces(&t.store, &changed, 2).await.unwrap();
        assert!(second.chunks_new >= 2, "{}", t.name);
        assert!(second.chunks_new <= 5, "{}: {} new of {}", t.name, second.chunks_new, second.chunks_total);
        assert!(second.chunks_deduplicated + 5 >= first.chunks_total);
        let m = Arc::new(second.manifest);
        assert_eq!(read(&t.store, &m, 0, m.size).await.unwrap(), changed);
    }
}

#[tokio::test]
async fn repeated_content_within_one_file_is_stored_once() {
    let t = memory_store();
    let block = random_bytes(3 * MIB, 13);
    // The same 3 MiB four times: once the chunker is in step, the repeats cut identically.
    let data = block.repeat(4);
    let summary = write_in_pieces(&t.store, &data, 1).await.unwrap();
    assert!(summary.chunks_deduplicated >= 4, "{summary:?}");
    assert_eq!(chunk_objects(&t.store).await as u64, summary.chunks_new);
    let m = Arc::new(summary.manifest);
    assert_eq!(read(&t.store, &m, 0, m.size).await.unwrap(), data);
}
