//! The one place where errors become HTTP responses, in the wire format of the surface called.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ims_core::CoreError;
use serde_json::json;

/// An error on its way to the client, rendered as Glance renders errors:
/// `{"message": ..., "code": "404 Not Found", "title": "Not Found"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra headers (`Accept-Patch` on 415, `WWW-Authenticate` on 401, ...).
    pub headers: Vec<(&'static str, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), headers: Vec::new() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> ApiError {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        let status = match &e {
            CoreError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
            CoreError::NotFound(_) => StatusCode::NOT_FOUND,
            CoreError::Conflict(_) => StatusCode::CONFLICT,
            CoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            CoreError::TooLarge(_) | CoreError::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            CoreError::NotAvailable(_) => StatusCode::NOT_IMPLEMENTED,
            CoreError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
            CoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            tracing::error!(error = %e, "request failed");
        }
        let mut err = ApiError::new(status, e.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            err = err.with_header("retry-after", "5");
        }
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = json!({
            "message": self.message,
            "code": format!("{} {}", self.status.as_u16(), title),
            "title": title,
        });
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// An error of the IMS API surface, rendered the way the Huawei Cloud SDK parses errors:
/// `{"error_code": "IMG.xxxx", "error_msg": ..., "error": {"code": ..., "message": ...}}` (the SDK reads
/// `error_code`/`error_msg`; other IMS tools read the nested `error` object). The codes are listed in
/// `docs/ims-api-errors.md`.
#[derive(Debug)]
pub struct ImsError {
    pub code: &'static str,
    pub inner: ApiError,
}

/// IMS error codes (see `docs/ims-api-errors.md`).
pub mod ims_codes {
    pub const INVALID: &str = "IMG.0001";
    pub const FORBIDDEN: &str = "IMG.0003";
    pub const NOT_FOUND: &str = "IMG.0004";
    pub const CONFLICT: &str = "IMG.0005";
    pub const TOO_LARGE: &str = "IMG.0006";
    pub const QUOTA_EXCEEDED: &str = "IMG.0010";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "IMG.0015";
    pub const INTERNAL: &str = "IMG.0500";
    pub const NOT_AVAILABLE: &str = "IMG.0501";
    pub const UNAVAILABLE: &str = "IMG.0503";
    /// Authentication failed (bad, expired or missing credentials or signature).
    pub const UNAUTHENTICATED: &str = "APIGW.0301";
    /// A signed body larger than the server buffers for verification.
    pub const BODY_TOO_LARGE: &str = "APIGW.0413";
    /// The caller made more requests than its rate limit allows.
    pub const TOO_MANY_REQUESTS: &str = "APIGW.0308";
}

impl ImsError {
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> ImsError {
        ImsError { code, inner: ApiError::new(status, message) }
    }

    pub fn invalid(message: impl Into<String>) -> ImsError {
        ImsError::new(ims_codes::INVALID, StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ImsError {
        ImsError::new(ims_codes::NOT_FOUND, StatusCode::NOT_FOUND, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> ImsError {
        ImsError::new(ims_codes::UNAUTHENTICATED, StatusCode::UNAUTHORIZED, message)
    }

    /// The code for an error that carries only a status.
    fn code_for(status: StatusCode) -> &'static str {
        use ims_codes::*;
        match status.as_u16() {
            400 => INVALID,
            401 => UNAUTHENTICATED,
            403 => FORBIDDEN,
            404 => NOT_FOUND,
            409 => CONFLICT,
            413 => TOO_LARGE,
            415 => UNSUPPORTED_MEDIA_TYPE,
            429 => TOO_MANY_REQUESTS,
            501 => NOT_AVAILABLE,
            503 => UNAVAILABLE,
            s if s >= 500 => INTERNAL,
            _ => INVALID,
        }
    }
}

impl From<ApiError> for ImsError {
    fn from(inner: ApiError) -> ImsError {
        ImsError { code: ImsError::code_for(inner.status), inner }
    }
}

impl From<CoreError> for ImsError {
    fn from(e: CoreError) -> ImsError {
        let code = match &e {
            CoreError::QuotaExceeded(_) => Some(ims_codes::QUOTA_EXCEEDED),
            _ => None,
        };
        let inner = ApiError::from(e);
        ImsError { code: code.unwrap_or_else(|| ImsError::code_for(inner.status)), inner }
    }
}

impl IntoResponse for ImsError {
    fn into_response(self) -> Response {
        let body = json!({
            "error_code": self.code,
            "error_msg": self.inner.message,
            "error": {"code": self.code, "message": self.inner.message},
        });
        let mut response = (self.inner.status, Json(body)).into_response();
        for (name, value) in self.inner.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

pub type ImsResult<T> = Result<T, ImsError>;
