//! `/v1/marketplace/...`: marketplace listings and subscriptions (our extension of the IMS API, with the
//! IMS error form; the rules are in `ims_core::market` and `docs/governance.md`).
//!
//! - `GET /v1/marketplace/listings[?scope=on_shelf|published|subscribed|all]` → `{"listings": [Listing]}`:
//!   on-shelf listings by default; the caller project's published or subscribed ones (on or off shelf);
//!   every listing (admins).
//! - `POST /v1/marketplace/listings {"image_id", "product_code", "version", "description"}` → 201 Listing.
//! - `GET /v1/marketplace/listings/{id}` → Listing.
//! - `DELETE /v1/marketplace/listings/{id}[?force=true]` → 204 (delist).
//! - `POST /v1/marketplace/listings/{id}/offshelf`, `.../onshelf` → Listing.
//! - `POST /v1/marketplace/listings/{id}/subscriptions` → `{"subscription", "listing"}` (idempotent).
//! - `GET /v1/marketplace/listings/{id}/subscriptions` → `{"subscriptions": [...]}` (publisher, admins).
//! - `DELETE /v1/marketplace/listings/{id}/subscriptions/{project_id}` → 204.
//!
//! A Listing is `{"id", "image_id", "product_code", "publisher", "version", "description", "offshelved",
//! "created_at", "updated_at", "image": ImageInfo}`.

mod listings;
mod subscriptions;

use axum::routing::{delete, get, post};
use axum::Router;
use ims_catalog::MarketSubscription;
use ims_core::market::MarketProduct;
use serde_json::{json, Value};

use crate::cloudimages::render;
use crate::error::ImsError;
use crate::glance::render::timestamp;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/marketplace/listings", get(listings::list).post(listings::publish))
        .route("/v1/marketplace/listings/{listing_id}", get(listings::show).delete(listings::delist))
        .route("/v1/marketplace/listings/{listing_id}/offshelf", post(listings::offshelf))
        .route("/v1/marketplace/listings/{listing_id}/onshelf", post(listings::onshelf))
        .route(
            "/v1/marketplace/listings/{listing_id}/subscriptions",
            get(subscriptions::list).post(subscriptions::subscribe),
        )
        .route("/v1/marketplace/listings/{listing_id}/subscriptions/{project_id}", delete(subscriptions::unsubscribe))
}

/// A listing id of a path; anything that is not a UUID names no listing.
fn listing_id(raw: &str) -> Result<uuid::Uuid, ImsError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ImsError::not_found(format!("No marketplace listing found with ID {raw}")))
}

/// A listing with its image, as `viewer` sees it.
fn listing(product: &MarketProduct, viewer: Option<&str>) -> Value {
    let l = &product.listing;
    json!({
        "id": l.id,
        "image_id": l.image_id,
        "product_code": l.product_code,
        "publisher": l.publisher,
        "version": l.version,
        "description": l.description,
        "offshelved": l.offshelved,
        "created_at": timestamp(&l.created_at),
        "updated_at": timestamp(&l.updated_at),
        "image": render::listed_image(&product.image, viewer, Some(l)),
    })
}

fn subscription(s: &MarketSubscription) -> Value {
    json!({"listing_id": s.listing_id, "project_id": s.project_id, "since": timestamp(&s.since)})
}
