//! Copying a stored file from one chunk store to another (Glance `copy-image` to an extra store), as
//! safe against the target's garbage collection as a write is.
//!
//! The copy is a write into the target: it records every chunk in a pending manifest of the target as it
//! stores or reuses it (see [`crate::journal`]), stores again any chunk the target holds
//! that is at least half the grace period old, checks when it finishes that every chunk it reused as is
//! still exists, and saves the manifest last, keeping its pending manifest until the caller has made the
//! catalog reference the copy. So the argument of the `gc` module holds for it unchanged: a sweep of the
//! target running at the same time, on any node, cannot delete a chunk the copy relies on.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::journal::{delete_pending, Existing, Journal};
use crate::settle::try_collect_settled;
use crate::{ChunkId, ChunkStore, Manifest, StoreError};

/// Chunks copied at once.
const COPY_IN_FLIGHT: usize = 8;

/// What one copy wrote to the target store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Chunk objects written (those the target lacked, or held too long to be sure to keep).
    pub chunks_written: u64,
    /// Their stored bytes.
    pub bytes_written: u64,
    /// The copy's pending manifest in the target: release it ([`ChunkStore::release_pending`], or hold a
    /// [`crate::PendingRelease`]) once the catalog references the copy. `None` for a file of only zeros.
    pub pending_id: Option<String>,
}

impl ChunkStore {
    /// Copies the file `manifest` describes from `source` into this store and saves `manifest` here as
    /// manifest `manifest_id` (replacing one saved under that id before). Chunk objects are copied as
    /// stored (compressed, encrypted), without decoding: both stores hold the same encryption domains.
    /// `progress(done, total)` is called after each distinct chunk.
    ///
    /// Guarantees: safe against this store's garbage collection running meanwhile on any node (module
    /// doc); idempotent (chunks already here and young enough are not sent again); the manifest is saved
    /// only once every chunk it names is here, so a store holding it holds all its chunks. The pending
    /// manifest of the copy ([`CopySummary::pending_id`]) protects its chunks and the saved manifest until
    /// the caller releases it, which it does once the catalog references the copy. On failure nothing is
    /// saved, the pending manifest is discarded, and the chunks already copied stay for this store's
    /// garbage collection. A chunk missing from `source` is `Corrupt`.
    pub async fn copy_file_from(
        &self,
        source: &ChunkStore,
        manifest_id: &str,
        manifest: &Manifest,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<CopySummary, StoreError> {
        manifest.validate().map_err(|e| StoreError::Invalid(format!("manifest: {e}")))?;
        uuid::Uuid::parse_str(manifest_id).map_err(|_| StoreError::Invalid(format!("bad manifest id {manifest_id:?}")))?;
        let journal = Journal::new(self.clone());
        let result = match self.copy_chunks(source, &journal, manifest, progress).await {
            Ok(summary) => self.save_manifest_as(manifest_id, manifest).await.map(|()| summary),
            Err(e) => Err(e),
        };
        match result {
            Ok(mut summary) => {
                summary.pending_id = journal.is_used().await.then(|| journal.id().to_string());
                Ok(summary)
            }
            Err(e) => {
                if let Err(discard) = delete_pending(self, journal.id()).await {
                    tracing::warn!(pending = journal.id(), error = %discard, "pending manifest of a failed store copy left to expire");
                }
                Err(e)
            }
        }
    }

    async fn copy_chunks(
        &self,
        source: &ChunkStore,
        journal: &Journal,
        manifest: &Manifest,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<CopySummary, StoreError> {
        let mut ids: Vec<ChunkId> = manifest.chunk_ids().copied().collect();
        ids.sort();
        ids.dedup();
        let total = ids.len() as u64;
        let done = AtomicU64::new(0);
        let chunks_written = AtomicU64::new(0);
        let bytes_written = AtomicU64::new(0);
        let copies = ids.into_iter().map(|id| {
            let (done, chunks_written, bytes_written) = (&done, &chunks_written, &bytes_written);
            async move {
                // Recorded in the pending manifest before the store is asked (see `crate::journal`).
                journal.record(id).await?;
                if journal.existing(&id).await? != Existing::Fresh {
                    let object = match source.objects().get(&id.object_path()).await {
                        Ok(result) => crate::file_read::result_bytes(result).await?,
                        Err(object_store::Error::NotFound { .. }) => {
                            return Err(StoreError::Corrupt(format!("chunk {id} is missing from the source store")))
                        }
                        Err(e) => return Err(e.into()),
                    };
                    bytes_written.fetch_add(object.len() as u64, Ordering::Relaxed);
                    self.objects().put(&id.object_path(), object.into()).await?;
                    chunks_written.fetch_add(1, Ordering::Relaxed);
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                Ok::<(), StoreError>(())
            }
        });
        // Settled: on failure the caller deletes the pending manifest, which no copy may still be writing to.
        journal.drive(try_collect_settled(copies, COPY_IN_FLIGHT)).await?;
        journal.finish().await?;
        Ok(CopySummary {
            chunks_written: chunks_written.into_inner(),
            bytes_written: bytes_written.into_inner(),
            pending_id: None,
        })
    }
}
