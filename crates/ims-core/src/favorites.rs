//! Frequently used images: each user's favourites list.
//!
//! The list belongs to the user, not to the project: the same user sees the same list in every project
//! it works in, filtered by what the caller may see there. An image that is deleted, or that the caller
//! cannot see (made private, share removed, acting in another project), is left out of the list while that
//! lasts; its entry stays stored, so it comes back if the image becomes visible again, and can be removed.

use ims_catalog::{CatalogError, Image};
use uuid::Uuid;

use crate::{CoreError, ImageService, Policy, RequestContext, Result};

/// Most images one user may keep on the favourites list.
pub const MAX_FAVORITES_PER_USER: u64 = 100;

/// One image of the caller's favourites list.
#[derive(Debug, Clone)]
pub struct FavoriteImage {
    pub image: Image,
    /// When the user put the image on the list.
    pub added_at: chrono::DateTime<chrono::Utc>,
}

impl ImageService {
    /// Puts the image on the caller's favourites list and returns it. Idempotent (an image already on the
    /// list keeps its place). `NotFound` if the caller cannot see the image; `TooLarge` if the list holds
    /// [`MAX_FAVORITES_PER_USER`] images already. Any signed-in caller, readers included.
    pub async fn add_favorite(&self, ctx: &RequestContext, id: Uuid) -> Result<Image> {
        let caller = Policy::require_caller(ctx)?;
        let image = self.get(ctx, id).await?;
        let event = ctx.event("favorite.add", format!("image:{id}"));
        match self.catalog.favorites.add(&caller.user_id, id, chrono::Utc::now(), MAX_FAVORITES_PER_USER, &event).await {
            Ok(_) => Ok(image),
            Err(CatalogError::LimitExceeded(_)) => Err(CoreError::TooLarge(format!(
                "The favourites list already holds {MAX_FAVORITES_PER_USER} images, the most allowed"
            ))),
            Err(CatalogError::NotFound(_)) => Err(CoreError::NotFound(format!("No image found with ID {id}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the image off the caller's favourites list (also an image deleted or hidden since).
    /// `NotFound` if it is not on the list.
    pub async fn remove_favorite(&self, ctx: &RequestContext, id: Uuid) -> Result<()> {
        let caller = Policy::require_caller(ctx)?;
        let event = ctx.event("favorite.remove", format!("image:{id}"));
        self.catalog.favorites.remove(&caller.user_id, id, &event).await.map_err(|e| match e {
            CatalogError::NotFound(_) => CoreError::NotFound(format!("Image {id} is not in the favourites list")),
            other => other.into(),
        })
    }

    /// The caller's favourite images that it can see now, most recently added first.
    pub async fn favorites(&self, ctx: &RequestContext) -> Result<Vec<FavoriteImage>> {
        let caller = Policy::require_caller(ctx)?;
        let entries = self.catalog.favorites.list(&caller.user_id).await?;
        let mut images = Vec::with_capacity(entries.len());
        for entry in entries {
            match self.get(ctx, entry.image_id).await {
                Ok(image) => images.push(FavoriteImage { image, added_at: entry.added_at }),
                Err(CoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(images)
    }
}
