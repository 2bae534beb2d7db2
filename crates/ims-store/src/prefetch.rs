//! Whole files and the chunk cache: fetching a file's chunks into the cache ahead of its readers,
//! asking how much of a file the cache holds, and dropping a file's chunks from it.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::chunk_cache::{domain_tag, ChunkAt};
use crate::{CacheResidency, ChunkId, ChunkStore, Manifest, StoreError};

/// Chunks fetched at once by [`ChunkStore::prefetch`].
const PREFETCH_CONCURRENCY: usize = 4;

/// The distinct chunks of `manifest` and the decoded length of each.
fn distinct_chunks(manifest: &Manifest) -> HashMap<ChunkId, u64> {
    manifest
        .extents
        .iter()
        .filter_map(|extent| extent.chunk.map(|id| (id, u64::from(extent.length))))
        .collect()
}

impl ChunkStore {
    /// Fetches every chunk of the file `manifest` describes into this store's chunk cache, in this
    /// view's encryption domain, verifying each as any cached read does; chunks already held are
    /// only marked as used. Returns the number of distinct chunks. The cache keeps its budget, so a
    /// file larger than it (see [`ChunkStore::cache_residency`]'s `chunk_bytes`) is never held whole;
    /// and like any cached chunk, these are evicted when other reads need the room.
    /// Errors: `Corrupt` for a missing or damaged chunk, `Backend` for a failing store (the chunks
    /// fetched before stay cached).
    pub async fn prefetch(&self, manifest: &Manifest) -> Result<u64, StoreError> {
        let domain = domain_tag(self);
        let mut seen = std::collections::HashSet::new();
        let extents: Vec<(ChunkId, u64, usize)> = manifest
            .extents
            .iter()
            .filter_map(|extent| {
                extent.chunk.filter(|id| seen.insert(*id)).map(|id| (id, extent.offset, extent.length as usize))
            })
            .collect();
        let count = extents.len() as u64;
        stream::iter(extents)
            .map(|(id, offset, length)| {
                let store = self.clone();
                async move { store.chunk_cache().warm(&ChunkAt { store: &store, domain, id, offset, length }).await }
            })
            .buffer_unordered(PREFETCH_CONCURRENCY)
            .try_for_each(|()| async { Ok(()) })
            .await?;
        Ok(count)
    }

    /// What this store's chunk cache holds now of the file `manifest` describes, in this view's
    /// encryption domain. Only looks: nothing is fetched, nothing is marked as used.
    pub fn cache_residency(&self, manifest: &Manifest) -> CacheResidency {
        self.chunk_cache().residency(domain_tag(self), &distinct_chunks(manifest))
    }

    /// Drops the chunks of the file `manifest` describes (decoded in this view's encryption domain)
    /// from this store's chunk cache, including those it shares with other files; returns how many
    /// were held. The stored chunks are untouched.
    pub fn evict_from_cache(&self, manifest: &Manifest) -> u64 {
        self.chunk_cache().evict(domain_tag(self), distinct_chunks(manifest).into_keys())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::ChunkStore;

    async fn stored(store: &ChunkStore, data: Vec<u8>) -> crate::Manifest {
        let mut writer = store.writer();
        writer.write(Bytes::from(data)).await.unwrap();
        writer.finish().await.unwrap().manifest
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    #[tokio::test]
    async fn prefetch_holds_a_file_whole_until_it_is_evicted() {
        let store = ChunkStore::open("memory://").unwrap();
        assert!(store.set_chunk_cache_bytes(64 << 20));
        let mut bytes = data(5 << 20);
        // Zero runs longer than the largest chunk become zero extents.
        bytes.extend(vec![0u8; 12 << 20]);
        let manifest = stored(&store, bytes).await;
        let before = store.cache_residency(&manifest);
        assert!(before.chunks > 1 && before.held == 0 && !before.is_whole(), "{before:?}");
        assert!(before.chunk_bytes >= 5 << 20 && before.chunk_bytes < 17 << 20, "zero extents take no room");

        let chunks = store.prefetch(&manifest).await.unwrap();
        let after = store.cache_residency(&manifest);
        assert_eq!(chunks, after.chunks);
        assert!(after.is_whole() && after.hits == 0 && after.last_used.is_some(), "{after:?}");
        // Prefetching again reads nothing for anyone: no hits.
        store.prefetch(&manifest).await.unwrap();
        assert_eq!(store.cache_residency(&manifest).hits, 0);

        // A cached read counts hits on the chunks it reads.
        let mut buf = vec![0u8; 4096];
        store.random_access(Arc::new(manifest.clone())).read_at(&mut buf, 0).await.unwrap();
        assert_eq!(store.cache_residency(&manifest).hits, 1);

        assert_eq!(store.evict_from_cache(&manifest), chunks);
        let evicted = store.cache_residency(&manifest);
        assert_eq!((evicted.held, evicted.hits, evicted.last_used), (0, 0, None));
        assert_eq!(store.chunk_cache().stats().bytes, 0);
    }

    #[tokio::test]
    async fn clear_drops_everything_and_a_small_cache_never_holds_a_large_file() {
        let store = ChunkStore::open("memory://").unwrap();
        assert!(store.set_chunk_cache_bytes(2 << 20));
        let manifest = stored(&store, data(6 << 20)).await;
        store.prefetch(&manifest).await.unwrap();
        let residency = store.cache_residency(&manifest);
        assert!(!residency.is_whole() && residency.last_used.is_some(), "some frames held: {residency:?}");
        assert!(store.chunk_cache().stats().bytes <= 2 << 20);
        assert!(store.chunk_cache().clear() >= 1, "the chunks with frames held");
        assert_eq!(store.chunk_cache().stats().frames, 0);
        assert_eq!(store.cache_residency(&manifest).held, 0);
    }
}
