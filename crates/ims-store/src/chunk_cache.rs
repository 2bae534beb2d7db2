//! The node-wide cache of decoded, verified chunk frames.
//!
//! The cache holds chunks in parts of [`FRAME_LEN`] bytes (*frames*, see [`crate::frames`]): a reader
//! of 4 KiB of a 4 MiB chunk fetches, decodes, verifies and keeps the one frame it reads, not the
//! chunk. A chunk of at most one frame is one entry; a chunk stored before frames existed is fetched
//! whole and kept as frames all the same.
//!
//! Concurrency: the cache's lock guards only map updates, never I/O or decoding. Loads of one chunk
//! take turns (a per-chunk gate): a reader missing frames of a chunk another reader is loading waits
//! for that load, then takes what it loaded and fetches only what is still missing. Frames are
//! verified when fetched (see [`crate::reader`]), exactly as [`ChunkStore::read_range`] verifies
//! whole chunks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::Bytes;

use crate::frames::{frame_count, frame_range, FRAME_LEN};
use crate::reader::fetch_frames;
use crate::{ChunkId, ChunkStore, StoreError};

/// Default byte budget of a store's chunk cache.
pub const DEFAULT_CHUNK_CACHE_BYTES: u64 = 256 << 20;

/// A ranged read fills the cache only when it spans at most this fraction (1/N) of the budget.
pub const FILL_FRACTION: u64 = 16;

/// How a streamed read ([`ChunkStore::read_range_cached`]) uses the store's chunk cache (see
/// [`ChunkCache`] for who uses which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Never looks at the cache: every chunk is fetched from the backend and verified, and the
    /// cache is left exactly as it was.
    Bypass,
    /// Takes the frames the cache holds and keeps the frames it fetches (evicting the least recently
    /// used); frames another reader is fetching are waited for, not fetched twice.
    Fill,
}

/// A chunk as loaded: the encryption domain it is decoded in (a domain-keyed id of no bytes, see
/// [`domain_tag`]) and its id.
type ChunkKey = (ChunkId, ChunkId);

/// A cache entry: a frame of a chunk (its index), or the chunk object's [`TABLE`].
type CacheKey = (ChunkId, ChunkId, u32);

/// The part of a chunk that holds its object's verified frame table, or for an object stored
/// unframed its tag byte alone (so its next load fetches the whole object at once).
const TABLE: u32 = u32::MAX;

/// Counters of a [`ChunkCache`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Frame lookups answered from memory.
    pub hits: u64,
    /// Frame lookups that had to fetch (or wait for another reader's fetch).
    pub misses: u64,
    /// Frames dropped to stay within the budget.
    pub evictions: u64,
    /// Bytes of decoded frames held now (at most the budget).
    pub bytes: u64,
    /// Frames held now (a chunk of up to [`FRAME_LEN`] bytes is one frame).
    pub frames: u64,
}

/// A least-recently-used cache of decoded chunk frames with a byte budget, shared by every reader of
/// a node.
///
/// # Who fills the cache
///
/// The cache is for data read again soon: the blocks of guest disks behind NBD exports and volumes,
/// format headers and tables, hot byte ranges that clients download piece by piece. Streamed reads
/// say how they use it with a [`CacheUse`] ([`ChunkStore::read_range_cached`]):
///
/// - [`crate::RandomAccess`] reads (format readers, NBD exports, copy-on-write volumes) always fill
///   it with the frames they read, and read whole chunks ahead when they run sequentially.
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
/// An entry is keyed by the chunk id, the frame *and* a tag of the encryption domain it was decoded
/// in (the id of no bytes under the domain's id key, so each data key has its own tag), so a view of
/// one domain (or the plaintext view) is never served another domain's plaintext, even for a chunk
/// id it names. The cache checks no key itself: cached plaintext of a domain is reachable only
/// through a [`ChunkStore`] view of that domain, which takes its data key. Callers that open views
/// per request after asking the key service (as the image service does) thus cut access to cached
/// plaintext the moment a master key is disabled.
pub struct ChunkCache {
    budget: u64,
    state: Mutex<CacheState>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    /// Cached frames and tables.
    entries: HashMap<CacheKey, Entry>,
    /// Last-use tick → entry: the least recently used first.
    order: BTreeMap<u64, CacheKey>,
    /// Bytes of the entries.
    bytes: u64,
    /// Frames among the entries.
    frames: u64,
    tick: u64,
    /// Chunks being loaded now, each with the gate its loads take turns at.
    loading: HashMap<ChunkKey, Arc<tokio::sync::Mutex<()>>>,
}

impl CacheState {
    /// Entry `key` if held, marked as just used.
    fn touch(&mut self, key: CacheKey) -> Option<&mut Entry> {
        self.tick += 1;
        let entry = self.entries.get_mut(&key)?;
        self.order.remove(&entry.tick);
        entry.tick = self.tick;
        entry.used_at = SystemTime::now();
        self.order.insert(self.tick, key);
        Some(entry)
    }
}

/// One cached frame (or table).
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
    /// Those of them held whole now.
    pub held: u64,
    /// Lookups answered from memory with the frames held of them since each was cached (a chunk
    /// shared with other files counts their reads too).
    pub hits: u64,
    /// When a frame of them was last cached or used (`None` when none is held).
    pub last_used: Option<SystemTime>,
}

impl CacheResidency {
    /// True when every chunk of the file is held (a file of zeros only is always whole).
    pub fn is_whole(&self) -> bool {
        self.held == self.chunks
    }
}

impl std::fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCache").field("budget", &self.budget).field("stats", &self.stats()).finish()
    }
}

/// Where a chunk lives, for fetching it: the store view, the domain tag, the id, and the extent
/// naming it (file offset for errors, length for decoding).
pub(crate) struct ChunkAt<'a> {
    pub store: &'a ChunkStore,
    pub domain: ChunkId,
    pub id: ChunkId,
    pub offset: u64,
    pub length: usize,
}

impl ChunkCache {
    /// An empty cache that holds at most `budget_bytes` of decoded frames (0 caches nothing: every
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
            frames: state.frames,
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // The state is consistent after every statement that can panic, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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

    /// Bytes `range` of the decoded chunk `at`, as slices of its frames in order: from memory, or
    /// fetched, verified and kept. With `to_end`, a fetch also brings the frames after `range` up to
    /// the chunk's end or the next frame held (a reader running on through the chunk). Failures are
    /// not cached.
    pub(crate) async fn read(&self, at: &ChunkAt<'_>, range: Range<usize>, to_end: bool) -> Result<Vec<Bytes>, StoreError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        if range.end > at.length {
            return Err(StoreError::Corrupt(format!(
                "chunk {} at file offset {} is shorter than its extent",
                at.id, at.offset
            )));
        }
        let frames = range.start / FRAME_LEN..range.end.div_ceil(FRAME_LEN);
        let first = frames.start;
        let data = self.frames(at, frames, to_end, true).await?;
        let mut pieces = Vec::with_capacity(data.len());
        for (i, frame) in data.into_iter().enumerate() {
            let span = frame_range(at.length, first + i);
            let (from, to) = (range.start.max(span.start) - span.start, range.end.min(span.end) - span.start);
            // A frame cached for another manifest naming the same chunk with another length would not fit.
            if to > frame.len() {
                return Err(StoreError::Corrupt(format!(
                    "chunk {} at file offset {} is shorter than its extent",
                    at.id, at.offset
                )));
            }
            pieces.push(frame.slice(from..to));
        }
        Ok(pieces)
    }

    /// Loads every frame of chunk `at` into the cache; frames already held are only marked as used,
    /// not counted as hits (for prefetching and read-ahead, which nobody reads from).
    pub(crate) async fn warm(&self, at: &ChunkAt<'_>) -> Result<(), StoreError> {
        self.frames(at, 0..frame_count(at.length).max(1), false, false).await.map(drop)
    }

    /// True when chunk `at` is held whole or being loaded (read-ahead skips it).
    pub(crate) fn is_present(&self, domain: ChunkId, id: ChunkId, length: usize) -> bool {
        let state = self.lock();
        state.loading.contains_key(&(domain, id))
            || (0..frame_count(length).max(1)).all(|f| state.entries.contains_key(&(domain, id, f as u32)))
    }

    /// Frames `wanted` of chunk `at`: those held (marked as used, counted as hits when `hit` says so),
    /// the others loaded under the chunk's gate (with the frames after them that are not held, up to
    /// the chunk's end, when `to_end`).
    async fn frames(
        &self,
        at: &ChunkAt<'_>,
        wanted: Range<usize>,
        to_end: bool,
        hit: bool,
    ) -> Result<Vec<Bytes>, StoreError> {
        let mut found = self.lookup(at, wanted.clone(), Some(hit));
        if found.iter().all(Option::is_some) {
            return Ok(found.into_iter().flatten().collect());
        }
        let gate = self.gate((at.domain, at.id));
        let turn = gate.gate.lock().await;
        // What a load that held the gate before us left.
        for (slot, now) in found.iter_mut().zip(self.lookup(at, wanted.clone(), None)) {
            if slot.is_none() {
                *slot = now;
            }
        }
        let missing_from = found.iter().position(Option::is_none);
        let missing_to = found.iter().rposition(Option::is_none);
        if let (Some(from), Some(to)) = (missing_from, missing_to) {
            let mut run = wanted.start + from..wanted.start + to + 1;
            if to_end {
                let last = frame_count(at.length).max(1);
                let held = |index: &usize| self.peek((at.domain, at.id, *index as u32)).is_some();
                run.end = (run.end..last).find(held).unwrap_or(last);
            }
            let table = self.lookup_one((at.domain, at.id, TABLE));
            let fetched = fetch_frames(at, table, run.clone()).await?;
            if let Some(head) = fetched.head {
                self.keep((at.domain, at.id, TABLE), head);
            }
            for (index, data) in (fetched.first..).zip(fetched.frames) {
                self.keep((at.domain, at.id, index as u32), data.clone());
                if let Some(slot) = index.checked_sub(wanted.start).and_then(|i| found.get_mut(i)) {
                    slot.get_or_insert(data);
                }
            }
        }
        drop(turn);
        drop(gate);
        found
            .into_iter()
            .map(|f| f.ok_or_else(|| StoreError::Backend(format!("chunk {} frame load came back short", at.id))))
            .collect()
    }

    /// The held frames among `wanted` of chunk `at` (`None` for the others), marked as used. Counted
    /// when `count` is given: held ones as hits (if `count` is true), the others as misses.
    fn lookup(&self, at: &ChunkAt<'_>, wanted: Range<usize>, count: Option<bool>) -> Vec<Option<Bytes>> {
        let mut state = self.lock();
        wanted
            .map(|index| {
                let Some(entry) = state.touch((at.domain, at.id, index as u32)) else {
                    if count.is_some() {
                        self.misses.fetch_add(1, Ordering::Relaxed);
                    }
                    return None;
                };
                if count == Some(true) {
                    entry.hits += 1;
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                Some(entry.data.clone())
            })
            .collect()
    }

    /// The entry `key` if held, marked as used (not counted: a table is not what readers ask for).
    fn lookup_one(&self, key: CacheKey) -> Option<Bytes> {
        self.lock().touch(key).map(|entry| entry.data.clone())
    }

    /// The entry `key` if held, without marking it as used.
    fn peek(&self, key: CacheKey) -> Option<Bytes> {
        self.lock().entries.get(&key).map(|entry| entry.data.clone())
    }

    /// The gate of chunk `key`, made when nobody is loading it.
    fn gate(&self, key: ChunkKey) -> Gate<'_> {
        let gate = self.lock().loading.entry(key).or_default().clone();
        Gate { cache: self, key, gate }
    }

    /// Keeps `data` as entry `key` (replacing nothing: a held entry stays), evicting the least
    /// recently used entries to stay within the budget.
    fn keep(&self, key: CacheKey, data: Bytes) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let len = data.len() as u64;
        if state.entries.contains_key(&key) || len > self.budget {
            return;
        }
        while state.bytes + len > self.budget {
            let Some((_, old)) = state.order.pop_first() else { break };
            if let Some(entry) = state.entries.remove(&old) {
                state.bytes -= entry.data.len() as u64;
                state.frames -= u64::from(old.2 != TABLE);
                self.evictions.fetch_add(u64::from(old.2 != TABLE), Ordering::Relaxed);
            }
        }
        state.tick += 1;
        let tick = state.tick;
        state.entries.insert(key, Entry { data, tick, hits: 0, used_at: SystemTime::now() });
        state.order.insert(tick, key);
        state.bytes += len;
        state.frames += u64::from(key.2 != TABLE);
    }
}

/// A chunk's load gate, taken by [`ChunkCache::frames`]; forgotten by the cache when its last user
/// drops it (also when a load is cancelled).
struct Gate<'a> {
    cache: &'a ChunkCache,
    key: ChunkKey,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        // Every reference to a gate is made and dropped under the cache's lock, so the count is exact:
        // when the map's and ours are the last two, nobody else waits at this gate.
        let ours = std::mem::take(&mut self.gate);
        let last = Arc::strong_count(&ours) == 2 && state.loading.get(&self.key).is_some_and(|g| Arc::ptr_eq(g, &ours));
        drop(ours);
        if last {
            state.loading.remove(&self.key);
        }
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
            let mut whole = true;
            for frame in 0..frame_count(*length as usize).max(1) {
                match state.entries.get(&(domain, *id, frame as u32)) {
                    Some(entry) => {
                        residency.hits += entry.hits;
                        residency.last_used = residency.last_used.max(Some(entry.used_at));
                    }
                    None => whole = false,
                }
            }
            residency.held += u64::from(whole);
        }
        residency
    }

    /// Drops every part of the chunks `ids` decoded in `domain`; returns how many of them had a
    /// frame held. Loads in flight are not stopped (they may cache their frames when they end).
    pub(crate) fn evict(&self, domain: ChunkId, ids: impl IntoIterator<Item = ChunkId>) -> u64 {
        let ids: HashSet<ChunkId> = ids.into_iter().collect();
        self.drop_where(|key| key.0 == domain && ids.contains(&key.1))
    }

    /// Drops every cached frame (of every domain); returns how many chunks had a frame held.
    /// Counters other than `bytes` and `frames` are kept; loads in flight are not stopped.
    pub fn clear(&self) -> u64 {
        self.drop_where(|_| true)
    }

    fn drop_where(&self, doomed: impl Fn(&CacheKey) -> bool) -> u64 {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut chunks = HashSet::new();
        state.entries.retain(|key, entry| {
            if !doomed(key) {
                return true;
            }
            state.order.remove(&entry.tick);
            state.bytes -= entry.data.len() as u64;
            if key.2 != TABLE {
                state.frames -= 1;
                chunks.insert((key.0, key.1));
            }
            false
        });
        chunks.len() as u64
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use crate::ChunkStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn gates_are_forgotten_once_concurrent_loads_end() {
        let store = ChunkStore::open("memory://").unwrap();
        let data: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut writer = store.writer();
        writer.write(Bytes::from(data.clone())).await.unwrap();
        let manifest = Arc::new(writer.finish().await.unwrap().manifest);
        // Readers of their own, each reading 4 KiB somewhere: several wait at the same chunk's gate.
        let reads = (0..32u64).map(|i| {
            let access = store.random_access(manifest.clone());
            tokio::spawn(async move {
                let at = i * 97_531 % ((3 << 20) - 4096);
                let mut buf = vec![0u8; 4096];
                access.read_at(&mut buf, at).await.unwrap();
                (at, buf)
            })
        });
        for read in reads.collect::<Vec<_>>() {
            let (at, buf) = read.await.unwrap();
            assert_eq!(&buf[..], &data[at as usize..at as usize + 4096]);
        }
        assert!(store.chunk_cache().lock().loading.is_empty(), "no gate outlives its loads");
    }
}
