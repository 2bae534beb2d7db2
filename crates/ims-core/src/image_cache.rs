//! The image cache of a node (Glance's `/v2/cache`), over the node's chunk cache.
//!
//! Each node keeps decoded chunks in memory (see [`ims_store::ChunkCache`]). An admin can ask a node
//! to *prefetch* an active image: its chunks are fetched into that node's cache in the background,
//! so that the node's NBD exports, volumes and format readers of the image read from memory.
//! A **cached image** is an image prefetched on this node whose every chunk the node's cache still
//! holds (in the image's encryption domain); once the cache evicts one of its chunks to make room for
//! other reads, the image is no longer listed as cached. Images whose chunks other reads happened to
//! bring in are not listed. The book of prefetched and queued images lives in memory, like the cache:
//! a restarted node starts empty. A node whose cache budget is 0 has no image cache (`NotFound`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use ims_catalog::{Image, ImageStatus};
use ims_store::{ChunkStore, Manifest};
use uuid::Uuid;

use crate::{CoreError, ImageService, Policy, RequestContext, Result};

/// One image held whole by this node's cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedImage {
    pub image_id: Uuid,
    /// Reads of the image's chunks answered from the cache since they were cached (a chunk shared
    /// with other images counts their reads too).
    pub hits: u64,
    /// When one of its chunks was last read from the cache (or cached).
    pub last_accessed: SystemTime,
    /// When its prefetch completed.
    pub last_modified: SystemTime,
    /// The image's size in bytes.
    pub size: u64,
}

/// The cached images of a node and those waiting to be prefetched, in the order they will be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageCacheState {
    pub cached_images: Vec<CachedImage>,
    pub queued_images: Vec<Uuid>,
}

/// What `DELETE /v2/cache` clears (`x-image-cache-clear-target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearTarget {
    /// The whole chunk cache of the node (so every cached image).
    Cache,
    /// The prefetch queue.
    Queue,
    Both,
}

impl ClearTarget {
    /// `cache`, `queue`, or empty (both); any case. `Invalid` otherwise.
    pub fn parse(target: &str) -> Result<ClearTarget> {
        match target.trim().to_ascii_lowercase().as_str() {
            "" => Ok(ClearTarget::Both),
            "cache" => Ok(ClearTarget::Cache),
            "queue" => Ok(ClearTarget::Queue),
            _ => Err(CoreError::Invalid(
                "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string.".into(),
            )),
        }
    }
}

/// An image's data as this node reads it: the store view of its encryption domain and its manifest.
#[derive(Clone)]
struct ImageFile {
    store: ChunkStore,
    manifest: Arc<Manifest>,
    size: u64,
}

struct Queued {
    id: Uuid,
    /// Tells this request apart from a later one for the same image.
    ticket: u64,
    file: ImageFile,
}

struct Prefetched {
    file: ImageFile,
    at: SystemTime,
}

#[derive(Default)]
struct Book {
    queue: VecDeque<Queued>,
    prefetched: BTreeMap<Uuid, Prefetched>,
    next_ticket: u64,
    /// Whether a task is prefetching the queue.
    worker: bool,
}

/// The image cache use cases of one node (admins only). Clones share the node's book.
#[derive(Clone)]
pub struct ImageCacheService {
    images: ImageService,
    book: Arc<Mutex<Book>>,
}

impl ImageCacheService {
    pub fn new(images: ImageService) -> ImageCacheService {
        ImageCacheService { images, book: Arc::default() }
    }

    /// Whether this node has an image cache (a chunk cache budget above 0).
    pub fn enabled(&self) -> bool {
        self.images.store.chunk_cache().budget() > 0
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        // Consistent after every statement that can panic, so a poisoned lock is usable.
        self.book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admins only (`Forbidden`), then `NotFound` when this node has no cache.
    fn check(&self, ctx: &RequestContext) -> Result<()> {
        Policy::check_admin(ctx)?;
        if !self.enabled() {
            return Err(CoreError::NotFound("Caching via API is not supported at this site.".into()));
        }
        Ok(())
    }

    /// The image's data as this node reads it; `Invalid` unless the image is active with data.
    async fn open(&self, image: &Image) -> Result<ImageFile> {
        let manifest_id = match (&image.status, &image.manifest_id) {
            (ImageStatus::Active, Some(m)) => m.clone(),
            _ => {
                return Err(CoreError::Invalid(format!(
                    "Image {} is {}: only images with status active can be targeted for queueing",
                    image.id, image.status
                )))
            }
        };
        let store = self.images.store_for_reading(image).await?;
        let manifest = store.load_manifest(&manifest_id).await.map_err(|e| {
            CoreError::Corrupt(format!("image {}: its data cannot be read: {e}", image.id))
        })?;
        Ok(ImageFile { store, manifest: Arc::new(manifest), size: image.size.unwrap_or_default().max(0) as u64 })
    }

    /// The images this node's cache holds whole, and the queue. A prefetched image that is no longer
    /// whole in the cache, no longer active, or whose key is no longer usable is forgotten here.
    pub async fn state(&self, ctx: &RequestContext) -> Result<ImageCacheState> {
        self.check(ctx)?;
        let prefetched: Vec<(Uuid, ImageFile, SystemTime)> =
            self.lock().prefetched.iter().map(|(id, p)| (*id, p.file.clone(), p.at)).collect();
        let mut cached_images = Vec::new();
        for (id, file, at) in prefetched {
            let usable = match self.images.get(ctx, id).await {
                Ok(image) => image.status == ImageStatus::Active && self.images.store_for_reading(&image).await.is_ok(),
                Err(CoreError::NotFound(_)) => false,
                Err(other) => return Err(other),
            };
            let residency = file.store.cache_residency(&file.manifest);
            if usable && residency.is_whole() {
                let last_accessed = residency.last_used.unwrap_or(at).max(at);
                cached_images.push(CachedImage { image_id: id, hits: residency.hits, last_accessed, last_modified: at, size: file.size });
            } else {
                self.lock().prefetched.remove(&id);
            }
        }
        let queued_images = self.lock().queue.iter().map(|q| q.id).collect();
        Ok(ImageCacheState { cached_images, queued_images })
    }

    /// Queues image `id` for prefetching into this node's cache; a task fetches the queue in order.
    /// Idempotent: an image already queued, or prefetched and still whole, is left as it is.
    /// `NotFound` for an image the caller cannot see; `Invalid` unless it is active with data, or
    /// when its chunks would not fit in the cache's budget. Nothing changes when it fails.
    pub async fn queue(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        self.check(ctx)?;
        let image = self.images.get(ctx, id).await?;
        let file = self.open(&image).await?;
        let residency = file.store.cache_residency(&file.manifest);
        let budget = file.store.chunk_cache().budget();
        if residency.chunk_bytes > budget {
            return Err(CoreError::Invalid(format!(
                "Image {id} takes {} bytes in the cache, more than this node's cache of {budget} bytes",
                residency.chunk_bytes
            )));
        }
        let mut book = self.lock();
        let whole = book.prefetched.contains_key(&id) && residency.is_whole();
        if whole || book.queue.iter().any(|q| q.id == id) {
            return Ok(());
        }
        book.next_ticket += 1;
        let ticket = book.next_ticket;
        book.queue.push_back(Queued { id, ticket, file });
        if !book.worker {
            book.worker = true;
            let service = self.clone();
            tokio::spawn(async move { service.prefetch_queue().await });
        }
        Ok(())
    }

    /// Prefetches the queue's images in order until it is empty. An image is recorded as prefetched
    /// only if it is still at the head of the queue when its fetch ends (not removed meanwhile).
    async fn prefetch_queue(&self) {
        loop {
            let (id, ticket, file) = {
                let mut book = self.lock();
                let Some(head) = book.queue.front() else {
                    book.worker = false;
                    return;
                };
                (head.id, head.ticket, head.file.clone())
            };
            let fetched = file.store.prefetch(&file.manifest).await;
            let mut book = self.lock();
            if book.queue.front().is_some_and(|q| q.ticket == ticket) {
                book.queue.pop_front();
                match fetched {
                    Ok(chunks) => {
                        tracing::info!(image = %id, chunks, "image prefetched into the chunk cache");
                        book.prefetched.insert(id, Prefetched { file, at: SystemTime::now() });
                    }
                    Err(e) => tracing::warn!(image = %id, error = %e, "image prefetch failed"),
                }
            }
        }
    }

    /// Removes image `id` from the queue and from the cache (its chunks are dropped from this node's
    /// cache, including those it shares with other images). `NotFound` when the image is neither queued,
    /// prefetched, nor visible to the caller; an image not cached is left as it is.
    pub async fn remove(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        self.check(ctx)?;
        let (queued, prefetched) = {
            let mut book = self.lock();
            let before = book.queue.len();
            book.queue.retain(|q| q.id != id);
            (book.queue.len() != before, book.prefetched.remove(&id))
        };
        let file = match prefetched {
            Some(p) => Some(p.file),
            None => match self.images.get(ctx, id).await {
                Ok(image) => self.open(&image).await.ok(),
                Err(CoreError::NotFound(_)) if queued => None,
                Err(e) => return Err(e),
            },
        };
        if let Some(file) = file {
            file.store.evict_from_cache(&file.manifest);
        }
        Ok(())
    }

    /// Clears `target`: the whole chunk cache of this node (every cached image, and the chunks other
    /// reads keep hot), the prefetch queue (a prefetch in flight completes but is not recorded), or both.
    pub async fn clear(&self, ctx: &RequestContext, target: ClearTarget) -> Result<()> {
        self.check(ctx)?;
        let mut book = self.lock();
        if matches!(target, ClearTarget::Queue | ClearTarget::Both) {
            book.queue.clear();
        }
        if matches!(target, ClearTarget::Cache | ClearTarget::Both) {
            book.prefetched.clear();
            self.images.store.chunk_cache().clear();
        }
        Ok(())
    }
}
