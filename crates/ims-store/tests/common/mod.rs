//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use ims_store::{ChunkStore, Manifest, StoreError, WriteSummary};
use object_store::path::Path;
use rand::{rngs::StdRng, Rng, SeedableRng};

pub mod watched;

pub const MIB: usize = 1024 * 1024;

/// A store under test plus whatever keeps it alive (the temp dir of a `file://` store).
pub struct TestStore {
    pub name: &'static str,
    pub store: ChunkStore,
    pub dir: Option<tempfile::TempDir>,
}

/// One store per backend: every behaviour test runs against each.
pub fn stores() -> Vec<TestStore> {
    vec![memory_store(), file_store()]
}

pub fn memory_store() -> TestStore {
    TestStore { name: "memory", store: ChunkStore::open("memory://").unwrap(), dir: None }
}

pub fn file_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path().join("store")).unwrap();
    TestStore { name: "file", store: ChunkStore::open(url.as_str()).unwrap(), dir: Some(dir) }
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill(&mut data[..]);
    data
}

/// Writes `data` through a fresh writer in pieces of pseudo-random, odd sizes (1 byte to ~700 KiB).
pub async fn write_in_pieces(store: &ChunkStore, data: &[u8], seed: u64) -> Result<WriteSummary, StoreError> {
    let shared = Bytes::copy_from_slice(data);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut writer = store.writer();
    let mut at = 0;
    while at < shared.len() {
        let n = match rng.gen_range(0..4) {
            0 => rng.gen_range(1..64),
            1 => rng.gen_range(1..8192) | 1,
            _ => rng.gen_range(1..700_000) | 1,
        };
        let end = (at + n).min(shared.len());
        writer.write(shared.slice(at..end)).await?;
        at = end;
    }
    writer.finish().await
}

pub async fn read(store: &ChunkStore, manifest: &Arc<Manifest>, start: u64, end: u64) -> Result<Vec<u8>, StoreError> {
    let pieces: Vec<Bytes> = store.read_range(manifest.clone(), start, end).try_collect().await?;
    Ok(pieces.concat())
}

pub async fn chunk_objects(store: &ChunkStore) -> usize {
    store.objects().list(Some(&Path::from("chunks"))).count().await
}
