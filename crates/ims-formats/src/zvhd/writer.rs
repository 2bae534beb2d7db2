//! ZVHD writer: header, one record per non-zero block, trailer; front to back.

use std::io::Write;

use super::header::{Header, CODEC_ZLIB, HEADER_LEN, MAX_BLOCK, MIN_BLOCK};
use super::image::{Entry, ENTRY_BYTES, FLAG_STORED};
use super::record::{encode_record, encode_trailer, Trailer};
use super::{ZvhdOptions, MAGIC, MAJOR};
use crate::write::codec::{internal, Codec};
use crate::write::pipeline::{self, Payload, UnitSpec};
use crate::{DiskImage, FormatError, Result};

/// Writes the guest disk of `src` as ZVHD to a sequential sink. Returns the bytes written.
///
/// Blocks that are unallocated, zero, or read as zeros are not stored. Blocks are compressed with
/// zlib on `opts.threads` threads and written in order; a block that does not shrink is stored raw.
/// Memory: a bounded window of blocks in flight, whatever the disk size.
pub fn write(src: &dyn DiskImage, out: &mut dyn Write, opts: &ZvhdOptions) -> Result<u64> {
    write_with_progress(src, out, opts, &|_| {})
}

/// [`write`], calling `progress` with the guest bytes dealt with so far.
pub fn write_with_progress(
    src: &dyn DiskImage,
    out: &mut dyn Write,
    opts: &ZvhdOptions,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let block_size = check_block_size(opts.block_size)?;
    let level = opts.level.unwrap_or(6).clamp(0, 9) as u32;
    let header = Header {
        major: MAJOR,
        minor: 0,
        header_len: HEADER_LEN,
        virtual_size: src.virtual_size(),
        block_size,
        codec: CODEC_ZLIB,
    };
    let mut w = crate::write::seq::Counted::new(out);
    w.put(&header.encode(MAGIC))?;
    let mut headers_crc = crc32fast::Hasher::new();
    let mut records = 0u64;
    let mut data_bytes = 0u64;
    let spec = UnitSpec {
        unit_size: block_size,
        pad_last: false,
        codec: Some(Codec::Zlib { level }),
        raw_if_not_smaller: true,
        checksum: true,
    };
    pipeline::run(src, &spec, opts.threads, progress, &mut |unit| {
        let (payload, flags) = match unit.payload {
            Payload::Raw(d) => (d, FLAG_STORED),
            Payload::Compressed(d) => (d, 0),
        };
        records += 1;
        if records.saturating_mul(ENTRY_BYTES) > opts.max_index_bytes {
            return Err(too_many_blocks(opts));
        }
        let entry = Entry {
            block: unit.index,
            offset: 0,
            stored_len: u32::try_from(payload.len()).map_err(|_| internal("block length"))?,
            raw_len: u32::try_from(unit.raw_len).map_err(|_| internal("block length"))?,
            flags,
            crc: unit.crc,
        };
        let rec = encode_record(&entry);
        headers_crc.update(&rec);
        w.put(&rec)?;
        w.put(payload)?;
        data_bytes = data_bytes.saturating_add(unit.raw_len as u64);
        Ok(())
    })?;
    let trailer = Trailer {
        records,
        data_bytes,
        offset: w.pos(),
        headers_crc: headers_crc.finalize(),
    };
    w.put(&encode_trailer(&trailer))?;
    Ok(w.finish()?)
}

/// Checks a requested block size (shared with ZVHD2).
pub(crate) fn check_block_size(block_size: u64) -> Result<u64> {
    if !block_size.is_power_of_two() || !(MIN_BLOCK..=MAX_BLOCK).contains(&block_size) {
        return Err(FormatError::Unsupported(format!(
            "block size {block_size} is not a power of two from 4 KiB to 64 MiB"
        )));
    }
    Ok(block_size)
}

/// The error for a disk with more stored blocks than the index limit allows (shared with ZVHD2).
pub(crate) fn too_many_blocks(opts: &ZvhdOptions) -> FormatError {
    FormatError::Unsupported(format!(
        "the block table would exceed {} bytes; use a larger block size than {}",
        opts.max_index_bytes, opts.block_size
    ))
}
