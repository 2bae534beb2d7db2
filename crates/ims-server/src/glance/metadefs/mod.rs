//! The metadata definitions API (`/v2/metadefs/...` and `/v2/schemas/metadefs/...`), as Glance serves it.

mod body;
mod namespaces;
mod objects;
mod properties;
mod render;
mod resource_types;
pub(crate) mod schemas;
mod tags;

use axum::routing::get;
use axum::Router;

use crate::state::AppState;

/// Every route of the metadata definitions API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/metadefs/namespaces", get(namespaces::list).post(namespaces::create))
        .route(
            "/v2/metadefs/namespaces/{ns}",
            get(namespaces::show).put(namespaces::update).delete(namespaces::delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/objects",
            get(objects::list).post(objects::create).delete(objects::delete_all),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/objects/{name}",
            get(objects::show).put(objects::update).delete(objects::delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/properties",
            get(properties::list).post(properties::create).delete(properties::delete_all),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/properties/{name}",
            get(properties::show).put(properties::update).delete(properties::delete),
        )
        .route("/v2/metadefs/namespaces/{ns}/tags", get(tags::list).post(tags::create_many).delete(tags::delete_all))
        .route(
            "/v2/metadefs/namespaces/{ns}/tags/{name}",
            get(tags::show).post(tags::create).put(tags::update).delete(tags::delete),
        )
        .route("/v2/metadefs/resource_types", get(resource_types::list))
        .route(
            "/v2/metadefs/namespaces/{ns}/resource_types",
            get(resource_types::associations).post(resource_types::associate),
        )
        .route("/v2/metadefs/namespaces/{ns}/resource_types/{rt}", axum::routing::delete(resource_types::dissociate))
        .route("/v2/schemas/metadefs/{name}", get(schemas::show))
}
