//! The guest disk of a ZVHD or ZVHD2 file, once its block table is known: the one [`DiskImage`]
//! both readers return. Blocks are fetched, decompressed and checksum-verified on demand; a few
//! recently used blocks are kept decoded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use flate2::{Decompress, FlushDecompress, Status};

use super::header::{corrupt, Header, CODEC_ZLIB, CODEC_ZSTD};
use crate::{
    BlockExtent, BlockStatus, DiskImage, Format, FormatError, ImageDetails, ReadAt, Result,
};

/// Entry flag: the block reads as zeros and has no payload.
pub(crate) const FLAG_ZERO: u32 = 1;
/// Entry flag: the payload is the raw block, not compressed.
pub(crate) const FLAG_STORED: u32 = 2;
pub(crate) const KNOWN_FLAGS: u32 = FLAG_ZERO | FLAG_STORED;

/// One stored block: where its payload is and how to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub block: u64,
    /// File offset of the payload.
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub flags: u32,
    /// CRC-32 of the uncompressed block.
    pub crc: u32,
}

/// In-memory size of one entry, counted against `Limits::max_table_bytes`.
pub(crate) const ENTRY_BYTES: u64 = 32;

/// Checks the parts of an entry that do not depend on where it came from.
/// Entries must arrive in increasing block order with payloads in increasing, non-overlapping order
/// inside `[data_start, data_end)`.
pub(crate) fn check_entry(
    e: &Entry,
    prev: Option<&Entry>,
    h: &Header,
    data_start: u64,
    data_end: u64,
    name: &str,
) -> Result<()> {
    let bad = |what: &str| corrupt(name, &format!("block {}: {what}", e.block));
    if let Some(p) = prev {
        if e.block <= p.block {
            return Err(bad("blocks are not in increasing order"));
        }
        let prev_end = p.offset.saturating_add(u64::from(p.stored_len));
        if e.stored_len > 0 && e.offset < prev_end {
            return Err(bad("payload overlaps the previous block's"));
        }
    }
    if e.block >= h.block_count() {
        return Err(bad("index is past the end of the disk"));
    }
    if e.flags & !KNOWN_FLAGS != 0 {
        return Err(bad(&format!("unknown flags {:#x}", e.flags)));
    }
    if u64::from(e.raw_len) != h.raw_len(e.block) {
        return Err(bad(&format!(
            "uncompressed length {} should be {}",
            e.raw_len,
            h.raw_len(e.block)
        )));
    }
    if e.flags & FLAG_ZERO != 0 {
        if e.stored_len != 0 || e.flags & FLAG_STORED != 0 {
            return Err(bad("a zero block has a payload"));
        }
        return Ok(());
    }
    if e.flags & FLAG_STORED != 0 {
        if e.stored_len != e.raw_len {
            return Err(bad("stored length differs from the block length"));
        }
    } else if e.stored_len == 0 || e.stored_len > e.raw_len {
        return Err(bad(&format!(
            "compressed length {} is out of range",
            e.stored_len
        )));
    }
    let end = e
        .offset
        .checked_add(u64::from(e.stored_len))
        .ok_or_else(|| bad("payload offset overflows"))?;
    if e.offset < data_start || end > data_end {
        return Err(bad(&format!(
            "payload [{}, {end}) lies outside the data area",
            e.offset
        )));
    }
    Ok(())
}

/// Keep at most this many decoded bytes, and at least one block.
const CACHE_BYTES: usize = 16 << 20;

/// A ZVHD or ZVHD2 guest disk.
pub(crate) struct BlockImage {
    pub format: Format,
    pub name: &'static str,
    pub src: Arc<dyn ReadAt>,
    pub header: Header,
    /// Stored blocks, sorted by block number.
    pub entries: Vec<Entry>,
    pub cache: Mutex<VecDeque<(u64, Arc<Vec<u8>>)>>,
}

impl BlockImage {
    pub(crate) fn new(
        format: Format,
        name: &'static str,
        src: Arc<dyn ReadAt>,
        header: Header,
        entries: Vec<Entry>,
    ) -> BlockImage {
        BlockImage {
            format,
            name,
            src,
            header,
            entries,
            cache: Mutex::new(VecDeque::new()),
        }
    }

    fn find(&self, block: u64) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&block, |e| e.block)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The decoded bytes of a stored data block, verified.
    fn block_data(&self, e: &Entry) -> Result<Arc<Vec<u8>>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((_, data)) = cache.iter().find(|(b, _)| *b == e.block) {
                return Ok(Arc::clone(data));
            }
        }
        let data = Arc::new(self.decode(e)?);
        if let Ok(mut cache) = self.cache.lock() {
            let max = (CACHE_BYTES / data.len().max(1)).max(1);
            while cache.len() >= max {
                cache.pop_front();
            }
            cache.push_back((e.block, Arc::clone(&data)));
        }
        Ok(data)
    }

    fn decode(&self, e: &Entry) -> Result<Vec<u8>> {
        let bad = |what: String| {
            corrupt(
                self.name,
                &format!("block {} at file offset {}: {what}", e.block, e.offset),
            )
        };
        let mut payload = vec![0u8; e.stored_len as usize];
        self.src
            .read_exact_at(&mut payload, e.offset)
            .map_err(|err| match err.kind() {
                std::io::ErrorKind::UnexpectedEof => bad("file is truncated".into()),
                _ => FormatError::Io(err),
            })?;
        let raw = if e.flags & FLAG_STORED != 0 {
            payload
        } else {
            let mut out = vec![0u8; e.raw_len as usize];
            let n = match self.header.codec {
                CODEC_ZLIB => inflate_exact(&payload, &mut out).map_err(bad)?,
                CODEC_ZSTD => zstd::bulk::Decompressor::new()
                    .and_then(|mut d| d.decompress_to_buffer(&payload, &mut out))
                    .map_err(|err| {
                        bad(format!(
                            "zstd data is damaged or longer than the block ({err})"
                        ))
                    })?,
                other => {
                    return Err(FormatError::Unsupported(format!(
                        "{}: codec {other}",
                        self.name
                    )))
                }
            };
            if n != out.len() {
                return Err(bad(format!(
                    "decompressed to {n} bytes, expected {}",
                    out.len()
                )));
            }
            out
        };
        if crc32fast::hash(&raw) != e.crc {
            return Err(bad("checksum mismatch".into()));
        }
        Ok(raw)
    }
}

/// Inflates one zlib stream that must end exactly when `out` is full and use all of `input`.
pub(crate) fn inflate_exact(input: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    let mut d = Decompress::new(true);
    let status = d
        .decompress(input, out, FlushDecompress::Finish)
        .map_err(|e| format!("zlib data is damaged ({e})"))?;
    let produced = usize::try_from(d.total_out()).map_err(|_| "zlib output size".to_string())?;
    if status != Status::StreamEnd {
        return Err(if produced == out.len() {
            "zlib data decompresses to more than the block length".into()
        } else {
            "zlib data is truncated".into()
        });
    }
    if d.total_in() != input.len() as u64 {
        return Err("trailing bytes after the zlib stream".into());
    }
    Ok(produced)
}

impl DiskImage for BlockImage {
    fn format(&self) -> Format {
        self.format
    }

    fn virtual_size(&self) -> u64 {
        self.header.virtual_size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&end| end <= self.header.virtual_size)
            .ok_or_else(|| {
                FormatError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "read past the end of the disk",
                ))
            })?;
        let bs = self.header.block_size;
        let mut pos = offset;
        let mut done = 0usize;
        while pos < end {
            let block = pos / bs;
            let within = pos % bs;
            let n = (bs - within).min(end - pos) as usize;
            let dst = buf
                .get_mut(done..done + n)
                .ok_or_else(|| corrupt(self.name, "read range"))?;
            match self.find(block) {
                Some(e) if e.flags & FLAG_ZERO == 0 => {
                    let data = self.block_data(e)?;
                    let src = data
                        .get(within as usize..within as usize + n)
                        .ok_or_else(|| corrupt(self.name, "short block"))?;
                    dst.copy_from_slice(src);
                }
                _ => dst.fill(0),
            }
            pos += n as u64;
            done += n;
        }
        Ok(())
    }

    fn block_status(&self, offset: u64, length: u64) -> Result<Vec<BlockExtent>> {
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= self.header.virtual_size)
            .ok_or_else(|| {
                FormatError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "range past the end of the disk",
                ))
            })?;
        let bs = self.header.block_size;
        let mut out: Vec<BlockExtent> = Vec::new();
        let mut push = |offset: u64, length: u64, status: BlockStatus| match out.last_mut() {
            Some(last) if last.status == status && last.offset + last.length == offset => {
                last.length += length
            }
            _ => out.push(BlockExtent {
                offset,
                length,
                status,
            }),
        };
        let mut pos = offset;
        let mut i = self.entries.partition_point(|e| e.block < offset / bs);
        while pos < end {
            let block = pos / bs;
            let block_end = block.saturating_add(1).saturating_mul(bs).min(end);
            match self.entries.get(i) {
                Some(e) if e.block == block => {
                    let status = if e.flags & FLAG_ZERO != 0 {
                        BlockStatus::Zero
                    } else {
                        BlockStatus::Data
                    };
                    push(pos, block_end - pos, status);
                    pos = block_end;
                    i += 1;
                }
                next => {
                    // Unallocated up to the next stored block (or the end of the range).
                    let stop = next.map_or(end, |e| e.block.saturating_mul(bs).min(end));
                    if stop <= pos {
                        return Err(corrupt(self.name, "block table out of order"));
                    }
                    push(pos, stop - pos, BlockStatus::Unallocated);
                    pos = stop;
                }
            }
        }
        Ok(out)
    }

    fn details(&self) -> ImageDetails {
        let codec = if self.header.codec == CODEC_ZLIB {
            "zlib"
        } else {
            "zstd"
        };
        ImageDetails {
            cluster_size: Some(self.header.block_size),
            compression: Some(codec.into()),
            features: vec![
                (
                    "version".into(),
                    format!("{}.{}", self.header.major, self.header.minor),
                ),
                ("stored_blocks".into(), self.entries.len().to_string()),
            ],
        }
    }
}
