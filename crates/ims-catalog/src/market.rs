//! The marketplace: images listed as products, and the projects that subscribed to them.
//!
//! A listing puts one active image on the market under a unique product code. Any project may browse the
//! listings that are on shelf and subscribe to one; a subscription makes the image readable to the
//! subscribing project (the image list's visibility rule and the service's read check both honour it).
//! Taking a listing off shelf hides it from browsing and refuses new subscriptions; existing subscriptions
//! keep working. Deleting a listing (delisting) removes its subscriptions with it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{AuditEvent, Result};

/// One image listed on the marketplace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketListing {
    pub id: Uuid,
    pub image_id: Uuid,
    /// The project that published the listing (the image's owner, or an admin's project).
    pub publisher: String,
    /// The product code (`__productcode`), unique among listings.
    pub product_code: String,
    pub version: String,
    pub description: String,
    /// Off shelf (`__is_offshelved`): hidden from browsing, closed to new subscriptions.
    pub offshelved: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A project's use of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketSubscription {
    pub listing_id: Uuid,
    pub project_id: String,
    /// When the project subscribed.
    pub since: DateTime<Utc>,
}

/// Which listings [`MarketRepository::list_listings`] returns. Every listing of a deleted image is left
/// out; the other conditions combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingFilter {
    /// Only listings that are on shelf.
    pub on_shelf_only: bool,
    /// Only listings published by this project.
    pub publisher: Option<String>,
    /// Only listings this project subscribed to.
    pub subscriber: Option<String>,
}

/// Marketplace listings and subscriptions.
#[async_trait]
pub trait MarketRepository: Send + Sync {
    /// Stores `listing`, but only if its image exists, is not deleted and is `active`, checked in the
    /// same transaction: `NotFound` if the image is missing or deleted, `Invalid` if it is not active.
    /// `Conflict` if the image is already listed or the product code is taken; `NotFound` if the publisher
    /// project is missing. Nothing is stored on error.
    async fn create_listing(&self, listing: &MarketListing, event: &AuditEvent) -> Result<()>;

    /// The listing with this id, or `NotFound` (also when its image was deleted).
    async fn get_listing(&self, id: Uuid) -> Result<MarketListing>;

    /// The listings of these images (those that have one and are not deleted), in no particular order.
    async fn listings_of_images(&self, image_ids: &[Uuid]) -> Result<Vec<MarketListing>>;

    /// The listings matching `filter`, newest first, then by id.
    async fn list_listings(&self, filter: &ListingFilter) -> Result<Vec<MarketListing>>;

    /// Puts the listing off shelf (`offshelved = true`) or back on shelf, setting `updated_at` to `at`, and
    /// returns it. Idempotent: setting the state it already has changes nothing and stores no event.
    /// `NotFound` if the listing is missing or its image deleted. Subscriptions are untouched.
    async fn set_offshelved(
        &self,
        id: Uuid,
        offshelved: bool,
        at: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<MarketListing>;

    /// Deletes the listing. If projects subscribed to it: `Conflict` and nothing changes, unless `force`,
    /// when the subscriptions are deleted with it (and those projects lose access). Returns how many
    /// subscriptions were removed. `NotFound` if the listing is missing.
    async fn delete_listing(&self, id: Uuid, force: bool, event: &AuditEvent) -> Result<u64>;

    /// Subscribes `project_id` to the listing from `since`; returns whether a subscription was added.
    /// Idempotent: an existing subscription keeps its first `since` and no event is stored, even while the
    /// listing is off shelf. A new subscription needs the listing on shelf (`Conflict` otherwise, checked
    /// in the same transaction). `NotFound` if the listing (or its image) or the project is missing.
    async fn subscribe(
        &self,
        listing_id: Uuid,
        project_id: &str,
        since: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<bool>;

    /// Ends the project's subscription to the listing. `NotFound` if it has none.
    async fn unsubscribe(&self, listing_id: Uuid, project_id: &str, event: &AuditEvent) -> Result<()>;

    /// The subscriptions of the listing, oldest first, then by project.
    async fn subscriptions(&self, listing_id: Uuid) -> Result<Vec<MarketSubscription>>;

    /// Whether `project_id` subscribed to the listing of image `image_id` (on or off shelf).
    async fn is_subscribed(&self, image_id: Uuid, project_id: &str) -> Result<bool>;
}
