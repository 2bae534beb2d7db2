//! The 64-byte file header shared by ZVHD and ZVHD2 (`docs/formats/zvhd.md`, "File header").

use crate::{FormatError, Limits, Result};

/// Length of the header this version writes; readers accept longer headers (later minors).
pub(crate) const HEADER_LEN: u32 = 64;
/// Longest header a reader accepts.
pub(crate) const MAX_HEADER_LEN: u32 = 4096;
/// Smallest and largest block sizes.
pub(crate) const MIN_BLOCK: u64 = 4 << 10;
pub(crate) const MAX_BLOCK: u64 = 64 << 20;

/// Codec identifiers of the header's `codec` field.
pub(crate) const CODEC_ZLIB: u32 = 1;
pub(crate) const CODEC_ZSTD: u32 = 2;

/// The decoded header of a ZVHD or ZVHD2 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub major: u16,
    pub minor: u16,
    /// Bytes from the start of the file to the first block (ZVHD) or to the data area (ZVHD2).
    pub header_len: u32,
    pub virtual_size: u64,
    pub block_size: u64,
    pub codec: u32,
}

impl Header {
    /// Number of blocks of the guest disk (the last one may be short).
    pub(crate) fn block_count(&self) -> u64 {
        self.virtual_size.div_ceil(self.block_size)
    }

    /// Uncompressed length of block `index`: the block size, or less for the last block.
    pub(crate) fn raw_len(&self, index: u64) -> u64 {
        let start = index.saturating_mul(self.block_size);
        self.virtual_size.saturating_sub(start).min(self.block_size)
    }

    /// The header as written by this version (minor 0, no flags).
    pub(crate) fn encode(&self, magic: &[u8; 8]) -> [u8; HEADER_LEN as usize] {
        let mut b = [0u8; HEADER_LEN as usize];
        b[0..8].copy_from_slice(magic);
        b[8..10].copy_from_slice(&self.major.to_le_bytes());
        b[10..12].copy_from_slice(&self.minor.to_le_bytes());
        b[12..16].copy_from_slice(&HEADER_LEN.to_le_bytes());
        // 16..20 required flags, 20..24 optional flags: none.
        b[24..32].copy_from_slice(&self.virtual_size.to_le_bytes());
        b[32..36].copy_from_slice(&(self.block_size as u32).to_le_bytes());
        b[36..40].copy_from_slice(&self.codec.to_le_bytes());
        let crc = crc32fast::hash(&b);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }
}

/// Reads a little-endian u16/u32/u64 at `at` of `b`; `None` past the end.
pub(crate) fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(crate) fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The header length a file claims, from its first 64 bytes (to know how much to read).
pub(crate) fn claimed_len(first: &[u8], name: &str) -> Result<u32> {
    let len = le32(first, 12).ok_or_else(|| corrupt(name, "file is shorter than its header"))?;
    if !(HEADER_LEN..=MAX_HEADER_LEN).contains(&len) || len % 8 != 0 {
        return Err(corrupt(
            name,
            &format!("header length {len} is not a multiple of 8 from 64 to 4096"),
        ));
    }
    Ok(len)
}

/// Decodes and checks a whole header (`buf` is exactly the header length the file claims).
///
/// Refuses: wrong magic, bad CRC, a major version other than `major`, any required flag, a block
/// size that is not a power of two from 4 KiB to 64 MiB, a codec other than `codec`, and a virtual
/// size above `limits.max_virtual_size`.
pub(crate) fn decode(
    buf: &[u8],
    magic: &[u8; 8],
    major: u16,
    codec: u32,
    name: &str,
    limits: &Limits,
) -> Result<Header> {
    if buf.len() < HEADER_LEN as usize || buf.get(..8) != Some(&magic[..]) {
        return Err(corrupt(name, "bad magic: not a file of this format"));
    }
    let stored_crc = le32(buf, 60).ok_or_else(|| corrupt(name, "short header"))?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&buf[..60]);
    hasher.update(&[0u8; 4]);
    hasher.update(&buf[64..]);
    if hasher.finalize() != stored_crc {
        return Err(corrupt(name, "header checksum mismatch"));
    }
    let field = |v: Option<u64>| v.ok_or_else(|| corrupt(name, "short header"));
    let file_major = field(le16(buf, 8).map(u64::from))? as u16;
    let minor = field(le16(buf, 10).map(u64::from))? as u16;
    let header_len = field(le32(buf, 12).map(u64::from))? as u32;
    let required = field(le32(buf, 16).map(u64::from))?;
    let virtual_size = field(le64(buf, 24))?;
    let block_size = field(le32(buf, 32).map(u64::from))?;
    let file_codec = field(le32(buf, 36).map(u64::from))? as u32;
    if file_major != major {
        return Err(FormatError::Unsupported(format!(
            "{name} major version {file_major} is not supported (this reader reads version {major}.x)"
        )));
    }
    if header_len as usize != buf.len() {
        return Err(corrupt(name, "header length changed while reading"));
    }
    if required != 0 {
        return Err(FormatError::Unsupported(format!(
            "{name} file uses unknown required features {required:#x}"
        )));
    }
    if !block_size.is_power_of_two() || !(MIN_BLOCK..=MAX_BLOCK).contains(&block_size) {
        return Err(corrupt(
            name,
            &format!("block size {block_size} is not a power of two from 4 KiB to 64 MiB"),
        ));
    }
    if file_codec != codec {
        return Err(FormatError::Unsupported(format!(
            "{name} codec {file_codec} is not supported"
        )));
    }
    if virtual_size > limits.max_virtual_size {
        return Err(FormatError::Unsupported(format!(
            "{name} virtual size {virtual_size} exceeds the limit of {} bytes",
            limits.max_virtual_size
        )));
    }
    Ok(Header {
        major: file_major,
        minor,
        header_len,
        virtual_size,
        block_size,
        codec: file_codec,
    })
}

/// A `Corrupt` error naming the format.
pub(crate) fn corrupt(name: &str, what: &str) -> FormatError {
    FormatError::Corrupt(format!("{name}: {what}"))
}
