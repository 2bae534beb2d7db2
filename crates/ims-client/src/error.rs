//! The one error type of the client.

/// Everything that can go wrong when talking to an IMS server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-success status. `message` is taken from the Glance error body
    /// (`{"message","code","title"}`) or the IMS error body (`{"error_code","error_msg"}`) when the body
    /// is one of those, else it is the body text (or the status's reason phrase when the body is empty).
    #[error("{message} (HTTP {status})")]
    Http { status: u16, message: String },
    /// The request could not be sent or the response could not be read (connection refused, TLS, ...).
    #[error("cannot talk to the server: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered 2xx with a body that is not what the API promises.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// A local I/O error (reading a file to upload, ...).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The base URL given to the client is unusable.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e)
    }
}

impl ClientError {
    /// The HTTP status when the server answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is an HTTP error with status 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Builds the `Http` variant from a status and the raw body of an error response.
    pub fn from_response_body(status: u16, body: &[u8]) -> Self {
        ClientError::Http { status, message: error_message(status, body) }
    }
}

/// Extracts the human message from an error response body.
pub(crate) fn error_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&text) {
        // Glance: {"message": ..., "code": "404 Not Found", "title": "Not Found"}
        if let Some(m) = map.get("message").and_then(|v| v.as_str()) {
            return clean(m, status);
        }
        // IMS: {"error_code": "IMS.0001", "error_msg": "..."}
        if let Some(m) = map.get("error_msg").and_then(|v| v.as_str()) {
            return clean(m, status);
        }
        // Nested forms some OpenStack services use: {"error": {"message": ...}} or {"itemNotFound": {...}}.
        for v in map.values() {
            if let Some(inner) = v.as_object() {
                for key in ["message", "error_msg"] {
                    if let Some(m) = inner.get(key).and_then(|v| v.as_str()) {
                        return clean(m, status);
                    }
                }
            }
        }
    }
    clean(&text, status)
}

/// Glance's messages carry webob's `<br />` line breaks; make them one readable line.
fn clean(message: &str, status: u16) -> String {
    let replaced = message.replace("<br />", " ").replace("<br/>", " ");
    let collapsed = replaced.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_string()
    } else {
        collapsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glance_body() {
        let body = br#"{"message": "No image found with ID abc<br /><br />\n\n\n", "code": "404 Not Found", "title": "Not Found"}"#;
        assert_eq!(error_message(404, body), "No image found with ID abc");
    }

    #[test]
    fn ims_body() {
        let body = br#"{"error_code": "IMS.0106", "error_msg": "The image does not exist."}"#;
        assert_eq!(error_message(404, body), "The image does not exist.");
    }

    #[test]
    fn plain_and_empty_bodies() {
        assert_eq!(error_message(500, b"boom\n"), "boom");
        assert_eq!(error_message(404, b""), "Not Found");
        assert_eq!(error_message(409, b"[1,2]"), "[1,2]");
    }

    #[test]
    fn display_includes_status() {
        let e = ClientError::from_response_body(403, br#"{"message":"nope","code":"403 Forbidden","title":"Forbidden"}"#);
        assert_eq!(e.to_string(), "nope (HTTP 403)");
        assert_eq!(e.status(), Some(403));
    }
}
