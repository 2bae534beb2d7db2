//! Request context extraction: the request id and the caller, authenticated either by an
//! `SDK-HMAC-SHA256` signature (checked by [`crate::signature::verify`] before routing) or by
//! `X-Auth-Token`, which the built-in identity or, with `auth = "keystone"`, Keystone validates.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use ims_core::RequestContext;

use crate::error::{ApiError, ImsError};
use crate::keystone::{KeystoneAuth, KeystoneError};
use crate::request_id::RequestId;
use crate::signature::SignedCaller;
use crate::state::AppState;

/// The context of an authenticated request. Rejects requests without valid credentials with 401
/// (Glance's error form).
pub struct Ctx(pub RequestContext);

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Ctx, ApiError> {
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        if let Some(SignedCaller(caller)) = parts.extensions.get::<SignedCaller>() {
            let caller = caller.clone();
            return Ok(Ctx(crate::audit::context(parts, request_id, caller)));
        }
        let token = parts
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if let Some(keystone) = &state.keystone {
            let Some(token) = token else {
                return Err(keystone_error(KeystoneError::InvalidToken, keystone));
            };
            let caller = keystone.authenticate(token).await.map_err(|e| keystone_error(e, keystone))?;
            return Ok(Ctx(crate::audit::context(parts, request_id, caller)));
        }
        let Some(token) = token else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "The request you have made requires authentication.",
            )
            .with_header("www-authenticate", "X-Auth-Token"));
        };
        let caller = state.services.identity.authenticate(token).await.map_err(|e| {
            ApiError::from(e).with_header("www-authenticate", "X-Auth-Token")
        })?;
        Ok(Ctx(crate::audit::context(parts, request_id, caller)))
    }
}

/// 401 with Keystone's challenge for a missing or invalid token, 403 for a token without access to images,
/// 503 when Keystone cannot be asked.
fn keystone_error(e: KeystoneError, keystone: &KeystoneAuth) -> ApiError {
    match e {
        KeystoneError::InvalidToken => ApiError::new(StatusCode::UNAUTHORIZED, e.to_string())
            .with_header("www-authenticate", keystone.challenge()),
        KeystoneError::NoAccess(why) => ApiError::new(StatusCode::FORBIDDEN, why),
        KeystoneError::Unavailable(why) => {
            tracing::error!(error = %why, "a token could not be validated");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("The identity service is unavailable: {why}"))
                .with_header("retry-after", "5")
        }
    }
}

/// [`Ctx`] for the IMS API: the same credentials, rejected in the IMS error form.
pub struct ImsCtx(pub RequestContext);

impl FromRequestParts<AppState> for ImsCtx {
    type Rejection = ImsError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ImsCtx, ImsError> {
        Ctx::from_request_parts(parts, state).await.map(|Ctx(ctx)| ImsCtx(ctx)).map_err(ImsError::from)
    }
}
