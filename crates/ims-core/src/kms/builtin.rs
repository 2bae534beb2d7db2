//! The built-in KMS: master keys kept in the catalog, their material sealed by the service's secret sealer.

use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use base64::Engine;
use ims_catalog::{AuditEvent, Catalog, CatalogError, KeyState, StoredKmsKey};

use super::{now, Kms, KmsError, KmsKey};
use crate::SecretSealer;

/// Version prefix of a wrapped data key: `kms1:` + base64(nonce(12) || ciphertext || tag(16)), AES-256-GCM
/// under the master key with the key id as associated data.
const WRAP_PREFIX: &str = "kms1:";
const MAX_ALIAS: usize = 255;
const MAX_DATA_KEY: usize = 64;

/// The KMS that ships with IMS.
///
/// Master keys are rows of the catalog (so every node of a deployment sees the same keys and states), each
/// holding 32 random bytes sealed by the node's [`SecretSealer`] (AES-256-GCM under `<data-dir>/master.key`).
/// Every `wrap`/`unwrap` reads the key's current state, so disabling takes effect at once on every node.
#[derive(Clone)]
pub struct BuiltinKms {
    catalog: Catalog,
    sealer: Arc<dyn SecretSealer>,
}

impl BuiltinKms {
    pub fn new(catalog: Catalog, sealer: Arc<dyn SecretSealer>) -> BuiltinKms {
        BuiltinKms { catalog, sealer }
    }

    /// The key's cipher, if the key exists and is enabled.
    async fn usable_cipher(&self, key_id: &str) -> Result<Aes256Gcm, KmsError> {
        let stored = self.stored(key_id).await?;
        if stored.state != KeyState::Enabled {
            return Err(KmsError::Disabled(key_id.to_string()));
        }
        let material = self
            .sealer
            .unseal(&stored.sealed_material)
            .map_err(|e| KmsError::Corrupt(format!("encryption key {key_id} cannot be unsealed: {e}")))?;
        if material.len() != 32 {
            return Err(KmsError::Corrupt(format!("encryption key {key_id} has material of the wrong length")));
        }
        Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&material)))
    }

    async fn stored(&self, key_id: &str) -> Result<StoredKmsKey, KmsError> {
        self.catalog.encryption.get_key(key_id).await.map_err(|e| match e {
            CatalogError::NotFound(_) => KmsError::NotFound(key_id.to_string()),
            other => catalog_error(other),
        })
    }

    async fn set_state(&self, key_id: &str, state: KeyState, event: &AuditEvent) -> Result<KmsKey, KmsError> {
        self.catalog
            .encryption
            .set_key_state(key_id, state, now(), event)
            .await
            .map(|k| public(&k))
            .map_err(|e| match e {
                CatalogError::NotFound(_) => KmsError::NotFound(key_id.to_string()),
                other => catalog_error(other),
            })
    }
}

fn public(stored: &StoredKmsKey) -> KmsKey {
    KmsKey {
        id: stored.id.clone(),
        alias: stored.alias.clone(),
        description: stored.description.clone(),
        state: stored.state,
        shareable: stored.shareable,
        created_at: stored.created_at,
        updated_at: stored.updated_at,
    }
}

fn catalog_error(e: CatalogError) -> KmsError {
    match e {
        CatalogError::Conflict(m) => KmsError::Conflict(m),
        CatalogError::Invalid(m) => KmsError::Invalid(m),
        CatalogError::NotFound(m) => KmsError::NotFound(m),
        other => KmsError::Unavailable(format!("key store unavailable: {other}")),
    }
}

#[async_trait]
impl Kms for BuiltinKms {
    async fn create_key(
        &self,
        alias: &str,
        description: Option<&str>,
        shareable: bool,
        event: &AuditEvent,
    ) -> Result<KmsKey, KmsError> {
        let alias = alias.trim();
        if alias.is_empty() || alias.chars().count() > MAX_ALIAS {
            return Err(KmsError::Invalid(format!("a key alias must have 1 to {MAX_ALIAS} characters")));
        }
        if description.is_some_and(|d| d.chars().count() > MAX_ALIAS) {
            return Err(KmsError::Invalid(format!("a key description must have at most {MAX_ALIAS} characters")));
        }
        let material: [u8; 32] = Aes256Gcm::generate_key(OsRng).into();
        let sealed_material = self
            .sealer
            .seal(&material)
            .map_err(|e| KmsError::Unavailable(format!("cannot seal the new key: {e}")))?;
        let at = now();
        let stored = StoredKmsKey {
            id: uuid::Uuid::new_v4().to_string(),
            alias: alias.to_string(),
            description: description.map(str::to_string),
            state: KeyState::Enabled,
            shareable,
            sealed_material,
            created_at: at,
            updated_at: at,
        };
        let mut event = event.clone();
        event.resource = format!("kms-key:{}", stored.id);
        self.catalog.encryption.create_key(&stored, &event).await.map_err(|e| match e {
            CatalogError::Conflict(_) => KmsError::Conflict(format!("a key with alias {alias:?} already exists")),
            other => catalog_error(other),
        })?;
        Ok(public(&stored))
    }

    async fn list_keys(&self) -> Result<Vec<KmsKey>, KmsError> {
        let keys = self.catalog.encryption.list_keys().await.map_err(catalog_error)?;
        Ok(keys.iter().map(public).collect())
    }

    async fn get_key(&self, key_id: &str) -> Result<KmsKey, KmsError> {
        self.stored(key_id).await.map(|k| public(&k))
    }

    async fn disable_key(&self, key_id: &str, event: &AuditEvent) -> Result<KmsKey, KmsError> {
        self.set_state(key_id, KeyState::Disabled, event).await
    }

    async fn enable_key(&self, key_id: &str, event: &AuditEvent) -> Result<KmsKey, KmsError> {
        self.set_state(key_id, KeyState::Enabled, event).await
    }

    async fn set_key_shareable(&self, key_id: &str, shareable: bool, event: &AuditEvent) -> Result<KmsKey, KmsError> {
        self.catalog
            .encryption
            .set_key_shareable(key_id, shareable, now(), event)
            .await
            .map(|k| public(&k))
            .map_err(|e| match e {
                CatalogError::NotFound(_) => KmsError::NotFound(key_id.to_string()),
                other => catalog_error(other),
            })
    }

    async fn wrap(&self, key_id: &str, data_key: &[u8]) -> Result<String, KmsError> {
        if data_key.is_empty() || data_key.len() > MAX_DATA_KEY {
            return Err(KmsError::Invalid(format!("a data key must have 1 to {MAX_DATA_KEY} bytes")));
        }
        let cipher = self.usable_cipher(key_id).await?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: data_key, aad: key_id.as_bytes() })
            .map_err(|_| KmsError::Unavailable("cannot wrap the data key".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{WRAP_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out)))
    }

    async fn unwrap(&self, key_id: &str, wrapped: &str) -> Result<Vec<u8>, KmsError> {
        let cipher = self.usable_cipher(key_id).await?;
        let corrupt = || KmsError::Corrupt(format!("a wrapped data key does not unwrap under encryption key {key_id}"));
        let raw = wrapped
            .strip_prefix(WRAP_PREFIX)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|raw| raw.len() > 12 + 16)
            .ok_or_else(corrupt)?;
        let (nonce, sealed) = raw.split_at(12);
        cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: key_id.as_bytes() }).map_err(|_| corrupt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AesGcmSealer;

    async fn kms() -> BuiltinKms {
        let catalog = Catalog::connect("sqlite::memory:").await.unwrap();
        BuiltinKms::new(catalog, Arc::new(AesGcmSealer::new([9; 32])))
    }

    fn event() -> AuditEvent {
        AuditEvent::new("req-test", "kms.key", "kms-key:".into())
    }

    #[tokio::test]
    async fn wrap_unwrap_and_key_states() {
        let kms = kms().await;
        let a = kms.create_key("a", None, false, &event()).await.unwrap();
        let b = kms.create_key("b", Some("second"), true, &event()).await.unwrap();
        assert!(matches!(kms.create_key("a", None, false, &event()).await, Err(KmsError::Conflict(_))));
        assert!(matches!(kms.create_key(" ", None, false, &event()).await, Err(KmsError::Invalid(_))));

        let data_key = [42u8; 32];
        let wrapped = kms.wrap(&a.id, &data_key).await.unwrap();
        assert_ne!(kms.wrap(&a.id, &data_key).await.unwrap(), wrapped, "random nonces");
        assert!(wrapped.starts_with(WRAP_PREFIX));
        assert_eq!(kms.unwrap(&a.id, &wrapped).await.unwrap(), data_key);
        assert!(matches!(kms.unwrap(&b.id, &wrapped).await, Err(KmsError::Corrupt(_))), "bound to its key");
        let mut tampered = wrapped.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(kms.unwrap(&a.id, &tampered).await, Err(KmsError::Corrupt(_))));
        assert!(matches!(kms.unwrap(&a.id, "garbage").await, Err(KmsError::Corrupt(_))));
        assert!(matches!(kms.unwrap("nope", &wrapped).await, Err(KmsError::NotFound(_))));
        assert!(matches!(kms.wrap(&a.id, &[]).await, Err(KmsError::Invalid(_))));

        assert_eq!(kms.disable_key(&a.id, &event()).await.unwrap().state, KeyState::Disabled);
        assert!(matches!(kms.unwrap(&a.id, &wrapped).await, Err(KmsError::Disabled(_))));
        assert!(matches!(kms.unwrap(&a.id, "garbage").await, Err(KmsError::Disabled(_))), "checked first");
        assert!(matches!(kms.wrap(&a.id, &data_key).await, Err(KmsError::Disabled(_))));
        assert_eq!(kms.get_key(&b.id).await.unwrap().state, KeyState::Enabled);
        assert_eq!(kms.enable_key(&a.id, &event()).await.unwrap().state, KeyState::Enabled);
        assert_eq!(kms.unwrap(&a.id, &wrapped).await.unwrap(), data_key);
        assert!(matches!(kms.disable_key("nope", &event()).await, Err(KmsError::NotFound(_))));
        let ids: Vec<String> = kms.list_keys().await.unwrap().into_iter().map(|k| k.id).collect();
        assert_eq!(ids, [a.id, b.id]);
    }

    #[tokio::test]
    async fn key_material_is_sealed_under_the_node_master_key() {
        let kms = kms().await;
        let key = kms.create_key("sealed", None, false, &event()).await.unwrap();
        let wrapped = kms.wrap(&key.id, &[1; 32]).await.unwrap();
        let stored = kms.catalog.encryption.get_key(&key.id).await.unwrap();
        assert!(stored.sealed_material.starts_with("v1:"));
        let other_node = BuiltinKms::new(kms.catalog.clone(), Arc::new(AesGcmSealer::new([10; 32])));
        assert!(matches!(other_node.unwrap(&key.id, &wrapped).await, Err(KmsError::Corrupt(_))));
    }
}
