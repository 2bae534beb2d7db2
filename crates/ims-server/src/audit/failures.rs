//! Events for mutating requests that failed, and the source address of every request.
//!
//! A successful change records its own event in the catalog, in the transaction that makes it. A request
//! that fails changes nothing, so nothing in the catalog records it: [`record_failures`] does, for every
//! `POST`, `PUT`, `PATCH` and `DELETE` answered with a 4xx or 5xx status (refused credentials, denied
//! access, bad input, conflicts, quota, backend failures). The event's action is `http.<method>`, its
//! detail the route (`DELETE /v2/images/{id}`), its resource `image:<id>` when the path names an
//! image and the path otherwise, its error the message the caller got, and its caller whoever the request
//! authenticated as (none when authentication itself failed).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use ims_catalog::AuditEvent;
use ims_core::{Caller, RequestContext};
use serde_json::Value;

use crate::request_id::RequestId;
use crate::state::AppState;

/// Largest error body read to find the message (error bodies are small JSON documents).
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// The peer address (`ip:port`) of the connection a request came on.
#[derive(Debug, Clone)]
pub struct SourceAddress(pub String);

/// Where the request context extractor leaves the authenticated caller for [`record_failures`].
#[derive(Debug, Clone, Default)]
pub struct AuditedCaller(Arc<Mutex<Option<Caller>>>);

impl AuditedCaller {
    fn set(&self, caller: &Caller) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(caller.clone());
    }

    fn get(&self) -> Option<Caller> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The context of a request authenticated as `caller`: carries the source address into its events and
/// tells [`record_failures`] who the caller is.
pub fn context(parts: &Parts, request_id: String, caller: Caller) -> RequestContext {
    if let Some(slot) = parts.extensions.get::<AuditedCaller>() {
        slot.set(&caller);
    }
    let source = parts.extensions.get::<SourceAddress>().map(|s| s.0.clone());
    RequestContext::new(request_id, Some(caller)).with_source_address(source)
}

/// Middleware: stores the [`SourceAddress`], and records an event for a failed mutating request.
pub async fn record_failures(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let source = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.to_string());
    if let Some(source) = &source {
        request.extensions_mut().insert(SourceAddress(source.clone()));
    }
    if !matches!(*request.method(), Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
        return next.run(request).await;
    }
    let slot = AuditedCaller::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| path.clone(), |m| m.as_str().to_string());
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();

    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let (message, body) = error_message(body).await;
    let message = message.unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());

    let mut event = AuditEvent::new(&request_id, &format!("http.{}", method.to_ascii_lowercase()), resource_of(&path));
    if let Some(caller) = slot.get() {
        event.project_id = Some(caller.project_id);
        event.user_id = Some(caller.user_id);
    }
    event.source_address = source;
    event.detail = Some(format!("{method} {route}"));
    state.services.audit.record_failure(event, &format!("{} {message}", status.as_u16())).await;
    Response::from_parts(parts, body)
}

/// The message of a JSON error body (`message` of the Glance form, `error_msg` of the IMS form), and the
/// body to send on. Bodies without an exact size below [`MAX_ERROR_BODY`] are passed on unread.
async fn error_message(body: Body) -> (Option<String>, Body) {
    let small = HttpBody::size_hint(&body).exact().is_some_and(|n| n <= MAX_ERROR_BODY);
    if !small {
        return (None, body);
    }
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return (None, Body::empty()),
    };
    let message = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
        ["message", "error_msg"].iter().find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_string))
    });
    (message, Body::from(bytes))
}

/// `image:<id>` when the path names an image (`.../images/<uuid>...` or `.../cloudimages/<uuid>...`),
/// else the path.
fn resource_of(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    segments
        .windows(2)
        .find(|w| matches!(w[0], "images" | "cloudimages") && uuid::Uuid::parse_str(w[1]).is_ok())
        .map_or_else(|| path.to_string(), |w| format!("image:{}", w[1]))
}

#[cfg(test)]
mod tests {
    use super::resource_of;

    #[test]
    fn image_paths_name_the_image() {
        let id = "0b3c2a5e-7f3e-4c1d-9a55-0f4f2b1d9c11";
        assert_eq!(resource_of(&format!("/v2/images/{id}/file")), format!("image:{id}"));
        assert_eq!(resource_of(&format!("/v1/cloudimages/{id}/restore")), format!("image:{id}"));
        assert_eq!(resource_of("/v2/images"), "/v2/images");
        assert_eq!(resource_of("/v2/images/not-a-uuid"), "/v2/images/not-a-uuid");
    }
}
