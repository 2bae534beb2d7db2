//! Pending manifests: the journal that protects a write's chunks from garbage collection.
//!
//! A [`ManifestWriter`](crate::ManifestWriter) records the id of every chunk it is about to store or reuse.
//! Records are buffered and written out together, as one small object (a *segment*): every *lag* while the
//! write runs ([`Journal::drive`]), as soon as [`MAX_BUFFERED`] are waiting, and when the write ends
//! ([`Journal::finish`]). So a record is durable within two lags of the chunk's use, and a write costs a
//! segment per lag, not one per chunk. The lag is a fraction of the garbage collector's grace period
//! ([`ChunkStore::set_gc_grace`]), which protects a chunk stored or looked at in the meantime by its age
//! (`docs/storage.md` gives the argument); with a grace of zero every record is durable before the chunk
//! is used (write-ahead). Segments live at `manifests/pending/<write id>/<seq>` (10 decimal digits), each the
//! concatenation of 32-byte chunk ids. The garbage collector treats every chunk named by a pending manifest
//! as live while the manifest is younger than its time to live, and a manifest object saved under the
//! write's id (`manifests/<write id>`) as live while its pending manifest exists.
//!
//! The pending manifest outlives the write: the caller saves the manifest under the write's id
//! ([`ChunkStore::save_manifest_as`]), makes the catalog reference it, and only then releases the pending
//! manifest ([`ChunkStore::release_pending`]). A write that fails discards its pending manifest; one that is
//! abandoned (dropped) discards it in the background.
//!
//! Reused chunks older than the refresh age (half the grace period) are stored again, which renews their
//! modification time; younger ones are reused as they are and checked once more when the write finishes.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::PutPayload;

use crate::{ChunkId, ChunkStore, StoreError};

/// Prefix of pending manifest segments.
pub(crate) const PENDING_PREFIX: &str = "manifests/pending";
/// Existence checks of reused chunks run at once when a write finishes.
const CHECKS_IN_FLIGHT: usize = 16;
/// The longest a record waits in the buffer, for a grace period of 16 s or more (shorter graces get
/// `grace / 32`).
const MAX_LAG: Duration = Duration::from_millis(500);
/// A record that finds this many records buffered writes them out at once (128 KiB).
pub(crate) const MAX_BUFFERED: usize = 4096;

/// What a chunk about to be reused looks like in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// No object: store it.
    Missing,
    /// Present but older than the refresh age: store it again (renews its modification time).
    Stale,
    /// Present and young enough to reuse as is.
    Fresh,
}

/// The pending manifest of one write.
pub(crate) struct Journal {
    store: ChunkStore,
    id: String,
    state: Mutex<Unflushed>,
    flushed: tokio::sync::Mutex<Flushed>,
    reused: Mutex<Vec<ChunkId>>,
    /// How long a record may stay buffered; zero: each is durable before [`Journal::record`] returns.
    lag: Duration,
}

/// Records not yet in a segment.
#[derive(Default)]
struct Unflushed {
    ids: Vec<ChunkId>,
    /// Number of records ever made (the ticket of the latest one).
    issued: u64,
    /// Set when a segment could not be written: every later record fails.
    failed: Option<String>,
}

#[derive(Default)]
struct Flushed {
    /// Records up to this ticket are durable.
    durable: u64,
    /// Segments written.
    segments: u64,
}

impl Journal {
    pub(crate) fn new(store: ChunkStore) -> Journal {
        let lag = MAX_LAG.min(store.gc_grace() / 32);
        Journal {
            store,
            lag,
            id: uuid::Uuid::new_v4().to_string(),
            state: Mutex::default(),
            flushed: tokio::sync::Mutex::default(),
            reused: Mutex::default(),
        }
    }

    /// The write's id (that of its pending manifest and of the manifest to save).
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Whether any segment was written (a write of only zeros has none).
    pub(crate) async fn is_used(&self) -> bool {
        self.flushed.lock().await.segments > 0
    }

    /// Records `chunk` (before the chunk is stored or looked at). The record is buffered: it is durable once
    /// [`Journal::flush`] or [`Journal::finish`] returns, and within two lags while [`Journal::drive`] runs
    /// the write; with a lag of zero, or when [`MAX_BUFFERED`] records are waiting, it is durable when this
    /// returns. Fails once a segment of this journal could not be written.
    pub(crate) async fn record(&self, chunk: ChunkId) -> Result<(), StoreError> {
        let (ticket, buffered) = {
            let mut state = self.state.lock().expect("journal state poisoned");
            if let Some(why) = &state.failed {
                return Err(StoreError::Backend(why.clone()));
            }
            state.ids.push(chunk);
            state.issued += 1;
            (state.issued, state.ids.len())
        };
        if !self.lag.is_zero() && buffered < MAX_BUFFERED {
            return Ok(());
        }
        let mut flushed = self.flushed.lock().await;
        self.write_segment(&mut flushed, ticket).await
    }

    /// Returns once every record made so far is durable (writing them in one segment if needed).
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let mut flushed = self.flushed.lock().await;
        let ticket = self.state.lock().expect("journal state poisoned").issued;
        self.write_segment(&mut flushed, ticket).await
    }

    /// Runs `work`, the write, and every lag meanwhile writes the records buffered. Returns `work`'s
    /// output once no segment write of its own is in flight. A segment that cannot be written fails the
    /// next [`Journal::record`], [`Journal::flush`] or [`Journal::finish`].
    pub(crate) async fn drive<T>(&self, work: impl Future<Output = T>) -> T {
        if self.lag.is_zero() {
            return work.await;
        }
        let mut work = std::pin::pin!(work);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + self.lag, self.lag);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = ticks.tick() => {
                    // `work` is not polled meanwhile: if it holds the lock, writing a segment, let it be
                    // (the records it leaves go out at the next tick).
                    if let Ok(mut flushed) = self.flushed.try_lock() {
                        let ticket = self.state.lock().expect("journal state poisoned").issued;
                        let _ = self.write_segment(&mut flushed, ticket).await;
                    }
                }
            }
        }
    }

    /// Makes the records up to `ticket` durable: unless they are already, writes every buffered record in
    /// the next segment. The caller holds the `flushed` lock, so segments are written one at a time.
    async fn write_segment(&self, flushed: &mut Flushed, ticket: u64) -> Result<(), StoreError> {
        let (ids, upto) = {
            let mut state = self.state.lock().expect("journal state poisoned");
            if let Some(why) = &state.failed {
                return Err(StoreError::Backend(why.clone()));
            }
            if flushed.durable >= ticket {
                return Ok(());
            }
            (std::mem::take(&mut state.ids), state.issued)
        };
        let mut body = Vec::with_capacity(ids.len() * 32);
        for id in &ids {
            body.extend_from_slice(&id.0);
        }
        let path = Path::from(format!("{PENDING_PREFIX}/{}/{:010}", self.id, flushed.segments));
        if let Err(e) = self.store.objects().put(&path, PutPayload::from(body)).await {
            let why = format!("writing pending manifest {}: {e}", self.id);
            self.state.lock().expect("journal state poisoned").failed = Some(why.clone());
            return Err(StoreError::Backend(why));
        }
        flushed.segments += 1;
        flushed.durable = upto;
        Ok(())
    }

    /// Looks at a chunk this write is about to reuse (it must be recorded first). A `Fresh` chunk is
    /// remembered for [`Journal::finish`].
    pub(crate) async fn existing(&self, chunk: &ChunkId) -> Result<Existing, StoreError> {
        let meta = match self.store.objects().head(&chunk.object_path()).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(Existing::Missing),
            Err(e) => return Err(e.into()),
        };
        let modified: SystemTime = meta.last_modified.into();
        let age = SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO);
        if age >= self.store.gc_grace() / 2 {
            return Ok(Existing::Stale);
        }
        self.reused.lock().expect("reused list poisoned").push(*chunk);
        Ok(Existing::Fresh)
    }

    /// Ends a write that succeeded: makes its remaining records durable, then makes the last line of
    /// defence, checking that every chunk reused as is still exists. A chunk that vanished (a garbage
    /// collection that broke the timing assumptions, or someone deleting objects by hand) fails the write
    /// with a retryable `Backend` error instead of letting a manifest with a hole be saved.
    pub(crate) async fn finish(&self) -> Result<(), StoreError> {
        self.flush().await?;
        // A pending manifest that expired (the write recorded nothing for a whole time to live) no longer
        // protected the chunks stored early on.
        if self.is_used().await {
            let first = Path::from(format!("{PENDING_PREFIX}/{}/{:010}", self.id, 0));
            if let Err(e) = self.store.objects().head(&first).await {
                return Err(StoreError::Backend(format!(
                    "pending manifest {} of this write is gone ({e}); nothing was saved, retry the write",
                    self.id
                )));
            }
        }
        let reused = std::mem::take(&mut *self.reused.lock().expect("reused list poisoned"));
        futures::stream::iter(reused)
            .map(|chunk| async move {
                match self.store.has_chunk(&chunk).await? {
                    true => Ok(()),
                    false => Err(StoreError::Backend(format!(
                        "chunk {chunk} disappeared while this write reused it (removed by garbage collection?); \
                         nothing was saved, retry the write"
                    ))),
                }
            })
            .buffer_unordered(CHECKS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// Deletes every segment of the pending manifest `id` (idempotent).
pub(crate) async fn delete_pending(store: &ChunkStore, id: &str) -> Result<(), StoreError> {
    let prefix = Path::from(format!("{PENDING_PREFIX}/{id}"));
    let segments: Vec<_> = store.objects().list(Some(&prefix)).try_collect().await?;
    for segment in segments {
        match store.objects().delete(&segment.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Parses one segment: concatenated 32-byte ids.
pub(crate) fn parse_segment(data: &[u8]) -> Result<Vec<ChunkId>, StoreError> {
    if data.len() % 32 != 0 {
        return Err(StoreError::Corrupt(format!("pending manifest segment of {} bytes is not a list of ids", data.len())));
    }
    Ok(data.chunks_exact(32).map(|b| ChunkId(b.try_into().expect("32 bytes"))).collect())
}

/// Releases a finished write's pending manifest when dropped, unless [`PendingRelease::keep`] was called:
/// hold one from the end of a write until its manifest is saved, so that every early return (a refused
/// upload, a failed save) gives its chunks back to garbage collection. The release runs in the background.
#[must_use = "dropping it releases the pending manifest at once"]
pub struct PendingRelease {
    store: ChunkStore,
    id: Option<String>,
}

impl PendingRelease {
    /// Guards the pending manifest `id` (`None`: nothing to guard).
    pub fn new(store: &ChunkStore, id: Option<String>) -> PendingRelease {
        PendingRelease { store: store.clone(), id }
    }

    /// Keeps the pending manifest: the caller releases it with [`ChunkStore::release_pending`] once the
    /// catalog references the manifest.
    pub fn keep(mut self) {
        self.id = None;
    }
}

impl Drop for PendingRelease {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let store = self.store.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.release_pending(&id).await {
                    tracing::warn!(pending = %id, error = %e, "pending manifest of a discarded write left to expire");
                }
            });
        }
    }
}
