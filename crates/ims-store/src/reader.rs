//! Ranged, verified reads of a stored file.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use std::ops::Range;

use object_store::{GetOptions, GetRange};

use crate::chunk::decode_in;
use crate::chunk_cache::{domain_tag, ChunkAt};
use crate::crypto::ENCRYPTED;
use crate::frames::{check_domain, frame_count, frame_range, is_framed, table_len, FrameTable, CODEC_FRAMED};
use crate::{cpu, CacheUse, ChunkId, ChunkStore, Manifest, StoreError};

/// Chunks fetched and decoded at once by one read.
const CHUNKS_IN_FLIGHT: usize = 6;

/// Zero extents are served as slices of this (no allocation).
static ZEROS: [u8; 1024 * 1024] = [0; 1024 * 1024];

enum Piece {
    Data(Vec<Bytes>),
    Zeros(u64),
}

pub(crate) fn read_range(
    store: ChunkStore,
    manifest: Arc<Manifest>,
    start: u64,
    end: u64,
    caching: CacheUse,
) -> BoxStream<'static, Result<Bytes, StoreError>> {
    if start > end || end > manifest.size {
        let error = StoreError::Invalid(format!(
            "range [{start}, {end}) is not within the file of {} bytes",
            manifest.size
        ));
        return stream::once(async move { Err(error) }).boxed();
    }
    let indices = manifest.extent_indices_overlapping(start, end);
    let domain = domain_tag(&store);
    stream::iter(indices)
        .map(move |i| {
            let extent = &manifest.extents[i];
            // Saturating: a manifest that breaks its invariant gives wrong bytes, never a panic.
            let from = start.max(extent.offset);
            let to = end.min(extent.end()).max(from);
            let skip = (from - extent.offset) as usize;
            let take = (to - from) as usize;
            let offset = extent.offset;
            let length = extent.length as usize;
            let chunk = extent.chunk;
            let store = store.clone();
            async move {
                match chunk {
                    None => Ok(Piece::Zeros(take as u64)),
                    Some(id) => {
                        let pieces = read_chunk(&store, caching, domain, id, (offset, length), (skip, take)).await?;
                        Ok(Piece::Data(pieces))
                    }
                }
            }
        })
        .buffered(CHUNKS_IN_FLIGHT)
        // Stop after the first error.
        .scan(false, |failed, item: Result<Piece, StoreError>| {
            let out = if *failed {
                None
            } else {
                *failed = item.is_err();
                Some(item)
            };
            async move { out }
        })
        .flat_map(|item| {
            let out: Vec<Result<Bytes, StoreError>> = match item {
                Ok(Piece::Data(pieces)) => pieces.into_iter().map(Ok).collect(),
                Ok(Piece::Zeros(mut n)) => {
                    let mut pieces = Vec::new();
                    while n > 0 {
                        let k = n.min(ZEROS.len() as u64) as usize;
                        pieces.push(Ok(Bytes::from_static(&ZEROS[..k])));
                        n -= k as u64;
                    }
                    pieces
                }
                Err(e) => vec![Err(e)],
            };
            stream::iter(out)
        })
        .boxed()
}

/// The decoded bytes `skip..skip + take` of chunk `id` (the extent at file offset `offset`, `length`
/// bytes), through the store's cache as `caching` says.
async fn read_chunk(
    store: &ChunkStore,
    caching: CacheUse,
    domain: ChunkId,
    id: ChunkId,
    (offset, length): (u64, usize),
    (skip, take): (usize, usize),
) -> Result<Vec<Bytes>, StoreError> {
    match caching {
        CacheUse::Bypass => {
            let plain = fetch_chunk(store, id, offset, length).await?;
            let piece = plain.get(skip..skip + take).ok_or_else(|| {
                StoreError::Corrupt(format!("chunk {id} at file offset {offset} is shorter than its extent"))
            })?;
            Ok(vec![plain.slice_ref(piece)])
        }
        CacheUse::Fill => {
            let at = ChunkAt { store, domain, id, offset, length };
            store.chunk_cache().read(&at, skip..skip + take, false).await
        }
    }
}

/// Fetches, decodes and verifies one whole chunk (the extent at file offset `offset`, `length` bytes).
pub(crate) async fn fetch_chunk(store: &ChunkStore, id: ChunkId, offset: u64, length: usize) -> Result<Bytes, StoreError> {
    let object = get(store, id, offset, None).await?;
    store.count_chunk_read(object.len() as u64);
    decode_whole(store, id, offset, length, object).await
}

async fn decode_whole(store: &ChunkStore, id: ChunkId, offset: u64, length: usize, object: Bytes) -> Result<Bytes, StoreError> {
    let domain = store.domain().cloned();
    cpu::run("chunk decoding", move || decode_in(domain.as_ref(), object, &id, length))
        .await?
        .map_err(|e| StoreError::Corrupt(format!("chunk {id} at file offset {offset}: {e}")))
}

/// The chunk object `id` (named by the extent at file offset `offset`), or bytes `range` of it (fewer
/// when the object ends first).
async fn get(store: &ChunkStore, id: ChunkId, offset: u64, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
    let options = GetOptions { range: range.map(GetRange::Bounded), ..GetOptions::default() };
    let object = match store.objects().get_opts(&id.object_path(), options).await {
        Ok(result) => crate::file_read::result_bytes(result).await,
        Err(e) => Err(e),
    };
    match object {
        Ok(object) => Ok(object),
        Err(object_store::Error::NotFound { .. }) => {
            Err(StoreError::Corrupt(format!("chunk {id} at file offset {offset} is missing")))
        }
        Err(e) => Err(StoreError::Backend(format!("reading chunk {id} at file offset {offset}: {e}"))),
    }
}

/// Frames fetched from a chunk object by [`fetch_frames`].
pub(crate) struct Fetched {
    /// What the cache keeps of the object to fetch its frames later: its verified frame table, or
    /// its tag byte alone when it is stored unframed; `None` for a chunk of one frame.
    pub head: Option<Bytes>,
    /// The index of the first frame in `frames`.
    pub first: usize,
    /// The frames asked for, decoded and verified, each in a buffer of its own; for an object stored
    /// unframed, all of its frames (it was decoded whole).
    pub frames: Vec<Bytes>,
}

/// Fetches frames `run` of chunk `at`, decoded and verified. `head` is what an earlier fetch returned
/// for this chunk object (`None`: not fetched yet).
///
/// Requests: a chunk of one frame, or every frame of a chunk whose head is unknown, is one request for
/// the whole object. Otherwise the frame table is asked for first (it is verified against the chunk
/// id), then only the stored bytes of the frames in `run`. An object stored unframed (written before
/// frames existed) is fetched whole and cut into frames, all of which are returned. Each call counts
/// as one chunk read of the bytes it fetched.
pub(crate) async fn fetch_frames(at: &ChunkAt<'_>, head: Option<Bytes>, run: Range<usize>) -> Result<Fetched, StoreError> {
    let (store, id, offset, length) = (at.store, at.id, at.offset, at.length);
    if !is_framed(length) {
        let chunk = fetch_chunk(store, id, offset, length).await?;
        return Ok(Fetched { head: None, first: 0, frames: vec![chunk] });
    }
    let corrupt = move |e: String| StoreError::Corrupt(format!("chunk {id} at file offset {offset}: {e}"));
    let every = run == (0..frame_count(length));
    let mut fetched = 0;
    let (head, object) = match head {
        Some(head) => (head, None),
        None => {
            let table = 0..table_len(length, store.domain().is_some()) as u64;
            let first = get(store, id, offset, (!every).then_some(table.clone())).await?;
            fetched += first.len() as u64;
            let whole = every || (first.len() as u64) < table.end;
            let head = verified_head(store, id, length, first.clone()).await?.map_err(corrupt)?;
            (head, whole.then_some(first))
        }
    };
    if head.len() == 1 {
        // Stored unframed: decoded whole, then cut into frames.
        let object = match object {
            Some(object) => object,
            None => {
                let object = get(store, id, offset, None).await?;
                fetched += object.len() as u64;
                object
            }
        };
        store.count_chunk_read(fetched);
        let plain = decode_whole(store, id, offset, length, object).await?;
        let frames = (0..frame_count(length)).map(|index| Bytes::copy_from_slice(&plain[frame_range(length, index)]));
        return Ok(Fetched { head: Some(head), first: 0, frames: frames.collect() });
    }
    let (stored, whole) = match object {
        Some(object) => (object, true),
        None => {
            let range = FrameTable::parse(&head, length).map_err(corrupt)?.stored_range(run.clone());
            let stored = get(store, id, offset, Some(range)).await?;
            fetched += stored.len() as u64;
            (stored, false)
        }
    };
    store.count_chunk_read(fetched);
    let (domain, table_bytes, first) = (store.domain().cloned(), head.clone(), run.start);
    let frames = cpu::run("chunk decoding", move || {
        let table = FrameTable::parse(&table_bytes, length)?;
        let stored = match whole {
            true => {
                let end = table.stored_range(0..table.frames()).end;
                if stored.len() as u64 != end {
                    return Err(format!("object is {} bytes, its frame table describes {end}", stored.len()));
                }
                let range = table.stored_range(run.clone());
                stored.slice(range.start as usize..range.end as usize)
            }
            false => stored,
        };
        table.decode_frames(domain.as_ref(), &id, run, &stored)
    })
    .await?
    .map_err(corrupt)?;
    Ok(Fetched { head: Some(head), first, frames })
}

/// The head the cache keeps of a chunk object whose first bytes are `first`: its frame table, verified
/// against `id` in the store's domain, or its tag byte when the object is stored unframed. The inner
/// error says what failed.
async fn verified_head(
    store: &ChunkStore,
    id: ChunkId,
    length: usize,
    first: Bytes,
) -> Result<Result<Bytes, String>, StoreError> {
    let domain = store.domain().cloned();
    cpu::run("frame table verification", move || {
        let tag = *first.first().ok_or("empty chunk object")?;
        if tag & !ENCRYPTED != CODEC_FRAMED {
            return Ok(first.slice(..1));
        }
        check_domain(tag, domain.as_ref())?;
        let table = FrameTable::parse(&first, length)?;
        table.verify(domain.as_ref(), &id)?;
        Ok(first.slice(..table.bytes().len()))
    })
    .await
}
