//! Records of encryption at rest: master keys of the built-in KMS, encryption domains, encrypted images.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CatalogError;

/// Whether a master key may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Enabled,
    Disabled,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "enabled",
            KeyState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyState {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "enabled" => Ok(KeyState::Enabled),
            "disabled" => Ok(KeyState::Disabled),
            other => Err(CatalogError::Invalid(format!("invalid key state {other:?}"))),
        }
    }
}

/// A master key of the built-in KMS, with its material sealed by the service's secret sealer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKmsKey {
    pub id: String,
    /// Unique, human-chosen name.
    pub alias: String,
    pub description: Option<String>,
    pub state: KeyState,
    /// Whether images encrypted under the key may be shared with other projects (their members then read
    /// the data through the owner's encryption domain).
    pub shareable: bool,
    /// The 32-byte key material as the secret sealer sealed it.
    pub sealed_material: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The master key and wrapped data key an encrypted image's data was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEncryption {
    pub image_id: Uuid,
    pub key_id: String,
    /// The domain's data key as the KMS wrapped it (printable).
    pub wrapped_data_key: String,
}
