//! Random access to a stored file through the node-wide cache of decoded chunk frames.
//!
//! A [`RandomAccess`] reads any byte range of one manifest through the store's [`crate::ChunkCache`],
//! fetching only the frames it reads, and when its reads run sequentially it fetches the next chunks
//! ahead, whole: none at first, then a window that doubles while the reads stay sequential and closes
//! on a seek.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::chunk_cache::{domain_tag, ChunkAt};
use crate::{ChunkId, ChunkStore, Manifest, StoreError};

/// Most chunks fetched ahead of a sequential reader.
const MAX_READ_AHEAD_CHUNKS: usize = 4;

/// Chunk boundaries a reader crosses sequentially (since its last seek) before anything is fetched
/// ahead of it. A read that merely runs on into the next chunk (a guest reading one file) would not
/// use the chunks after that one; a reader that has crossed two boundaries has read a whole chunk
/// from start to end and is taken to be streaming.
const CROSSINGS_BEFORE_READ_AHEAD: usize = 2;

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
/// Within a chunk, a read fetches only the frames it reads, unless it starts where the previous read
/// ended: then it fetches the rest of the chunk from there (one request instead of one per read).
/// So scattered reads fetch only the frames they read, and a scan has the next chunks decoded
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
    /// returns whether it starts where the previous read ended and the extents to fetch ahead now
    /// (chunkless ones among them need nothing).
    fn advance(&mut self, manifest: &Manifest, offset: u64, end: u64, touched: Range<usize>) -> (bool, Range<usize>) {
        let Some(last) = touched.end.checked_sub(1).filter(|_| !touched.is_empty()) else { return (false, 0..0) };
        let first = touched.start;
        let continues = self.last_end == Some(offset);
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
            return (continues, 0..0);
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
        (continues, from..window_end.max(from))
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
        let (continues, ahead) = {
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
                Some(id) => {
                    let start = (from - extent.offset) as usize;
                    let at = self.chunk_at(index, id);
                    let pieces = self.store.chunk_cache().read(&at, start..start + len, continues).await?;
                    let mut filled = 0;
                    for piece in pieces {
                        dst[filled..filled + piece.len()].copy_from_slice(&piece);
                        filled += piece.len();
                    }
                }
            }
            done += len;
        }
        Ok(done)
    }

    /// Where the chunk `id` of extent `index` is.
    fn chunk_at(&self, index: usize, id: ChunkId) -> ChunkAt<'_> {
        let extent = &self.manifest.extents[index];
        ChunkAt { store: &self.store, domain: self.domain, id, offset: extent.offset, length: extent.length as usize }
    }

    /// Starts fetching the chunks of the extents `extents` that are neither cached nor being
    /// fetched, each in its own task (so they are fetched and decoded in parallel). Failures are left
    /// for the real read to meet.
    fn read_ahead(&self, extents: Range<usize>) {
        if extents.is_empty() {
            return;
        }
        let cache = self.store.chunk_cache();
        let wanted: Vec<(usize, ChunkId)> = extents
            .filter_map(|i| {
                let extent = &self.manifest.extents[i];
                let id = extent.chunk?;
                (!cache.is_present(self.domain, id, extent.length as usize)).then_some((i, id))
            })
            .collect();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        for (index, id) in wanted {
            let reader = self.clone();
            runtime.spawn(async move {
                let _ = reader.store.chunk_cache().warm(&reader.chunk_at(index, id)).await;
            });
        }
    }
}
