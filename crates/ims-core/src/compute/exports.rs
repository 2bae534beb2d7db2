//! NBD export names of volumes: minted for a caller who may change the volume, read-write, resolved by
//! the NBD server; and the persistence of what a client wrote.
//!
//! The rules are those of image exports (`crate::nbd_exports`): a name is 256 random bits shown once, the
//! catalog keeps its SHA-256, expired and revoked names open nothing.

use std::time::Duration;

use chrono::Utc;
use ims_catalog::{CatalogError, Volume, VolumeExport};
use ims_store::{ChunkStore, Manifest};
use rand::RngCore;
use uuid::Uuid;

use super::ComputeService;
use crate::nbd_exports::{name_hash, MintedExport, MAX_EXPORT_TTL};
use crate::{CoreError, RequestContext, Result};

/// What a volume export name opens: the volume as recorded when the connection opened, its current
/// manifest, and the store view (encryption domain) its data is read and written through.
pub struct OpenedVolume {
    pub volume: Volume,
    pub manifest: Manifest,
    pub store: ChunkStore,
}

impl ComputeService {
    /// Mints a read-write NBD export name of volume `id`, valid for `ttl` (1 s to 7 days). The caller
    /// must see the volume and be allowed to change it. Also deletes expired volume export names.
    pub async fn mint_volume_export(&self, ctx: &RequestContext, id: Uuid, ttl: Duration) -> Result<MintedExport> {
        let caller = Self::writer(ctx)?;
        if ttl.is_zero() || ttl > MAX_EXPORT_TTL {
            return Err(CoreError::Invalid(format!(
                "an NBD export is valid for 1 to {} seconds",
                MAX_EXPORT_TTL.as_secs()
            )));
        }
        let volume = self.get_volume(ctx, id).await?;
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let name = hex::encode(secret);
        let now = Utc::now();
        let expires_at = now + chrono::Duration::from_std(ttl).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let record = VolumeExport {
            name_hash: name_hash(&name),
            volume_id: volume.id,
            created_by: caller.user_id.clone(),
            created_at: now,
            expires_at,
        };
        self.catalog().compute.create_export(&record).await?;
        if let Err(e) = self.catalog().compute.purge_expired_exports(now).await {
            tracing::warn!(error = %e, "could not delete expired volume export names");
        }
        Ok(MintedExport { name, expires_at })
    }

    /// Revokes `name`, an export of volume `id`; open connections keep their export. `NotFound` (nothing
    /// changes) when it is not a live export of that volume.
    pub async fn revoke_volume_export(&self, ctx: &RequestContext, id: Uuid, name: &str) -> Result<()> {
        Self::writer(ctx)?;
        self.get_volume(ctx, id).await?;
        self.catalog().compute.revoke_export(id, &name_hash(name)).await.map_err(|e| match e {
            CatalogError::NotFound(_) => CoreError::NotFound(format!("volume {id} has no such NBD export")),
            other => CoreError::from(other),
        })
    }

    /// The volume `name` opens now, or `None` when the name is unknown, revoked or expired, or its volume
    /// is gone.
    pub async fn open_volume_export(&self, name: &str) -> Result<Option<OpenedVolume>> {
        let compute = &self.catalog().compute;
        let Some(export) = compute.find_export(&name_hash(name)).await? else { return Ok(None) };
        if export.expires_at <= Utc::now() {
            return Ok(None);
        }
        let volume = match compute.get_volume(export.volume_id).await {
            Ok(volume) => volume,
            Err(CatalogError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let store = self.volume_store(&volume).await?;
        let manifest = store
            .load_manifest(&volume.manifest_id)
            .await
            .map_err(|e| CoreError::Corrupt(format!("volume {}: its data cannot be read: {e}", volume.id)))?;
        Ok(Some(OpenedVolume { volume, manifest, store }))
    }

    /// Saves `manifest` (the volume's content after writes) and points volume `id` at it. `NotFound` if
    /// the volume was deleted meanwhile (the manifest is then left to garbage collection); `Invalid` if
    /// the manifest's size is not the volume's.
    pub async fn persist_volume_manifest(&self, id: Uuid, manifest: &Manifest) -> Result<Volume> {
        let compute = &self.catalog().compute;
        let volume = compute.get_volume(id).await?;
        if manifest.size != volume.size {
            return Err(CoreError::Invalid(format!(
                "volume {id} holds {} bytes; a manifest of {} bytes cannot be its content",
                volume.size, manifest.size
            )));
        }
        let manifest_id = self.images.store.save_manifest(manifest).await?;
        Ok(compute.set_volume_manifest(id, &manifest_id, crate::now()).await?)
    }
}
