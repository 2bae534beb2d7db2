//! ZVHD: IMS's sequential compressed disk format, specified in `docs/formats/zvhd.md`.
//!
//! A 64-byte header, then one record per non-empty block of the guest disk (a 32-byte record
//! header and the block's zlib-compressed, or stored, bytes), then a 40-byte trailer. It is written
//! front to back, so any sequential sink takes it, and read front to back or, once the record
//! headers have been scanned, at random.
//!
//! [`decode_stream`] reads it front to back from any [`std::io::Read`], verifying as it goes.
//! The random-access reader ([`open`]) scans the record headers once (skipping payloads), holding one 32-byte
//! entry per stored block, bounded by [`Limits::max_table_bytes`]; every read verifies the block's
//! CRC-32 and its exact decompressed length.

pub(crate) mod header;
pub(crate) mod image;
mod record;
mod stream;
pub(crate) mod writer;

use std::sync::Arc;

use self::header::{corrupt, Header, CODEC_ZLIB};
use self::image::{check_entry, BlockImage, Entry, ENTRY_BYTES, FLAG_ZERO};
use self::record::{
    decode_record, decode_trailer, RECORD_LEN, RECORD_TAG, TRAILER_LEN, TRAILER_TAG,
};
use crate::{DiskImage, Format, FormatError, Limits, ReadAt, Result};

pub use self::stream::decode_stream;
pub use self::writer::{write, write_with_progress};

/// The first 8 bytes of every ZVHD file.
pub const MAGIC: &[u8; 8] = b"ZVHD\r\n\x1a\n";
/// The major version this module reads and writes.
pub const MAJOR: u16 = 1;
const NAME: &str = "ZVHD";

/// Settings of the ZVHD and ZVHD2 writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZvhdOptions {
    /// Uncompressed block size: a power of two from 4 KiB to 64 MiB. Default 1 MiB.
    pub block_size: u64,
    /// Compression level: zlib 0..=9 for ZVHD (default 6), zstd 1..=22 for ZVHD2 (default 3).
    pub level: Option<i32>,
    /// Compression threads; 0 means one per available core.
    pub threads: usize,
    /// Refuse to write a file whose block table would exceed this many bytes in a reader's memory
    /// (32 bytes per stored block), so that readers with the same limit can open it.
    /// Default: [`Limits::default`]'s `max_table_bytes`.
    pub max_index_bytes: u64,
}

impl Default for ZvhdOptions {
    fn default() -> ZvhdOptions {
        ZvhdOptions {
            block_size: 1 << 20,
            level: None,
            threads: 0,
            max_index_bytes: Limits::default().max_table_bytes,
        }
    }
}

/// True when `header` (the first bytes of a file) starts with the ZVHD magic.
pub fn probe(header: &[u8]) -> bool {
    header.starts_with(MAGIC)
}

/// Opens a ZVHD file: checks the header, scans every record header and the trailer.
///
/// Reads only the header, the 32-byte record headers and the trailer (payloads are skipped).
/// Refuses, as `Corrupt`: bad magic or checksums, records out of order or outside the disk,
/// lengths out of range, payloads past the end of the file, a missing or inconsistent trailer, or
/// bytes after it; as `Unsupported`: another major version, unknown required flags, a block table
/// larger than `limits.max_table_bytes`, a virtual size above `limits.max_virtual_size`.
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    let file_size = src.size()?;
    let header = read_header(src.as_ref(), MAGIC, MAJOR, CODEC_ZLIB, NAME, limits)?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut headers_crc = crc32fast::Hasher::new();
    let mut data_bytes = 0u64;
    let mut at = u64::from(header.header_len);
    loop {
        let mut rec = [0u8; RECORD_LEN];
        let avail = file_size.saturating_sub(at);
        if avail < TRAILER_LEN as u64 {
            return Err(corrupt(
                NAME,
                &format!("file ends at offset {file_size} without a trailer (truncated?)"),
            ));
        }
        src.read_exact_at(&mut rec, at)?;
        if rec[..4] == TRAILER_TAG[..] {
            let mut t = [0u8; TRAILER_LEN];
            src.read_exact_at(&mut t, at)?;
            let trailer = decode_trailer(&t, at)?;
            let end = at + TRAILER_LEN as u64;
            if trailer.offset != at
                || trailer.records != entries.len() as u64
                || trailer.data_bytes != data_bytes
                || trailer.headers_crc != headers_crc.clone().finalize()
            {
                return Err(corrupt(
                    NAME,
                    "trailer does not match the records (records lost or altered)",
                ));
            }
            if end != file_size {
                return Err(corrupt(
                    NAME,
                    &format!("{} unexpected bytes after the trailer", file_size - end),
                ));
            }
            break;
        }
        if rec[..4] != RECORD_TAG[..] {
            return Err(corrupt(
                NAME,
                &format!("expected a block record or the trailer at offset {at}"),
            ));
        }
        let entry = decode_record(&rec, at)?;
        check_entry(
            &entry,
            entries.last(),
            &header,
            at + RECORD_LEN as u64,
            file_size,
            NAME,
        )?;
        if (entries.len() as u64 + 1).saturating_mul(ENTRY_BYTES) > limits.max_table_bytes {
            return Err(FormatError::Unsupported(format!(
                "{NAME}: block table exceeds the limit of {} bytes",
                limits.max_table_bytes
            )));
        }
        headers_crc.update(&rec);
        if entry.flags & FLAG_ZERO == 0 {
            data_bytes = data_bytes.saturating_add(u64::from(entry.raw_len));
        }
        at = entry.offset + u64::from(entry.stored_len);
        entries.push(entry);
    }
    Ok(Box::new(BlockImage::new(
        Format::Zvhd,
        NAME,
        src,
        header,
        entries,
    )))
}

/// Reads and checks the header at the start of `src` (shared with ZVHD2).
pub(crate) fn read_header(
    src: &dyn ReadAt,
    magic: &[u8; 8],
    major: u16,
    codec: u32,
    name: &str,
    limits: &Limits,
) -> Result<Header> {
    let mut first = [0u8; header::HEADER_LEN as usize];
    read_or_corrupt(src, &mut first, 0, name, "file is shorter than its header")?;
    if first[..8] != magic[..] {
        return Err(corrupt(name, "bad magic: not a file of this format"));
    }
    let len = header::claimed_len(&first, name)?;
    let mut buf = vec![0u8; len as usize];
    read_or_corrupt(src, &mut buf, 0, name, "file is shorter than its header")?;
    header::decode(&buf, magic, major, codec, name, limits)
}

/// `read_exact_at`, with end-of-file turned into a `Corrupt` error saying `what`.
pub(crate) fn read_or_corrupt(
    src: &dyn ReadAt,
    buf: &mut [u8],
    at: u64,
    name: &str,
    what: &str,
) -> Result<()> {
    src.read_exact_at(buf, at).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => corrupt(name, what),
        _ => FormatError::Io(e),
    })
}
