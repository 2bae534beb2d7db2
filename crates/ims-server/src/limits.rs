//! Limits on what one request may send, enforced before any handler runs:
//!
//! - header bytes: the sum of every header's name and value may be at most `max_header_bytes`
//!   (`431 Request Header Fields Too Large`); the HTTP layer itself refuses more than 100 headers;
//! - body bytes: bodies the server buffers (JSON documents, JSON patches, signed bodies) may be at most
//!   `max_request_body_bytes` (`413`); image data streamed to storage (`PUT /v2/images/{id}/file`,
//!   `/stage`, bucket objects) is not buffered and is capped by `image_size_cap` instead;
//! - request rate: see [`crate::rate_limit`].
//!
//! Refusals use the error form of the surface called: the IMS form for IMS paths ([`is_ims_path`]),
//! Glance's form everywhere else, negotiated on the Images API (`/v2/...`) as its other errors are (JSON,
//! plain text or HTML, as `Accept` asks).

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::error::{ApiError, ImsError};
use crate::state::AppState;

/// Default largest buffered request body (1 MiB).
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 1 << 20;
/// Default largest total size of a request's headers (64 KiB).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;

/// The layer that caps every body an extractor buffers at `max_bytes`.
pub fn body_limit(max_bytes: usize) -> DefaultBodyLimit {
    DefaultBodyLimit::max(max_bytes)
}

/// Whether `path` belongs to the IMS API (`/v1/...`, `/v2/cloudimages...`, `/v2.1/...`,
/// `/v2/{project_id}/images...`), whose errors carry `error_code`/`error_msg`.
pub fn is_ims_path(path: &str) -> bool {
    if path.starts_with("/v1/") || path.starts_with("/v2.1/") || path.starts_with("/v2/cloudimages") {
        return true;
    }
    let Some(rest) = path.strip_prefix("/v2/") else { return false };
    let mut segments = rest.split('/');
    let first = segments.next().unwrap_or("");
    let second = segments.next().unwrap_or("");
    !matches!(first, "images" | "schemas" | "info" | "tasks" | "tenants" | "stores" | "")
        && matches!(second, "images" | "cloudimages")
}

/// `error` in the error form of the surface that serves `path`, for a request that sent `accept`.
pub async fn surface_error(path: &str, accept: Option<&HeaderValue>, error: ApiError) -> Response {
    if is_ims_path(path) {
        return ImsError::from(error).into_response();
    }
    if path == "/v2" || path.starts_with("/v2/") {
        let accept = accept.and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        return crate::glance::negotiate::in_accepted_form(&accept, error.into_response()).await;
    }
    error.into_response()
}

/// Middleware: refuses requests whose headers exceed `max_header_bytes`, and renders the refusal of a
/// body over `max_request_body_bytes` (which the body extractors produce as plain text) in the surface's
/// error form.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let max_header_bytes = state.settings.max_header_bytes;
    let header_bytes: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if header_bytes > max_header_bytes {
        let error = ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("Request headers are {header_bytes} bytes; at most {max_header_bytes} are accepted"),
        );
        return surface_error(&path, request.headers().get(header::ACCEPT), error).await;
    }
    let accept = request.headers().get(header::ACCEPT).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || !is_plain_text(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(collected) = http_body_util::Limited::new(body, 4096).collect().await else {
        return Response::from_parts(parts, Body::empty());
    };
    let text = collected.to_bytes();
    if !text.windows(BODY_LIMIT_REFUSAL.len()).any(|w| w == BODY_LIMIT_REFUSAL) {
        return Response::from_parts(parts, Body::from(text));
    }
    let max = state.settings.max_request_body_bytes;
    let error = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The request body is larger than {max} bytes, the most this request accepts"),
    );
    surface_error(&path, accept.as_ref(), error).await
}

/// What the body extractors answer, in plain text, when a body exceeds the limit.
const BODY_LIMIT_REFUSAL: &[u8] = b"length limit exceeded";

/// Whether a response is a plain-text one (the body extractors' refusals), not an error already in a
/// surface's JSON form.
fn is_plain_text(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"))
}

#[cfg(test)]
mod tests {
    use super::is_ims_path;

    #[test]
    fn ims_paths_are_told_from_glance_paths() {
        for ims in ["/v1/cloudimages", "/v2/cloudimages/action", "/v2.1/cloudimages/quickimport", "/v2/p1/images", "/v1/p1/cloudimages"] {
            assert!(is_ims_path(ims), "{ims}");
        }
        for glance in ["/v2/images", "/v2/images/abc/file", "/v2/schemas/images", "/v2/info/stores", "/identity/v1/tokens", "/v2/"] {
            assert!(!is_ims_path(glance), "{glance}");
        }
    }
}
