//! Reads that fall back on an image's copies in extra stores (Glance multiple stores).
//!
//! An image is read from its home store: the default store, or, once the image was deleted from the
//! default store (`DELETE /v2/stores/local/{id}`), the first extra store holding a copy that this node
//! has ([`ImageService::home_store`]). When a chunk there is missing or fails verification and another
//! extra store holds a copy of the image (`copy-image`), that chunk is read from the copy instead: the
//! copy's manifest is the same manifest and its chunk objects are the same objects, so the same bytes
//! verify against the same ids. Each such read is logged as a warning and counted
//! ([`replica_fallback_reads`]); the home store is not repaired (`ims admin store verify` reports the
//! damage). Only a chunk that no store can give is an error, the one the home store gave.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use ims_catalog::Image;
use ims_store::{CacheUse, ChunkStore, Manifest, StoreError};
use uuid::Uuid;

use crate::glance_import::DEFAULT_STORE_ID;
use crate::{CoreError, ImageService};

/// Chunks read from a copy in an extra store because the image's home store could not give them.
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
        "chunk unreadable in the image's home store: read from the copy in an extra store"
    );
}

impl ImageService {
    /// The store `image`'s data is read from, in plaintext view: the default store while it holds a copy
    /// ([`Image::in_default_store`]), else the first of the image's extra stores (in copy order) that is
    /// configured on this node. `Unavailable` when none is.
    pub(crate) fn home_store(&self, image: &Image) -> Result<ChunkStore, CoreError> {
        self.home(image).map(|(_, store)| store)
    }

    /// The id of `image`'s home store ([`ImageService::home_store`]), with that store.
    pub(crate) fn home(&self, image: &Image) -> Result<(String, ChunkStore), CoreError> {
        if image.in_default_store {
            return Ok((DEFAULT_STORE_ID.to_string(), self.store.clone()));
        }
        self.configured_copies(image).next().ok_or_else(|| {
            CoreError::Unavailable(format!(
                "image {}: its data is held by stores not configured on this node ({})",
                image.id,
                image.extra_stores.join(", ")
            ))
        })
    }

    /// Fails with `Conflict` unless the default store holds `image`'s data: what builds new data in the
    /// default store on the image's chunks (volumes, a cross-region copy) needs them there.
    pub(crate) fn require_default_copy(&self, image: &Image) -> Result<(), CoreError> {
        if image.in_default_store {
            return Ok(());
        }
        Err(CoreError::Conflict(format!(
            "Image {} was deleted from the default store {DEFAULT_STORE_ID} and is held by {} only: copy it back \
             first (import method copy-image to store {DEFAULT_STORE_ID})",
            image.id,
            image.extra_stores.join(", ")
        )))
    }

    /// The image's extra stores configured on this node, in copy order, in plaintext view.
    fn configured_copies<'a>(&'a self, image: &'a Image) -> impl Iterator<Item = (String, ChunkStore)> + 'a {
        image.extra_stores.iter().filter_map(|id| Some((id.clone(), self.extra_stores.get(id)?)))
    }

    /// The copies of `image` in the extra stores this node knows, besides its home store
    /// ([`ImageService::home_store`]), each viewed in the encryption domain of `reading` (the view the
    /// image is read through in its home store). Stores named on the image but not configured here are
    /// skipped.
    pub(crate) fn replicas_of(&self, image: &Image, reading: &ChunkStore) -> Vec<Replica> {
        let home_is_a_copy = usize::from(!image.in_default_store);
        self.configured_copies(image)
            .skip(home_is_a_copy)
            .map(|(id, store)| {
                let chunks = match reading.domain() {
                    Some(domain) => store.in_domain(domain.clone()),
                    None => store,
                };
                Replica { store_id: id, chunks }
            })
            .collect()
    }

    /// The manifest `manifest_id` of `image`, from `home` (its home store) or, when it is missing or
    /// unreadable there, from a copy. The home store's error when no store gives it.
    pub(crate) async fn load_manifest_replicated(
        &self,
        image: &Image,
        manifest_id: &str,
        home: &ChunkStore,
        replicas: &[Replica],
    ) -> Result<Manifest, StoreError> {
        let first = match home.load_manifest(manifest_id).await {
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
