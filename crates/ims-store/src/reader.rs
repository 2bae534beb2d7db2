//! Ranged, verified reads of a stored file.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use crate::chunk::decode_in;
use crate::random_access::domain_tag;
use crate::{cpu, CacheUse, ChunkId, ChunkStore, Manifest, StoreError};

/// Chunks fetched and decoded at once by one read.
const CHUNKS_IN_FLIGHT: usize = 6;

/// Zero extents are served as slices of this (no allocation).
static ZEROS: [u8; 1024 * 1024] = [0; 1024 * 1024];

enum Piece {
    Data(Bytes),
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
                        let plain = read_chunk(&store, caching, domain, id, offset, length).await?;
                        let piece = plain.get(skip..skip + take).ok_or_else(|| {
                            StoreError::Corrupt(format!("chunk {id} at file offset {offset} is shorter than its extent"))
                        })?;
                        Ok(Piece::Data(plain.slice_ref(piece)))
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
                Ok(Piece::Data(bytes)) => vec![Ok(bytes)],
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

/// The decoded chunk `id` (the extent at file offset `offset`, `length` bytes), through the store's
/// cache as `caching` says.
async fn read_chunk(
    store: &ChunkStore,
    caching: CacheUse,
    domain: ChunkId,
    id: ChunkId,
    offset: u64,
    length: usize,
) -> Result<Bytes, StoreError> {
    match caching {
        CacheUse::Bypass => fetch_chunk(store, id, offset, length).await,
        CacheUse::Fill => store.chunk_cache().get_or_fetch(store, domain, id, offset, length).await,
    }
}

/// Fetches, decodes and verifies one chunk (the extent at file offset `offset`, `length` bytes).
pub(crate) async fn fetch_chunk(store: &ChunkStore, id: ChunkId, offset: u64, length: usize) -> Result<Bytes, StoreError> {
    let object = match store.objects().get(&id.object_path()).await {
        Ok(result) => result.bytes().await,
        Err(e) => Err(e),
    };
    let object = match object {
        Ok(object) => object,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(StoreError::Corrupt(format!("chunk {id} at file offset {offset} is missing")))
        }
        Err(e) => return Err(StoreError::Backend(format!("reading chunk {id} at file offset {offset}: {e}"))),
    };
    store.count_chunk_read(object.len() as u64);
    let domain = store.domain().cloned();
    cpu::run("chunk decoding", move || decode_in(domain.as_ref(), object, &id, length))
        .await?
        .map_err(|e| StoreError::Corrupt(format!("chunk {id} at file offset {offset}: {e}")))
}
