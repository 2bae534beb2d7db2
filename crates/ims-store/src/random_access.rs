//! Random access to a stored file through a node-wide cache of decoded chunks.
//!
//! A [`ChunkCache`] keeps decoded, verified chunks in memory up to a byte budget and evicts the least
//! recently used. Every [`ChunkStore`] view made from one store shares one cache (it lives with the
//! backend), so all readers of a node share it. A [`RandomAccess`] reads any byte range of one
//! manifest through it, and when its reads run sequentially it fetches the next chunks ahead.
//!
//! Concurrency: the cache's lock guards only map updates, never I/O or decoding. A chunk that several
//! readers miss at once is fetched and decoded once; the others wait for that load. Chunks are fetched
//! and decoded by the store's one chunk-decoding function, so they are verified exactly as
//! [`ChunkStore::read_range`] verifies them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::reader::fetch_chunk;
use crate::{ChunkId, ChunkStore, Manifest, StoreError};

/// Default byte budget of a store's chunk cache.
pub const DEFAULT_CHUNK_CACHE_BYTES: u64 = 256 << 20;

/// Chunks fetched ahead of a sequential reader.
const READ_AHEAD_CHUNKS: usize = 4;

/// A chunk as cached: the encryption domain it was decoded in (a domain-keyed id of no bytes, see
/// [`domain_tag`]) and its id.
type CacheKey = (ChunkId, ChunkId);

/// Counters of a [`ChunkCache`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Chunk lookups answered from memory.
    pub hits: u64,
    /// Chunk lookups that had to fetch (or wait for another reader's fetch).
    pub misses: u64,
    /// Chunks dropped to stay within the budget.
    pub evictions: u64,
    /// Bytes of decoded chunks held now (at most the budget).
    pub bytes: u64,
    /// Chunks held now.
    pub chunks: u64,
}

/// A least-recently-used cache of decoded chunks with a byte budget, shared by every reader of a node.
pub struct ChunkCache {
    budget: u64,
    state: Mutex<CacheState>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    /// Cached chunks and the tick of their last use.
    entries: HashMap<CacheKey, (Bytes, u64)>,
    /// Last-use tick → chunk: the least recently used first.
    order: BTreeMap<u64, CacheKey>,
    bytes: u64,
    tick: u64,
    /// Chunks being fetched now: later readers wait on the same cell instead of fetching again.
    loading: HashMap<CacheKey, Arc<OnceCell<Bytes>>>,
}

/// What a lookup found.
enum Lookup {
    Hit(Bytes),
    /// Not cached: fetch through this cell (shared with every reader missing the same chunk).
    Load(Arc<OnceCell<Bytes>>),
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache").field("budget", &self.budget).field("stats", &self.stats()).finish()
    }
}

impl ChunkCache {
    /// An empty cache that holds at most `budget_bytes` of decoded chunks (0 caches nothing: every
    /// read fetches). Memory is only taken as chunks are read.
    pub fn new(budget_bytes: u64) -> ChunkCache {
        ChunkCache {
            budget: budget_bytes,
            state: Mutex::new(CacheState::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The byte budget given at creation.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Current counters. `bytes` never exceeds [`ChunkCache::budget`].
    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes: state.bytes,
            chunks: state.entries.len() as u64,
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // The state is consistent after every statement that can panic, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached chunk (marked as just used), or the cell through which to load it.
    fn lookup(&self, key: &CacheKey) -> Lookup {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.tick += 1;
        let tick = state.tick;
        if let Some((data, last)) = state.entries.get_mut(key) {
            state.order.remove(last);
            *last = tick;
            state.order.insert(tick, *key);
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(data.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Load(state.loading.entry(*key).or_default().clone())
    }

    /// True when the chunk is cached or being loaded (read-ahead skips it).
    fn is_present(&self, key: &CacheKey) -> bool {
        let state = self.lock();
        state.entries.contains_key(key) || state.loading.contains_key(key)
    }

    /// Ends a load through `cell`: forgets the cell and caches `data` when the load succeeded.
    fn finish(&self, key: &CacheKey, cell: &Arc<OnceCell<Bytes>>, data: Option<&Bytes>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.loading.get(key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            state.loading.remove(key);
        }
        let Some(data) = data else { return };
        let len = data.len() as u64;
        if state.entries.contains_key(key) || len > self.budget {
            return;
        }
        while state.bytes + len > self.budget {
            let Some((_, old)) = state.order.pop_first() else { break };
            if let Some((bytes, _)) = state.entries.remove(&old) {
                state.bytes -= bytes.len() as u64;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        state.tick += 1;
        let tick = state.tick;
        state.entries.insert(*key, (data.clone(), tick));
        state.order.insert(tick, *key);
        state.bytes += len;
    }
}

/// An id that stands for the encryption domain of `store`: the same chunk id decoded in another
/// domain (or in none) is another cache entry.
fn domain_tag(store: &ChunkStore) -> ChunkId {
    match store.domain() {
        Some(domain) => domain.chunk_id(&[]),
        None => ChunkId::of(&[]),
    }
}

/// Reads any byte range of one stored file through the store's chunk cache.
///
/// Cheap to create and to clone; clones share the read-ahead position. Needs a tokio runtime (reads
/// are async; read-ahead runs as spawned tasks).
#[derive(Clone)]
pub struct RandomAccess {
    store: ChunkStore,
    manifest: Arc<Manifest>,
    domain: ChunkId,
    /// Offset just past the previous read, to recognise sequential reads.
    last_end: Arc<AtomicU64>,
}

impl std::fmt::Debug for RandomAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomAccess").field("size", &self.manifest.size).finish()
    }
}

impl ChunkStore {
    /// Random access to the file `manifest` describes, through this store's shared chunk cache, in this
    /// view's encryption domain.
    pub fn random_access(&self, manifest: Arc<Manifest>) -> RandomAccess {
        RandomAccess {
            domain: domain_tag(self),
            store: self.clone(),
            manifest,
            last_end: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
}

impl RandomAccess {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.manifest.size
    }

    /// The manifest read.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// Fills `buf` with the file's bytes at `offset`, and returns how many were filled: `buf.len()`,
    /// or fewer only when the file ends first (0 at or past the end). Zero extents cost nothing; every
    /// chunk is verified when it is fetched. Errors (nothing else is returned then): `Corrupt` for a
    /// missing or damaged chunk, `Backend` for a failing store. When this read starts where the
    /// previous read of this reader (or a clone) ended, the following chunks are fetched ahead in the
    /// background.
    pub async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, StoreError> {
        let size = self.manifest.size;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let end = size.min(offset.saturating_add(buf.len() as u64));
        let indices = self.manifest.extent_indices_overlapping(offset, end);
        let sequential = self.last_end.swap(end, Ordering::Relaxed) == offset;
        if sequential {
            self.read_ahead(indices.end);
        }
        let mut done = 0usize;
        for index in indices {
            let extent = &self.manifest.extents[index];
            let from = offset.max(extent.offset);
            let to = end.min(extent.end());
            // In range: `from..to` lies within both the extent and `[offset, end)`.
            let len = (to - from) as usize;
            let dst = &mut buf[(from - offset) as usize..][..len];
            match extent.chunk {
                None => dst.fill(0),
                Some(_) => {
                    let data = self.chunk(index).await?;
                    let start = (from - extent.offset) as usize;
                    let src = data.get(start..start + len).ok_or_else(|| {
                        StoreError::Corrupt(format!("chunk at file offset {} is shorter than its extent", extent.offset))
                    })?;
                    dst.copy_from_slice(src);
                }
            }
            done += len;
        }
        Ok(done)
    }

    /// The decoded chunk of extent `index` (which has a chunk), from the cache or fetched once.
    async fn chunk(&self, index: usize) -> Result<Bytes, StoreError> {
        let cache = self.store.chunk_cache();
        let extent = &self.manifest.extents[index];
        let Some(id) = extent.chunk else {
            return Ok(Bytes::new());
        };
        let key = (self.domain, id);
        let cell = match cache.lookup(&key) {
            Lookup::Hit(data) => return Ok(data),
            Lookup::Load(cell) => cell,
        };
        let (offset, length) = (extent.offset, extent.length as usize);
        let result = cell.get_or_try_init(|| fetch_chunk(&self.store, id, offset, length)).await.cloned();
        cache.finish(&key, &cell, result.as_ref().ok());
        result
    }

    /// Starts fetching the chunks of the extents from `next` on (up to [`READ_AHEAD_CHUNKS`] stored
    /// chunks) that are neither cached nor being fetched. Failures are left for the real read to meet.
    fn read_ahead(&self, next: usize) {
        let cache = self.store.chunk_cache();
        let wanted: Vec<usize> = (next..self.manifest.extents.len())
            .filter(|&i| self.manifest.extents[i].chunk.is_some())
            .take(READ_AHEAD_CHUNKS)
            .filter(|&i| self.manifest.extents[i].chunk.is_some_and(|id| !cache.is_present(&(self.domain, id))))
            .collect();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        for index in wanted {
            let reader = self.clone();
            runtime.spawn(async move {
                let _ = reader.chunk(index).await;
            });
        }
    }
}
