//! The marketplace: listing images as products, browsing, subscribing, shelf state, delisting.
//!
//! Rules (documented in `docs/governance.md`, "Marketplace"):
//! - Only an admin or the image's owner (with a writing role) may list an image, and only an active one.
//!   The caller's project becomes the listing's publisher. The image itself is unchanged (its visibility
//!   stays what it was).
//! - Any signed-in project may browse the listings that are on shelf and show one; the publisher, admins
//!   and subscribers also see a listing while it is off shelf.
//! - Subscribing (member or admin role) records that the project uses the listing and makes the image
//!   readable to it, like an accepted share but without a member row: it appears in the project's image
//!   lists and can be shown, downloaded, copied and exported; the project cannot change it.
//! - The publisher or an admin takes a listing off shelf (hidden from browsing, no new subscriptions;
//!   subscribers keep the image) and back on shelf.
//! - Delisting is refused while projects subscribe, unless an admin forces it, which ends their access.

use ims_catalog::{CatalogError, Image, ListingFilter, MarketListing, MarketSubscription};
use uuid::Uuid;

use crate::{CoreError, ImageService, Policy, RequestContext, Result};

/// Longest product code, version.
pub const MAX_PRODUCT_CODE: usize = 64;
/// Longest listing description.
pub const MAX_DESCRIPTION: usize = 1024;

/// What a publisher gives to list an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewListing {
    pub image_id: Uuid,
    /// Letters, digits, `.`, `_` and `-`, 1 to [`MAX_PRODUCT_CODE`] characters, unique.
    pub product_code: String,
    pub version: String,
    pub description: String,
}

/// A listing with the image it sells.
#[derive(Debug, Clone)]
pub struct MarketProduct {
    pub listing: MarketListing,
    pub image: Image,
}

/// Which listings to browse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListingScope {
    /// Listings on shelf (every project).
    #[default]
    OnShelf,
    /// Listings the caller's project published, on or off shelf.
    Published,
    /// Listings the caller's project subscribed to, on or off shelf.
    Subscribed,
    /// Every listing (admins only).
    All,
}

impl ImageService {
    /// Whether the caller's project subscribed to the marketplace listing of `image`.
    pub(crate) async fn market_subscribed(&self, ctx: &RequestContext, image: &Image) -> Result<bool> {
        match ctx.project_id() {
            Some(project) => Ok(self.catalog.market.is_subscribed(image.id, project).await?),
            None => Ok(false),
        }
    }

    /// Lists an image on the marketplace (see the module rules). `Invalid` for a bad product code,
    /// version or description, or an image that is not active; `Conflict` if the image is listed already
    /// or the product code is taken; `NotFound` if the caller cannot see the image.
    pub async fn publish_listing(&self, ctx: &RequestContext, new: NewListing) -> Result<MarketProduct> {
        let caller = Policy::require_caller(ctx)?;
        let image = self.get(ctx, new.image_id).await?;
        Policy::check_modify(ctx, &image)?;
        check_product_code(&new.product_code)?;
        check_text("version", &new.version, MAX_PRODUCT_CODE, false)?;
        check_text("description", &new.description, MAX_DESCRIPTION, true)?;
        let now = crate::now();
        let listing = MarketListing {
            id: Uuid::new_v4(),
            image_id: image.id,
            publisher: caller.project_id.clone(),
            product_code: new.product_code,
            version: new.version,
            description: new.description,
            offshelved: false,
            created_at: now,
            updated_at: now,
        };
        let event = ctx.event("market.listing.create", format!("market_listing:{}", listing.id));
        self.catalog.market.create_listing(&listing, &event).await.map_err(|e| match e {
            CatalogError::NotFound(_) => CoreError::NotFound(format!("No image found with ID {}", image.id)),
            other => other.into(),
        })?;
        Ok(MarketProduct { listing, image })
    }

    /// The listings of `scope`, newest first, each with its image. `Forbidden` for [`ListingScope::All`]
    /// unless the caller is an admin.
    pub async fn browse_listings(&self, ctx: &RequestContext, scope: ListingScope) -> Result<Vec<MarketProduct>> {
        let caller = Policy::require_caller(ctx)?;
        let filter = match scope {
            ListingScope::OnShelf => ListingFilter { on_shelf_only: true, ..Default::default() },
            ListingScope::Published => {
                ListingFilter { publisher: Some(caller.project_id.clone()), ..Default::default() }
            }
            ListingScope::Subscribed => {
                ListingFilter { subscriber: Some(caller.project_id.clone()), ..Default::default() }
            }
            ListingScope::All => {
                Policy::check_admin(ctx)?;
                ListingFilter::default()
            }
        };
        let listings = self.catalog.market.list_listings(&filter).await?;
        let mut products = Vec::with_capacity(listings.len());
        for listing in listings {
            // The listing's image is public metadata of the product; a deleted image has no listing.
            match self.catalog.images.get(listing.image_id).await {
                Ok(image) => products.push(MarketProduct { listing, image }),
                Err(CatalogError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(products)
    }

    /// The listings of these images (for rendering `__productcode` and `__is_offshelved`).
    pub async fn listings_of_images(&self, image_ids: &[Uuid]) -> Result<Vec<MarketListing>> {
        Ok(self.catalog.market.listings_of_images(image_ids).await?)
    }

    /// The listing, if the caller may see it: on shelf, or the caller is its publisher, an admin or a
    /// subscriber. Otherwise `NotFound`.
    pub async fn show_listing(&self, ctx: &RequestContext, id: Uuid) -> Result<MarketProduct> {
        let caller = Policy::require_caller(ctx)?;
        let product = self.product(id).await?;
        let listing = &product.listing;
        let visible = !listing.offshelved
            || caller.is_admin()
            || caller.project_id == listing.publisher
            || self.catalog.market.is_subscribed(listing.image_id, &caller.project_id).await?;
        if visible {
            Ok(product)
        } else {
            Err(listing_not_found(id))
        }
    }

    /// Takes the listing off shelf (`offshelved`) or puts it back; publisher (writing role) or admin.
    /// Idempotent.
    pub async fn set_listing_offshelved(
        &self,
        ctx: &RequestContext,
        id: Uuid,
        offshelved: bool,
    ) -> Result<MarketProduct> {
        let product = self.show_listing(ctx, id).await?;
        check_publisher(ctx, &product.listing)?;
        let action = if offshelved { "market.listing.offshelf" } else { "market.listing.onshelf" };
        let event = ctx.event(action, format!("market_listing:{id}"));
        let listing = self
            .catalog
            .market
            .set_offshelved(id, offshelved, crate::now(), &event)
            .await
            .map_err(|e| not_found_as_listing(e, id))?;
        Ok(MarketProduct { listing, image: product.image })
    }

    /// Deletes the listing; publisher (writing role) or admin. `Conflict` while projects subscribe,
    /// unless `force` (admins only), which ends their access. Returns how many subscriptions ended.
    pub async fn delist(&self, ctx: &RequestContext, id: Uuid, force: bool) -> Result<u64> {
        let product = self.show_listing(ctx, id).await?;
        check_publisher(ctx, &product.listing)?;
        if force && !ctx.is_admin() {
            return Err(CoreError::Forbidden("Only admins can force the delisting of a listing in use.".into()));
        }
        let event = ctx.event("market.listing.delete", format!("market_listing:{id}"));
        self.catalog.market.delete_listing(id, force, &event).await.map_err(|e| match e {
            CatalogError::Conflict(m) => {
                CoreError::Conflict(format!("{m}; an admin can force the delisting, ending their access"))
            }
            other => not_found_as_listing(other, id),
        })
    }

    /// Subscribes the caller's project (member or admin role) to the listing. Idempotent; `Conflict` for a
    /// new subscription to a listing off shelf; `NotFound` for a listing the caller cannot see.
    pub async fn subscribe(&self, ctx: &RequestContext, id: Uuid) -> Result<(MarketProduct, MarketSubscription)> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.can_write() {
            return Err(CoreError::Forbidden("The reader role cannot subscribe to listings.".into()));
        }
        let product = self.show_listing(ctx, id).await?;
        let event = ctx.event("market.subscription.create", format!("market_listing:{id}"));
        let since = crate::now();
        self.catalog.market.subscribe(id, &caller.project_id, since, &event).await.map_err(|e| match e {
            CatalogError::Conflict(_) => {
                CoreError::Conflict(format!("Listing {id} is off shelf and takes no new subscriptions"))
            }
            other => not_found_as_listing(other, id),
        })?;
        let subscription = self
            .catalog
            .market
            .subscriptions(id)
            .await?
            .into_iter()
            .find(|s| s.project_id == caller.project_id)
            .ok_or_else(|| listing_not_found(id))?;
        Ok((product, subscription))
    }

    /// Ends the subscription of `project` (the caller's own project, or any project for an admin).
    /// `NotFound` if it has none.
    pub async fn unsubscribe(&self, ctx: &RequestContext, id: Uuid, project: &str) -> Result<()> {
        let caller = Policy::require_caller(ctx)?;
        if !caller.is_admin() && (caller.project_id != project || !caller.can_write()) {
            return Err(CoreError::Forbidden("A project can only end its own subscriptions.".into()));
        }
        let event = ctx.event("market.subscription.delete", format!("market_listing:{id}"));
        self.catalog.market.unsubscribe(id, project, &event).await.map_err(|e| match e {
            CatalogError::NotFound(_) => {
                CoreError::NotFound(format!("Project {project} has no subscription to listing {id}"))
            }
            other => other.into(),
        })
    }

    /// The subscriptions of the listing; publisher or admin.
    pub async fn listing_subscriptions(&self, ctx: &RequestContext, id: Uuid) -> Result<Vec<MarketSubscription>> {
        let product = self.show_listing(ctx, id).await?;
        let caller = Policy::require_caller(ctx)?;
        if !caller.is_admin() && caller.project_id != product.listing.publisher {
            return Err(CoreError::Forbidden("Only the publisher or an admin sees a listing's subscribers.".into()));
        }
        Ok(self.catalog.market.subscriptions(id).await?)
    }

    async fn product(&self, id: Uuid) -> Result<MarketProduct> {
        let listing = self.catalog.market.get_listing(id).await.map_err(|e| not_found_as_listing(e, id))?;
        let image = self.catalog.images.get(listing.image_id).await.map_err(|e| not_found_as_listing(e, id))?;
        Ok(MarketProduct { listing, image })
    }
}

/// Managing a listing: its publisher project with a writing role, or an admin.
fn check_publisher(ctx: &RequestContext, listing: &MarketListing) -> Result<()> {
    let caller = Policy::require_caller(ctx)?;
    if caller.is_admin() || (caller.project_id == listing.publisher && caller.can_write()) {
        Ok(())
    } else {
        Err(CoreError::Forbidden(format!("Only the publisher or an admin may change listing {}.", listing.id)))
    }
}

fn listing_not_found(id: Uuid) -> CoreError {
    CoreError::NotFound(format!("No marketplace listing found with ID {id}"))
}

fn not_found_as_listing(e: CatalogError, id: Uuid) -> CoreError {
    match e {
        CatalogError::NotFound(_) => listing_not_found(id),
        other => other.into(),
    }
}

fn check_product_code(code: &str) -> Result<()> {
    let ok = !code.is_empty()
        && code.len() <= MAX_PRODUCT_CODE
        && code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::Invalid(format!(
            "Invalid product code {code:?}: use 1 to {MAX_PRODUCT_CODE} letters, digits, '.', '_' or '-'"
        )))
    }
}

fn check_text(field: &str, value: &str, max: usize, may_be_empty: bool) -> Result<()> {
    if (!may_be_empty && value.trim().is_empty()) || value.chars().count() > max || value.contains('\0') {
        let least = if may_be_empty { 0 } else { 1 };
        return Err(CoreError::Invalid(format!("Invalid {field}: use {least} to {max} characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_codes_and_texts_are_checked() {
        assert!(check_product_code("ubuntu-22.04_pro").is_ok());
        assert!(check_product_code("").is_err());
        assert!(check_product_code("has space").is_err());
        assert!(check_product_code(&"x".repeat(MAX_PRODUCT_CODE + 1)).is_err());
        assert!(check_text("version", "1.0", 64, false).is_ok());
        assert!(check_text("version", " ", 64, false).is_err());
        assert!(check_text("description", "", 10, true).is_ok());
        assert!(check_text("description", "nul\0", 10, true).is_err());
    }
}
