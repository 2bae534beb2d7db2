//! Bounded, range-checked reads of the image file.

use std::io;
use std::sync::Arc;

use crate::{FormatError, Limits, ReadAt, Result};

use super::to_usize;

/// The image file a reader parses, with its size taken once at open.
///
/// Every read names what it reads so that a read past the end of the file becomes a `Corrupt`
/// error saying which structure lies outside the file.
#[derive(Clone)]
pub(crate) struct Source {
    inner: Arc<dyn ReadAt>,
    size: u64,
    format: &'static str,
}

impl Source {
    /// Wraps `inner` for reader `format` (the prefix of every error message).
    pub(crate) fn new(inner: Arc<dyn ReadAt>, format: &'static str) -> Result<Source> {
        let size = inner.size()?;
        Ok(Source { inner, size, format })
    }

    /// The file size in bytes, as taken at open.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// `Corrupt` unless `[offset, offset + len)` lies inside the file.
    pub(crate) fn check_span(&self, what: &str, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(self.past_end(what, offset, len)),
        }
    }

    /// The error for a structure that does not fit in the file.
    pub(crate) fn past_end(&self, what: &str, offset: u64, len: u64) -> FormatError {
        FormatError::Corrupt(format!(
            "{}: {what} at offset {offset:#x} ({len} bytes) lies past the end of the file ({} bytes)",
            self.format, self.size
        ))
    }

    /// Fills `buf` from `offset`, which must lie inside the file.
    pub(crate) fn read_into(&self, what: &str, buf: &mut [u8], offset: u64) -> Result<()> {
        let len = buf.len() as u64;
        self.check_span(what, offset, len)?;
        self.inner
            .read_exact_at(buf, offset)
            .map_err(|e| self.io_error(what, offset, len, e))
    }

    /// Reads `len` bytes at `offset`; the caller bounds `len` (a header, a cluster).
    pub(crate) fn read_vec(&self, what: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.check_span(what, offset, len)?;
        let mut buf = vec![0u8; to_usize(self.format, len)?];
        self.inner
            .read_exact_at(&mut buf, offset)
            .map_err(|e| self.io_error(what, offset, len, e))?;
        Ok(buf)
    }

    /// Reads up to `len` bytes at `offset`, fewer when the file ends first (at least one byte must
    /// be in the file). For compressed data whose stored length is rounded past the end of file.
    pub(crate) fn read_vec_clamped(&self, what: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if offset >= self.size {
            return Err(self.past_end(what, offset, len));
        }
        let avail = len.min(self.size - offset);
        self.read_vec(what, offset, avail)
    }

    /// The ranges of `[offset, offset + len)` that may hold non-zero bytes, when the file knows them
    /// (see [`ReadAt::data_ranges`]); `None` when it cannot tell or answers inconsistently (ranges
    /// out of order, overlapping or outside the span).
    pub(crate) fn data_ranges(&self, offset: u64, len: u64) -> Result<Option<Vec<(u64, u64)>>> {
        let Some(ranges) = self
            .inner
            .data_ranges(offset, len)
            .map_err(|e| self.io_error("allocation map", offset, len, e))?
        else {
            return Ok(None);
        };
        let end = offset.saturating_add(len);
        let mut covered = offset;
        for &(at, n) in &ranges {
            match at.checked_add(n) {
                Some(stop) if at >= covered && n > 0 && stop <= end => covered = stop,
                _ => return Ok(None),
            }
        }
        Ok(Some(ranges))
    }

    /// Reads a metadata table of `len` bytes: `Unsafe` when larger than `limits.max_table_bytes`,
    /// `Corrupt` when outside the file.
    pub(crate) fn read_table(&self, what: &str, offset: u64, len: u64, limits: &Limits) -> Result<Vec<u8>> {
        check_table_size(self.format, what, len, limits)?;
        self.read_vec(what, offset, len)
    }

    fn io_error(&self, what: &str, offset: u64, len: u64, e: io::Error) -> FormatError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            // The source shrank after open or reported a wrong size.
            self.past_end(what, offset, len)
        } else {
            FormatError::Io(io::Error::new(
                e.kind(),
                format!(
                    "{}: reading {what} at offset {offset:#x} ({len} bytes): {e}",
                    self.format
                ),
            ))
        }
    }
}

/// `Unsafe` when a table of `len` bytes exceeds `limits.max_table_bytes`.
pub(crate) fn check_table_size(format: &str, what: &str, len: u64, limits: &Limits) -> Result<()> {
    if len > limits.max_table_bytes {
        return Err(FormatError::Unsafe(format!(
            "{format}: {what} of {len} bytes exceeds the limit of {} bytes",
            limits.max_table_bytes
        )));
    }
    Ok(())
}
