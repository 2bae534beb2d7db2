//! Random access to a stored file through a node-wide cache of decoded chunks.
//!
//! A [`ChunkCache`] keeps decoded, verified chunks in memory up to a byte budget and evicts the least
//! recently used. Every [`ChunkStore`] view made from one store shares one cache (it lives with the
//! backend), so all readers of a node share it. A [`RandomAccess`] reads any byte range of one
//! manifest through it, and when its reads run sequentially it fetches the next chunks ahead: none
//! at first, then a window that doubles while the reads stay sequential and closes on a seek.
//!
//! Concurrency: the cache's lock guards only map updates, never I/O or decoding. A chunk that several
//! readers miss at once is fetched and decoded once; the others wait for that load. Chunks are fetched
//! and decoded by the store's one chunk-decoding function, so they are verified exactly as
//! [`ChunkStore::read_range`] verifies them.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::reader::fetch_chunk;
use crate::{ChunkId, ChunkStore, Manifest, StoreError};

/// Default byte budget of a store's chunk cache.
pub const DEFAULT_CHUNK_CACHE_BYTES: u64 = 256 << 20;

/// Most chunks fetched ahead of a sequential reader.
const MAX_READ_AHEAD_CHUNKS: usize = 4;

/// Chunk boundaries a reader crosses sequentially (since its last seek) before anything is fetched
/// ahead of it. A read that merely runs on into the next chunk (a guest reading one file) would not
/// use the chunks after that one; a reader that has crossed two boundaries has read a whole chunk
/// from start to end and is taken to be streaming.
const CROSSINGS_BEFORE_READ_AHEAD: usize = 2;

/// A ranged read fills the cache only when it spans at most this fraction (1/N) of the budget.
pub const FILL_FRACTION: u64 = 16;

/// How a streamed read ([`ChunkStore::read_range_cached`]) uses the store's chunk cache (see
/// [`ChunkCache`] for who uses which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Never looks at the cache: every chunk is fetched from the backend and verified, and the
    /// cache is left exactly as it was.
    Bypass,
    /// Takes the chunks the cache holds and keeps the chunks it fetches (evicting the least recently
    /// used); a chunk another reader is fetching is waited for, not fetched twice.
    Fill,
}

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
///
/// # Who fills the cache
///
/// The cache is for data read again soon: the blocks of guest disks behind NBD exports and volumes,
/// format headers and tables, hot byte ranges that clients download piece by piece. Streamed reads
/// say how they use it with a [`CacheUse`] ([`ChunkStore::read_range_cached`]):
///
/// - [`RandomAccess`] reads (format readers, NBD exports, copy-on-write volumes) always fill it, and
///   read ahead when they run sequentially.
/// - A ranged read fills it when it is small next to the budget ([`ChunkCache::use_for_range`]: a
///   proper part of the file of at most 1/[`FILL_FRACTION`] of the budget), so one request can
///   displace at most that share of what other readers keep hot.
/// - A whole-file read (a full download) or a large range bypasses it: streaming a 50 GiB image
///   through the cache would evict everything for data nobody reads twice. Such a read also checks
///   every byte it serves against the store (a full download is an end-to-end check of the stored
///   image, whatever the cache holds).
/// - Integrity checks ([`ChunkStore::verify_chunk`]) bypass it: they must read what is stored. So
///   do [`ChunkStore::read_range`] and the copies built on it ([`ChunkStore::copy_file`]).
///
/// # Keys
///
/// An entry is keyed by the chunk id *and* a tag of the encryption domain it was decoded in (the id
/// of no bytes under the domain's id key, so each data key has its own tag), so a view of one domain
/// (or the plaintext view) is never served another domain's plaintext, even for a chunk id it names. The cache checks no key itself: cached plaintext of a
/// domain is reachable only through a [`ChunkStore`] view of that domain, which takes its data key.
/// Callers that open views per request after asking the key service (as the image service does) thus
/// cut access to cached plaintext the moment a master key is disabled.
pub struct ChunkCache {
    budget: u64,
    state: Mutex<CacheState>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    /// Cached chunks.
    entries: HashMap<CacheKey, Entry>,
    /// Last-use tick → chunk: the least recently used first.
    order: BTreeMap<u64, CacheKey>,
    bytes: u64,
    tick: u64,
    /// Chunks being fetched now: later readers wait on the same cell instead of fetching again.
    loading: HashMap<CacheKey, Arc<OnceCell<Bytes>>>,
}

/// One cached chunk.
struct Entry {
    data: Bytes,
    /// The tick of its last use (its key in `CacheState::order`).
    tick: u64,
    /// Lookups answered with it since it was cached.
    hits: u64,
    /// When it was cached or last used.
    used_at: SystemTime,
}

/// What a cache holds of the chunks of one file (see [`ChunkStore::cache_residency`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheResidency {
    /// Distinct chunks the file is stored in (zero extents have none).
    pub chunks: u64,
    /// Their decoded bytes: what holding the whole file takes of the budget.
    pub chunk_bytes: u64,
    /// Those of them held now.
    pub held: u64,
    /// Lookups answered from memory with the held ones since each was cached (a chunk shared with
    /// other files counts their reads too).
    pub hits: u64,
    /// When a held one was last cached or used (`None` when none is held).
    pub last_used: Option<SystemTime>,
}

impl CacheResidency {
    /// True when every chunk of the file is held (a file of zeros only is always whole).
    pub fn is_whole(&self) -> bool {
        self.held == self.chunks
    }
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

    /// The cached chunk (marked as just used, and counted as a hit when `hit` says so), or the cell
    /// through which to load it.
    fn lookup(&self, key: &CacheKey, hit: bool) -> Lookup {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.tick += 1;
        let tick = state.tick;
        if let Some(entry) = state.entries.get_mut(key) {
            state.order.remove(&entry.tick);
            entry.tick = tick;
            entry.used_at = SystemTime::now();
            state.order.insert(tick, *key);
            if hit {
                entry.hits += 1;
                self.hits.fetch_add(1, Ordering::Relaxed);
            }
            return Lookup::Hit(entry.data.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Load(state.loading.entry(*key).or_default().clone())
    }

    /// How a read of bytes `[start, end)` of a file of `size` bytes should use this cache: `Fill` for
    /// a proper part of the file of at most 1/[`FILL_FRACTION`] of the budget, `Bypass` for the whole
    /// file or more (see the type's doc). An empty range is `Bypass`.
    pub fn use_for_range(&self, start: u64, end: u64, size: u64) -> CacheUse {
        let len = end.saturating_sub(start);
        let whole = start == 0 && end >= size;
        if len == 0 || whole || len > self.budget / FILL_FRACTION {
            CacheUse::Bypass
        } else {
            CacheUse::Fill
        }
    }

    /// The decoded chunk `id` of `store`'s domain (tagged `domain`, see [`domain_tag`]): from memory,
    /// or fetched, verified and kept. `offset` and `length` are those of the extent that names it
    /// (for errors and decoding). Failures are not cached.
    pub(crate) async fn get_or_fetch(
        &self,
        store: &ChunkStore,
        domain: ChunkId,
        id: ChunkId,
        offset: u64,
        length: usize,
    ) -> Result<Bytes, StoreError> {
        self.load(store, domain, id, offset, length, true).await
    }

    /// Like [`ChunkCache::get_or_fetch`], but a chunk already held is only marked as used, not counted
    /// as a hit (for prefetching, which nobody reads from).
    pub(crate) async fn warm(
        &self,
        store: &ChunkStore,
        domain: ChunkId,
        id: ChunkId,
        offset: u64,
        length: usize,
    ) -> Result<(), StoreError> {
        self.load(store, domain, id, offset, length, false).await.map(drop)
    }

    async fn load(
        &self,
        store: &ChunkStore,
        domain: ChunkId,
        id: ChunkId,
        offset: u64,
        length: usize,
        hit: bool,
    ) -> Result<Bytes, StoreError> {
        let key = (domain, id);
        let cell = match self.lookup(&key, hit) {
            Lookup::Hit(data) => return Ok(data),
            Lookup::Load(cell) => cell,
        };
        let result = cell.get_or_try_init(|| fetch_chunk(store, id, offset, length)).await.cloned();
        self.finish(&key, &cell, result.as_ref().ok());
        result
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
            if let Some(entry) = state.entries.remove(&old) {
                state.bytes -= entry.data.len() as u64;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        state.tick += 1;
        let tick = state.tick;
        state.entries.insert(*key, Entry { data: data.clone(), tick, hits: 0, used_at: SystemTime::now() });
        state.order.insert(tick, *key);
        state.bytes += len;
    }
}

impl ChunkCache {
    /// What this cache holds of the distinct chunks `chunks` (id, decoded length) decoded in
    /// `domain`. Looks only: nothing is marked as used.
    pub(crate) fn residency(&self, domain: ChunkId, chunks: &HashMap<ChunkId, u64>) -> CacheResidency {
        let state = self.lock();
        let mut residency = CacheResidency { chunks: chunks.len() as u64, ..CacheResidency::default() };
        for (id, length) in chunks {
            residency.chunk_bytes += length;
            if let Some(entry) = state.entries.get(&(domain, *id)) {
                residency.held += 1;
                residency.hits += entry.hits;
                residency.last_used = residency.last_used.max(Some(entry.used_at));
            }
        }
        residency
    }

    /// Drops the chunks `ids` decoded in `domain`; returns how many were held. Loads in flight
    /// are not stopped (they may cache their chunk when they end).
    pub(crate) fn evict(&self, domain: ChunkId, ids: impl IntoIterator<Item = ChunkId>) -> u64 {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut dropped = 0;
        for id in ids {
            if let Some(entry) = state.entries.remove(&(domain, id)) {
                state.order.remove(&entry.tick);
                state.bytes -= entry.data.len() as u64;
                dropped += 1;
            }
        }
        dropped
    }

    /// Drops every cached chunk (of every domain); returns how many were held. Counters other than
    /// `bytes` and `chunks` are kept; loads in flight are not stopped.
    pub fn clear(&self) -> u64 {
        let mut state = self.lock();
        let dropped = state.entries.len() as u64;
        state.entries.clear();
        state.order.clear();
        state.bytes = 0;
        dropped
    }
}

/// An id that stands for the encryption domain of `store`: the same chunk id decoded in another
/// domain (or in none) is another cache entry. Derived from the domain's id key, so two data keys
/// give two tags.
pub(crate) fn domain_tag(store: &ChunkStore) -> ChunkId {
    match store.domain() {
        Some(domain) => domain.chunk_id(&[]),
        None => ChunkId::of(&[]),
    }
}

/// Reads any byte range of one stored file through the store's chunk cache.
///
/// Cheap to create and to clone; clones share the read-ahead state (one per reader, never global:
/// two readers of one file each have their own). Needs a tokio runtime (reads are async; read-ahead
/// runs as spawned tasks).
///
/// # Read-ahead
///
/// A reader starts with no read-ahead. A read is *sequential* when it starts where the previous one
/// ended, or in a chunk the reader has just read or had fetched ahead (requests in flight together,
/// as NBD clients send them, arrive a little out of order). Each time sequential reads enter a chunk
/// past the furthest one read, the reader has crossed a chunk boundary; from the second crossing on
/// (when it has read one chunk from start to end), a window of chunks after the furthest one read is
/// kept fetched in the background, 1 chunk at first and doubling with each crossing up to 4. Any
/// other read is a seek: the window closes and counting starts again.
/// So scattered reads fetch only the chunks they read, and a scan has the next chunks decoded
/// before it asks for them.
#[derive(Clone)]
pub struct RandomAccess {
    store: ChunkStore,
    manifest: Arc<Manifest>,
    domain: ChunkId,
    /// Where this reader is, to recognise sequential reads and size the read-ahead.
    stream: Arc<Mutex<Stream>>,
}

/// The read-ahead state of one reader (see [`RandomAccess`]).
#[derive(Debug, Default)]
struct Stream {
    /// Offset just past the previous read; `None` before the first.
    last_end: Option<u64>,
    /// Index of the furthest extent a read has touched since the last seek.
    furthest: usize,
    /// Chunk boundaries crossed by sequential reads since the last seek.
    crossings: usize,
    /// Chunks kept fetched ahead of `furthest`: 0 after a seek, then 1, 2, 4, ...
    window: usize,
    /// Extents before this index have been read or fetched ahead since the last seek.
    ahead_end: usize,
}

impl Stream {
    /// Notes a read of `offset..end` touching the (non-empty) extents `touched` of `manifest`, and
    /// returns the extents to fetch ahead now (chunkless ones among them need nothing).
    fn advance(&mut self, manifest: &Manifest, offset: u64, end: u64, touched: Range<usize>) -> Range<usize> {
        let Some(last) = touched.end.checked_sub(1).filter(|_| !touched.is_empty()) else { return 0..0 };
        let first = touched.start;
        let sequential = match self.last_end {
            None => false,
            Some(previous_end) => {
                previous_end == offset
                    || (first + self.window >= self.furthest && first <= self.ahead_end.max(self.furthest + 1))
            }
        };
        self.last_end = Some(end);
        if !sequential {
            *self = Stream { last_end: Some(end), furthest: last, crossings: 0, window: 0, ahead_end: last + 1 };
            return 0..0;
        }
        if last > self.furthest {
            self.crossings = self.crossings.saturating_add(last - self.furthest);
            self.furthest = last;
            if self.crossings >= CROSSINGS_BEFORE_READ_AHEAD {
                self.window = (self.window * 2).clamp(1, MAX_READ_AHEAD_CHUNKS);
            }
        }
        // The window's end: just past the `window`th stored chunk after the furthest extent read.
        let mut window_end = self.furthest + 1;
        let mut chunks = 0;
        while chunks < self.window && window_end < manifest.extents.len() {
            chunks += usize::from(manifest.extents[window_end].chunk.is_some());
            window_end += 1;
        }
        let from = self.ahead_end.max(self.furthest + 1);
        self.ahead_end = from.max(window_end);
        from..window_end.max(from)
    }
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
            stream: Arc::new(Mutex::new(Stream::default())),
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
    /// missing or damaged chunk, `Backend` for a failing store. When the reads of this reader (and
    /// its clones) run sequentially, the following chunks are fetched ahead in the background (see
    /// the type's doc).
    pub async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, StoreError> {
        let size = self.manifest.size;
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        let end = size.min(offset.saturating_add(buf.len() as u64));
        let indices = self.manifest.extent_indices_overlapping(offset, end);
        let ahead = {
            // Consistent after every statement that can panic, so a poisoned lock is usable.
            let mut stream = self.stream.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            stream.advance(&self.manifest, offset, end, indices.clone())
        };
        self.read_ahead(ahead);
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
        let extent = &self.manifest.extents[index];
        let Some(id) = extent.chunk else {
            return Ok(Bytes::new());
        };
        let (offset, length) = (extent.offset, extent.length as usize);
        self.store.chunk_cache().get_or_fetch(&self.store, self.domain, id, offset, length).await
    }

    /// Starts fetching the chunks of the extents `extents` that are neither cached nor being
    /// fetched, each in its own task (so they are fetched and decoded in parallel). Failures are left
    /// for the real read to meet.
    fn read_ahead(&self, extents: Range<usize>) {
        if extents.is_empty() {
            return;
        }
        let cache = self.store.chunk_cache();
        let wanted: Vec<usize> = extents
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
