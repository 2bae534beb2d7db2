//! ZVHD2: IMS's random-access compressed disk format, specified in `docs/formats/zvhd.md`.
//!
//! A 64-byte header, then the non-empty blocks of the guest disk, each an independent zstd frame
//! (or stored raw when it does not shrink), then an index of 32 bytes per stored block, then a
//! 64-byte footer that locates the index. It is written front to back (the index comes last), so
//! any sequential sink takes it; a reader fetches the header, the footer and the index, then only
//! the blocks it is asked for — which is what lazy loading over the chunk store needs.

mod index;
mod writer;

use std::sync::Arc;

use self::index::{decode_entry, decode_footer, FOOTER_LEN, INDEX_ENTRY_LEN};
use crate::zvhd::header::{corrupt, CODEC_ZSTD};
use crate::zvhd::image::{check_entry, BlockImage, Entry, ENTRY_BYTES, FLAG_ZERO};
use crate::zvhd::{read_header, read_or_corrupt};
use crate::{DiskImage, Format, FormatError, Limits, ReadAt, Result};

pub use self::writer::{write, write_with_progress};
pub use crate::zvhd::ZvhdOptions;

/// The first 8 bytes of every ZVHD2 file.
pub const MAGIC: &[u8; 8] = b"ZVHD2\r\n\x1a";
/// The major version this module reads and writes.
pub const MAJOR: u16 = 2;
const NAME: &str = "ZVHD2";

/// True when `header` (the first bytes of a file) starts with the ZVHD2 magic.
pub fn probe(header: &[u8]) -> bool {
    header.starts_with(MAGIC)
}

/// Opens a ZVHD2 file: reads and checks the header, the footer and the whole index; no block.
///
/// Refuses, as `Corrupt`: bad magic or checksums, a footer that disagrees with the header, an index
/// that is not immediately before the footer, entries out of order, overlapping, outside the data
/// area, or with impossible lengths or flags; as `Unsupported`: another major version, unknown
/// required flags, an index larger than `limits.max_table_bytes`, a virtual size above
/// `limits.max_virtual_size`. Each later read checks the block's exact decompressed length and CRC.
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    let file_size = src.size()?;
    let header = read_header(src.as_ref(), MAGIC, MAJOR, CODEC_ZSTD, NAME, limits)?;
    let data_start = u64::from(header.header_len);
    let footer_at = file_size
        .checked_sub(FOOTER_LEN as u64)
        .filter(|&at| at >= data_start)
        .ok_or_else(|| corrupt(NAME, "file is too short to hold a footer (truncated?)"))?;
    let mut fb = [0u8; FOOTER_LEN];
    read_or_corrupt(
        src.as_ref(),
        &mut fb,
        footer_at,
        NAME,
        "footer is truncated",
    )?;
    let footer = decode_footer(&fb)?;
    if footer.virtual_size != header.virtual_size
        || u64::from(footer.block_size) != header.block_size
    {
        return Err(corrupt(
            NAME,
            "footer disagrees with the header about the disk",
        ));
    }
    if Some(footer.index_len) != footer.entries.checked_mul(INDEX_ENTRY_LEN as u64) {
        return Err(corrupt(NAME, "index length does not match its entry count"));
    }
    if footer.entries.saturating_mul(ENTRY_BYTES) > limits.max_table_bytes {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: index exceeds the limit of {} bytes",
            limits.max_table_bytes
        )));
    }
    if footer.index_offset < data_start
        || footer.index_offset.checked_add(footer.index_len) != Some(footer_at)
    {
        return Err(corrupt(
            NAME,
            "index does not end where the footer starts (offsets past the end of file?)",
        ));
    }
    let index_len =
        usize::try_from(footer.index_len).map_err(|_| corrupt(NAME, "index too large"))?;
    let mut raw = vec![0u8; index_len];
    read_or_corrupt(
        src.as_ref(),
        &mut raw,
        footer.index_offset,
        NAME,
        "index is truncated",
    )?;
    if crc32fast::hash(&raw) != footer.index_crc {
        return Err(corrupt(NAME, "index checksum mismatch"));
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(raw.len() / INDEX_ENTRY_LEN);
    let mut data_bytes = 0u64;
    for chunk in raw.chunks_exact(INDEX_ENTRY_LEN) {
        let e = decode_entry(chunk)?;
        check_entry(
            &e,
            entries.last(),
            &header,
            data_start,
            footer.index_offset,
            NAME,
        )?;
        if e.flags & FLAG_ZERO == 0 {
            data_bytes = data_bytes.saturating_add(u64::from(e.raw_len));
        }
        entries.push(e);
    }
    if data_bytes != footer.data_bytes {
        return Err(corrupt(
            NAME,
            "footer's data byte count does not match the index",
        ));
    }
    Ok(Box::new(BlockImage::new(
        Format::Zvhd2,
        NAME,
        src,
        header,
        entries,
    )))
}
