//! ZVHD2 writer: header, blocks, index, footer; front to back, compressed on all cores.

use std::io::Write;

use super::index::{encode_entry, encode_footer, Footer};
use super::{MAGIC, MAJOR};
use crate::write::codec::{internal, Codec};
use crate::write::pipeline::{self, Payload, UnitSpec};
use crate::zvhd::header::{Header, CODEC_ZSTD, HEADER_LEN};
use crate::zvhd::image::{Entry, ENTRY_BYTES, FLAG_STORED};
use crate::zvhd::writer::{check_block_size, too_many_blocks};
use crate::zvhd::ZvhdOptions;
use crate::{DiskImage, Result};

/// Writes the guest disk of `src` as ZVHD2 to a sequential sink. Returns the bytes written.
///
/// Blocks that are unallocated, zero, or read as zeros are not stored. Blocks are compressed with
/// zstd, each as its own frame, on `opts.threads` threads (0 = all cores) and written in order; a
/// block that does not shrink is stored raw. Memory: a bounded window of blocks in flight plus the
/// index (32 bytes per stored block, at most `opts.max_index_bytes`).
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
    let level = opts.level.unwrap_or(3).clamp(1, 22);
    let header = Header {
        major: MAJOR,
        minor: 0,
        header_len: HEADER_LEN,
        virtual_size: src.virtual_size(),
        block_size,
        codec: CODEC_ZSTD,
    };
    let mut w = crate::write::seq::Counted::new(out);
    w.put(&header.encode(MAGIC))?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut data_bytes = 0u64;
    let spec = UnitSpec {
        unit_size: block_size,
        pad_last: false,
        codec: Some(Codec::Zstd { level }),
        raw_if_not_smaller: true,
        checksum: true,
    };
    pipeline::run(src, &spec, opts.threads, progress, &mut |unit| {
        let (payload, flags) = match unit.payload {
            Payload::Raw(d) => (d, FLAG_STORED),
            Payload::Compressed(d) => (d, 0),
        };
        if (entries.len() as u64 + 1).saturating_mul(ENTRY_BYTES) > opts.max_index_bytes {
            return Err(too_many_blocks(opts));
        }
        entries.push(Entry {
            block: unit.index,
            offset: w.pos(),
            stored_len: u32::try_from(payload.len()).map_err(|_| internal("block length"))?,
            raw_len: u32::try_from(unit.raw_len).map_err(|_| internal("block length"))?,
            flags,
            crc: unit.crc,
        });
        w.put(payload)?;
        data_bytes = data_bytes.saturating_add(unit.raw_len as u64);
        Ok(())
    })?;
    let index_offset = w.pos();
    let mut index_crc = crc32fast::Hasher::new();
    for e in &entries {
        let b = encode_entry(e);
        index_crc.update(&b);
        w.put(&b)?;
    }
    let footer = Footer {
        index_offset,
        index_len: w.pos() - index_offset,
        entries: entries.len() as u64,
        virtual_size: header.virtual_size,
        block_size: u32::try_from(block_size).map_err(|_| internal("block size"))?,
        index_crc: index_crc.finalize(),
        data_bytes,
    };
    w.put(&encode_footer(&footer))?;
    Ok(w.finish()?)
}
