//! Error bodies in the form the client asked for, as Glance (webob) renders them: JSON only when
//! `Accept` names JSON, plain text for `text/plain`, an HTML page otherwise. python-glanceclient
//! sends `Accept: */*` and parses the HTML form.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;

/// Largest error body rewritten (ours are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn error_bodies(request: Request, next: Next) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let response = next.run(request).await;
    in_accepted_form(&accept, response).await
}

/// `response`, when it is a JSON error, rewritten in the form `accept` (lowercased) asks for.
pub(crate) async fn in_accepted_form(accept: &str, response: Response) -> Response {
    if !response.status().is_client_error() && !response.status().is_server_error() {
        return response;
    }
    if accept.contains("json") || !is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(collected) = http_body_util::Limited::new(body, MAX_ERROR_BODY).collect().await else {
        return Response::from_parts(parts, Body::empty());
    };
    let bytes = collected.to_bytes();
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let code = doc["code"].as_str().unwrap_or_default().to_string();
    let message = doc["message"].as_str().unwrap_or_default().to_string();
    let (content_type, text) = if accept.contains("text/plain") {
        ("text/plain; charset=UTF-8", format!("{code}\n\n{message}\n\n"))
    } else {
        ("text/html; charset=UTF-8", html(&code, &message))
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// webob's error page.
fn html(code: &str, message: &str) -> String {
    let escaped = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {escaped}<br /><br />\n\n\n\n </body>\n</html>"
    )
}
