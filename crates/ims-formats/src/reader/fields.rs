//! Checked access to fixed-layout fields of an untrusted byte buffer.

use crate::{FormatError, Result};

/// A view of a structure (header, table entry, footer) read from an image.
///
/// Every accessor checks bounds and returns `Corrupt` naming the structure when the field lies past
/// the end of the buffer; none panics.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a> {
    bytes: &'a [u8],
    format: &'static str,
    what: &'static str,
}

impl<'a> Fields<'a> {
    /// Wraps `bytes`, naming them `what` of `format` in errors.
    pub(crate) fn new(bytes: &'a [u8], format: &'static str, what: &'static str) -> Fields<'a> {
        Fields { bytes, format, what }
    }

    fn truncated(&self, offset: usize, len: usize) -> FormatError {
        FormatError::Corrupt(format!(
            "{}: {} is truncated ({} bytes, a field needs bytes {}..{})",
            self.format,
            self.what,
            self.bytes.len(),
            offset,
            offset.saturating_add(len)
        ))
    }

    /// `len` bytes at `offset`.
    pub(crate) fn slice(&self, offset: usize, len: usize) -> Result<&'a [u8]> {
        offset
            .checked_add(len)
            .and_then(|end| self.bytes.get(offset..end))
            .ok_or_else(|| self.truncated(offset, len))
    }

    fn array<const N: usize>(&self, offset: usize) -> Result<[u8; N]> {
        let s = self.slice(offset, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub(crate) fn u8(&self, offset: usize) -> Result<u8> {
        Ok(self.array::<1>(offset)?[0])
    }
    pub(crate) fn u16_le(&self, offset: usize) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(offset)?))
    }
    pub(crate) fn u32_le(&self, offset: usize) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(offset)?))
    }
    pub(crate) fn u64_le(&self, offset: usize) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(offset)?))
    }
    pub(crate) fn u16_be(&self, offset: usize) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(offset)?))
    }
    pub(crate) fn u32_be(&self, offset: usize) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(offset)?))
    }
    pub(crate) fn u64_be(&self, offset: usize) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(offset)?))
    }
    /// 16 bytes at `offset` (GUIDs, UUIDs).
    pub(crate) fn guid(&self, offset: usize) -> Result<[u8; 16]> {
        self.array(offset)
    }
}

/// Entry `index` of a table of big-endian `u64`s; `None` past the end.
pub(crate) fn be64_at(table: &[u8], index: u64) -> Option<u64> {
    let start = usize::try_from(index).ok()?.checked_mul(8)?;
    let bytes = table.get(start..start.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    Some(u64::from_be_bytes(a))
}

/// Entry `index` of a table of little-endian `u64`s; `None` past the end.
pub(crate) fn le64_at(table: &[u8], index: u64) -> Option<u64> {
    let start = usize::try_from(index).ok()?.checked_mul(8)?;
    let bytes = table.get(start..start.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    Some(u64::from_le_bytes(a))
}

/// Entry `index` of a table of big-endian `u32`s; `None` past the end.
pub(crate) fn be32_at(table: &[u8], index: u64) -> Option<u32> {
    let start = usize::try_from(index).ok()?.checked_mul(4)?;
    let bytes = table.get(start..start.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    Some(u32::from_be_bytes(a))
}

/// Entry `index` of a table of little-endian `u32`s; `None` past the end.
pub(crate) fn le32_at(table: &[u8], index: u64) -> Option<u32> {
    let start = usize::try_from(index).ok()?.checked_mul(4)?;
    let bytes = table.get(start..start.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    Some(u32::from_le_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_bounds_checked() {
        let b = [1u8, 2, 3, 4, 5];
        let f = Fields::new(&b, "t", "header");
        assert_eq!(f.u32_be(0).ok(), Some(0x01020304));
        assert_eq!(f.u32_le(1).ok(), Some(0x05040302));
        assert!(f.u32_le(2).is_err());
        assert!(f.slice(usize::MAX, 2).is_err());
        assert!(f.u64_be(0).is_err());
        assert_eq!(be32_at(&b, 0), Some(0x01020304));
        assert_eq!(be32_at(&b, 1), None);
        assert_eq!(le64_at(&b, u64::MAX), None);
    }
}
