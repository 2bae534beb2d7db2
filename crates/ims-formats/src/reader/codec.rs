//! Decompression of compressed clusters and grains, with output bounded by the caller.

use flate2::{Decompress, FlushDecompress, Status};
use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

use crate::{FormatError, Result};

use super::to_usize;

/// Largest zstd window accepted (8 MiB): far above any cluster, so a hostile frame cannot make the
/// decoder allocate more.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

fn corrupt(format: &str, what: &str, detail: impl std::fmt::Display) -> FormatError {
    FormatError::Corrupt(format!("{format}: {what}: {detail}"))
}

/// Inflates `input` (deflate, with a zlib header when `zlib_header`) into exactly `out_len` bytes,
/// as qcow and qcow2 require of a compressed cluster: the output must fill `out_len`; input left
/// over after that (sector padding) is ignored.
pub(crate) fn inflate_exact(
    format: &str,
    what: &str,
    input: &[u8],
    out_len: u64,
    zlib_header: bool,
) -> Result<Vec<u8>> {
    let mut out = vec![0u8; to_usize(format, out_len)?];
    let filled = inflate_into(format, what, input, &mut out, zlib_header)?;
    if filled != out.len() {
        return Err(corrupt(
            format,
            what,
            format!("decompresses to {filled} bytes, expected {out_len}"),
        ));
    }
    Ok(out)
}

/// Inflates a whole zlib stream (VMDK grains) into at most `max_out` bytes; `Corrupt` if the stream
/// is damaged, does not end, or would produce more.
pub(crate) fn inflate_zlib_bounded(format: &str, what: &str, input: &[u8], max_out: u64) -> Result<Vec<u8>> {
    let mut out = vec![0u8; to_usize(format, max_out)?];
    let mut d = Decompress::new(true);
    loop {
        let in_pos = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
        let out_pos = usize::try_from(d.total_out()).unwrap_or(usize::MAX);
        let (Some(inp), Some(outp)) = (input.get(in_pos..), out.get_mut(out_pos..)) else {
            return Err(corrupt(format, what, "decompressor overran its buffers"));
        };
        let status = d
            .decompress(inp, outp, FlushDecompress::Finish)
            .map_err(|e| corrupt(format, what, e))?;
        let new_in = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
        let new_out = usize::try_from(d.total_out()).unwrap_or(usize::MAX);
        match status {
            Status::StreamEnd => {
                out.truncate(new_out);
                return Ok(out);
            }
            _ if new_out >= out.len() => {
                return Err(corrupt(
                    format,
                    what,
                    format!("decompresses to more than {max_out} bytes"),
                ));
            }
            _ if new_in == in_pos && new_out == out_pos => {
                return Err(corrupt(format, what, "compressed stream ends early"));
            }
            _ => {}
        }
    }
}

/// Inflates into `out` until it is full or the stream ends; returns the bytes produced.
fn inflate_into(format: &str, what: &str, input: &[u8], out: &mut [u8], zlib_header: bool) -> Result<usize> {
    let mut d = Decompress::new(zlib_header);
    loop {
        let in_pos = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
        let out_pos = usize::try_from(d.total_out()).unwrap_or(usize::MAX);
        if out_pos >= out.len() {
            return Ok(out_pos);
        }
        let (Some(inp), Some(outp)) = (input.get(in_pos..), out.get_mut(out_pos..)) else {
            return Err(corrupt(format, what, "decompressor overran its buffers"));
        };
        let status = d
            .decompress(inp, outp, FlushDecompress::Finish)
            .map_err(|e| corrupt(format, what, e))?;
        let new_in = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
        let new_out = usize::try_from(d.total_out()).unwrap_or(usize::MAX);
        if status == Status::StreamEnd || (new_in == in_pos && new_out == out_pos) {
            return Ok(new_out.min(out.len()));
        }
    }
}

/// Decompresses zstd frames from `input` until exactly `out_len` bytes are produced (qcow2's
/// `compression_type=zstd`); trailing input is ignored.
pub(crate) fn zstd_exact(format: &str, what: &str, input: &[u8], out_len: u64) -> Result<Vec<u8>> {
    let mut out = vec![0u8; to_usize(format, out_len)?];
    let mut dec = Decoder::new().map_err(|e| corrupt(format, what, e))?;
    dec.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
        .map_err(|e| corrupt(format, what, e))?;
    let mut inb = InBuffer::around(input);
    let mut outb = OutBuffer::around(&mut out[..]);
    while outb.pos() < outb.capacity() {
        let before = (inb.pos(), outb.pos());
        dec.run(&mut inb, &mut outb).map_err(|e| corrupt(format, what, e))?;
        if (inb.pos(), outb.pos()) == before {
            return Err(corrupt(
                format,
                what,
                format!("decompresses to {} bytes, expected {out_len}", outb.pos()),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8], zlib: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if zlib {
            let mut e = flate2::write::ZlibEncoder::new(&mut out, flate2::Compression::default());
            e.write_all(data).ok();
            e.finish().ok();
        } else {
            let mut e = flate2::write::DeflateEncoder::new(&mut out, flate2::Compression::default());
            e.write_all(data).ok();
            e.finish().ok();
        }
        out
    }

    #[test]
    fn raw_deflate_exact_and_padding() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let mut c = deflate(&data, false);
        c.extend_from_slice(&[0xAA; 300]); // sector padding after the stream
        assert_eq!(inflate_exact("t", "x", &c, 4096, false).ok(), Some(data.clone()));
        assert!(inflate_exact("t", "x", &c, 8192, false).is_err());
        assert!(inflate_exact("t", "x", &c[..10], 4096, false).is_err());
        assert!(inflate_exact("t", "x", &[0xff; 64], 4096, false).is_err());
    }

    #[test]
    fn zlib_bounded() {
        let data = vec![7u8; 10000];
        let c = deflate(&data, true);
        assert_eq!(inflate_zlib_bounded("t", "x", &c, 10000).ok(), Some(data.clone()));
        assert!(inflate_zlib_bounded("t", "x", &c, 9999).is_err());
        assert!(inflate_zlib_bounded("t", "x", &c[..c.len() / 2], 10000).is_err());
    }

    #[test]
    fn zstd_exact_sizes() {
        let data: Vec<u8> = (0..65536u32).map(|i| (i / 7) as u8).collect();
        let mut c = zstd::bulk::compress(&data, 3).unwrap_or_default();
        c.extend_from_slice(&[0; 100]);
        assert_eq!(zstd_exact("t", "x", &c, 65536).ok(), Some(data));
        assert!(zstd_exact("t", "x", &c, 65537).is_err());
        assert!(zstd_exact("t", "x", &[1, 2, 3], 10).is_err());
    }
}
