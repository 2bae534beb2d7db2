//! The guest disk of a block-mapped format (every format here): a format answers "where do the bytes
//! at guest offset X live, and for how long", and this module turns that into `read_at` and
//! `block_status`.

use std::io;

use crate::{BlockExtent, BlockStatus, DiskImage, Format, FormatError, ImageDetails, Result};

use super::Source;

/// Where a run of guest bytes lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// Stored as-is in the image file, contiguously from this file offset for the whole run.
    Host(u64),
    /// Reads as zeros and is recorded as zero (zero cluster, zero grain, zero block).
    Zero,
    /// Not allocated in this image: reads as zeros.
    Unallocated,
    /// Stored encoded (compressed): the format decodes unit `unit` (an opaque descriptor) and the
    /// run starts `offset` bytes into the decoded unit.
    Encoded { unit: u64, offset: u64 },
}

/// One answer of [`BlockMap::map`]: `len` guest bytes (at least 1) that share `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub(crate) run: Run,
    pub(crate) len: u64,
}

/// A format's mapping from guest offsets to storage.
pub(crate) trait BlockMap: Send + Sync {
    /// The format this map was parsed as.
    fn format(&self) -> Format;
    /// Size of the guest disk.
    fn virtual_size(&self) -> u64;
    /// The image file.
    fn source(&self) -> &Source;
    /// Where the guest bytes at `offset` live. Called with `offset < virtual_size()` and
    /// `1 <= max_len <= virtual_size() - offset`; must return `1 <= len <= max_len`.
    fn map(&self, offset: u64, max_len: u64) -> Result<Mapping>;
    /// Copies bytes `[offset, offset + buf.len())` of decoded unit `unit` into `buf`.
    fn read_encoded(&self, unit: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
        let _ = (unit, offset, buf);
        Err(FormatError::Corrupt(format!(
            "{}: unexpected encoded run",
            self.format()
        )))
    }
    /// Format facts for display.
    fn details(&self) -> ImageDetails;
}

/// Adapts any [`BlockMap`] to [`DiskImage`].
pub(crate) struct Mapped<M>(pub(crate) M);

/// Checks a guest range against the disk size.
pub(crate) fn check_range(format: Format, virtual_size: u64, offset: u64, len: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= virtual_size => Ok(()),
        _ => Err(FormatError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{format}: range of {len} bytes at offset {offset:#x} is past the end of the \
                 {virtual_size}-byte disk"
            ),
        ))),
    }
}

/// Appends an extent, merging it into the previous one when contiguous and of the same status.
pub(crate) fn push_extent(out: &mut Vec<BlockExtent>, offset: u64, length: u64, status: BlockStatus) {
    if length == 0 {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.status == status && last.offset.checked_add(last.length) == Some(offset) {
            last.length = last.length.saturating_add(length);
            return;
        }
    }
    out.push(BlockExtent { offset, length, status });
}

fn checked_mapping<M: BlockMap + ?Sized>(m: &M, offset: u64, max_len: u64) -> Result<Mapping> {
    let mapping = m.map(offset, max_len)?;
    if mapping.len == 0 || mapping.len > max_len {
        return Err(FormatError::Corrupt(format!(
            "{}: internal mapping error at offset {offset:#x}",
            m.format()
        )));
    }
    Ok(mapping)
}

impl<M: BlockMap> DiskImage for Mapped<M> {
    fn format(&self) -> Format {
        self.0.format()
    }

    fn virtual_size(&self) -> u64 {
        self.0.virtual_size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let m = &self.0;
        check_range(m.format(), m.virtual_size(), offset, buf.len() as u64)?;
        let mut rest = buf;
        let mut pos = offset;
        while !rest.is_empty() {
            let mapping = checked_mapping(m, pos, rest.len() as u64)?;
            // mapping.len <= rest.len(), so `n` is in range.
            let n = usize::try_from(mapping.len).unwrap_or(rest.len()).min(rest.len());
            let (chunk, tail) = rest.split_at_mut(n);
            match mapping.run {
                Run::Host(host) => m.source().read_into("data", chunk, host)?,
                Run::Zero | Run::Unallocated => chunk.fill(0),
                Run::Encoded { unit, offset } => m.read_encoded(unit, offset, chunk)?,
            }
            rest = tail;
            pos = pos.saturating_add(n as u64);
        }
        Ok(())
    }

    fn block_status(&self, offset: u64, length: u64) -> Result<Vec<BlockExtent>> {
        let m = &self.0;
        check_range(m.format(), m.virtual_size(), offset, length)?;
        let mut out = Vec::new();
        let mut pos = offset;
        let end = offset.saturating_add(length);
        while pos < end {
            let mapping = checked_mapping(m, pos, end - pos)?;
            let status = match mapping.run {
                Run::Host(_) | Run::Encoded { .. } => BlockStatus::Data,
                Run::Zero => BlockStatus::Zero,
                Run::Unallocated => BlockStatus::Unallocated,
            };
            push_extent(&mut out, pos, mapping.len, status);
            pos = pos.saturating_add(mapping.len);
        }
        Ok(out)
    }

    fn details(&self) -> ImageDetails {
        self.0.details()
    }
}
