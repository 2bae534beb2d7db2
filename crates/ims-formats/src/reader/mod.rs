//! Machinery shared by the readers: checked field access over untrusted bytes, bounded reads of the
//! image file, a bounded table cache, the generic cluster-mapped disk, decompression and CRC-32C.
//!
//! Everything here treats its input as hostile: no function panics on any bytes, every offset is
//! computed with checked arithmetic, and every allocation is bounded by a caller-supplied limit.

pub(crate) mod cache;
pub(crate) mod codec;
pub(crate) mod crc32c;
pub(crate) mod fields;
pub(crate) mod mapped;
pub(crate) mod source;

pub(crate) use cache::TableCache;
pub(crate) use fields::Fields;
pub(crate) use mapped::{BlockMap, Mapped, Mapping, Run};
pub(crate) use source::Source;

use crate::{FormatError, Limits, Result};

/// Refuses a virtual size above `limits.max_virtual_size`.
pub(crate) fn check_virtual_size(format: &str, size: u64, limits: &Limits) -> Result<()> {
    if size > limits.max_virtual_size {
        return Err(FormatError::Unsafe(format!(
            "{format}: virtual size of {size} bytes exceeds the limit of {} bytes",
            limits.max_virtual_size
        )));
    }
    Ok(())
}

/// `a * b`, or `Corrupt` naming `what` when it overflows.
pub(crate) fn mul(format: &str, what: &str, a: u64, b: u64) -> Result<u64> {
    a.checked_mul(b)
        .ok_or_else(|| FormatError::Corrupt(format!("{format}: {what} overflows ({a} * {b})")))
}

/// Converts a length that the caller has already bounded (by a table limit or a cluster size) to
/// `usize`; `Unsupported` on a platform where it does not fit.
pub(crate) fn to_usize(format: &str, n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| FormatError::Unsupported(format!("{format}: {n} bytes do not fit in memory here")))
}

/// Quotes a name read from an image for an error message: lossy UTF-8, escaped, at most 256 chars.
pub(crate) fn quote(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let mut short: String = text.chars().take(256).collect();
    if text.chars().count() > 256 {
        short.push_str("...");
    }
    format!("{short:?}")
}
