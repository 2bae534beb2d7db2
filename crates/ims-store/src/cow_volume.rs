//! Copy-on-write volumes: a writable RAW guest disk whose base is a stored [`Manifest`].
//!
//! A [`CowVolume`] starts as its base manifest and changes only in memory until it is flushed; a flush
//! stores the changed data as new chunks and gives back the volume's new manifest, which shares every
//! untouched chunk with the base. This is what makes a server created from an image copy no data, and an
//! image made from a server store only what the server changed.
//!
//! # Layout
//!
//! - **Blocks.** Writes are tracked in fixed, aligned blocks of [`BLOCK_SIZE`] (64 KiB; the last block of
//!   a disk whose size is not a multiple is shorter). A write replaces the blocks it covers; a block it
//!   covers only in part is read from the volume's current data, patched and kept whole
//!   (read-modify-write). A block written with zeros only (or by `write_zeroes`) is remembered as a zero
//!   block and holds no memory; a block that is clean and already reads as zeros is left alone.
//! - **Dirty memory.** Changed blocks live in memory until a flush. Their cost (a data block costs its
//!   length, a zero block [`ZERO_BLOCK_COST`]) is bounded by a budget ([`DEFAULT_DIRTY_BUDGET`], 64 MiB):
//!   a write that would pass it flushes first. Reads see every write at once (dirty blocks first, the
//!   manifest below them).
//! - **Flush regions.** An extent of a manifest names a whole chunk, so a stored chunk that a dirty block
//!   overlaps only in part cannot be kept: a flush rewrites the *region* made of the dirty blocks and every
//!   data extent they touch (zero extents are cut at will, they name no chunk). Every extent outside the
//!   regions is kept exactly, chunk id included, so images made from the flushed manifest share those
//!   chunks with the base. Rewriting one 64 KiB block costs at most the chunk around it (about 1 MiB,
//!   at most 4 MiB, see [`crate::cdc`]).
//! - **New chunks.** A region is stored in windows that never cross a multiple of [`NEW_CHUNK_WINDOW`]
//!   (1 MiB, the store's average chunk size), so rewriting the same range again yields the same chunk
//!   boundaries and deduplicates. Inside a window, block-aligned runs of zeros become zero extents
//!   (`chunk: None`, nothing stored) and the runs between them become one chunk each, stored like any
//!   chunk of the store (zstd, encrypted in the volume's domain, recorded in a pending
//!   manifest so that garbage collection spares it, see [`crate::journal`]). Adjacent new zero extents are
//!   merged up to [`MAX_ZERO_EXTENT`].
//! - **Pending manifests.** Each flush that stores chunks keeps its pending manifest until the volume is
//!   told the caller has persisted a manifest containing them ([`CowVolume::flush_with_pending`] and
//!   [`CowVolume::release_pending`]); pending manifests still held when the volume is dropped are
//!   released then.
//!
//! Concurrency: reads run concurrently with everything. Writes are serialized with each other (a
//! read-modify-write must not lose a concurrent write to the same block), flushes with each other. A
//! flush runs concurrently with writes: a block rewritten while its old content is being stored stays
//! dirty with the new content.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::chunk::{encode_in, hash_chunk, is_all_zero, ChunkHash};
use crate::journal::{delete_pending, Existing, Journal};
use crate::settle::try_collect_settled;
use crate::{cpu, ChunkId, ChunkStore, Extent, Manifest, RandomAccess, StoreError};

/// Granularity of copy-on-write: writes replace whole aligned blocks of this size.
pub const BLOCK_SIZE: u64 = 64 * 1024;
/// New chunks stored by a flush never cross a multiple of this offset.
pub const NEW_CHUNK_WINDOW: u64 = 1024 * 1024;
/// Default bound of the dirty memory of one volume; a write that would pass it flushes first.
pub const DEFAULT_DIRTY_BUDGET: u64 = 64 * 1024 * 1024;
/// What a dirty zero block counts against the budget (the bookkeeping it takes, not data).
pub const ZERO_BLOCK_COST: u64 = 256;
/// Longest zero extent a flush makes by merging new zero extents.
pub const MAX_ZERO_EXTENT: u64 = 1 << 31;
/// Windows being read, hashed or stored at once by one flush.
const WINDOWS_IN_FLIGHT: usize = 4;
/// Most runs returned by one [`CowVolume::block_status`] call.
const MAX_STATUS_RUNS: usize = 16 * 1024;

/// Counters of one [`CowVolume`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CowStats {
    /// Bytes accepted by `write_at` and `write_zeroes`.
    pub bytes_written: u64,
    /// Flushes that had dirty blocks to store (including those a full budget started).
    pub flushes: u64,
    /// Chunks whose objects flushes created (not found in the store already).
    pub chunks_new: u64,
    /// Plaintext bytes of those chunks.
    pub new_chunk_bytes: u64,
    /// Physical bytes of those chunk objects (after compression and encryption).
    pub bytes_stored: u64,
    /// Budget cost of the dirty blocks held now (see [`ZERO_BLOCK_COST`]).
    pub dirty_bytes: u64,
}

/// The result of [`CowVolume::flush_with_pending`].
#[derive(Debug, Clone)]
pub struct FlushedVolume {
    /// The volume's manifest after the flush (valid; not saved).
    pub manifest: Manifest,
    /// Counts the manifests the volume has had: 0 is the base; each flush that stored something adds
    /// one. Equal versions mean equal manifests.
    pub version: u64,
    /// The pending manifests protecting chunks of `manifest` from garbage collection until it is
    /// referenced: pass them to [`CowVolume::release_pending`] once it is.
    pub pending: Vec<String>,
}

/// A writable view of a RAW guest disk over a base manifest, copy-on-write (see the module doc).
pub struct CowVolume {
    store: ChunkStore,
    size: u64,
    budget: u64,
    state: Mutex<State>,
    /// Serializes writes (read-modify-write of partial blocks).
    write_lock: tokio::sync::Mutex<()>,
    /// Serializes flushes.
    flush_lock: tokio::sync::Mutex<()>,
    /// Pending manifests of flushes not yet released.
    held: Mutex<Vec<String>>,
    bytes_written: AtomicU64,
    flushes: AtomicU64,
    chunks_new: AtomicU64,
    new_chunk_bytes: AtomicU64,
    bytes_stored: AtomicU64,
}

struct State {
    manifest: Arc<Manifest>,
    reader: RandomAccess,
    version: u64,
    dirty: BTreeMap<u64, Dirty>,
    dirty_cost: u64,
    next_stamp: u64,
}

/// A changed block and the stamp of the write that made it (to tell a rewrite during a flush).
#[derive(Clone)]
struct Dirty {
    stamp: u64,
    block: Block,
}

#[derive(Clone)]
enum Block {
    Zero,
    Data(Bytes),
}

impl Block {
    fn cost(&self) -> u64 {
        match self {
            Block::Zero => ZERO_BLOCK_COST,
            Block::Data(data) => data.len() as u64,
        }
    }
}

impl std::fmt::Debug for CowVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CowVolume").field("size", &self.size).field("stats", &self.stats()).finish()
    }
}


/// Where a write's bytes come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Data(&'a [u8]),
    Zeros,
}

impl Source<'_> {
    /// The source's bytes for `[from, to)` of a write that starts at `offset` (`None`: zeros).
    fn slice(&self, offset: u64, from: u64, to: u64) -> Option<&[u8]> {
        match self {
            Source::Data(data) => Some(&data[(from - offset) as usize..(to - offset) as usize]),
            Source::Zeros => None,
        }
    }
}

impl CowVolume {
    /// A volume whose content is `base` (trusted to satisfy the manifest invariant, as manifests from
    /// [`ChunkStore::load_manifest`] and writers do), reading and storing chunks through `store` (a view
    /// in the volume's encryption domain, if any). Nothing is read or stored until used.
    pub fn new(store: ChunkStore, base: Arc<Manifest>) -> CowVolume {
        let size = base.size;
        let reader = store.random_access(base.clone());
        let state =
            State { manifest: base, reader, version: 0, dirty: BTreeMap::new(), dirty_cost: 0, next_stamp: 1 };
        CowVolume {
            store,
            size,
            budget: DEFAULT_DIRTY_BUDGET,
            state: Mutex::new(state),
            write_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            held: Mutex::new(Vec::new()),
            bytes_written: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            chunks_new: AtomicU64::new(0),
            new_chunk_bytes: AtomicU64::new(0),
            bytes_stored: AtomicU64::new(0),
        }
    }

    /// Sets the dirty budget in bytes (at least one block) instead of [`DEFAULT_DIRTY_BUDGET`].
    pub fn with_dirty_budget(mut self, budget: u64) -> CowVolume {
        self.budget = budget.max(BLOCK_SIZE);
        self
    }

    /// The volume's size in bytes (that of its base; it never changes).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Counters since the volume was made.
    pub fn stats(&self) -> CowStats {
        CowStats {
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            chunks_new: self.chunks_new.load(Ordering::Relaxed),
            new_chunk_bytes: self.new_chunk_bytes.load(Ordering::Relaxed),
            bytes_stored: self.bytes_stored.load(Ordering::Relaxed),
            dirty_bytes: self.lock().dirty_cost,
        }
    }

    /// Fills all of `buf` with the volume's bytes at `offset`, every write that has returned included.
    /// `Invalid` (and `buf` unspecified) if the range passes the end; `Corrupt` or `Backend` if a chunk
    /// cannot be read. Runs concurrently with writes and flushes.
    pub async fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), StoreError> {
        let end = self.check_range(offset, buf.len() as u64)?;
        if buf.is_empty() {
            return Ok(());
        }
        let (reader, dirty) = {
            let state = self.lock();
            let blocks = offset / BLOCK_SIZE..=(end - 1) / BLOCK_SIZE;
            let dirty: Vec<(u64, Block)> = state.dirty.range(blocks).map(|(i, d)| (*i, d.block.clone())).collect();
            (state.reader.clone(), dirty)
        };
        let mut dirty = dirty.into_iter().peekable();
        let mut pos = offset;
        while pos < end {
            let index = pos / BLOCK_SIZE;
            let next_dirty = dirty.peek().map(|(i, _)| *i);
            let to = if next_dirty == Some(index) {
                let (block_start, block_end) = self.block_bounds(index);
                let to = end.min(block_end);
                let dst = &mut buf[(pos - offset) as usize..(to - offset) as usize];
                match dirty.next().expect("peeked").1 {
                    Block::Zero => dst.fill(0),
                    Block::Data(data) => {
                        dst.copy_from_slice(&data[(pos - block_start) as usize..(to - block_start) as usize])
                    }
                }
                to
            } else {
                let to = next_dirty.map_or(end, |i| (i * BLOCK_SIZE).min(end));
                let dst = &mut buf[(pos - offset) as usize..(to - offset) as usize];
                let filled = reader.read_at(dst, pos).await?;
                if filled != dst.len() {
                    return Err(StoreError::Corrupt(format!("the volume's manifest ends before its size {}", self.size)));
                }
                to
            };
            pos = to;
        }
        Ok(())
    }

    /// Writes all of `data` at `offset`; every later read sees it. Durable only once a flush has
    /// stored it and its manifest has been persisted. `Invalid` (nothing changed) if the range passes
    /// the end. If the dirty budget is full the write first flushes; a failing flush (or the read of a
    /// partly covered block) is returned as an error, and the blocks before it may already be written,
    /// as with a disk.
    pub async fn write_at(&self, data: &[u8], offset: u64) -> Result<(), StoreError> {
        self.write_blocks(offset, data.len() as u64, Source::Data(data)).await
    }

    /// Makes `[offset, offset + len)` read as zeros (also how TRIM is served: a trimmed range reads as
    /// zeros). Zeros are never stored: they become zero extents. Errors as [`CowVolume::write_at`].
    pub async fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), StoreError> {
        self.write_blocks(offset, len, Source::Zeros).await
    }

    /// The allocation of `[offset, offset + len)` (clipped to the volume) as consecutive runs
    /// `(offset, length, allocated)` from `offset`: allocated runs hold data (stored or dirty, possibly
    /// zeros), the others read as zeros and store nothing. Adjacent runs differ in allocation. Metadata
    /// only (no I/O); may cover less than asked when the layout is very fragmented (at most 16384
    /// runs), never nothing when `offset` is within the volume and `len > 0`.
    pub fn block_status(&self, offset: u64, len: u64) -> Vec<(u64, u64, bool)> {
        let end = offset.saturating_add(len).min(self.size);
        let mut runs: Vec<(u64, u64, bool)> = Vec::new();
        if offset >= end {
            return runs;
        }
        let push = |runs: &mut Vec<(u64, u64, bool)>, start: u64, end: u64, allocated: bool| match runs.last_mut() {
            Some(last) if last.2 == allocated => last.1 += end - start,
            _ => runs.push((start, end - start, allocated)),
        };
        let state = self.lock();
        let mut dirty = state.dirty.range(offset / BLOCK_SIZE..).peekable();
        let mut pos = offset;
        while pos < end && runs.len() < MAX_STATUS_RUNS {
            let index = pos / BLOCK_SIZE;
            match dirty.peek() {
                Some((&i, d)) if i == index => {
                    let to = end.min(self.block_bounds(i).1);
                    push(&mut runs, pos, to, matches!(d.block, Block::Data(_)));
                    dirty.next();
                    pos = to;
                }
                next => {
                    let to = next.map_or(end, |(&i, _)| (i * BLOCK_SIZE).min(end));
                    for e in state.manifest.extents_overlapping(pos, to) {
                        if runs.len() >= MAX_STATUS_RUNS {
                            break;
                        }
                        push(&mut runs, e.offset.max(pos), e.end().min(to), e.chunk.is_some());
                    }
                    pos = to;
                }
            }
        }
        runs
    }

    /// Stores every dirty block as chunks and returns the volume's current manifest (valid; not saved:
    /// the caller persists it). Blocks written during the flush may or may not be in it (they stay
    /// dirty otherwise). With nothing dirty it returns the current manifest and stores nothing. On
    /// error nothing changes: the dirty blocks stay in memory and a later flush retries.
    pub async fn flush(&self) -> Result<Manifest, StoreError> {
        Ok(self.flush_with_pending().await?.manifest)
    }

    /// Like [`CowVolume::flush`], and also says which manifest version this is and which pending
    /// manifests still protect its chunks from garbage collection (to release once it is persisted).
    pub async fn flush_with_pending(&self) -> Result<FlushedVolume, StoreError> {
        let _flushing = self.flush_lock.lock().await;
        let (manifest, version) = self.flush_locked().await?;
        let pending = self.held().clone();
        Ok(FlushedVolume { manifest: (*manifest).clone(), version, pending })
    }

    /// Releases pending manifests returned by [`CowVolume::flush_with_pending`]: call it once a
    /// manifest returned with them (or a later one) is referenced by the catalog. Unknown ids are
    /// ignored; a release that fails leaves the pending manifest to expire.
    pub async fn release_pending(&self, ids: &[String]) -> Result<(), StoreError> {
        self.held().retain(|id| !ids.contains(id));
        for id in ids {
            self.store.release_pending(id).await?;
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that can panic, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn held(&self) -> MutexGuard<'_, Vec<String>> {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The end of `[offset, offset + len)`, or `Invalid` if that is not within the volume.
    fn check_range(&self, offset: u64, len: u64) -> Result<u64, StoreError> {
        offset.checked_add(len).filter(|&end| end <= self.size).ok_or_else(|| {
            StoreError::Invalid(format!(
                "range of {len} bytes at offset {offset} is not within the volume of {} bytes",
                self.size
            ))
        })
    }

    /// Bytes `[start, end)` of block `index`.
    fn block_bounds(&self, index: u64) -> (u64, u64) {
        let start = index * BLOCK_SIZE;
        (start, (start + BLOCK_SIZE).min(self.size))
    }

    async fn write_blocks(&self, offset: u64, len: u64, source: Source<'_>) -> Result<(), StoreError> {
        let end = self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let _writing = self.write_lock.lock().await;
        let (first, last) = (offset / BLOCK_SIZE, (end - 1) / BLOCK_SIZE);
        // Blocks covered in part are read before anything changes.
        let mut head = self.partial_block(first, offset, end).await?;
        let mut tail = if last != first { self.partial_block(last, offset, end).await? } else { None };
        let mut index = first;
        while index <= last {
            let (block_start, block_end) = self.block_bounds(index);
            let (from, to) = (offset.max(block_start), end.min(block_end));
            let current = if index == first { head.take() } else if index == last { tail.take() } else { None };
            let block = match (current, source.slice(offset, from, to)) {
                (Some(mut current), patch) => {
                    let dst = &mut current[(from - block_start) as usize..(to - block_start) as usize];
                    match patch {
                        Some(patch) => dst.copy_from_slice(patch),
                        None => dst.fill(0),
                    }
                    if is_all_zero(&current) { Block::Zero } else { Block::Data(Bytes::from(current)) }
                }
                (None, Some(data)) if !is_all_zero(data) => Block::Data(Bytes::copy_from_slice(data)),
                (None, data) => {
                    // A whole block of zeros. Blocks that already read as zeros need no change: this one
                    // for a data write, every following one of the range for `write_zeroes`.
                    let bound = if data.is_some() { index } else { last };
                    let skip_to = self.zero_clean_blocks_from(index, bound);
                    if skip_to > index {
                        index = skip_to;
                        continue;
                    }
                    Block::Zero
                }
            };
            self.put_block(index, block).await?;
            index += 1;
        }
        self.bytes_written.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    /// The current content of block `index` when `[offset, end)` covers it only in part.
    async fn partial_block(&self, index: u64, offset: u64, end: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let (start, block_end) = self.block_bounds(index);
        if offset <= start && end >= block_end {
            return Ok(None);
        }
        let mut current = vec![0u8; (block_end - start) as usize];
        self.read_at(&mut current, start).await?;
        Ok(Some(current))
    }

    /// The first block from `index` (at most `last + 1`) that is dirty or not entirely within a zero
    /// extent: blocks before it already read as zeros and need no change.
    fn zero_clean_blocks_from(&self, index: u64, last: u64) -> u64 {
        let state = self.lock();
        let start = index * BLOCK_SIZE;
        let Some(extent) = state.manifest.extents_overlapping(start, start + 1).first() else { return index };
        if extent.chunk.is_some() {
            return index;
        }
        let next_dirty = state.dirty.range(index..).next().map_or(u64::MAX, |(&i, _)| i);
        // Whole blocks inside the zero extent, before the next dirty block, within the write.
        (extent.end() / BLOCK_SIZE).min(next_dirty).min(last + 1).max(index)
    }

    /// Makes `block` the content of block `index`, flushing first when the budget would be passed.
    async fn put_block(&self, index: u64, block: Block) -> Result<(), StoreError> {
        {
            let mut state = self.lock();
            if state.dirty.is_empty() || state.dirty_cost + block.cost() <= self.budget {
                state.insert(index, block);
                return Ok(());
            }
        }
        {
            let _flushing = self.flush_lock.lock().await;
            self.flush_locked().await?;
        }
        self.lock().insert(index, block);
        Ok(())
    }

    /// Stores the dirty blocks and installs the new manifest; the caller holds `flush_lock`. Returns
    /// the manifest and its version.
    async fn flush_locked(&self) -> Result<(Arc<Manifest>, u64), StoreError> {
        let (base, reader, version, snapshot) = {
            let state = self.lock();
            (state.manifest.clone(), state.reader.clone(), state.version, Arc::new(state.dirty.clone()))
        };
        if snapshot.is_empty() {
            return Ok((base, version));
        }
        let regions = regions(&base, &snapshot, self.size);
        let journal = Arc::new(Journal::new(self.store.clone()));
        let job = Arc::new(FlushJob {
            store: self.store.clone(),
            journal: journal.clone(),
            seen: Mutex::new(HashSet::new()),
            reader,
            base: base.clone(),
            snapshot: snapshot.clone(),
        });
        let windows: Vec<(usize, u64, u64)> = regions
            .iter()
            .enumerate()
            .flat_map(|(r, &(start, end))| windows(start, end).map(move |(s, e)| (r, s, e)))
            .collect();
        // Settled: on failure the pending manifest is deleted below, which no window may still be writing to.
        let stores = windows.into_iter().map(|(r, start, end)| {
            let job = job.clone();
            async move { job.store_window(start, end).await.map(|out| (r, out)) }
        });
        let stored = journal.drive(try_collect_settled(stores, WINDOWS_IN_FLIGHT)).await;
        let stored = match stored {
            Ok(stored) => journal.finish().await.map(|()| stored),
            Err(e) => Err(e),
        };
        let manifest = stored.and_then(|stored| {
            let mut replacements: Vec<Vec<Extent>> = vec![Vec::new(); regions.len()];
            let mut totals = WindowOutput::default();
            for (r, out) in stored {
                totals.chunks_new += out.chunks_new;
                totals.new_chunk_bytes += out.new_chunk_bytes;
                totals.bytes_stored += out.bytes_stored;
                for extent in out.extents {
                    push_merging_zeros(&mut replacements[r], extent);
                }
            }
            let manifest = splice(&base, &regions, replacements)?;
            manifest.validate().map_err(|e| StoreError::Corrupt(format!("a volume flush made an invalid manifest: {e}")))?;
            Ok((manifest, totals))
        });
        let (manifest, totals) = match manifest {
            Ok(done) => done,
            Err(e) => {
                if let Err(discard) = delete_pending(&self.store, journal.id()).await {
                    tracing::warn!(pending = journal.id(), error = %discard, "pending manifest of a failed volume flush left to expire");
                }
                return Err(e);
            }
        };
        if journal.is_used().await {
            self.held().push(journal.id().to_string());
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.chunks_new.fetch_add(totals.chunks_new, Ordering::Relaxed);
        self.new_chunk_bytes.fetch_add(totals.new_chunk_bytes, Ordering::Relaxed);
        self.bytes_stored.fetch_add(totals.bytes_stored, Ordering::Relaxed);
        let manifest = Arc::new(manifest);
        let mut state = self.lock();
        state.manifest = manifest.clone();
        state.reader = self.store.random_access(manifest.clone());
        state.version = version + 1;
        for (index, flushed) in snapshot.iter() {
            if state.dirty.get(index).is_some_and(|now| now.stamp == flushed.stamp) {
                state.dirty.remove(index);
                state.dirty_cost -= flushed.block.cost();
            }
        }
        tracing::debug!(
            size = self.size,
            version = version + 1,
            chunks_new = totals.chunks_new,
            bytes_stored = totals.bytes_stored,
            "copy-on-write volume flushed"
        );
        Ok((manifest, version + 1))
    }
}

impl Drop for CowVolume {
    fn drop(&mut self) {
        let held = std::mem::take(&mut *self.held());
        if held.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let store = self.store.clone();
        runtime.spawn(async move {
            for id in held {
                if let Err(e) = store.release_pending(&id).await {
                    tracing::warn!(pending = %id, error = %e, "pending manifest of a volume left to expire");
                }
            }
        });
    }
}

impl State {
    fn insert(&mut self, index: u64, block: Block) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.dirty_cost += block.cost();
        if let Some(old) = self.dirty.insert(index, Dirty { stamp, block }) {
            self.dirty_cost -= old.block.cost();
        }
    }
}

/// Whether `[start, end)` lies within zero extents of `manifest`.
fn reads_as_zero(manifest: &Manifest, start: u64, end: u64) -> bool {
    manifest.extents_overlapping(start, end).iter().all(|e| e.chunk.is_none())
}

/// The ranges a flush rewrites: each dirty block together with every data extent it overlaps,
/// overlapping and touching ranges merged; sorted. No data extent crosses a region's boundary.
fn regions(base: &Manifest, dirty: &BTreeMap<u64, Dirty>, size: u64) -> Vec<(u64, u64)> {
    let mut regions: Vec<(u64, u64)> = Vec::new();
    for &index in dirty.keys() {
        let block_start = index * BLOCK_SIZE;
        let block_end = (block_start + BLOCK_SIZE).min(size);
        let (mut start, mut end) = (block_start, block_end);
        for extent in base.extents_overlapping(block_start, block_end) {
            if extent.chunk.is_some() {
                start = start.min(extent.offset);
                end = end.max(extent.end());
            }
        }
        match regions.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => regions.push((start, end)),
        }
    }
    regions
}

/// `[start, end)` cut at multiples of [`NEW_CHUNK_WINDOW`].
fn windows(start: u64, end: u64) -> impl Iterator<Item = (u64, u64)> {
    let mut pos = start;
    std::iter::from_fn(move || {
        (pos < end).then(|| {
            let to = end.min((pos / NEW_CHUNK_WINDOW + 1) * NEW_CHUNK_WINDOW);
            let window = (pos, to);
            pos = to;
            window
        })
    })
}

/// Appends `extent`, merging it into the previous one when both are zero extents and the result is
/// at most [`MAX_ZERO_EXTENT`].
fn push_merging_zeros(extents: &mut Vec<Extent>, extent: Extent) {
    if let Some(last) = extents.last_mut() {
        if last.chunk.is_none() && extent.chunk.is_none() && u64::from(last.length) + u64::from(extent.length) <= MAX_ZERO_EXTENT {
            last.length += extent.length;
            return;
        }
    }
    extents.push(extent);
}

/// `base` with each region replaced by its new extents; extents outside the regions are kept as they
/// are (zero extents cut at region boundaries).
fn splice(base: &Manifest, regions: &[(u64, u64)], replacements: Vec<Vec<Extent>>) -> Result<Manifest, StoreError> {
    let mut extents = Vec::with_capacity(base.extents.len() + replacements.iter().map(Vec::len).sum::<usize>());
    let mut pos = 0;
    for (&(start, end), replacement) in regions.iter().zip(replacements) {
        keep(base, pos, start, &mut extents)?;
        extents.extend(replacement);
        pos = end;
    }
    keep(base, pos, base.size, &mut extents)?;
    Ok(Manifest { size: base.size, extents })
}

/// Appends the extents of `base` within `[from, to)`, cutting zero extents at its ends.
fn keep(base: &Manifest, from: u64, to: u64, out: &mut Vec<Extent>) -> Result<(), StoreError> {
    for extent in base.extents_overlapping(from, to) {
        let (start, end) = (extent.offset.max(from), extent.end().min(to));
        if start == extent.offset && end == extent.end() {
            out.push(extent.clone());
        } else if extent.chunk.is_none() {
            out.push(Extent { offset: start, length: (end - start) as u32, chunk: None });
        } else {
            return Err(StoreError::Corrupt(format!("a volume flush would cut the stored chunk at offset {}", extent.offset)));
        }
    }
    Ok(())
}

/// What one flush shares between its windows.
struct FlushJob {
    store: ChunkStore,
    journal: Arc<Journal>,
    /// Chunks already recorded by this flush.
    seen: Mutex<HashSet<ChunkId>>,
    /// Reads the manifest being replaced.
    reader: RandomAccess,
    base: Arc<Manifest>,
    snapshot: Arc<BTreeMap<u64, Dirty>>,
}

/// The new extents of one window and what storing them cost.
#[derive(Default)]
struct WindowOutput {
    extents: Vec<Extent>,
    chunks_new: u64,
    new_chunk_bytes: u64,
    bytes_stored: u64,
}

/// A piece of a window within one block: `Some` bytes, or `None` for zeros.
struct Piece {
    start: u64,
    end: u64,
    data: Option<Bytes>,
    /// Clean: its bytes are still to be read from the manifest being replaced.
    clean: bool,
}

/// A run of a window: consecutive pieces that are all zeros, or all data (to become one chunk).
enum Run {
    Zero { start: u64, end: u64 },
    Data { start: u64, end: u64, hash: ChunkHash, segments: Vec<Bytes> },
}

impl FlushJob {
    /// Stores `[start, end)` (within one window) and returns its new extents.
    async fn store_window(&self, start: u64, end: u64) -> Result<WindowOutput, StoreError> {
        let mut pieces = self.pieces(start, end);
        if pieces.iter().all(|p| p.data.is_none() && !p.clean) {
            let extents = vec![Extent { offset: start, length: (end - start) as u32, chunk: None }];
            return Ok(WindowOutput { extents, ..WindowOutput::default() });
        }
        self.read_clean(&mut pieces).await?;
        let domain = self.store.domain().cloned();
        let runs = cpu::run("volume chunk hashing", move || runs(domain.as_ref(), pieces)).await?;
        let mut out = WindowOutput::default();
        for run in runs {
            match run {
                Run::Zero { start, end } => {
                    out.extents.push(Extent { offset: start, length: (end - start) as u32, chunk: None });
                }
                Run::Data { start, end, hash, segments } => {
                    let id = hash.id;
                    if let Some(stored) = self.store_chunk(hash, segments, start).await? {
                        out.chunks_new += 1;
                        out.new_chunk_bytes += end - start;
                        out.bytes_stored += stored;
                    }
                    out.extents.push(Extent { offset: start, length: (end - start) as u32, chunk: Some(id) });
                }
            }
        }
        Ok(out)
    }

    /// `[start, end)` cut at block boundaries, each piece with the content the snapshot gives it.
    fn pieces(&self, start: u64, end: u64) -> Vec<Piece> {
        let mut pieces = Vec::new();
        let mut pos = start;
        while pos < end {
            let index = pos / BLOCK_SIZE;
            let block_start = index * BLOCK_SIZE;
            let to = end.min(block_start + BLOCK_SIZE);
            let (data, clean) = match self.snapshot.get(&index).map(|d| &d.block) {
                Some(Block::Zero) => (None, false),
                Some(Block::Data(data)) => {
                    (Some(data.slice((pos - block_start) as usize..(to - block_start) as usize)), false)
                }
                None => (None, !reads_as_zero(&self.base, pos, to)),
            };
            pieces.push(Piece { start: pos, end: to, data, clean });
            pos = to;
        }
        pieces
    }

    /// Reads the bytes of the clean pieces, consecutive ones in one read.
    async fn read_clean(&self, pieces: &mut [Piece]) -> Result<(), StoreError> {
        let mut i = 0;
        while i < pieces.len() {
            if !pieces[i].clean {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < pieces.len() && pieces[j + 1].clean {
                j += 1;
            }
            let (start, end) = (pieces[i].start, pieces[j].end);
            let mut buf = vec![0u8; (end - start) as usize];
            if self.reader.read_at(&mut buf, start).await? != buf.len() {
                return Err(StoreError::Corrupt(format!("the volume's manifest ends before offset {end}")));
            }
            let buf = Bytes::from(buf);
            for piece in &mut pieces[i..=j] {
                piece.data = Some(buf.slice((piece.start - start) as usize..(piece.end - start) as usize));
                piece.clean = false;
            }
            i = j + 1;
        }
        Ok(())
    }

    /// Stores chunk `hash.id` unless this flush already did or the store has it (fresh). Returns the
    /// physical bytes stored when the chunk object is new.
    async fn store_chunk(&self, hash: ChunkHash, segments: Vec<Bytes>, offset: u64) -> Result<Option<u64>, StoreError> {
        let id = hash.id;
        if !self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(id) {
            return Ok(None);
        }
        // Recorded in the pending manifest before the store is asked (see `crate::journal`).
        self.journal.record(id).await?;
        let existing = self.journal.existing(&id).await?;
        if existing == Existing::Fresh {
            return Ok(None);
        }
        let domain = self.store.domain().cloned();
        let payload = cpu::run("chunk compression", move || encode_in(domain.as_ref(), &hash, &segments)).await?;
        let stored = payload.content_length() as u64;
        self.store
            .objects()
            .put(&id.object_path(), payload)
            .await
            .map_err(|e| StoreError::Backend(format!("storing chunk {id} (volume offset {offset}): {e}")))?;
        Ok((existing == Existing::Missing).then_some(stored))
    }
}

/// Groups the pieces of a window (all read) into zero runs and data runs, hashing each data run.
/// CPU heavy: runs on a blocking thread.
fn runs(domain: Option<&crate::EncryptionDomain>, pieces: Vec<Piece>) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut current: Option<(u64, u64, Vec<Bytes>)> = None;
    let mut zero: Option<(u64, u64)> = None;
    let finish_data = |runs: &mut Vec<Run>, current: &mut Option<(u64, u64, Vec<Bytes>)>| {
        if let Some((start, end, segments)) = current.take() {
            let hash = hash_chunk(domain, &segments);
            runs.push(Run::Data { start, end, hash, segments });
        }
    };
    for piece in pieces {
        match piece.data.filter(|data| !is_all_zero(data)) {
            Some(data) => {
                if let Some((start, end)) = zero.take() {
                    runs.push(Run::Zero { start, end });
                }
                match &mut current {
                    Some((_, end, segments)) => {
                        *end = piece.end;
                        segments.push(data);
                    }
                    None => current = Some((piece.start, piece.end, vec![data])),
                }
            }
            None => {
                finish_data(&mut runs, &mut current);
                match &mut zero {
                    Some((_, end)) => *end = piece.end,
                    None => zero = Some((piece.start, piece.end)),
                }
            }
        }
    }
    finish_data(&mut runs, &mut current);
    if let Some((start, end)) = zero {
        runs.push(Run::Zero { start, end });
    }
    runs
}
