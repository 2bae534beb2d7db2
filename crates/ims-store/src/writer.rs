//! `ManifestWriter`: streams one file into the store.
//!
//! Pipeline (all stages bounded, so memory stays a few tens of MiB whatever the file size):
//!
//! ```text
//! write() ──(coalesced ≥1 MiB, queue of 4)──▶ chunker thread ──(queue of 2 chunks)──▶ store task
//!                                             (FastCDC cut points, no copy)           up to 8 chunks at once, each:
//!                                                                                     zero check + blake3 (blocking pool, ≤1/core),
//!                                                                                     head, zstd (blocking pool, ≤1/core), put
//! ```
//! The store task yields chunk results in file order and assembles the manifest.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cdc::{Chunker, Segments};
use crate::chunk::{encode_in, hash_chunk, segments_are_zero};
use crate::journal::{Existing, Journal};
use crate::{cpu, ChunkId, ChunkStore, Extent, Manifest, StoreError};

/// Writes are coalesced (without copying) until this many bytes before being handed to the chunker thread.
const COALESCE_BYTES: usize = 1024 * 1024;
/// Coalesced batches queued for the chunker thread.
const INPUT_QUEUE: usize = 4;
/// Cut chunks queued between the chunker thread and the store task.
const CHUNK_QUEUE: usize = 2;
/// Chunks being hashed, compressed or stored at once.
const CHUNKS_IN_FLIGHT: usize = 8;

/// What a finished write produced.
#[derive(Debug, Clone, Default)]
pub struct WriteSummary {
    /// The manifest of the file written (not yet saved: see [`ChunkStore::save_manifest`]).
    pub manifest: Manifest,
    /// Data chunks referenced by the manifest (`chunks_new + chunks_deduplicated`; zero extents excluded).
    pub chunks_total: u64,
    /// Chunks whose objects this write created.
    pub chunks_new: u64,
    /// Chunks that were already stored (by an earlier write, or earlier in this file) and were not written again.
    pub chunks_deduplicated: u64,
    /// Bytes of the file that are zero extents (not stored).
    pub zero_bytes: u64,
    /// Physical bytes of the chunk objects this write created (after compression, headers included).
    pub bytes_stored: u64,
    /// Deduplicated chunks that were old enough to be stored again (see the `journal` module).
    pub chunks_refreshed: u64,
    /// The pending manifest protecting this write's chunks from garbage collection (`None` if no chunk was
    /// stored or reused). Save the manifest under this id ([`ChunkStore::save_manifest_as`]) and call
    /// [`ChunkStore::release_pending`] once the catalog references it, or once the result is thrown away.
    pub pending_id: Option<String>,
}

/// Writes one file into a [`ChunkStore`]; obtained from [`ChunkStore::writer`].
///
/// Once started, a writer holds one thread of tokio's blocking pool (its chunker) until it is finished or
/// dropped, and at most a few tens of MiB of chunk data however large the file.
///
/// Feed the file with [`write`](Self::write), then call [`finish`](Self::finish). Dropping the writer without
/// `finish` abandons the write: its background tasks take no new chunk, the chunks they are storing finish, no
/// manifest is produced, then its pending manifest is discarded (see the `journal` module) and chunks already
/// stored stay for garbage collection. After any error the writer is failed (its pending manifest discarded
/// too, once nothing of the write is in flight): every later call returns an error.
pub struct ManifestWriter {
    store: ChunkStore,
    pending: Vec<Bytes>,
    pending_len: usize,
    pipeline: Option<Pipeline>,
    failed: bool,
}

struct Pipeline {
    input: mpsc::Sender<Input>,
    /// Ends only once no operation of the write is in flight (see [`run_store`]).
    task: JoinHandle<Result<WriteSummary, StoreError>>,
    journal: Arc<Journal>,
    /// Set when the writer is dropped (or by the store task when a chunk fails): no new chunk is taken.
    abandoned: Arc<AtomicBool>,
}

enum Input {
    Data(Vec<Bytes>),
    Finish,
}

enum Cut {
    Chunk { offset: u64, data: Segments },
    End { size: u64 },
}

enum Outcome {
    Chunk { extent: Extent, kind: Kind },
    End { size: u64 },
}

enum Kind {
    Zero,
    Deduplicated,
    /// Deduplicated, but stored again to renew it.
    Refreshed,
    New { stored: u64 },
}

impl ManifestWriter {
    pub(crate) fn new(store: ChunkStore) -> ManifestWriter {
        ManifestWriter { store, pending: Vec::new(), pending_len: 0, pipeline: None, failed: false }
    }

    /// Feeds the next bytes of the file (any size, including empty; in order).
    ///
    /// Applies backpressure: returns once the data has been accepted into the bounded pipeline, not once
    /// it is stored (errors storing it surface from a later `write` or from `finish`). Must be called inside a
    /// tokio runtime (the first call starts the pipeline).
    pub async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        if self.failed {
            return Err(failed_before());
        }
        if data.is_empty() {
            return Ok(());
        }
        self.pending_len += data.len();
        self.pending.push(data);
        if self.pending_len >= COALESCE_BYTES {
            let batch = std::mem::take(&mut self.pending);
            self.pending_len = 0;
            self.send(Input::Data(batch)).await?;
        }
        Ok(())
    }

    /// Cuts the final chunk, waits until every chunk object is durably stored, and returns the manifest and
    /// statistics. The manifest is not saved: pass it to [`ChunkStore::save_manifest`]. An empty file gives
    /// an empty manifest (size 0, no extents).
    pub async fn finish(mut self) -> Result<WriteSummary, StoreError> {
        if self.failed {
            return Err(failed_before());
        }
        if !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            self.pending_len = 0;
            self.send(Input::Data(batch)).await?;
        }
        if self.pipeline.is_none() {
            return Ok(WriteSummary::default());
        }
        self.send(Input::Finish).await?;
        let pipeline = self.pipeline.take().expect("started above");
        drop(pipeline.input);
        let summary = match join(pipeline.task).await {
            Ok(summary) => summary,
            Err(e) => {
                discard(&self.store, &pipeline.journal).await;
                return Err(e);
            }
        };
        tracing::debug!(
            size = summary.manifest.size,
            chunks_total = summary.chunks_total,
            chunks_new = summary.chunks_new,
            chunks_deduplicated = summary.chunks_deduplicated,
            zero_bytes = summary.zero_bytes,
            bytes_stored = summary.bytes_stored,
            "chunk store write finished"
        );
        Ok(summary)
    }

    async fn send(&mut self, input: Input) -> Result<(), StoreError> {
        let pipeline = self.pipeline.get_or_insert_with(|| Pipeline::start(self.store.clone()));
        if pipeline.input.send(input).await.is_ok() {
            return Ok(());
        }
        // The pipeline stopped early: its task holds the reason.
        self.failed = true;
        let pipeline = self.pipeline.take().expect("present");
        let error = match join(pipeline.task).await {
            Err(e) => e,
            Ok(_) => StoreError::Backend("chunk pipeline stopped unexpectedly".into()),
        };
        discard(&self.store, &pipeline.journal).await;
        Err(error)
    }
}

impl Drop for ManifestWriter {
    fn drop(&mut self) {
        // Abandoned: stop storing. The chunker thread exits when it sees its input channel closed, the store
        // task once the chunks it is storing are stored. The task is not aborted: a put or a pending manifest
        // segment already handed to the backend (a blocking thread of a local store, say) would still land,
        // maybe after the delete. Its pending manifest goes once the task has ended.
        if let Some(Pipeline { input, task, journal, abandoned }) = self.pipeline.take() {
            abandoned.store(true, Ordering::Release);
            drop(input);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let store = self.store.clone();
                runtime.spawn(async move {
                    let _ = task.await;
                    discard(&store, &journal).await;
                });
            }
        }
    }
}

/// Deletes the pending manifest of a write whose result is lost (best effort: it expires otherwise).
async fn discard(store: &ChunkStore, journal: &Journal) {
    if let Err(e) = crate::journal::delete_pending(store, journal.id()).await {
        tracing::warn!(pending = journal.id(), error = %e, "pending manifest of a failed write left to expire");
    }
}

fn failed_before() -> StoreError {
    StoreError::Invalid("this write already failed; start a new one".into())
}

async fn join(task: JoinHandle<Result<WriteSummary, StoreError>>) -> Result<WriteSummary, StoreError> {
    task.await.map_err(|e| StoreError::from_join("chunk store", e))?
}

impl Pipeline {
    fn start(store: ChunkStore) -> Pipeline {
        let (input, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (cut_tx, cut_rx) = mpsc::channel(CHUNK_QUEUE);
        let chunker = tokio::task::spawn_blocking(move || run_chunker(input_rx, cut_tx));
        let journal = Arc::new(Journal::new(store.clone()));
        let task_journal = journal.clone();
        let abandoned = Arc::new(AtomicBool::new(false));
        let task_abandoned = abandoned.clone();
        let task = tokio::spawn(async move {
            let result = task_journal.drive(run_store(store, task_journal.clone(), cut_rx, task_abandoned)).await;
            if result.is_ok() {
                // The chunker has already finished (it sent End); surface a panic if it had one.
                chunker.await.map_err(|e| StoreError::from_join("chunker", e))?;
            }
            result
        });
        Pipeline { input, task, journal, abandoned }
    }
}

/// The chunker thread: finds cut points and hands chunks (slices of the input) on, in order. Returns without
/// `End` if the write was abandoned (input closed without `Finish`) or the store task stopped.
fn run_chunker(mut input: mpsc::Receiver<Input>, cuts: mpsc::Sender<Cut>) {
    let mut chunker = Chunker::new();
    let mut offset = 0u64;
    let mut emit = |data: Segments| {
        let length: u64 = data.iter().map(|s| s.len() as u64).sum();
        let ok = cuts.blocking_send(Cut::Chunk { offset, data }).is_ok();
        offset += length;
        ok
    };
    let mut size = 0u64;
    while let Some(message) = input.blocking_recv() {
        match message {
            Input::Data(pieces) => {
                for piece in pieces {
                    size += piece.len() as u64;
                    if !chunker.push(piece, &mut emit) {
                        return;
                    }
                }
            }
            Input::Finish => {
                if chunker.finish(&mut emit) {
                    let _ = cuts.blocking_send(Cut::End { size });
                }
                return;
            }
        }
    }
}

/// The store task: processes chunks concurrently, in order, and assembles the manifest.
///
/// Returns only once no chunk of the write is being processed: after an error, or once `abandoned` is set, it
/// takes no new chunk and lets those in flight finish (their results thrown away). Whoever discards the
/// pending manifest after this returns is then sure that no segment of it is still being written.
async fn run_store(
    store: ChunkStore,
    journal: Arc<Journal>,
    cuts: mpsc::Receiver<Cut>,
    abandoned: Arc<AtomicBool>,
) -> Result<WriteSummary, StoreError> {
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let taking = abandoned.clone();
    let cuts = futures::stream::unfold(cuts, move |mut rx| {
        let stop = taking.load(Ordering::Acquire);
        async move {
            match stop {
                true => None,
                false => rx.recv().await.map(|cut| (cut, rx)),
            }
        }
    });
    let mut outcomes = std::pin::pin!(cuts.map(|cut| process(store.clone(), journal.clone(), seen.clone(), cut)).buffered(CHUNKS_IN_FLIGHT));
    let mut summary = WriteSummary::default();
    while let Some(outcome) = outcomes.next().await {
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                abandoned.store(true, Ordering::Release);
                while outcomes.next().await.is_some() {}
                return Err(e);
            }
        };
        match outcome {
            Outcome::Chunk { extent, kind } => {
                match kind {
                    Kind::Zero => summary.zero_bytes += u64::from(extent.length),
                    Kind::Deduplicated => summary.chunks_deduplicated += 1,
                    Kind::Refreshed => {
                        summary.chunks_deduplicated += 1;
                        summary.chunks_refreshed += 1;
                    }
                    Kind::New { stored } => {
                        summary.chunks_new += 1;
                        summary.bytes_stored += stored;
                    }
                }
                summary.manifest.extents.push(extent);
            }
            Outcome::End { size } => {
                summary.manifest.size = size;
                summary.chunks_total = summary.chunks_new + summary.chunks_deduplicated;
                journal.finish().await?;
                summary.pending_id = journal.is_used().await.then(|| journal.id().to_string());
                debug_assert!(summary.manifest.validate().is_ok());
                return Ok(summary);
            }
        }
    }
    Err(StoreError::Backend("write abandoned before finish".into()))
}

async fn process(
    store: ChunkStore,
    journal: Arc<Journal>,
    seen: Arc<Mutex<HashSet<ChunkId>>>,
    cut: Cut,
) -> Result<Outcome, StoreError> {
    let (offset, data) = match cut {
        Cut::End { size } => return Ok(Outcome::End { size }),
        Cut::Chunk { offset, data } => (offset, data),
    };
    let length: usize = data.iter().map(Bytes::len).sum();
    let length = u32::try_from(length).expect("chunks are at most MAX_CHUNK bytes");
    let domain = store.domain().cloned();
    let (data, hash) = cpu::run("chunk hashing", move || {
        let hash = (!segments_are_zero(&data)).then(|| hash_chunk(domain.as_ref(), &data));
        (data, hash)
    })
    .await?;
    let Some(hash) = hash else {
        return Ok(Outcome::Chunk { extent: Extent { offset, length, chunk: None }, kind: Kind::Zero });
    };
    let id = hash.id;
    let first_in_file = seen.lock().expect("seen set poisoned").insert(id);
    // Recorded in the pending manifest before the store is asked (see `crate::journal`).
    let existing = match first_in_file {
        false => Existing::Fresh,
        true => {
            journal.record(id).await?;
            journal.existing(&id).await?
        }
    };
    let kind = if existing == Existing::Fresh {
        Kind::Deduplicated
    } else {
        let domain = store.domain().cloned();
        let payload = cpu::run("chunk compression", move || encode_in(domain.as_ref(), &hash, &data)).await?;
        let stored = payload.content_length() as u64;
        store
            .objects()
            .put(&id.object_path(), payload)
            .await
            .map_err(|e| StoreError::Backend(format!("storing chunk {id} (file offset {offset}): {e}")))?;
        if existing == Existing::Stale { Kind::Refreshed } else { Kind::New { stored } }
    };
    Ok(Outcome::Chunk { extent: Extent { offset, length, chunk: Some(id) }, kind })
}
