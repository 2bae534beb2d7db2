//! Compression codecs used by the writers, and the zero test.
//!
//! A [`Codec`] describes the compressed encoding a format expects; a [`Compressor`] is one thread's
//! reusable state for it. Every function returns an error instead of panicking, whatever the input.

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::{FormatError, Result};

/// A compressed encoding of one block, cluster or grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Raw deflate (RFC 1951) with a 4 KiB window: what qemu's qcow2 reader inflates with
    /// `windowBits = -12`. A wider window would make qemu fail with "invalid distance too far back".
    Deflate4k { level: u32 },
    /// zlib (RFC 1950): VMDK grains, ZVHD blocks.
    Zlib { level: u32 },
    /// One zstd frame: qcow2 `compression_type=zstd` clusters, ZVHD2 blocks.
    Zstd { level: i32 },
}

/// One thread's compression state for a [`Codec`], reused across blocks.
pub(crate) enum Compressor {
    Flate(Compress),
    Zstd(Box<zstd::bulk::Compressor<'static>>),
}

impl Compressor {
    /// Creates the state for `codec`.
    pub(crate) fn new(codec: Codec) -> Result<Compressor> {
        Ok(match codec {
            Codec::Deflate4k { level } => Compressor::Flate(Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                12,
            )),
            Codec::Zlib { level } => {
                Compressor::Flate(Compress::new(Compression::new(level.min(9)), true))
            }
            Codec::Zstd { level } => Compressor::Zstd(Box::new(
                zstd::bulk::Compressor::new(level)
                    .map_err(|e| FormatError::Unsupported(format!("zstd compressor: {e}")))?,
            )),
        })
    }

    /// Compresses `data` into a fresh buffer holding one complete stream (or frame).
    pub(crate) fn compress(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        match self {
            Compressor::Flate(c) => deflate_all(c, data),
            Compressor::Zstd(c) => c
                .compress(data)
                .map_err(|e| FormatError::Io(std::io::Error::other(format!("zstd: {e}")))),
        }
    }
}

/// Runs one whole deflate stream through `c` (reset first), growing the output as needed.
fn deflate_all(c: &mut Compress, data: &[u8]) -> Result<Vec<u8>> {
    c.reset();
    // zlib's deflateBound for the default settings, plus slack for the zlib header and trailer.
    let bound = data
        .len()
        .saturating_add(data.len() / 1000)
        .saturating_add(64);
    let mut out: Vec<u8> = Vec::with_capacity(bound);
    loop {
        let consumed =
            usize::try_from(c.total_in()).map_err(|_| internal("deflate input count"))?;
        let rest = data
            .get(consumed..)
            .ok_or_else(|| internal("deflate consumed past input"))?;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(4096));
        }
        let status = c
            .compress_vec(rest, &mut out, FlushCompress::Finish)
            .map_err(|e| FormatError::Io(std::io::Error::other(format!("deflate: {e}"))))?;
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError => continue,
        }
    }
}

/// An error for a broken internal invariant: reported, never a panic.
pub(crate) fn internal(what: &str) -> FormatError {
    FormatError::Io(std::io::Error::other(format!(
        "internal error in writer: {what}"
    )))
}

/// True when every byte of `buf` is zero. Written to vectorize: ORs 64-byte chunks.
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    let mut chunks = buf.chunks_exact(64);
    for chunk in &mut chunks {
        if chunk.iter().fold(0u8, |acc, &b| acc | b) != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn deflate4k_inflates_with_a_4k_window() {
        let data: Vec<u8> = (0..65536u32)
            .map(|i| (i * 7 % 251) as u8 ^ (i / 5000) as u8)
            .collect();
        let mut c = Compressor::new(Codec::Deflate4k { level: 6 }).unwrap();
        let packed = c.compress(&data).unwrap();
        let mut d = Decompress::new_with_window_bits(false, 12);
        let mut out = vec![0u8; data.len()];
        let st = d
            .decompress(&packed, &mut out, FlushDecompress::Finish)
            .unwrap();
        assert_eq!(st, Status::StreamEnd);
        assert_eq!(out, data);
        // The state is reusable.
        assert_eq!(c.compress(&data).unwrap(), packed);
    }

    #[test]
    fn zero_test() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 1000]));
        let mut v = vec![0u8; 1000];
        v[999] = 1;
        assert!(!is_zero(&v));
        v[999] = 0;
        v[3] = 1;
        assert!(!is_zero(&v));
    }
}
