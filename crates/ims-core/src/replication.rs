//! The receiving side of copies between regions: what another region's `CopyImageCrossRegion` job asks
//! of this one (see [`crate::regions`]). Admins only: the sending region holds the credentials of a
//! service user that is an admin here.
//!
//! The protocol: the sender asks which of an image's chunks this store lacks ([`ReplicationService::missing_chunks`]),
//! sends those as stored objects ([`ReplicationService::put_chunk`], each verified against its id before it
//! is stored), then registers the image from its manifest ([`ReplicationService::register_image`]), which
//! checks that every chunk is here.
//!
//! Garbage collection: chunks sent here are protected by their age until the image is registered (the
//! sweep deletes only chunks older than its grace period). A chunk this store already holds counts as
//! present only if it is younger than half the grace period; an older one is stored again (from this
//! store's own copy) when it is asked about or registered, exactly as the upload path does with chunks it
//! reuses (see `ims_store::gc`), so that a sweep running meanwhile cannot delete it.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use ims_catalog::{CatalogError, Image, ImageStatus, Visibility};
use ims_store::cdc::MAX_CHUNK;
use ims_store::{ChunkId, StoreError};
use uuid::Uuid;

use crate::regions::{ImageRegistration, MAX_CHUNKS_PER_QUERY};
use crate::{CoreError, ImageService, Policy, RequestContext, Result};

/// Chunks looked at (or refreshed) at once.
const CONCURRENCY: usize = 16;
/// A stored chunk object is its plaintext (possibly compressed) plus a codec tag: never much larger.
const MAX_CHUNK_OBJECT: usize = MAX_CHUNK + 1024;

/// The replication use cases of one node.
#[derive(Clone)]
pub struct ReplicationService {
    images: ImageService,
}

impl ImageService {
    /// The replication use cases over this node's catalog and store.
    pub fn replication(&self) -> ReplicationService {
        ReplicationService { images: self.clone() }
    }
}

impl ReplicationService {
    /// Of the chunks `ids` (at most [`MAX_CHUNKS_PER_QUERY`], else `Invalid`), those this store lacks,
    /// in the order asked, without repeats. A chunk that is present but older than half the grace period
    /// is stored again first, so that it stays until a registration names it. Admins only (`Forbidden`).
    pub async fn missing_chunks(&self, ctx: &RequestContext, ids: Vec<ChunkId>) -> Result<Vec<ChunkId>> {
        Policy::check_admin(ctx)?;
        if ids.len() > MAX_CHUNKS_PER_QUERY {
            return Err(CoreError::Invalid(format!("at most {MAX_CHUNKS_PER_QUERY} chunk ids per request")));
        }
        let mut seen = BTreeSet::new();
        let ids: Vec<ChunkId> = ids.into_iter().filter(|id| seen.insert(*id)).collect();
        self.absent(&ids).await
    }

    /// Stores `object`, the stored form of a plaintext chunk of `length` bytes, as chunk `id`, after
    /// decoding it and checking that its plaintext is `length` bytes hashing to `id` (`Invalid`
    /// otherwise, and nothing is stored). Encrypted chunk objects are refused (their keys stay in their
    /// region). Idempotent: a chunk already present is left as it is. Admins only.
    pub async fn put_chunk(&self, ctx: &RequestContext, id: ChunkId, length: usize, object: Bytes) -> Result<()> {
        Policy::check_admin(ctx)?;
        if length == 0 || length > MAX_CHUNK {
            return Err(CoreError::Invalid(format!("chunk length {length} is not in 1..={MAX_CHUNK}")));
        }
        if object.len() > MAX_CHUNK_OBJECT {
            return Err(CoreError::TooLarge(format!("a chunk object is at most {MAX_CHUNK_OBJECT} bytes")));
        }
        let verify = object.clone();
        tokio::task::spawn_blocking(move || ims_store::chunk::decode(verify, &id, length))
            .await
            .map_err(|e| CoreError::Unavailable(format!("chunk verification did not run: {e}")))?
            .map_err(|e| CoreError::Invalid(format!("chunk {id} does not verify: {e}")))?;
        let store = &self.images.store;
        store.objects().put(&id.object_path(), object.into()).await.map_err(StoreError::from)?;
        Ok(())
    }

    /// Registers an active private image of the project named `registration.project_name` from its
    /// manifest, with the given metadata and hashes. Returns `Ok(Err(missing))`, storing nothing, if
    /// chunks of the manifest are not in this store (send them, then register again). Idempotent: when
    /// an image with this id already came from the same registration (same owner and checksum) it is
    /// returned as it is. `NotFound` for an unknown project; `Invalid` for a bad id, manifest or size, or
    /// an id taken by another image; `QuotaExceeded` past the project's image quota. Admins only.
    pub async fn register_image(
        &self,
        ctx: &RequestContext,
        registration: ImageRegistration,
    ) -> Result<std::result::Result<Image, Vec<ChunkId>>> {
        Policy::check_admin(ctx)?;
        let r = registration;
        let id = Uuid::parse_str(&r.image_id).map_err(|_| CoreError::Invalid(format!("bad image id {:?}", r.image_id)))?;
        let catalog = &self.images.catalog;
        let project = catalog.identity.find_project(&r.project_name).await.map_err(|e| match e {
            CatalogError::NotFound(_) => CoreError::NotFound(format!("no project named {:?} in this region", r.project_name)),
            other => other.into(),
        })?;
        match catalog.images.get(id).await {
            Ok(existing) if existing.owner == project.id && existing.checksum == r.checksum && existing.status == ImageStatus::Active => {
                return Ok(Ok(existing));
            }
            Ok(_) => return Err(CoreError::Invalid(format!("image id {id} is taken by another image"))),
            Err(CatalogError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let name = r.name.trim();
        if name.is_empty() || name.len() > 255 {
            return Err(CoreError::Invalid("\"name\" must have 1 to 255 characters".into()));
        }
        r.manifest.validate().map_err(|e| CoreError::Invalid(format!("manifest: {e}")))?;
        if r.manifest.size != r.size {
            return Err(CoreError::Invalid(format!("the manifest covers {} bytes, not {}", r.manifest.size, r.size)));
        }
        let size = i64::try_from(r.size).map_err(|_| CoreError::Invalid("size out of range".into()))?;
        let virtual_size = r.virtual_size.map(i64::try_from).transpose().map_err(|_| CoreError::Invalid("virtual_size out of range".into()))?;
        let chunks: Vec<ChunkId> = r.manifest.chunk_ids().copied().collect::<BTreeSet<_>>().into_iter().collect();
        let absent = self.absent(&chunks).await?;
        if !absent.is_empty() {
            return Ok(Err(absent));
        }
        let store = &self.images.store;
        let manifest_id = store.save_manifest(&r.manifest).await?;
        let now = crate::now();
        let mut image = Image::new(id, &project.id, now);
        image.name = Some(name.to_string());
        image.visibility = Visibility::Private;
        image.status = ImageStatus::Active;
        image.disk_format = r.disk_format;
        image.container_format = r.container_format;
        image.min_disk = r.min_disk;
        image.min_ram = r.min_ram;
        image.size = Some(size);
        image.virtual_size = virtual_size;
        image.checksum = r.checksum;
        image.os_hash_algo = r.os_hash_algo;
        image.os_hash_value = r.os_hash_value;
        image.manifest_id = Some(manifest_id.clone());
        image.tags = r.tags.into_iter().collect();
        image.properties = r.properties;
        image.properties.insert("__imagetype".into(), "private".into());
        image.properties.insert("active_at".into(), now.to_rfc3339());
        let quota = self.images.private_image_quota(&project.id).await?;
        let event = ctx.event("image.replicate", format!("image:{id}"));
        if let Err(e) = catalog.images.create_within_quota(&image, quota, &event).await {
            let _ = store.delete_manifest(&manifest_id).await;
            return Err(match e {
                CatalogError::LimitExceeded(_) => CoreError::QuotaExceeded(format!(
                    "Quota exceeded: project {} may own at most {quota} images",
                    r.project_name
                )),
                CatalogError::Conflict(_) => CoreError::Invalid(format!("image id {id} is taken by another image")),
                other => other.into(),
            });
        }
        Ok(Ok(image))
    }

    /// Of `ids`, those not in the store; present ones older than half the grace period are stored again.
    async fn absent(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let store = self.images.store.clone();
        let fresh_for = store.gc_grace() / 2;
        let found: Vec<Option<ChunkId>> = futures::stream::iter(ids.iter().copied())
            .map(|id| {
                let store = store.clone();
                async move { Ok::<_, CoreError>((!present(&store, &id, fresh_for).await?).then_some(id)) }
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}

/// Whether chunk `id` is in the store, storing it again (same object) if it is older than `fresh_for`.
async fn present(store: &ims_store::ChunkStore, id: &ChunkId, fresh_for: Duration) -> Result<bool> {
    let path = id.object_path();
    let meta = match store.objects().head(&path).await {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(StoreError::from(e).into()),
    };
    let modified: SystemTime = meta.last_modified.into();
    if SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO) < fresh_for {
        return Ok(true);
    }
    let object = match store.objects().get(&path).await {
        Ok(r) => r.bytes().await.map_err(StoreError::from)?,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(StoreError::from(e).into()),
    };
    store.objects().put(&path, object.into()).await.map_err(StoreError::from)?;
    Ok(true)
}
