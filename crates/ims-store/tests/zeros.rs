//! Zero runs cost nothing: `chunk: None` extents, no objects.

mod common;

use std::sync::Arc;

use common::*;

#[tokio::test]
async fn an_all_zero_file_stores_nothing() {
    for t in stores() {
        let data = vec![0u8; 9 * MIB + 7];
        let summary = write_in_pieces(&t.store, &data, 3).await.unwrap();
        assert!(summary.manifest.extents.iter().all(|e| e.chunk.is_none()), "{}", t.name);
        assert_eq!(summary.zero_bytes, data.len() as u64);
        assert_eq!(summary.chunks_total, 0);
        assert_eq!(summary.bytes_stored, 0);
        assert_eq!(chunk_objects(&t.store).await, 0, "{}", t.name);
        let m = Arc::new(summary.manifest);
        assert_eq!(read(&t.store, &m, 0, m.size).await.unwrap(), data);
        assert_eq!(read(&t.store, &m, 123, 5 * MIB as u64).await.unwrap(), &data[123..5 * MIB]);
    }
}

#[tokio::test]
async fn zero_runs_inside_data_are_zero_extents() {
    for t in stores() {
        let mut data = random_bytes(2 * MIB, 5);
        data.extend(std::iter::repeat_n(0u8, 16 * MIB));
        data.extend(random_bytes(2 * MIB, 6));
        let summary = write_in_pieces(&t.store, &data, 4).await.unwrap();
        let zero_extents = summary.manifest.extents.iter().filter(|e| e.chunk.is_none()).count();
        assert!(zero_extents >= 3, "{}: {zero_extents} zero extents", t.name);
        assert!(summary.zero_bytes >= 12 * MIB as u64, "{}: {}", t.name, summary.zero_bytes);
        // Only the chunks holding data are objects, and together they are smaller than the data plus the edges.
        assert_eq!(chunk_objects(&t.store).await as u64, summary.chunks_new);
        assert!(summary.bytes_stored < 9 * MIB as u64);
        let m = Arc::new(summary.manifest);
        assert_eq!(read(&t.store, &m, 0, m.size).await.unwrap(), data);
        let (a, b) = (MIB + 17, 19 * MIB - 3);
        assert_eq!(read(&t.store, &m, a as u64, b as u64).await.unwrap(), &data[a..b]);
    }
}
