//! Reads that fall back on an image's copies in extra stores (Glance multiple stores).
//!
//! An image is read from the default store. When a chunk there is missing or fails verification and an
//! extra store holds a copy of the image (`copy-image`), that chunk is read from the copy instead: the
//! copy's manifest is the same manifest and its chunk objects are the same objects, so the same bytes
//! verify against the same ids. Each such read is logged as a warning and counted
//! ([`replica_fallback_reads`]); the default store is not repaired (`ims admin store verify` reports the
//! damage). Only a chunk that no store can give is an error, the one the default store gave.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use ims_catalog::Image;
use ims_store::{CacheUse, ChunkStore, Manifest, StoreError};
use uuid::Uuid;

use crate::ImageService;

/// Chunks read from a copy in an extra store because the default store could not give them.
static FALLBACK_READS: AtomicU64 = AtomicU64::new(0);

/// How many chunk reads this process served from a copy in an extra store since it started (never
/// decreases).
pub fn replica_fallback_reads() -> u64 {
    FALLBACK_READS.load(Ordering::Relaxed)
}

/// A copy of an image in an extra store: the store's id and its chunk store, in the encryption domain
/// the image is read in.
#[derive(Clone)]
pub(crate) struct Replica {
    pub(crate) store_id: String,
    pub(crate) chunks: ChunkStore,
}

/// Records one read served by `replica` in place of the default store.
pub(crate) fn note_fallback(image_id: Uuid, replica: &Replica, offset: u64, cause: &StoreError) {
    FALLBACK_READS.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        image = %image_id,
        store = %replica.store_id,
        offset,
        cause = %cause,
        "chunk unreadable in the default store: read from the copy in an extra store"
    );
}

impl ImageService {
    /// The copies of `image` in the extra stores this node knows, each viewed in the encryption domain of
    /// `reading` (the view the image is read through in the default store). Stores named on the image
    /// but not configured here are skipped.
    pub(crate) fn replicas_of(&self, image: &Image, reading: &ChunkStore) -> Vec<Replica> {
        image
            .extra_stores
            .iter()
            .filter_map(|id| {
                let store = self.extra_stores.get(id)?;
                let chunks = match reading.domain() {
                    Some(domain) => store.in_domain(domain.clone()),
                    None => store,
                };
                Some(Replica { store_id: id.clone(), chunks })
            })
            .collect()
    }

    /// The manifest `manifest_id` of `image`, from the default store or, when it is missing or
    /// unreadable there, from a copy. The default store's error when no store gives it.
    pub(crate) async fn load_manifest_replicated(
        &self,
        image: &Image,
        manifest_id: &str,
        replicas: &[Replica],
    ) -> Result<Manifest, StoreError> {
        let first = match self.store.load_manifest(manifest_id).await {
            Ok(manifest) => return Ok(manifest),
            Err(e @ (StoreError::NotFound(_) | StoreError::Corrupt(_))) => e,
            Err(e) => return Err(e),
        };
        for replica in replicas {
            if let Ok(manifest) = replica.chunks.load_manifest(manifest_id).await {
                note_fallback(image.id, replica, 0, &first);
                return Ok(manifest);
            }
        }
        Err(first)
    }
}

/// Bytes `[start, end)` of the file `manifest` describes, read from `primary` (through its chunk cache as
/// `caching` says); a chunk `primary` cannot give (missing or corrupt) is read from the first replica that
/// can, then reading goes on from `primary`. Every chunk is verified wherever it comes from. Ends with the
/// primary's error when no replica gives the chunk; other errors (a failing backend) end it at once.
pub(crate) fn read_range_replicated(
    image_id: Uuid,
    primary: &ChunkStore,
    caching: CacheUse,
    replicas: Arc<Vec<Replica>>,
    manifest: Arc<Manifest>,
    start: u64,
    end: u64,
) -> BoxStream<'static, Result<Bytes, StoreError>> {
    if replicas.is_empty() {
        return primary.read_range_cached(manifest, start, end, caching);
    }
    let primary = primary.clone();
    struct State {
        pos: u64,
        current: Option<BoxStream<'static, Result<Bytes, StoreError>>>,
        done: bool,
    }
    let state = State { pos: start, current: None, done: false };
    futures::stream::unfold(state, move |mut state| {
        let (primary, replicas, manifest) = (primary.clone(), replicas.clone(), manifest.clone());
        async move {
            if state.done {
                return None;
            }
            let pos = state.pos;
            let current =
                state.current.get_or_insert_with(|| primary.read_range_cached(manifest.clone(), pos, end, caching));
            match current.next().await {
                None => None,
                Some(Ok(piece)) => {
                    state.pos += piece.len() as u64;
                    Some((Ok(piece), state))
                }
                Some(Err(e @ StoreError::Corrupt(_))) => {
                    // The primary stream stops at its first error, which is about the chunk at `pos`.
                    state.current = None;
                    let extent_end = manifest
                        .extents_overlapping(pos, pos + 1)
                        .first()
                        .map_or(end, |extent| extent.end())
                        .min(end);
                    for replica in replicas.iter() {
                        if let Ok(bytes) = collect(replica.chunks.read_range(manifest.clone(), pos, extent_end)).await {
                            note_fallback(image_id, replica, pos, &e);
                            state.pos = extent_end;
                            return Some((Ok(bytes), state));
                        }
                    }
                    state.done = true;
                    Some((Err(e), state))
                }
                Some(Err(e)) => {
                    state.done = true;
                    Some((Err(e), state))
                }
            }
        }
    })
    .boxed()
}

/// The whole of a short stream (one chunk's worth) in one buffer.
async fn collect(mut stream: BoxStream<'static, Result<Bytes, StoreError>>) -> Result<Bytes, StoreError> {
    let mut all = BytesMut::new();
    while let Some(piece) = stream.next().await {
        all.extend_from_slice(&piece?);
    }
    Ok(all.freeze())
}
