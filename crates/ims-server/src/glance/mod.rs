//! The OpenStack Images API v2, as Glance serves it.

mod actions;
pub(crate) mod body;
mod cache;
mod data;
mod images;
mod import;
mod info;
pub mod list_query;
mod locations;
mod members;
mod metadefs;
pub(crate) mod negotiate;
pub mod patch;
pub mod range;
pub(crate) mod render;
mod router;
mod schemas;
mod stage;
mod stores;
mod tags;
mod tasks;
mod tenants;
mod versions;

pub use import::import_settings;
pub use router::router;
pub use versions::document as versions_document;
