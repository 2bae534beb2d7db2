//! Identifiers that image files carry (VMDK CID, VHD unique id, VHDX GUIDs). They need to be unique,
//! not secret: drawn from the standard library's randomly keyed hasher, mixed with time and a counter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh pseudo-random 64-bit value.
pub(crate) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish()
}

/// A fresh random version-4 GUID in the byte order the Microsoft formats store (the first three
/// fields little-endian); for a random GUID only the version and variant bits matter.
pub(crate) fn random_guid() -> [u8; 16] {
    let mut g = [0u8; 16];
    g[..8].copy_from_slice(&random_u64().to_le_bytes());
    g[8..].copy_from_slice(&random_u64().to_le_bytes());
    g[7] = (g[7] & 0x0f) | 0x40; // version 4 (high nibble of the little-endian Data3)
    g[8] = (g[8] & 0x3f) | 0x80; // RFC 4122 variant
    g
}
