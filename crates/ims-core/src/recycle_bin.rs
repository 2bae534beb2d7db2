//! The recycle bin use cases: deleting into the bin, listing, restoring and purging binned images, and
//! the purge of images whose retention ended.
//!
//! A binned image is deleted for Glance and IMS alike (404, absent from lists, not counted in quotas)
//! but keeps its data: its manifest stays live for garbage collection until the image is purged. Only
//! images at rest are binned (queued, active, deactivated, killed); an image whose data is being
//! written is deleted for good, since its data would be incomplete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ims_catalog::{BinQuery, BinnedImage, CatalogError, Image, ImageStatus};
use uuid::Uuid;

use crate::{CoreError, ImageService, Policy, RequestContext, Result};

/// How long a deleted image stays in the bin unless the operator says otherwise: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most binned images one listing returns.
pub const MAX_BIN_LIST: u32 = 1000;
/// Most images one round of the scheduled purge removes (the next round takes the rest).
const PURGE_BATCH: u32 = 500;

/// The bin's retention in seconds, shared by every clone of an [`ImageService`] (0: the bin is off).
#[derive(Debug, Clone)]
pub(crate) struct Retention(Arc<AtomicU64>);

impl Default for Retention {
    fn default() -> Retention {
        Retention(Arc::new(AtomicU64::new(DEFAULT_RETENTION.as_secs())))
    }
}

/// What a deletion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The image went to the recycle bin; it can be restored until this time.
    Binned { purge_after: chrono::DateTime<chrono::Utc> },
    /// The image was deleted for good.
    Deleted,
}

fn bin_not_found(id: Uuid) -> CoreError {
    CoreError::NotFound(format!("No image {id} in the recycle bin"))
}

impl ImageService {
    /// How long deleted images stay in the bin; zero when the bin is off.
    pub fn recycle_bin_retention(&self) -> Duration {
        Duration::from_secs(self.retention.0.load(Ordering::Relaxed))
    }

    /// Sets the bin's retention for this service and every clone of it (whole seconds; zero turns the bin
    /// off: deletions are final at once). Images already binned keep the purge time they were given.
    pub fn set_recycle_bin_retention(&self, retention: Duration) {
        self.retention.0.store(retention.as_secs(), Ordering::Relaxed);
    }

    /// Deletes the image: into the bin when the bin is on, the image is at rest and `force` is false;
    /// otherwise for good (see [`ImageService::delete_now`]). `Forbidden` if the caller may not delete it
    /// or it is protected; `NotFound` if the caller cannot see it. Audited as `image.delete` (with the
    /// purge time as detail when binned).
    pub async fn delete_image(&self, ctx: &RequestContext, id: Uuid, force: bool) -> Result<Deletion> {
        let retention = self.recycle_bin_retention();
        if force || retention.is_zero() {
            return self.delete_now(ctx, id).await.map(|()| Deletion::Deleted);
        }
        let image = self.get(ctx, id).await?;
        Policy::check_delete(ctx, &image)?;
        if !matches!(
            image.status,
            ImageStatus::Queued | ImageStatus::Active | ImageStatus::Deactivated | ImageStatus::Killed
        ) {
            return self.delete_now(ctx, id).await.map(|()| Deletion::Deleted);
        }
        let at = crate::now();
        let purge_after = at + chrono::Duration::seconds(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX / 2));
        let mut event = ctx.event("image.delete", format!("image:{id}"));
        event.detail = Some(format!("moved to the recycle bin until {}", purge_after.to_rfc3339()));
        self.catalog.recycle_bin.move_to_bin(id, image.status, at, purge_after, &event).await.map_err(|e| match e {
            CatalogError::NotFound(_) => CoreError::NotFound(format!("No image found with ID {id}")),
            CatalogError::Conflict(m) => CoreError::Conflict(format!("Image {id} changed meanwhile: {m}")),
            other => other.into(),
        })?;
        Ok(Deletion::Binned { purge_after })
    }

    /// The binned images the caller may see: its project's; with `all_projects`, every project's (admins
    /// only, else `Forbidden`). Oldest binned first, after `marker`, at most `limit` (capped at
    /// [`MAX_BIN_LIST`]). `Invalid` if the marker is not one of them.
    pub async fn list_bin(
        &self,
        ctx: &RequestContext,
        all_projects: bool,
        marker: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<BinnedImage>> {
        let caller = Policy::require_caller(ctx)?;
        if all_projects {
            Policy::check_admin(ctx)?;
        }
        let query = BinQuery {
            owner: (!all_projects).then(|| caller.project_id.clone()),
            purge_due_by: None,
            marker,
            limit: limit.clamp(1, MAX_BIN_LIST),
        };
        Ok(self.catalog.recycle_bin.list(&query).await?)
    }

    /// The binned image `id`, if the caller may manage it (its owner project or an admin); else
    /// `NotFound`, never revealing another project's bin.
    pub async fn get_binned(&self, ctx: &RequestContext, id: Uuid) -> Result<BinnedImage> {
        let caller = Policy::require_caller(ctx)?;
        let binned = self.catalog.recycle_bin.get(id).await.map_err(|e| match e {
            CatalogError::NotFound(_) => bin_not_found(id),
            other => other.into(),
        })?;
        if !caller.is_admin() && caller.project_id != binned.image.owner {
            return Err(bin_not_found(id));
        }
        Ok(binned)
    }

    /// Brings the binned image `id` back, with the same id, data and checksums, in the status it had.
    /// The owner's members and admins may; a non-admin's restore counts against the owner's image quota
    /// (checked atomically with the restore) and byte quota (checked just before it; a concurrent upload
    /// may pass that one together with it): past either, `QuotaExceeded` and nothing changes. `NotFound`
    /// if it is not in the caller's bin. Audited as `image.restore`.
    pub async fn restore(&self, ctx: &RequestContext, id: Uuid) -> Result<Image> {
        let binned = self.get_binned(ctx, id).await?;
        Policy::check_modify(ctx, &binned.image)?;
        let owner = binned.image.owner.clone();
        if !ctx.is_admin() {
            if let Some(limit) = self.image_bytes_quota(&owner).await? {
                let held = self.catalog.images.usage(&owner).await?.total_size;
                let size = binned.image.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
                if held.saturating_add(size) > limit {
                    return Err(self.bytes_refusal(&owner).await?);
                }
            }
        }
        let quota = if ctx.is_admin() { None } else { Some(self.private_image_quota(&owner).await?) };
        let event = ctx.event("image.restore", format!("image:{id}"));
        self.catalog.recycle_bin.restore(id, quota, crate::now(), &event).await.map_err(|e| match e {
            CatalogError::LimitExceeded(_) => CoreError::QuotaExceeded(format!(
                "Quota exceeded: restoring image {id} would give project {owner} more than {} images",
                quota.unwrap_or_default()
            )),
            CatalogError::NotFound(_) => bin_not_found(id),
            other => other.into(),
        })
    }

    /// Deletes the binned image `id` for good now: its record stays deleted, its copies' manifests in
    /// extra stores are dropped, and its data is reclaimed by the next garbage collection of each store. Same rights as restoring; `Forbidden` for a protected image.
    /// Audited as `image.purge`.
    pub async fn purge(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        let binned = self.get_binned(ctx, id).await?;
        Policy::check_delete(ctx, &binned.image)?;
        let event = ctx.event("image.purge", format!("image:{id}"));
        self.catalog.recycle_bin.purge(id, None, &event).await.map_err(|e| match e {
            CatalogError::NotFound(_) => bin_not_found(id),
            CatalogError::Conflict(m) => CoreError::Forbidden(m),
            other => other.into(),
        })?;
        self.drop_store_copies(&binned.image).await;
        Ok(())
    }

    /// The node's scheduled purge: removes every binned image whose retention ended, in rounds of
    /// [`PURGE_BATCH`], each purge audited as `image.purge` with no caller. Safe on every node at once (an
    /// image restored or purged meanwhile is skipped). Returns how many it purged.
    pub async fn purge_expired(&self) -> Result<u64> {
        let mut purged = 0;
        loop {
            let now = crate::now();
            let query = BinQuery { owner: None, purge_due_by: Some(now), marker: None, limit: PURGE_BATCH };
            let due = self.catalog.recycle_bin.list(&query).await?;
            let mut progressed = false;
            for binned in &due {
                let id = binned.image.id;
                let ctx = RequestContext::new(format!("req-{}", Uuid::new_v4()), None);
                let mut event = ctx.event("image.purge", format!("image:{id}"));
                event.project_id = Some(binned.image.owner.clone());
                event.detail = Some("recycle bin retention ended".into());
                match self.catalog.recycle_bin.purge(id, Some(now), &event).await {
                    Ok(()) => {
                        self.drop_store_copies(&binned.image).await;
                        purged += 1;
                        progressed = true;
                    }
                    Err(CatalogError::NotFound(_) | CatalogError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if due.len() < PURGE_BATCH as usize || !progressed {
                return Ok(purged);
            }
        }
    }
}
