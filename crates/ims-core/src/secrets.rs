//! Sealing secrets the service must be able to read back (access key secrets), so that the catalog
//! never holds them in clear.
//!
//! [`SecretSealer`] is the seam the KMS work plugs into; until then [`AesGcmSealer`] seals with
//! AES-256-GCM under one master key kept in `<data-dir>/master.key`.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use base64::Engine;

use crate::{CoreError, Result};

/// Seals and unseals small secrets. Implementations must be authenticated: unsealing anything that
/// was not produced by `seal` with the same key fails.
pub trait SecretSealer: Send + Sync {
    /// The sealed form of `plaintext` (printable, safe to store). Sealing the same secret twice gives
    /// different results.
    fn seal(&self, plaintext: &[u8]) -> Result<String>;
    /// The plaintext of a value `seal` produced; `Corrupt` if it was altered or sealed under another key.
    fn unseal(&self, sealed: &str) -> Result<Vec<u8>>;
}

/// Version tag of the sealed format: `v1:` + base64(nonce(12) || ciphertext || tag(16)).
const PREFIX: &str = "v1:";

/// AES-256-GCM with a random 96-bit nonce per secret.
pub struct AesGcmSealer {
    cipher: Aes256Gcm,
}

impl AesGcmSealer {
    pub fn new(key: [u8; 32]) -> AesGcmSealer {
        AesGcmSealer { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)) }
    }

    /// The sealer whose key is the 32 bytes in the file at `path`, creating the file (mode 0600, 32
    /// random bytes) when it does not exist. A file of another length is an error.
    pub fn open_key_file(path: &Path) -> std::io::Result<AesGcmSealer> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("master key {} has {} bytes, expected 32", path.display(), b.len()),
                    )
                })?;
                Ok(AesGcmSealer::new(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = Aes256Gcm::generate_key(OsRng).into();
                // create_new: two nodes starting at once on a shared directory never overwrite a key.
                let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
                f.write_all(&key)?;
                f.sync_all()?;
                Ok(AesGcmSealer::new(key))
            }
            Err(e) => Err(e),
        }
    }
}

impl SecretSealer for AesGcmSealer {
    fn seal(&self, plaintext: &[u8]) -> Result<String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| CoreError::Unavailable("cannot seal a secret".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out)))
    }

    fn unseal(&self, sealed: &str) -> Result<Vec<u8>> {
        let corrupt = || CoreError::Corrupt("a sealed secret cannot be opened with this master key".into());
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .ok_or_else(corrupt)?;
        if raw.len() < 12 + 16 {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = raw.split_at(12);
        self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| corrupt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let s = AesGcmSealer::new([7; 32]);
        let a = s.seal(b"secret").unwrap();
        let b = s.seal(b"secret").unwrap();
        assert_ne!(a, b, "random nonces");
        assert!(!a.contains("secret"));
        assert_eq!(s.unseal(&a).unwrap(), b"secret");
        let other = AesGcmSealer::new([8; 32]);
        assert!(matches!(other.unseal(&a), Err(CoreError::Corrupt(_))));
        let mut raw = base64::engine::general_purpose::STANDARD.decode(&a[3..]).unwrap();
        raw[13] ^= 1;
        let tampered = format!("v1:{}", base64::engine::general_purpose::STANDARD.encode(raw));
        assert!(s.unseal(&tampered).is_err());
        assert!(s.unseal("garbage").is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let sealed = AesGcmSealer::open_key_file(&path).unwrap().seal(b"x").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap().len(), 32);
        assert_eq!(AesGcmSealer::open_key_file(&path).unwrap().unseal(&sealed).unwrap(), b"x");
        std::fs::write(&path, b"short").unwrap();
        assert!(AesGcmSealer::open_key_file(&path).is_err());
    }
}
