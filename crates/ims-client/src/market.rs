//! The marketplace (`/v1/marketplace/listings...`): listing images as products, browsing, subscribing.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Client, Image, Result};

/// A marketplace listing with the image it sells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketListing {
    pub id: String,
    pub image_id: String,
    pub product_code: String,
    /// The project that published the listing.
    pub publisher: String,
    pub version: String,
    pub description: String,
    /// Off shelf: hidden from browsing and closed to new subscriptions.
    pub offshelved: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The image as the IMS API renders it (`__productcode`, `__is_offshelved`, ... in `properties`).
    pub image: Image,
}

/// A project's subscription to a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketSubscription {
    pub listing_id: String,
    pub project_id: String,
    /// When the project subscribed (`YYYY-MM-DDThh:mm:ssZ`).
    pub since: String,
}

/// Which listings [`Client::market_listings`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListingScope {
    /// Listings on shelf.
    #[default]
    OnShelf,
    /// The caller project's own listings, on or off shelf.
    Published,
    /// Listings the caller's project subscribed to, on or off shelf.
    Subscribed,
    /// Every listing (admins).
    All,
}

impl ListingScope {
    /// The `scope` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            ListingScope::OnShelf => "on_shelf",
            ListingScope::Published => "published",
            ListingScope::Subscribed => "subscribed",
            ListingScope::All => "all",
        }
    }
}

/// What [`Client::publish_listing`] sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewMarketListing {
    pub image_id: String,
    pub product_code: String,
    pub version: String,
    pub description: String,
}

#[derive(Deserialize)]
struct ListingsBody {
    listings: Vec<MarketListing>,
}

#[derive(Deserialize)]
struct SubscriptionsBody {
    subscriptions: Vec<MarketSubscription>,
}

#[derive(Deserialize)]
struct SubscribedBody {
    subscription: MarketSubscription,
}

impl Client {
    /// `GET /v1/marketplace/listings?scope=...`: the listings of `scope`, newest first.
    pub async fn market_listings(&self, scope: ListingScope) -> Result<Vec<MarketListing>> {
        let mut url = self.url(&["v1", "marketplace", "listings"]);
        url.query_pairs_mut().append_pair("scope", scope.as_str());
        let body: ListingsBody = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.listings)
    }

    /// `GET /v1/marketplace/listings/{id}`.
    pub async fn market_listing(&self, id: &str) -> Result<MarketListing> {
        let url = self.url(&["v1", "marketplace", "listings", id]);
        self.execute_json(self.request(Method::GET, url)).await
    }

    /// `POST /v1/marketplace/listings`: lists an active image the caller's project owns (or any, for
    /// admins) under a unique product code.
    pub async fn publish_listing(&self, new: &NewMarketListing) -> Result<MarketListing> {
        let url = self.url(&["v1", "marketplace", "listings"]);
        self.execute_json(self.request(Method::POST, url).json(new)).await
    }

    /// `POST /v1/marketplace/listings/{id}/offshelf` (`offshelved`) or `.../onshelf`.
    pub async fn set_listing_offshelved(&self, id: &str, offshelved: bool) -> Result<MarketListing> {
        let action = if offshelved { "offshelf" } else { "onshelf" };
        let url = self.url(&["v1", "marketplace", "listings", id, action]);
        self.execute_json(self.request(Method::POST, url)).await
    }

    /// `DELETE /v1/marketplace/listings/{id}[?force=true]`: delists (`force`: admins, even with subscribers).
    pub async fn delist(&self, id: &str, force: bool) -> Result<()> {
        let mut url = self.url(&["v1", "marketplace", "listings", id]);
        if force {
            url.query_pairs_mut().append_pair("force", "true");
        }
        self.execute_empty(self.request(Method::DELETE, url)).await
    }

    /// `POST /v1/marketplace/listings/{id}/subscriptions`: subscribes the caller's project (idempotent).
    pub async fn subscribe_listing(&self, id: &str) -> Result<MarketSubscription> {
        let url = self.url(&["v1", "marketplace", "listings", id, "subscriptions"]);
        let body: SubscribedBody = self.execute_json(self.request(Method::POST, url).json(&json!({}))).await?;
        Ok(body.subscription)
    }

    /// `GET /v1/marketplace/listings/{id}/subscriptions` (publisher, admins).
    pub async fn listing_subscriptions(&self, id: &str) -> Result<Vec<MarketSubscription>> {
        let url = self.url(&["v1", "marketplace", "listings", id, "subscriptions"]);
        let body: SubscriptionsBody = self.execute_json(self.request(Method::GET, url)).await?;
        Ok(body.subscriptions)
    }

    /// `DELETE /v1/marketplace/listings/{id}/subscriptions/{project_id}`: ends a subscription.
    pub async fn unsubscribe_listing(&self, id: &str, project_id: &str) -> Result<()> {
        let url = self.url(&["v1", "marketplace", "listings", id, "subscriptions", project_id]);
        self.execute_empty(self.request(Method::DELETE, url)).await
    }
}
