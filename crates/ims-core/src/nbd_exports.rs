//! NBD export names: minting and revoking the secret names that open an image's guest disk over NBD,
//! and resolving a name to the guest disk the NBD server serves.
//!
//! Lazy loading: an image being quick-imported (`importing` with `__lazyloading=true`) is readable
//! before its import ends. Its guest disk is then read straight from the bucket object it is imported
//! from (ranged reads, through the RAW or ZVHD2 reader, whose block index makes that random access):
//! quick import stores that file as it is, so both give the same bytes. A connection opened once the
//! image is active reads the chunk store.
//!
//! NBD carries no credentials, so the name is the credential: 256 random bits, shown once to the caller
//! who minted it. The catalog stores only its SHA-256, with the image and an expiry, so any node sharing
//! the catalog resolves a name minted on another and the catalog never holds a usable name.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ims_catalog::{CatalogError, Image, ImageStatus, NbdExport};
use ims_formats::{DiskImage, Format};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use uuid::Uuid;

use crate::bucket_reader::BucketObjectReader;
use crate::buckets::{parse_bucket_url, BucketStore};
use crate::inspection::{inspected_format, ManifestReader};
use crate::{CoreError, ImageService, Policy, RequestContext, Result};

/// Longest validity a caller may ask for.
pub const MAX_EXPORT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Validity of a name when the caller asks for none.
pub const DEFAULT_EXPORT_TTL: Duration = Duration::from_secs(3600);

/// A freshly minted export name.
#[derive(Debug, Clone)]
pub struct MintedExport {
    /// The secret name (64 lowercase hex digits); not stored anywhere, so it cannot be shown again.
    pub name: String,
    /// The name opens nothing from this instant on.
    pub expires_at: DateTime<Utc>,
}

/// Export names of images' guest disks.
#[derive(Clone)]
pub struct NbdExportService {
    images: ImageService,
    /// The buckets lazily loaded images are read from while their quick import runs (none: such images
    /// open only once active).
    buckets: Option<BucketStore>,
}

impl NbdExportService {
    pub fn new(images: ImageService) -> NbdExportService {
        NbdExportService { images, buckets: None }
    }

    /// The same service, opening images that are being quick-imported from `buckets` over the bucket
    /// object (see the module doc).
    pub fn with_buckets(mut self, buckets: BucketStore) -> NbdExportService {
        self.buckets = Some(buckets);
        self
    }

    /// Mints a name opening the guest disk of image `id` for `ttl` (at most [`MAX_EXPORT_TTL`]). The
    /// caller must be allowed to download the image, and the image must be active with data, or being
    /// quick-imported with lazy loading (see the module doc): otherwise
    /// `NotFound`, `Forbidden` or `Conflict`, and nothing is stored. Also deletes expired names.
    pub async fn mint(&self, ctx: &RequestContext, id: Uuid, ttl: Duration) -> Result<MintedExport> {
        let caller = ctx.caller.as_ref().ok_or_else(|| CoreError::Unauthenticated("authentication required".into()))?;
        if ttl.is_zero() || ttl > MAX_EXPORT_TTL {
            return Err(CoreError::Invalid(format!(
                "an NBD export is valid for 1 to {} seconds",
                MAX_EXPORT_TTL.as_secs()
            )));
        }
        let image = self.images.get(ctx, id).await?;
        Policy::check_download(ctx, &image)?;
        let active = image.status == ImageStatus::Active && image.manifest_id.is_some();
        if !active && lazy_source(&image).is_none() {
            return Err(CoreError::Conflict(format!(
                "image {id} is {}; only active images, and images being quick-imported with lazy loading, can be exported",
                image.status
            )));
        }
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let name = hex::encode(secret);
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(ttl).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let record = NbdExport {
            name_hash: name_hash(&name),
            image_id: id,
            created_by: caller.user_id.clone(),
            created_at: now,
            expires_at,
        };
        self.images.catalog.nbd_exports.create(&record).await.map_err(CoreError::from)?;
        // Expired names open nothing already; deleting them here keeps the table small.
        if let Err(e) = self.purge_expired().await {
            tracing::warn!(error = %e, "could not delete expired NBD export names");
        }
        Ok(MintedExport { name, expires_at })
    }

    /// Revokes `name`, an export of image `id`: new NBD connections can no longer open it (open ones
    /// keep reading until they close). The caller must be allowed to download the image. `NotFound` when
    /// `name` is not a live export of that image; nothing changes then.
    pub async fn revoke(&self, ctx: &RequestContext, id: Uuid, name: &str) -> Result<()> {
        let image = self.images.get(ctx, id).await?;
        Policy::check_download(ctx, &image)?;
        self.images.catalog.nbd_exports.revoke(id, &name_hash(name)).await.map_err(|e| match e {
            CatalogError::NotFound(_) => CoreError::NotFound(format!("image {id} has no such NBD export")),
            other => CoreError::from(other),
        })
    }

    /// The guest disk `name` opens now, decoded on the fly from the chunk store by the image's format
    /// reader (raw for formats without one); for an image being quick-imported with lazy loading, from
    /// its bucket object. `None` when `name` was never minted, was revoked, has expired, or its image is
    /// neither active nor being quick-imported. Runs format parsing on a blocking thread.
    pub async fn open(&self, name: &str) -> Result<Option<Arc<dyn DiskImage>>> {
        let catalog = &self.images.catalog;
        let Some(export) = catalog.nbd_exports.find(&name_hash(name)).await.map_err(CoreError::from)? else {
            return Ok(None);
        };
        if export.expires_at <= Utc::now() {
            return Ok(None);
        }
        let image = match catalog.images.get(export.image_id).await {
            Ok(image) => image,
            Err(CatalogError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(CoreError::from(e)),
        };
        if let (Some((bucket, key)), Some(buckets)) = (lazy_source(&image), &self.buckets) {
            return self.open_lazily(&image, buckets, bucket, key).await.map(Some);
        }
        let Some(manifest_id) = image.manifest_id.clone().filter(|_| image.status == ImageStatus::Active) else {
            return Ok(None);
        };
        let store = self.images.store_for_reading(&image).await?;
        let replicas = self.images.replicas_of(&image, &store);
        let manifest = self.images.load_manifest_replicated(&image, &manifest_id, &store, &replicas).await.map_err(|e| {
            CoreError::Corrupt(format!("image {}: its data cannot be read: {e}", image.id))
        })?;
        let format = image.disk_format.as_deref().and_then(inspected_format).unwrap_or(Format::Raw);
        let reader = ManifestReader::new(store, Arc::new(manifest), Handle::current()).with_replicas(image.id, replicas);
        let limits = ims_formats::Limits::default();
        let disk = tokio::task::spawn_blocking(move || ims_formats::open(Arc::new(reader), format, &limits))
            .await
            .map_err(|e| CoreError::Unavailable(format!("opening the guest disk failed to run: {e}")))?
            .map_err(|e| CoreError::Corrupt(format!("image {}: its guest disk cannot be opened: {e}", image.id)))?;
        Ok(Some(Arc::from(disk)))
    }

    /// The guest disk of `image`, being quick-imported from `bucket:key`, read from that object.
    async fn open_lazily(&self, image: &Image, buckets: &BucketStore, bucket: String, key: String) -> Result<Arc<dyn DiskImage>> {
        let object = buckets.head_unchecked(&bucket, &key).await?;
        let format = match image.disk_format.as_deref() {
            Some("zvhd2") => Format::Zvhd2,
            _ => Format::Raw,
        };
        let reader = BucketObjectReader::new(buckets.clone(), bucket, object, Handle::current());
        let limits = ims_formats::Limits::default();
        let id = image.id;
        tokio::task::spawn_blocking(move || ims_formats::open(Arc::new(reader), format, &limits))
            .await
            .map_err(|e| CoreError::Unavailable(format!("opening the guest disk failed to run: {e}")))?
            .map(Arc::from)
            .map_err(|e| CoreError::Corrupt(format!("image {id}: the file it is imported from cannot be opened: {e}")))
    }

    /// Deletes expired names from the catalog; returns how many. Expired names open nothing even before.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.images.catalog.nbd_exports.purge_expired(Utc::now()).await.map_err(CoreError::from)
    }
}

/// The bucket object (`bucket`, `key`) that `image` is being quick-imported from with lazy loading, if it
/// is: `importing`, `__lazyloading=true`, stored as RAW or ZVHD2, from `__image_location`.
fn lazy_source(image: &Image) -> Option<(String, String)> {
    if image.status != ImageStatus::Importing || image.properties.get("__lazyloading").map(String::as_str) != Some("true") {
        return None;
    }
    if !matches!(image.disk_format.as_deref(), Some("raw" | "zvhd2")) {
        return None;
    }
    parse_bucket_url(image.properties.get("__image_location")?).ok()
}

/// What the catalog stores for `name`: its SHA-256, in lowercase hex.
pub(crate) fn name_hash(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stored_as_sha256() {
        assert_eq!(name_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
