//! Authentication by an OpenStack Keystone (`auth = "keystone"`): every `X-Auth-Token` is validated by
//! Keystone, as keystonemiddleware does for OpenStack services, and mapped onto an IMS [`Caller`] (see
//! [`token`] for the role and scope mapping). Validated tokens are cached ([`cache`]) until they expire, at
//! most `keystone.cache_ttl` seconds. When Keystone cannot be asked, requests are refused with 503: a token
//! is never trusted without Keystone's word for it.

mod cache;
mod client;
mod token;

use std::time::{Duration, Instant};

use chrono::Utc;
use ims_core::Caller;

use crate::config::KeystoneConfig;
use cache::TokenCache;
use client::KeystoneClient;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoneError {
    /// Keystone does not know the token: malformed, expired or revoked (401).
    #[error("The request you have made requires authentication.")]
    InvalidToken,
    /// The token is valid but its scope or roles give no access to images (403).
    #[error("{0}")]
    NoAccess(String),
    /// Keystone could not be asked, or refused IMS's own credentials (503).
    #[error("{0}")]
    Unavailable(String),
}

/// The Keystone authentication of one node: the client and its cache of validated tokens.
pub struct KeystoneAuth {
    client: KeystoneClient,
    cache: TokenCache,
    challenge: String,
}

impl KeystoneAuth {
    /// Checks `config` and prepares the client; Keystone is first contacted by the first request.
    pub fn new(config: &KeystoneConfig) -> anyhow::Result<KeystoneAuth> {
        config.validate()?;
        let challenge = format!("Keystone uri=\"{}\"", config.url.trim_end_matches('/'));
        Ok(KeystoneAuth {
            client: KeystoneClient::new(config.clone())?,
            cache: TokenCache::new(config.cache_size, Duration::from_secs(config.cache_ttl)),
            challenge,
        })
    }

    /// The caller `token` stands for: from the cache, else from Keystone (and then cached).
    pub async fn authenticate(&self, token: &str) -> Result<Caller, KeystoneError> {
        if let Some(caller) = self.cache.get(token, Instant::now()) {
            return Ok(caller);
        }
        let info = self.client.validate(token).await?;
        let expires_in = (info.expires_at - Utc::now()).to_std().unwrap_or_default();
        if expires_in.is_zero() {
            return Err(KeystoneError::InvalidToken);
        }
        let caller = info.caller()?;
        self.cache.insert(token, caller.clone(), expires_in, Instant::now());
        Ok(caller)
    }

    /// The `WWW-Authenticate` value of a 401: where clients get a token.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}
