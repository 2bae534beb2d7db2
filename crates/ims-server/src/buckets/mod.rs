//! `/buckets/v1`: the user object storage images are imported from and exported to.
//!
//! `GET /buckets/v1` lists the caller's buckets; `PUT /buckets/v1/{bucket}` creates one;
//! `GET /buckets/v1/{bucket}/objects[?prefix=]` lists objects; `PUT`, `GET`, `DELETE
//! /buckets/v1/{bucket}/objects/{key...}` store (streamed, creating the bucket if needed), read (streamed)
//! and delete one object. Errors are in Glance's form.

mod bucket;
mod objects;

use axum::routing::{get, put};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/buckets/v1", get(bucket::list))
        .route("/buckets/v1/{bucket}", put(bucket::create))
        .route("/buckets/v1/{bucket}/objects", get(objects::list))
        .route("/buckets/v1/{bucket}/objects/{*key}", put(objects::put).get(objects::get).delete(objects::delete))
}
