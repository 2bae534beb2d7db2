//! Key management for encryption at rest.
//!
//! A [`Kms`] holds *master keys* and wraps (encrypts) and unwraps *data keys* with them; it never hands a
//! master key out. The chunk store encrypts with data keys (see `ims_store::crypto`); the catalog keeps only
//! wrapped data keys. [`BuiltinKms`] is the provider that ships with IMS (master keys sealed in the catalog);
//! any other provider (an external KMS, an HSM) plugs in by implementing the trait.
//!
//! [`KmsService`] is the admin API over the configured provider; [`domains`] resolves the encryption domain
//! of an image.

mod builtin;
pub mod domains;
mod service;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ims_catalog::{AuditEvent, KeyState};

pub use builtin::BuiltinKms;
pub use service::KmsService;

use crate::CoreError;

/// A master key as callers see it (never its material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    /// The key id: what `__system__cmkid` names.
    pub id: String,
    /// Unique, human-chosen name.
    pub alias: String,
    pub description: Option<String>,
    pub state: KeyState,
    /// Whether images encrypted under the key may be shared with other projects.
    pub shareable: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Errors of a KMS provider.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// No key has this id.
    #[error("encryption key {0} does not exist")]
    NotFound(String),
    /// The key exists but is disabled: it wraps and unwraps nothing until enabled again.
    #[error("encryption key {0} is disabled")]
    Disabled(String),
    /// The alias is taken.
    #[error("{0}")]
    Conflict(String),
    /// The request is malformed (bad alias, wrong data key length, ...).
    #[error("{0}")]
    Invalid(String),
    /// A wrapped key does not unwrap under this key (altered, or wrapped by another key).
    #[error("{0}")]
    Corrupt(String),
    /// The provider or its storage failed; the call may be retried.
    #[error("{0}")]
    Unavailable(String),
}

impl From<KmsError> for CoreError {
    fn from(e: KmsError) -> CoreError {
        match e {
            KmsError::NotFound(_) => CoreError::NotFound(e.to_string()),
            KmsError::Disabled(_) => CoreError::Forbidden(e.to_string()),
            KmsError::Conflict(m) => CoreError::Conflict(m),
            KmsError::Invalid(m) => CoreError::Invalid(m),
            KmsError::Corrupt(m) => CoreError::Corrupt(m),
            KmsError::Unavailable(m) => CoreError::Unavailable(m),
        }
    }
}

/// A key management service: master keys that wrap data keys.
///
/// Implementations are shared by every request of a node (`Send + Sync`) and must be safe to use from
/// several nodes at once when the deployment has several.
#[async_trait]
pub trait Kms: Send + Sync {
    /// Creates a new enabled master key with fresh random material, `shareable` as given, and returns it.
    /// `Conflict` if `alias` is taken, `Invalid` if it is empty or longer than 255 characters; nothing is
    /// created on error. `event` is recorded with the change where the provider keeps an audit trail.
    async fn create_key(
        &self,
        alias: &str,
        description: Option<&str>,
        shareable: bool,
        event: &AuditEvent,
    ) -> Result<KmsKey, KmsError>;

    /// Every master key, oldest first. Disabled keys included.
    async fn list_keys(&self) -> Result<Vec<KmsKey>, KmsError>;

    /// The master key with this id, enabled or not; `NotFound` if there is none.
    async fn get_key(&self, key_id: &str) -> Result<KmsKey, KmsError>;

    /// Disables the key: from then on `wrap` and `unwrap` with it fail with `Disabled`. Nothing is deleted;
    /// `enable_key` undoes it. Idempotent. Returns the key afterwards; `NotFound` if missing.
    async fn disable_key(&self, key_id: &str, event: &AuditEvent) -> Result<KmsKey, KmsError>;

    /// Enables a disabled key again (idempotent). Returns the key afterwards; `NotFound` if missing.
    async fn enable_key(&self, key_id: &str, event: &AuditEvent) -> Result<KmsKey, KmsError>;

    /// Sets whether images encrypted under the key may be shared with other projects (idempotent); the
    /// key's state and material are untouched. Returns the key afterwards; `NotFound` if missing.
    async fn set_key_shareable(&self, key_id: &str, shareable: bool, event: &AuditEvent) -> Result<KmsKey, KmsError>;

    /// Encrypts `data_key` (1 to 64 bytes) under the master key and returns the wrapped form: printable,
    /// safe to store anywhere, authenticated and bound to `key_id`; wrapping the same key twice gives
    /// different results. `NotFound` for an unknown key, `Disabled` for a disabled one.
    async fn wrap(&self, key_id: &str, data_key: &[u8]) -> Result<String, KmsError>;

    /// The data key `wrap(key_id, ..)` wrapped. `NotFound` for an unknown key, `Disabled` for a disabled
    /// one (checked before anything else, so a disabled key never reveals whether a wrapped key is valid),
    /// `Corrupt` if `wrapped` was altered or wrapped under another key.
    async fn unwrap(&self, key_id: &str, wrapped: &str) -> Result<Vec<u8>, KmsError>;
}

/// The property that asks for an image's data to be encrypted, naming the master key (both APIs).
pub const CMK_PROPERTY: &str = "__system__cmkid";

/// The time of a key change, at full precision so that keys created within one second still list in
/// creation order (timestamps are shown in whole seconds).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}
