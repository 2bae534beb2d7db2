//! The OpenStack Images API v2, as Glance serves it.

mod actions;
pub(crate) mod body;
mod data;
mod images;
mod info;
pub mod list_query;
mod members;
mod negotiate;
pub mod patch;
pub mod range;
pub(crate) mod render;
mod router;
mod schemas;
mod tags;
mod tenants;
mod versions;

pub use router::router;
pub use versions::document as versions_document;
