//! The version documents that clients use for discovery.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::config::Settings;
use crate::state::AppState;

/// The Image API versions served, newest first (the first is CURRENT).
const VERSIONS: &[&str] = &[
    "v2.17", "v2.16", "v2.15", "v2.14", "v2.13", "v2.12", "v2.11", "v2.10", "v2.9", "v2.8", "v2.7", "v2.6", "v2.5",
    "v2.4", "v2.3", "v2.2", "v2.1", "v2.0",
];

/// The configured public URL, else `scheme://host:port` as the client addressed us: the scheme a proxy
/// names in `X-Forwarded-Proto`, else `https` when this node serves TLS, else `http`.
pub fn base_url(settings: &Settings, headers: &HeaderMap) -> String {
    if let Some(url) = settings.public_url.as_deref() {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:9292");
    let own_scheme = if settings.serves_https() { "https" } else { "http" };
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or(own_scheme);
    format!("{scheme}://{host}")
}

pub fn document(settings: &Settings, headers: &HeaderMap) -> Value {
    let href = format!("{}/v2/", base_url(settings, headers));
    let versions: Vec<Value> = VERSIONS
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "id": id,
                "status": if i == 0 { "CURRENT" } else { "SUPPORTED" },
                "links": [{"rel": "self", "href": href}],
            })
        })
        .collect();
    json!({ "versions": versions })
}

/// `GET /`: 300 Multiple Choices with the versions document (also for unknown version prefixes).
pub async fn multiple_choices(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    (StatusCode::MULTIPLE_CHOICES, Json(document(&state.settings, &headers)))
}

/// `GET /versions`: 200 with the versions document.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    Json(document(&state.settings, &headers))
}
