//! Encryption at rest: encryption domains, keyed chunk ids and the AES-256-GCM chunk envelope.
//!
//! An [`EncryptionDomain`] is everything written under one 256-bit *data key*. Two keys are derived from
//! the data key with blake3's key derivation mode, one per purpose:
//!
//! - the *id key*: chunk ids in the domain are `blake3::keyed_hash(id key, plaintext)`, so equal plaintexts
//!   dedup within the domain, while the same plaintext in two domains gives two unrelated ids (two objects).
//!   Nobody without the data key can test whether a stored chunk holds a guessed plaintext.
//! - the *cipher key*: AES-256-GCM key of every chunk object of the domain.
//!
//! Encrypted chunk object (codec tags with the high bit set, see [`crate::chunk`]):
//!
//! ```text
//! byte 0      0x80 | inner codec (0x80 raw, 0x81 zstd)
//! bytes 1-12  nonce: 96 random bits, fresh for every object written
//! bytes 13..  AES-256-GCM ciphertext of the inner payload, then the 16-byte tag
//! AAD         the tag byte followed by the 32-byte chunk id
//! ```
//!
//! Nonces are random. A (key, nonce) pair repeats with probability about n²/2⁹⁷ after n objects under one
//! key; a domain holds at most a few million chunks (one per MiB stored by a project under one master key),
//! far below the 2³² encryptions NIST SP 800-38D allows for random nonces. The AAD binds an object to its id,
//! so an object copied under another id fails authentication instead of decoding as the wrong chunk.

use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce, Tag};
use bytes::Bytes;
use futures::StreamExt;

use crate::chunk::ChunkId;
use crate::{ChunkStore, Manifest, StoreError, WriteSummary};

/// Length of a data key in bytes.
pub const DATA_KEY_LEN: usize = 32;
/// Bytes an encrypted object adds in front of the payload (tag byte excluded): the nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes an encrypted object adds after the payload: the GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Codec-tag bit marking an encrypted object.
pub const ENCRYPTED: u8 = 0x80;

const ID_KEY_CONTEXT: &str = "IMS 2024 chunk store: chunk id key";
const CIPHER_KEY_CONTEXT: &str = "IMS 2024 chunk store: AES-256-GCM chunk key";

/// The keys of one encryption domain. Cheap to clone (an `Arc`); `Debug` never shows key material.
#[derive(Clone)]
pub struct EncryptionDomain {
    keys: Arc<DomainKeys>,
}

struct DomainKeys {
    id_key: [u8; 32],
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for EncryptionDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionDomain(..)")
    }
}

impl EncryptionDomain {
    /// The domain of `data_key`. The same data key always gives the same domain (same ids, readable objects).
    pub fn new(data_key: &[u8; DATA_KEY_LEN]) -> EncryptionDomain {
        let id_key = blake3::derive_key(ID_KEY_CONTEXT, data_key);
        let cipher_key = blake3::derive_key(CIPHER_KEY_CONTEXT, data_key);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&cipher_key));
        EncryptionDomain { keys: Arc::new(DomainKeys { id_key, cipher }) }
    }

    /// A fresh random data key (from the operating system's generator).
    pub fn generate_data_key() -> [u8; DATA_KEY_LEN] {
        Aes256Gcm::generate_key(OsRng).into()
    }

    /// The id of a chunk in this domain: the keyed blake3 hash of its plaintext (given as segments).
    pub fn chunk_id(&self, segments: &[Bytes]) -> ChunkId {
        let mut hasher = blake3::Hasher::new_keyed(&self.keys.id_key);
        for s in segments {
            hasher.update(s);
        }
        ChunkId(*hasher.finalize().as_bytes())
    }

    /// The key of this domain's keyed chunk hashes (for hashing frames, see [`crate::frames`]).
    pub(crate) fn id_key(&self) -> &[u8; 32] {
        &self.keys.id_key
    }

    /// Encrypts `data` in place under a fresh random nonce, authenticating `aad` with it; returns the
    /// nonce and the tag.
    pub(crate) fn seal_detached(&self, aad: &[u8], data: &mut [u8]) -> ([u8; NONCE_LEN], [u8; TAG_LEN]) {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Only inputs of gigabytes make AES-GCM refuse, and a frame is 64 KiB.
        let tag = self.keys.cipher.encrypt_in_place_detached(&nonce, aad, data).expect("AES-GCM encrypts a frame");
        (nonce.into(), tag.into())
    }

    /// Authenticates `data` (sealed by [`EncryptionDomain::seal_detached`] with `nonce`, `aad` and `tag`)
    /// and decrypts it in place.
    pub(crate) fn open_detached(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), String> {
        if tag.len() != TAG_LEN {
            return Err("has no whole authentication tag".into());
        }
        self.keys
            .cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, data, Tag::from_slice(tag))
            .map_err(|_| "does not decrypt: damaged, or written under another data key".to_string())
    }

    /// Encrypts `object[1 + NONCE_LEN..]` in place and appends the tag. `object[0]` must already hold the
    /// encrypted codec tag; the nonce is written into `object[1..1 + NONCE_LEN]`.
    pub(crate) fn seal_in_place(&self, id: &ChunkId, object: &mut Vec<u8>) -> Result<(), String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        object[1..1 + NONCE_LEN].copy_from_slice(&nonce);
        let aad = aad(object[0], id);
        let tag = self
            .keys
            .cipher
            .encrypt_in_place_detached(&nonce, &aad, &mut object[1 + NONCE_LEN..])
            .map_err(|_| "AES-GCM refused to encrypt the chunk".to_string())?;
        object.extend_from_slice(&tag);
        Ok(())
    }

    /// Authenticates and decrypts an encrypted object; returns the inner payload (the codec's input).
    pub(crate) fn open(&self, id: &ChunkId, object: &[u8]) -> Result<Vec<u8>, String> {
        if object.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(format!("encrypted chunk object of {} bytes is too short", object.len()));
        }
        let nonce = Nonce::from_slice(&object[1..1 + NONCE_LEN]);
        let (body, tag) = object[1 + NONCE_LEN..].split_at(object.len() - 1 - NONCE_LEN - TAG_LEN);
        let mut payload = body.to_vec();
        self.keys
            .cipher
            .decrypt_in_place_detached(nonce, &aad(object[0], id), &mut payload, Tag::from_slice(tag))
            .map_err(|_| "does not decrypt: damaged, or written under another data key".to_string())?;
        Ok(payload)
    }
}

fn aad(tag: u8, id: &ChunkId) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = tag;
    aad[1..].copy_from_slice(&id.0);
    aad
}

/// The id of a chunk given as segments: keyed by the domain's id key when there is one, else plain blake3.
pub(crate) fn chunk_id_in(domain: Option<&EncryptionDomain>, segments: &[Bytes]) -> ChunkId {
    match domain {
        Some(domain) => domain.chunk_id(segments),
        None => crate::chunk::id_of_segments(segments),
    }
}

impl ChunkStore {
    /// Copies the file described by `manifest` (read through this store's domain) into `target` (written
    /// through its domain) and returns the new file's write summary; its manifest is not saved.
    ///
    /// This is re-encryption: with `target = store.in_domain(other)` every chunk is decrypted, re-identified
    /// and re-encrypted under the other key; `target = store.without_domain()` decrypts. Streams chunk by chunk
    /// (memory stays bounded), verifies every chunk read, and leaves the source untouched. The result has the
    /// same size, bytes and chunk boundaries. On error, objects already written to `target` stay for garbage
    /// collection.
    pub async fn copy_file(&self, manifest: Arc<Manifest>, target: &ChunkStore) -> Result<WriteSummary, StoreError> {
        let mut writer = target.writer();
        let mut data = self.read_range(manifest.clone(), 0, manifest.size);
        while let Some(piece) = data.next().await {
            writer.write(piece?).await?;
        }
        writer.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_keyed_per_domain() {
        let a = EncryptionDomain::new(&[1; 32]);
        let b = EncryptionDomain::new(&[2; 32]);
        let data = [Bytes::from_static(b"same plaintext")];
        assert_eq!(a.chunk_id(&data), EncryptionDomain::new(&[1; 32]).chunk_id(&data));
        assert_ne!(a.chunk_id(&data), b.chunk_id(&data));
        assert_ne!(a.chunk_id(&data), ChunkId::of(b"same plaintext"));
        assert_ne!(EncryptionDomain::generate_data_key(), EncryptionDomain::generate_data_key());
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let domain = EncryptionDomain::new(&[3; 32]);
        let id = ChunkId::of(b"x");
        let mut object = vec![ENCRYPTED; 1 + NONCE_LEN];
        object.extend_from_slice(b"payload bytes");
        domain.seal_in_place(&id, &mut object).unwrap();
        assert_eq!(object.len(), 1 + NONCE_LEN + 13 + TAG_LEN);
        assert_eq!(domain.open(&id, &object).unwrap(), b"payload bytes");
        assert!(domain.open(&ChunkId::of(b"y"), &object).is_err(), "bound to its id");
        assert!(EncryptionDomain::new(&[4; 32]).open(&id, &object).is_err(), "other key");
        let mut tagged = object.clone();
        tagged[0] = ENCRYPTED | 1;
        assert!(domain.open(&id, &tagged).is_err(), "bound to its codec tag");
        assert!(domain.open(&id, &object[..20]).is_err());
        assert_eq!(format!("{domain:?}"), "EncryptionDomain(..)");
    }
}
