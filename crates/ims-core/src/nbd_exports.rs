//! NBD export names: minting and revoking the secret names that open an image's guest disk over NBD,
//! and resolving a name to the guest disk the NBD server serves.
//!
//! NBD carries no credentials, so the name is the credential: 256 random bits, shown once to the caller
//! who minted it. The catalog stores only its SHA-256, with the image and an expiry, so any node sharing
//! the catalog resolves a name minted on another and the catalog never holds a usable name.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ims_catalog::{CatalogError, ImageStatus, NbdExport};
use ims_formats::{DiskImage, Format};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use uuid::Uuid;

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
}

impl NbdExportService {
    pub fn new(images: ImageService) -> NbdExportService {
        NbdExportService { images }
    }

    /// Mints a name opening the guest disk of image `id` for `ttl` (at most [`MAX_EXPORT_TTL`]). The
    /// caller must be allowed to download the image, and the image must be active with data: otherwise
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
        if image.status != ImageStatus::Active || image.manifest_id.is_none() {
            return Err(CoreError::Conflict(format!("image {id} is not active; only active images can be exported")));
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
    /// reader (raw for formats without one). `None` when `name` was never minted, was revoked, has
    /// expired, or its image is no longer active. Runs format parsing on a blocking thread.
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
        let Some(manifest_id) = image.manifest_id.clone().filter(|_| image.status == ImageStatus::Active) else {
            return Ok(None);
        };
        let store = self.images.store_for_reading(&image).await?;
        let manifest = self.images.store.load_manifest(&manifest_id).await.map_err(|e| {
            CoreError::Corrupt(format!("image {}: its data cannot be read: {e}", image.id))
        })?;
        let format = image.disk_format.as_deref().and_then(inspected_format).unwrap_or(Format::Raw);
        let reader = ManifestReader::new(store, Arc::new(manifest), Handle::current());
        let limits = ims_formats::Limits::default();
        let disk = tokio::task::spawn_blocking(move || ims_formats::open(Arc::new(reader), format, &limits))
            .await
            .map_err(|e| CoreError::Unavailable(format!("opening the guest disk failed to run: {e}")))?
            .map_err(|e| CoreError::Corrupt(format!("image {}: its guest disk cannot be opened: {e}", image.id)))?;
        Ok(Some(Arc::from(disk)))
    }

    /// Deletes expired names from the catalog; returns how many. Expired names open nothing even before.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.images.catalog.nbd_exports.purge_expired(Utc::now()).await.map_err(CoreError::from)
    }
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
