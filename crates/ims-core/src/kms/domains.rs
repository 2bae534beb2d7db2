//! The encryption domain of an image.
//!
//! An image created with the [`CMK_PROPERTY`] property is encrypted under that master key. Its data is
//! written in the domain of (owner project, master key): one random data key per domain, created on first
//! use, wrapped by the master key and kept in the catalog; chunks dedup within a domain and nowhere else.
//! The wrapped data key is also recorded with the image, which is what reads use, so the image stays readable
//! by whoever may read it (members, a new owner) as long as the master key is enabled.

use std::sync::Arc;

use ims_catalog::{Image, ImageEncryption};
use ims_store::crypto::DATA_KEY_LEN;
use ims_store::{ChunkStore, EncryptionDomain};

use super::{Kms, KmsError, CMK_PROPERTY};
use crate::images::ImageService;
use crate::{CoreError, Result};

impl ImageService {
    fn kms(&self) -> Result<&Arc<dyn Kms>> {
        self.kms
            .get()
            .ok_or_else(|| CoreError::NotAvailable("encrypted images need key management, which is not configured".into()))
    }

    /// Checks the encryption asked for by a new image: when it names a master key, the key must exist
    /// (else `Invalid`) and be enabled (else `Forbidden`).
    pub(crate) async fn check_encryption_request(&self, image: &Image) -> Result<()> {
        let Some(key_id) = image.properties.get(CMK_PROPERTY) else { return Ok(()) };
        match self.kms()?.get_key(key_id).await {
            Ok(key) if key.state == ims_catalog::KeyState::Enabled => Ok(()),
            Ok(_) => Err(CoreError::Forbidden(format!("Encryption key {key_id} is disabled and cannot encrypt new images"))),
            Err(KmsError::NotFound(_)) => {
                Err(CoreError::Invalid(format!("{CMK_PROPERTY}: encryption key {key_id} does not exist")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The store view an image's data is written through, and the record to keep with the image when it is
    /// encrypted. Creates the (owner, key) domain on first use. `Forbidden` if the key is disabled.
    pub(crate) async fn store_for_upload(&self, image: &Image) -> Result<(ChunkStore, Option<ImageEncryption>)> {
        let Some(key_id) = image.properties.get(CMK_PROPERTY) else { return Ok((self.store.clone(), None)) };
        let kms = self.kms()?;
        let encryption = &self.catalog.encryption;
        let wrapped = match encryption.domain_key(&image.owner, key_id).await? {
            Some(wrapped) => wrapped,
            None => {
                let fresh = EncryptionDomain::generate_data_key();
                let wrapped = kms.wrap(key_id, &fresh).await.map_err(|e| key_error(image, key_id, e))?;
                encryption.add_domain_key(&image.owner, key_id, &wrapped, crate::now()).await?
            }
        };
        let record = ImageEncryption { image_id: image.id, key_id: key_id.clone(), wrapped_data_key: wrapped };
        let store = self.open_domain(image, &record).await?;
        Ok((store, Some(record)))
    }

    /// Refuses to share `image` with another project when it is encrypted (its data was written in an
    /// encryption domain, or it asks for a master key and has no data yet) under a master key that is not
    /// shareable: `Forbidden` naming the key. Members of a shareable key's image read its data through the
    /// owner's domain (the data key recorded with the image). Plaintext images always pass.
    pub(crate) async fn check_shareable(&self, image: &Image) -> Result<()> {
        let key_id = match self.catalog.encryption.image_encryption(image.id).await? {
            Some(record) => record.key_id,
            None => match image.properties.get(CMK_PROPERTY) {
                Some(key_id) => key_id.clone(),
                None => return Ok(()),
            },
        };
        let shareable = match self.kms()?.get_key(&key_id).await {
            Ok(key) => key.shareable,
            Err(KmsError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        if shareable {
            return Ok(());
        }
        Err(CoreError::Forbidden(format!(
            "Image {} is encrypted under key {key_id}, which is not shareable: it cannot be shared with other \
             projects (an admin can make the key shareable)",
            image.id
        )))
    }

    /// The store view an image's data is read through: the store holding it (the default store, or the
    /// extra store it is read from once deleted from the default one: see [`ImageService::home_store`]) in
    /// its recorded domain, or plaintext. `Forbidden` if the image's master key is disabled or gone;
    /// `Unavailable` if no store holding it is configured on this node.
    pub(crate) async fn store_for_reading(&self, image: &Image) -> Result<ChunkStore> {
        let home = self.home_store(image)?;
        match self.catalog.encryption.image_encryption(image.id).await? {
            Some(record) => Ok(home.in_domain(self.data_domain(image, &record).await?)),
            None => Ok(home),
        }
    }

    /// The default store's view in the domain of `record`.
    async fn open_domain(&self, image: &Image, record: &ImageEncryption) -> Result<ChunkStore> {
        Ok(self.store.in_domain(self.data_domain(image, record).await?))
    }

    /// The encryption domain of `record`: its data key, unwrapped by the KMS.
    async fn data_domain(&self, image: &Image, record: &ImageEncryption) -> Result<EncryptionDomain> {
        let key_id = &record.key_id;
        let data_key = self
            .kms()?
            .unwrap(key_id, &record.wrapped_data_key)
            .await
            .map_err(|e| key_error(image, key_id, e))?;
        let data_key: [u8; DATA_KEY_LEN] = data_key
            .try_into()
            .map_err(|_| CoreError::Corrupt(format!("image {}: its data key has the wrong length", image.id)))?;
        Ok(EncryptionDomain::new(&data_key))
    }
}

/// A key failure while opening an image's domain, said in terms of the image.
fn key_error(image: &Image, key_id: &str, e: KmsError) -> CoreError {
    match e {
        KmsError::Disabled(_) => CoreError::Forbidden(format!(
            "The encryption key {key_id} of image {} is disabled: the image data cannot be read or written \
             until the key is enabled again",
            image.id
        )),
        KmsError::NotFound(_) => CoreError::Forbidden(format!(
            "The encryption key {key_id} of image {} does not exist: the image data cannot be read or written",
            image.id
        )),
        other => other.into(),
    }
}

/// Refuses a change of the encryption property: it is fixed when the image is created (encrypting an
/// image's data under another key is a copy of the image).
pub(crate) fn check_unchanged(before: &Image, after: &Image) -> Result<()> {
    if before.properties.get(CMK_PROPERTY) != after.properties.get(CMK_PROPERTY) {
        return Err(CoreError::Forbidden(format!(
            "{CMK_PROPERTY} is set when an image is created and cannot change; copy the image to encrypt it under another key"
        )));
    }
    Ok(())
}
