//! Frequently used images: each user's own list of favourite images.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{AuditEvent, Result};

/// One image on a user's favourites list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Favorite {
    pub image_id: Uuid,
    /// When the user put the image on the list.
    pub added_at: DateTime<Utc>,
}

/// The favourites lists of users. Whether the user may still see a listed image is the caller's
/// business: the repository only leaves out images that are deleted.
#[async_trait]
pub trait FavoriteRepository: Send + Sync {
    /// Puts `image_id` on the list of `user_id` with `added_at`, unless it is already there; returns
    /// whether it was added. Idempotent: for an image already on the list nothing changes (its first
    /// `added_at` stays) and no event is stored. `NotFound` if the user is missing or the image is
    /// missing or deleted; `LimitExceeded` (and nothing is stored) if the list already holds
    /// `max_per_user` entries. The count and the insert happen in one transaction, so concurrent
    /// additions never pass the limit together.
    async fn add(
        &self,
        user_id: &str,
        image_id: Uuid,
        added_at: DateTime<Utc>,
        max_per_user: u64,
        event: &AuditEvent,
    ) -> Result<bool>;

    /// Takes `image_id` off the list of `user_id` (also when the image was deleted since). `NotFound` if
    /// it is not on the list.
    async fn remove(&self, user_id: &str, image_id: Uuid, event: &AuditEvent) -> Result<()>;

    /// The entries of `user_id`'s list whose image is not deleted, most recently added first, then by
    /// image id. Empty for an unknown user.
    async fn list(&self, user_id: &str) -> Result<Vec<Favorite>>;
}
