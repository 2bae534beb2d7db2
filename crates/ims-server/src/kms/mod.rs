//! `/kms/v1`: master keys of the key management service (admin).

mod keys;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/kms/v1/keys", get(keys::list).post(keys::create))
        .route("/kms/v1/keys/{key_id}", get(keys::show).patch(keys::update))
        .route("/kms/v1/keys/{key_id}/disable", post(keys::disable))
        .route("/kms/v1/keys/{key_id}/enable", post(keys::enable))
}
