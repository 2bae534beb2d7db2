//! Mark-and-sweep garbage collection of the chunk store, with a grace period.
//!
//! Order of one collection (the safety argument is in `ims_store`'s `gc` module and `docs/storage.md`):
//!
//! 1. read the store's clock, then list every chunk (with its size and modification time);
//! 2. list pending manifests: those younger than the pending time to live are roots (their chunks are
//!    marked, and the manifest saved under their id is protected); older ones have expired;
//! 3. list saved manifests, then read the catalog's live manifests: roots are the manifests the catalog
//!    references, those protected by a pending manifest, and those younger than the grace period; every
//!    other manifest is an orphan (an upload that crashed between saving and activating, or a manifest
//!    whose image is gone);
//! 4. sweep, until a deadline a quarter of the grace period after step 1: orphan manifests and expired
//!    pending manifests, then every unmarked chunk that is older than the grace period, each age checked
//!    again right before its delete.
//!
//! Every extra store (Glance multiple stores) is collected the same way, one after the other, with its own
//! roots: the manifests of the images (binned ones included) whose `extra_stores` names it. Copies into an
//! extra store are journaled like writes (`ChunkStore::copy_file_from`), so the same argument holds there.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, TryStreamExt};
use ims_catalog::Catalog;
use ims_store::{ChunkId, ChunkStore, StoreError, StoredChunk};
use serde::Serialize;

use super::{seconds, store_failure, IN_FLIGHT};
use crate::Result;

/// How long a pending manifest protects its chunks after its write last recorded one.
pub const DEFAULT_PENDING_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parameters of one collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Only objects older than this are deleted; see the safety argument.
    pub grace: Duration,
    /// Pending manifests older than this (since their last record) stop protecting anything and are deleted.
    pub pending_ttl: Duration,
}

impl GcOptions {
    pub fn with_grace(grace: Duration) -> GcOptions {
        GcOptions { grace, pending_ttl: DEFAULT_PENDING_TTL.max(grace) }
    }
}

/// What one collection did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GcReport {
    /// Grace period used, in seconds.
    pub grace_seconds: f64,
    /// Chunk objects listed.
    pub chunks_scanned: u64,
    /// Chunks referenced by a root.
    pub chunks_live: u64,
    /// Unreferenced chunks kept because they are younger than the grace period.
    pub chunks_young: u64,
    /// Chunk objects deleted, and their bytes.
    pub chunks_deleted: u64,
    pub bytes_reclaimed: u64,
    /// Saved manifests listed, and orphans deleted.
    pub manifests_scanned: u64,
    pub manifests_removed: u64,
    /// Manifests the catalog references that were missing from the store.
    pub manifests_missing: u64,
    /// Pending manifests listed, and expired ones deleted.
    pub pending_scanned: u64,
    pub pending_removed: u64,
    /// Whether the sweep stopped at its deadline with garbage left (the next collection takes it).
    pub deadline_reached: bool,
    pub duration_seconds: f64,
    /// The collections of the extra stores, by store id (the fields above are the default store's).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_stores: BTreeMap<String, GcReport>,
}

/// Whose manifests are the catalog's roots in one store.
#[derive(Debug, Clone, Copy)]
pub(super) enum Roots<'a> {
    /// The default store: every live image's manifest and every server volume's.
    DefaultStore,
    /// An extra store: the manifests of the images holding a copy there.
    ExtraStore(&'a str),
}

/// The store's clock during one collection: its reading at the start plus the time elapsed since.
struct StoreClock {
    at_start: SystemTime,
    started: Instant,
}

impl StoreClock {
    fn now(&self) -> SystemTime {
        self.at_start + self.started.elapsed()
    }

    fn age(&self, t: SystemTime) -> Duration {
        self.now().duration_since(t).unwrap_or(Duration::ZERO)
    }
}

pub(super) async fn collect(catalog: &Catalog, store: &ChunkStore, roots_of: Roots<'_>, options: &GcOptions) -> Result<GcReport> {
    let started = Instant::now();
    let fail = |what: &'static str| move |e: StoreError| store_failure(what, e);
    let clock = StoreClock { at_start: store.store_time().await.map_err(fail("reading the store clock"))?, started };
    // Deletes after this instant could race a writer the listing missed (grace 0: nobody writes).
    let deadline = (!options.grace.is_zero()).then(|| started + options.grace / 4);
    let mut report = GcReport { grace_seconds: seconds(options.grace), ..GcReport::default() };

    // 1. Chunks first: anything a writer stores after this point is young or found through a root below.
    let chunks = store.list_chunks().await.map_err(fail("listing chunks"))?;
    report.chunks_scanned = chunks.len() as u64;

    // 2. Pending manifests.
    let mut marked: HashSet<ChunkId> = HashSet::new();
    let mut protected: HashSet<String> = HashSet::new();
    let mut expired = Vec::new();
    let pending = store.list_pending().await.map_err(fail("listing pending manifests"))?;
    report.pending_scanned = pending.len() as u64;
    for p in pending {
        if clock.age(p.modified) >= options.pending_ttl {
            expired.push(p.id);
            continue;
        }
        marked.extend(store.pending_chunks(&p.id).await.map_err(fail("reading a pending manifest"))?);
        protected.insert(p.id);
    }

    // 3. Saved manifests, then the catalog (so a manifest activated after the listing is still found).
    let manifests = store.list_manifests().await.map_err(fail("listing manifests"))?;
    report.manifests_scanned = manifests.len() as u64;
    let live: HashSet<String> = match roots_of {
        Roots::DefaultStore => {
            let mut live: HashSet<String> = catalog.images.live_manifests().await?.into_iter().collect();
            // Server volumes hold manifests of their own (copy-on-write over images' chunks).
            live.extend(catalog.compute.live_manifests().await?);
            live
        }
        Roots::ExtraStore(id) => catalog.images.live_manifests_in_store(id).await?.into_iter().collect(),
    };
    let listed: HashSet<&str> = manifests.iter().map(|m| m.id.as_str()).collect();
    let mut roots: Vec<String> = live.iter().filter(|m| !listed.contains(m.as_str())).cloned().collect();
    let mut orphans = Vec::new();
    for m in &manifests {
        if live.contains(&m.id) || protected.contains(&m.id) || clock.age(m.modified) < options.grace {
            roots.push(m.id.clone());
        } else {
            orphans.push(m.id.clone());
        }
    }
    let loaded: Vec<Option<Vec<ChunkId>>> = futures::stream::iter(roots)
        .map(|id| async move {
            match store.load_manifest(&id).await {
                Ok(manifest) => Ok(Some(manifest.chunk_ids().copied().collect())),
                // Deleted since it was listed (its image was deleted): nothing to protect.
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(store_failure(&format!("reading manifest {id}"), e)),
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect()
        .await?;
    for ids in loaded {
        match ids {
            Some(ids) => marked.extend(ids),
            None => report.manifests_missing += 1,
        }
    }

    // 4. Sweep.
    let past_deadline = || deadline.is_some_and(|d| Instant::now() >= d);
    for id in orphans {
        if past_deadline() {
            report.deadline_reached = true;
            break;
        }
        let cutoff = clock.now() - options.grace;
        if store.delete_manifest_if_older(&id, cutoff).await.map_err(fail("deleting an orphan manifest"))? {
            report.manifests_removed += 1;
        }
    }
    for id in expired {
        store.release_pending(&id).await.map_err(fail("deleting an expired pending manifest"))?;
        report.pending_removed += 1;
    }
    let initial_cutoff = clock.at_start.checked_sub(options.grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut garbage: Vec<StoredChunk> = Vec::new();
    for chunk in chunks {
        if marked.contains(&chunk.id) {
            report.chunks_live += 1;
        } else if chunk.modified >= initial_cutoff && !options.grace.is_zero() {
            report.chunks_young += 1;
        } else {
            garbage.push(chunk);
        }
    }
    let clock = &clock;
    let mut deletions = futures::stream::iter(garbage)
        .map(|chunk| async move {
            if past_deadline() {
                return Ok(Err(()));
            }
            let cutoff = clock.now().checked_sub(options.grace).unwrap_or(SystemTime::UNIX_EPOCH);
            store.delete_chunk_if_older(&chunk.id, cutoff).await.map(Ok)
        })
        .buffer_unordered(IN_FLIGHT);
    while let Some(outcome) = deletions.next().await {
        match outcome.map_err(fail("deleting a chunk"))? {
            Ok(Some(bytes)) => {
                report.chunks_deleted += 1;
                report.bytes_reclaimed += bytes;
            }
            Ok(None) => report.chunks_young += 1,
            Err(()) => report.deadline_reached = true,
        }
    }
    report.duration_seconds = seconds(started.elapsed());
    tracing::info!(
        store = ?roots_of,
        chunks_deleted = report.chunks_deleted,
        bytes_reclaimed = report.bytes_reclaimed,
        manifests_removed = report.manifests_removed,
        pending_removed = report.pending_removed,
        deadline_reached = report.deadline_reached,
        seconds = report.duration_seconds,
        "garbage collection finished"
    );
    Ok(report)
}
