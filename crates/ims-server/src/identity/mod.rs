//! `/identity/v1`: projects, users, tokens and access keys of the built-in identity service (admin), and whoami.

mod access_keys;
mod projects;
mod quotas;
mod render;
mod tokens;
mod users;

use axum::routing::{delete, get};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/identity/v1/projects", get(projects::list).post(projects::create))
        .route("/identity/v1/projects/{project}", get(projects::show).delete(projects::delete))
        .route("/identity/v1/projects/{project}/quotas", get(quotas::show).put(quotas::update))
        .route("/identity/v1/users", get(users::list).post(users::create))
        .route("/identity/v1/tokens", axum::routing::post(tokens::create))
        .route("/identity/v1/tokens/{token}", delete(tokens::revoke))
        .route("/identity/v1/auth", get(tokens::whoami))
        .route("/identity/v1/access-keys", get(access_keys::list).post(access_keys::create))
        .route("/identity/v1/access-keys/{access}", delete(access_keys::revoke))
}
