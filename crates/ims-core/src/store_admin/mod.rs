//! Administration of the chunk store: garbage collection, integrity verification and accounting.
//! Every use case here is for admins only ([`Policy::check_admin`]); the node's own schedule runs garbage
//! collection through [`StoreAdminService::collect_garbage_scheduled`].

mod gc;
mod stats;
mod verify;

use std::collections::BTreeMap;
use std::time::Duration;

use ims_catalog::{Catalog, Image, ImageQuery, ImageStatus, SortDir, SortKey, Viewer, VisibilityFilter};
use ims_store::ChunkStore;
use uuid::Uuid;

use crate::images::ImageService;
use crate::{CoreError, Policy, RequestContext, Result};

pub use gc::{GcOptions, GcReport, DEFAULT_PENDING_TTL};
pub use stats::{ChunkReadsSinceStart, ProjectUsage, StoreStats};
pub use verify::{ChunkProblem, ManifestProblem, ProblemKind, SkippedImage, VerifyReport};

/// Chunks read, verified or deleted at once by one store administration task.
const IN_FLIGHT: usize = 8;

/// Store administration use cases.
#[derive(Clone)]
pub struct StoreAdminService {
    images: ImageService,
    /// Serializes this node's collections (collections on different nodes are safe together).
    running: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// What this node's collections did since it started.
    gc_totals: std::sync::Arc<GcCounters>,
}

/// Totals of the collections one node ran since it started, over all its stores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcTotals {
    /// Collections that completed.
    pub runs: u64,
    /// Collections that ended with an error.
    pub failures: u64,
    /// Chunk objects deleted, and their bytes.
    pub chunks_deleted: u64,
    pub bytes_reclaimed: u64,
}

#[derive(Debug, Default)]
struct GcCounters {
    runs: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
    chunks_deleted: std::sync::atomic::AtomicU64,
    bytes_reclaimed: std::sync::atomic::AtomicU64,
}

impl GcCounters {
    fn count(&self, outcome: &Result<GcReport>) {
        use std::sync::atomic::Ordering::Relaxed;
        match outcome {
            Ok(report) => {
                self.runs.fetch_add(1, Relaxed);
                for r in std::iter::once(report).chain(report.extra_stores.values()) {
                    self.chunks_deleted.fetch_add(r.chunks_deleted, Relaxed);
                    self.bytes_reclaimed.fetch_add(r.bytes_reclaimed, Relaxed);
                }
            }
            Err(_) => {
                self.failures.fetch_add(1, Relaxed);
            }
        }
    }
}

impl StoreAdminService {
    pub fn new(images: ImageService) -> StoreAdminService {
        StoreAdminService { images, running: Default::default(), gc_totals: Default::default() }
    }

    fn catalog(&self) -> &Catalog {
        &self.images.catalog
    }

    fn store(&self) -> &ChunkStore {
        &self.images.store
    }

    /// Runs one mark-and-sweep collection of the default store and of every extra store (admins only)
    /// and reports what it reclaimed in each. Safe while other
    /// nodes upload, import and copy, as long as `options.grace` is at least the grace period the writers
    /// assume ([`ChunkStore::gc_grace`]); a grace of zero is for stores nobody writes to meanwhile.
    /// Waits for a collection already running on this node. Store or catalog failures abort the
    /// collection (`Unavailable`) after deleting only what was proven garbage.
    pub async fn collect_garbage(&self, ctx: &RequestContext, options: GcOptions) -> Result<GcReport> {
        Policy::check_admin(ctx)?;
        self.collect_garbage_scheduled(options).await
    }

    /// [`StoreAdminService::collect_garbage`] for the node's own schedule (no caller to authorize).
    /// Collects the default store, then each extra store in id order (reported under
    /// [`GcReport::extra_stores`]); a failure in an extra store ends the run with an error naming it.
    pub async fn collect_garbage_scheduled(&self, options: GcOptions) -> Result<GcReport> {
        let _running = self.running.lock().await;
        let outcome = self.collect_all(&options).await;
        self.gc_totals.count(&outcome);
        outcome
    }

    async fn collect_all(&self, options: &GcOptions) -> Result<GcReport> {
        let mut report = gc::collect(self.catalog(), self.store(), gc::Roots::DefaultStore, options).await?;
        for (id, store) in self.images.extra_stores.all() {
            let extra = gc::collect(self.catalog(), &store, gc::Roots::ExtraStore(&id), options).await.map_err(|e| {
                CoreError::Unavailable(format!("garbage collection of store {id}: {e}"))
            })?;
            report.extra_stores.insert(id, extra);
        }
        Ok(report)
    }

    /// Reads and verifies every chunk of every image with data, or of the one image `image_id` (admins
    /// only; `NotFound` if that image does not exist). Reports each missing or corrupt chunk with the
    /// image and file offsets that use it, each image whose manifest is missing or unreadable, and each
    /// encrypted image skipped because its master key is disabled or gone. Read-only; bypasses the chunk
    /// cache (every chunk is read from the store).
    pub async fn verify(&self, ctx: &RequestContext, image_id: Option<Uuid>) -> Result<VerifyReport> {
        Policy::check_admin(ctx)?;
        let images = match image_id {
            Some(id) => vec![self.images.get(ctx, id).await?],
            None => self.images_with_data().await?,
        };
        verify::verify(&self.images, images).await
    }

    /// Logical and physical bytes of the whole store and of every project (admins only). Scans the
    /// store's listing and every live image's manifest; changes nothing.
    pub async fn stats(&self, ctx: &RequestContext) -> Result<StoreStats> {
        Policy::check_admin(ctx)?;
        let images = self.images_with_data().await?;
        stats::stats(self.store(), images).await
    }

    /// [`StoreAdminService::stats`] for the node's own metrics (no caller to authorize).
    pub async fn stats_for_node(&self) -> Result<StoreStats> {
        let images = self.images_with_data().await?;
        stats::stats(self.store(), images).await
    }

    /// What this node's garbage collections (scheduled or asked for) did since it started.
    pub fn gc_totals(&self) -> GcTotals {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.gc_totals;
        GcTotals {
            runs: c.runs.load(Relaxed),
            failures: c.failures.load(Relaxed),
            chunks_deleted: c.chunks_deleted.load(Relaxed),
            bytes_reclaimed: c.bytes_reclaimed.load(Relaxed),
        }
    }

    /// Hits, misses and size of this node's chunk cache, and the chunk objects it fetched from the store.
    pub fn node_reads(&self) -> (ims_store::CacheStats, ims_store::ChunkReads) {
        (self.store().chunk_cache().stats(), self.store().chunk_reads())
    }

    /// Every non-deleted image that has data, in id order (paged through the catalog).
    async fn images_with_data(&self) -> Result<Vec<Image>> {
        const PAGE: u32 = 500;
        let mut all: BTreeMap<Uuid, Image> = BTreeMap::new();
        // The list hides `os_hidden` and deprecated images unless asked for them: ask every way, judging
        // deprecation at one instant so that an image deprecated meanwhile is in exactly one pass.
        let as_of = crate::now();
        for (hidden, deprecated) in [(false, false), (false, true), (true, false), (true, true)] {
            let mut marker = None;
            loop {
                let mut query = ImageQuery::new(Viewer { project_id: None, is_admin: true }, PAGE);
                query.visibility = Some(VisibilityFilter::All);
                query.os_hidden = Some(hidden);
                query.deprecated = Some(deprecated);
                query.deprecated_as_of = as_of;
                query.sort = vec![(SortKey::Id, SortDir::Asc)];
                query.marker = marker;
                let page = self.catalog().images.list(&query).await?;
                let full = page.len() == PAGE as usize;
                marker = page.last().map(|i| i.id);
                all.extend(page.into_iter().map(|i| (i.id, i)));
                if !full {
                    break;
                }
            }
        }
        Ok(all.into_values().filter(|i| i.manifest_id.is_some() && i.status != ImageStatus::Deleted).collect())
    }
}

/// Maps a failed store call during administration.
fn store_failure(what: &str, e: ims_store::StoreError) -> CoreError {
    match e {
        ims_store::StoreError::Backend(m) => CoreError::Unavailable(format!("{what}: object store unavailable: {m}")),
        other => CoreError::from(other),
    }
}

/// A duration as seconds with millisecond precision (for reports).
pub(crate) fn seconds(d: Duration) -> f64 {
    (d.as_millis() as f64) / 1000.0
}
