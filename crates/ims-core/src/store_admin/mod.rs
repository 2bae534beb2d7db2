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
}

impl StoreAdminService {
    pub fn new(images: ImageService) -> StoreAdminService {
        StoreAdminService { images, running: Default::default() }
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
        let mut report = gc::collect(self.catalog(), self.store(), gc::Roots::DefaultStore, &options).await?;
        for (id, store) in self.images.extra_stores.all() {
            let extra = gc::collect(self.catalog(), &store, gc::Roots::ExtraStore(&id), &options).await.map_err(|e| {
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
