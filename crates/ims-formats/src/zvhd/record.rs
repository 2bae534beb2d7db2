//! ZVHD block records and trailer (`docs/formats/zvhd.md`, "ZVHD: records and trailer").

use super::header::{corrupt, le32, le64};
use super::image::Entry;
use crate::Result;

pub(crate) const RECORD_TAG: &[u8; 4] = b"ZBLK";
pub(crate) const TRAILER_TAG: &[u8; 4] = b"ZEND";
pub(crate) const RECORD_LEN: usize = 32;
pub(crate) const TRAILER_LEN: usize = 40;

/// A record header for `e` (the payload follows it in the file).
pub(crate) fn encode_record(e: &Entry) -> [u8; RECORD_LEN] {
    let mut b = [0u8; RECORD_LEN];
    b[0..4].copy_from_slice(RECORD_TAG);
    b[4..8].copy_from_slice(&e.flags.to_le_bytes());
    b[8..16].copy_from_slice(&e.block.to_le_bytes());
    b[16..20].copy_from_slice(&e.stored_len.to_le_bytes());
    b[20..24].copy_from_slice(&e.raw_len.to_le_bytes());
    b[24..28].copy_from_slice(&e.crc.to_le_bytes());
    let crc = crc32fast::hash(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes the record header at file offset `at` (the payload starts at `at + 32`). Checks its tag
/// and CRC only; the caller checks the entry against the header and its neighbours.
pub(crate) fn decode_record(b: &[u8], at: u64) -> Result<Entry> {
    let short = || corrupt("ZVHD", &format!("record at offset {at} is truncated"));
    if b.get(..4) != Some(&RECORD_TAG[..]) {
        return Err(corrupt(
            "ZVHD",
            &format!("expected a block record or the trailer at offset {at}"),
        ));
    }
    let stored_crc = le32(b, 28).ok_or_else(short)?;
    if crc32fast::hash(b.get(..28).ok_or_else(short)?) != stored_crc {
        return Err(corrupt(
            "ZVHD",
            &format!("record header at offset {at}: checksum mismatch"),
        ));
    }
    Ok(Entry {
        flags: le32(b, 4).ok_or_else(short)?,
        block: le64(b, 8).ok_or_else(short)?,
        stored_len: le32(b, 16).ok_or_else(short)?,
        raw_len: le32(b, 20).ok_or_else(short)?,
        crc: le32(b, 24).ok_or_else(short)?,
        offset: at.checked_add(RECORD_LEN as u64).ok_or_else(short)?,
    })
}

/// What the trailer says about the records before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub records: u64,
    /// Sum of the uncompressed lengths of the data (non-zero) records.
    pub data_bytes: u64,
    /// File offset of the trailer itself.
    pub offset: u64,
    /// CRC-32 of all record headers, in file order.
    pub headers_crc: u32,
}

pub(crate) fn encode_trailer(t: &Trailer) -> [u8; TRAILER_LEN] {
    let mut b = [0u8; TRAILER_LEN];
    b[0..4].copy_from_slice(TRAILER_TAG);
    b[8..16].copy_from_slice(&t.records.to_le_bytes());
    b[16..24].copy_from_slice(&t.data_bytes.to_le_bytes());
    b[24..32].copy_from_slice(&t.offset.to_le_bytes());
    b[32..36].copy_from_slice(&t.headers_crc.to_le_bytes());
    let crc = crc32fast::hash(&b[..36]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(crate) fn decode_trailer(b: &[u8], at: u64) -> Result<Trailer> {
    let short = || corrupt("ZVHD", &format!("trailer at offset {at} is truncated"));
    let stored_crc = le32(b, 36).ok_or_else(short)?;
    if crc32fast::hash(b.get(..36).ok_or_else(short)?) != stored_crc {
        return Err(corrupt(
            "ZVHD",
            &format!("trailer at offset {at}: checksum mismatch"),
        ));
    }
    Ok(Trailer {
        records: le64(b, 8).ok_or_else(short)?,
        data_bytes: le64(b, 16).ok_or_else(short)?,
        offset: le64(b, 24).ok_or_else(short)?,
        headers_crc: le32(b, 32).ok_or_else(short)?,
    })
}
