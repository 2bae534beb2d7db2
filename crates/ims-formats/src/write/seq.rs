//! Sequential output helpers: a [`Write`] over a [`WriteAt`], and a position-counting buffered writer.

use std::io::{self, BufWriter, Write};

use crate::WriteAt;

/// Writes front to back into a [`WriteAt`], buffering up to 1 MiB per positional write.
pub(crate) struct SeqWriter<'a> {
    out: &'a dyn WriteAt,
    pos: u64,
    buf: Vec<u8>,
}

const SEQ_BUF: usize = 1 << 20;

impl<'a> SeqWriter<'a> {
    /// A writer starting at offset 0 of `out`.
    pub(crate) fn new(out: &'a dyn WriteAt) -> SeqWriter<'a> {
        SeqWriter {
            out,
            pos: 0,
            buf: Vec::with_capacity(SEQ_BUF),
        }
    }
}

impl Write for SeqWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > SEQ_BUF {
            self.flush()?;
        }
        if data.len() >= SEQ_BUF {
            self.out.write_all_at(data, self.pos)?;
            self.pos = self
                .pos
                .checked_add(data.len() as u64)
                .ok_or_else(|| io::Error::other("offset overflow"))?;
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.out.write_all_at(&self.buf, self.pos)?;
            self.pos = self
                .pos
                .checked_add(self.buf.len() as u64)
                .ok_or_else(|| io::Error::other("offset overflow"))?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// A buffered writer that knows how many bytes went through it: the offset in the file being
/// produced, which stream formats record in their tables.
pub(crate) struct Counted<'a> {
    inner: BufWriter<&'a mut dyn Write>,
    pos: u64,
}

impl<'a> Counted<'a> {
    /// Wraps `out`; positions start at 0.
    pub(crate) fn new(out: &'a mut dyn Write) -> Counted<'a> {
        Counted {
            inner: BufWriter::with_capacity(1 << 20, out),
            pos: 0,
        }
    }

    /// Bytes written so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Writes all of `data`.
    pub(crate) fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(data)?;
        self.pos = self
            .pos
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::other("offset overflow"))?;
        Ok(())
    }

    /// Writes `n` zero bytes.
    pub(crate) fn zeros(&mut self, mut n: u64) -> io::Result<()> {
        const Z: [u8; 4096] = [0; 4096];
        while n > 0 {
            let k = n.min(Z.len() as u64) as usize;
            self.put(&Z[..k])?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Pads with zeros up to the next multiple of `align` (a power of two).
    pub(crate) fn pad_to(&mut self, align: u64) -> io::Result<()> {
        let rem = self.pos % align;
        if rem != 0 {
            self.zeros(align - rem)?;
        }
        Ok(())
    }

    /// Flushes the buffer to the underlying writer.
    pub(crate) fn finish(mut self) -> io::Result<u64> {
        self.inner.flush()?;
        Ok(self.pos)
    }
}

/// Writes `data` at `at` into a fresh (hole-filled) area of `out`, leaving 64 KiB pieces that are
/// all zeros as holes; the non-zero pieces are coalesced into as few writes as possible.
pub(crate) fn write_skipping_zeros(out: &dyn WriteAt, data: &[u8], at: u64) -> io::Result<()> {
    const PIECE: usize = 64 << 10;
    let mut run: Option<usize> = None; // start of the pending non-zero run
    let mut pos = 0usize;
    for piece in data.chunks(PIECE) {
        let zero = super::codec::is_zero(piece);
        match (run, zero) {
            (None, false) => run = Some(pos),
            (Some(start), true) => {
                out.write_all_at(&data[start..pos], at + start as u64)?;
                run = None;
            }
            _ => {}
        }
        pos += piece.len();
    }
    if let Some(start) = run {
        out.write_all_at(&data[start..], at + start as u64)?;
    }
    Ok(())
}
