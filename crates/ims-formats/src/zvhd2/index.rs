//! ZVHD2 footer and block index (`docs/formats/zvhd.md`, "ZVHD2: index and footer").

use crate::zvhd::header::{corrupt, le32, le64};
use crate::zvhd::image::Entry;
use crate::Result;

pub(crate) const FOOTER_MAGIC: &[u8; 8] = b"ZVHD2IDX";
pub(crate) const FOOTER_LEN: usize = 64;
pub(crate) const INDEX_ENTRY_LEN: usize = 32;
const NAME: &str = "ZVHD2";

/// The fixed-size footer that ends every ZVHD2 file and locates the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub index_offset: u64,
    pub index_len: u64,
    pub entries: u64,
    pub virtual_size: u64,
    pub block_size: u32,
    pub index_crc: u32,
    /// Sum of the uncompressed lengths of the data (non-zero) entries.
    pub data_bytes: u64,
}

pub(crate) fn encode_footer(f: &Footer) -> [u8; FOOTER_LEN] {
    let mut b = [0u8; FOOTER_LEN];
    b[0..8].copy_from_slice(FOOTER_MAGIC);
    b[8..16].copy_from_slice(&f.index_offset.to_le_bytes());
    b[16..24].copy_from_slice(&f.index_len.to_le_bytes());
    b[24..32].copy_from_slice(&f.entries.to_le_bytes());
    b[32..40].copy_from_slice(&f.virtual_size.to_le_bytes());
    b[40..44].copy_from_slice(&f.block_size.to_le_bytes());
    b[44..48].copy_from_slice(&f.index_crc.to_le_bytes());
    b[48..56].copy_from_slice(&f.data_bytes.to_le_bytes());
    let crc = crc32fast::hash(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a footer, checking its magic and CRC.
pub(crate) fn decode_footer(b: &[u8]) -> Result<Footer> {
    let short = || corrupt(NAME, "footer is truncated");
    if b.get(..8) != Some(&FOOTER_MAGIC[..]) {
        return Err(corrupt(
            NAME,
            "footer magic missing: file truncated or not ZVHD2",
        ));
    }
    let stored_crc = le32(b, 60).ok_or_else(short)?;
    if crc32fast::hash(b.get(..60).ok_or_else(short)?) != stored_crc {
        return Err(corrupt(NAME, "footer checksum mismatch"));
    }
    Ok(Footer {
        index_offset: le64(b, 8).ok_or_else(short)?,
        index_len: le64(b, 16).ok_or_else(short)?,
        entries: le64(b, 24).ok_or_else(short)?,
        virtual_size: le64(b, 32).ok_or_else(short)?,
        block_size: le32(b, 40).ok_or_else(short)?,
        index_crc: le32(b, 44).ok_or_else(short)?,
        data_bytes: le64(b, 48).ok_or_else(short)?,
    })
}

pub(crate) fn encode_entry(e: &Entry) -> [u8; INDEX_ENTRY_LEN] {
    let mut b = [0u8; INDEX_ENTRY_LEN];
    b[0..8].copy_from_slice(&e.block.to_le_bytes());
    b[8..16].copy_from_slice(&e.offset.to_le_bytes());
    b[16..20].copy_from_slice(&e.stored_len.to_le_bytes());
    b[20..24].copy_from_slice(&e.raw_len.to_le_bytes());
    b[24..28].copy_from_slice(&e.flags.to_le_bytes());
    b[28..32].copy_from_slice(&e.crc.to_le_bytes());
    b
}

/// Decodes one 32-byte index entry (`b` is exactly one entry).
pub(crate) fn decode_entry(b: &[u8]) -> Result<Entry> {
    let short = || corrupt(NAME, "index entry is truncated");
    Ok(Entry {
        block: le64(b, 0).ok_or_else(short)?,
        offset: le64(b, 8).ok_or_else(short)?,
        stored_len: le32(b, 16).ok_or_else(short)?,
        raw_len: le32(b, 20).ok_or_else(short)?,
        flags: le32(b, 24).ok_or_else(short)?,
        crc: le32(b, 28).ok_or_else(short)?,
    })
}
