//! The recycle bin: deleted images that keep their data, and their id, until they are purged.
//!
//! A binned image is deleted for every other purpose (status `deleted`: `get`, lists, quotas and
//! memberships ignore it), but its manifest stays live for garbage collection
//! ([`crate::ImageRepository::live_manifests`]) and it can be restored, with the same id, data and
//! checksums, to the status it had. Purging it (by hand or once its retention ends) makes the deletion
//! final: the record stays deleted, its data is reclaimed by the next garbage collection.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{AuditEvent, Image, ImageStatus, Result};

/// An image in the recycle bin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinnedImage {
    /// The record as it was when binned: its status is the one a restore brings back.
    pub image: Image,
    /// When it was moved to the bin.
    pub binned_at: DateTime<Utc>,
    /// From this time on the background purge may remove it.
    pub purge_after: DateTime<Utc>,
}

/// Which binned images a listing returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinQuery {
    /// Only those owned by this project; every project's when `None`.
    pub owner: Option<String>,
    /// Only those whose `purge_after` is this time or earlier.
    pub purge_due_by: Option<DateTime<Utc>>,
    /// Only those binned after this one in the listing order (binned time, then id).
    pub marker: Option<Uuid>,
    /// At most this many.
    pub limit: u32,
}

#[async_trait]
pub trait RecycleBinRepository: Send + Sync {
    /// Moves the live image `id` to the bin if its status is `expected` and it is not protected: it
    /// becomes `deleted` as of `at` (its `updated_at` too), restorable until purged, purgeable from
    /// `purge_after` on. `NotFound` if it is missing or deleted (binned included); `Conflict` if its
    /// status differs from `expected` or it is protected. Atomic with `event`.
    async fn move_to_bin(
        &self,
        id: Uuid,
        expected: ImageStatus,
        at: DateTime<Utc>,
        purge_after: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<()>;

    /// The binned image `id`, or `NotFound` if it is not in the bin (never was, restored, or purged).
    async fn get(&self, id: Uuid) -> Result<BinnedImage>;

    /// The binned images matching `query`, oldest binned first (then by id).
    /// `Invalid` if the marker is not a binned image the query would return.
    async fn list(&self, query: &BinQuery) -> Result<Vec<BinnedImage>>;

    /// Takes the image `id` out of the bin, back to the status it had, with `updated_at` = `at`, and
    /// returns it. When `max_owned` is given, only if its owner then owns at most that many non-deleted
    /// images (this one included); otherwise `LimitExceeded` and nothing changes. The count and the
    /// restore happen in one transaction serialized with the owner's quota-checked creations, so they never
    /// pass the limit together. `NotFound` if it is not in the bin. Atomic with `event`.
    async fn restore(&self, id: Uuid, max_owned: Option<u64>, at: DateTime<Utc>, event: &AuditEvent)
        -> Result<Image>;

    /// Makes the deletion of the binned image `id` final: it leaves the bin, its record stays deleted,
    /// its manifest stops being live (garbage collection reclaims the data) and its members are removed.
    /// With `due_by`, only if
    /// its `purge_after` is that time or earlier. `NotFound` if it is not in the bin (or, with `due_by`,
    /// not yet due); `Conflict` if it is protected. Atomic with `event`.
    async fn purge(&self, id: Uuid, due_by: Option<DateTime<Utc>>, event: &AuditEvent) -> Result<()>;
}
