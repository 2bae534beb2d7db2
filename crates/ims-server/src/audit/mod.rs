//! `/audit/v1/...`: the audit trail (see `docs/governance.md`).
//!
//! - `GET /audit/v1/events`: one page of events, filtered; admins see every project's, others their own.
//! - `GET /audit/v1/events/export`: every matching event as JSON lines, streamed.
//! - `GET /audit/v1/verification`: walks the hash chain and reports where it breaks (admins).
//!
//! [`record_failures`] is the middleware that adds an event for every mutating request that failed, and
//! [`SourceAddress`] carries the peer's address into the request context of every event.

mod events;
mod export;
mod failures;
mod query;
mod verification;

use axum::routing::get;
use axum::Router;

use crate::state::AppState;

pub use failures::{context, record_failures};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/audit/v1/events", get(events::list))
        .route("/audit/v1/events/export", get(export::export))
        .route("/audit/v1/verification", get(verification::show))
}
