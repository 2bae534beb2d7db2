//! Every route of the Images API v2.

use axum::routing::{get, post, put};
use axum::Router;

use super::{
    actions, cache, data, images, import, info, locations, members, negotiate, schemas, stage, stores, tags, tasks,
    tenants, versions,
};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(versions::multiple_choices))
        .route("/versions", get(versions::list))
        .route("/v2", get(versions::multiple_choices))
        .route("/v2/", get(versions::multiple_choices))
        .route("/v2/images", get(images::list).post(images::create))
        .route("/v2/images/{id}", get(images::show).patch(images::update).delete(images::delete))
        .route("/v2/images/{id}/file", put(data::upload).get(data::download))
        .route("/v2/images/{id}/stage", put(stage::stage))
        .route("/v2/images/{id}/import", post(import::import))
        .route("/v2/images/{id}/locations", get(locations::list).post(locations::add))
        .route("/v2/images/{id}/tasks", get(tasks::of_image))
        .route("/v2/tasks", get(tasks::list).post(tasks::create))
        .route("/v2/tasks/{id}", get(tasks::show))
        .route("/v2/images/{id}/tags/{tag}", put(tags::add).delete(tags::remove))
        .route("/v2/images/{id}/members", get(members::list).post(members::add))
        .route(
            "/v2/images/{id}/members/{member}",
            get(members::show).put(members::update).delete(members::remove),
        )
        .route("/v2/images/{id}/actions/deactivate", post(actions::deactivate))
        .route("/v2/images/{id}/actions/reactivate", post(actions::reactivate))
        .route("/v2/schemas/{name}", get(schemas::show))
        .route("/v2/info/import", get(info::import))
        .route("/v2/info/stores", get(info::stores))
        .route("/v2/info/stores/detail", get(info::stores_detail))
        .route("/v2/stores/{store_id}/{id}", axum::routing::delete(stores::delete_from_store))
        .route("/v2/info/usage", get(info::usage))
        .route("/v2/cache", get(cache::state).delete(cache::clear))
        .route("/v2/cache/{id}", put(cache::queue).delete(cache::remove))
        .route("/v2/tenants", get(tenants::list))
        .route("/v2/tenants/{project}", get(tenants::show))
        .merge(super::metadefs::router())
        .layer(axum::middleware::from_fn(negotiate::error_bodies))
}
