//! The hosted sparse extent header (`KDMV`) and the stream-optimized footer.

use crate::reader::Fields;
use crate::{FormatError, Result};

/// `KDMV`: hosted sparse extent (VMDK version 4 layout).
pub const MAGIC: [u8; 4] = *b"KDMV";
/// `COWD`: ESX VMFS sparse extent (VMDK3), not supported.
pub const MAGIC_COWD: [u8; 4] = *b"COWD";
/// `gd_offset` value meaning "the grain directory is described by the footer at the end".
pub const GD_AT_END: u64 = u64::MAX;
/// Flag: newline detection test is valid.
pub const FLAG_NL_DETECT: u32 = 1 << 0;
/// Flag: a redundant grain directory exists.
pub const FLAG_RGD: u32 = 1 << 1;
/// Flag: grain table entry 1 means a zeroed grain.
pub const FLAG_ZERO_GRAIN: u32 = 1 << 2;
/// Flag: grains are compressed.
pub const FLAG_COMPRESSED: u32 = 1 << 16;
/// Flag: the file has stream markers.
pub const FLAG_MARKERS: u32 = 1 << 17;
/// `compressAlgorithm` for deflate (zlib).
pub const COMPRESSION_DEFLATE: u16 = 1;
/// Stream marker types.
pub const MARKER_EOS: u32 = 0;
/// Stream marker: a grain table follows.
pub const MARKER_GRAIN_TABLE: u32 = 1;
/// Stream marker: the grain directory follows.
pub const MARKER_GRAIN_DIRECTORY: u32 = 2;
/// Stream marker: the footer follows.
pub const MARKER_FOOTER: u32 = 3;

/// A hosted sparse extent header (the first sector of the file, or the footer's copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseHeader {
    /// Sparse extent version, 1..=3.
    pub version: u32,
    /// FLAG_* bits.
    pub flags: u32,
    /// Guest size in sectors.
    pub capacity: u64,
    /// Grain size in sectors.
    pub grain_size: u64,
    /// Sector of the embedded descriptor (1), 0 when none.
    pub descriptor_offset: u64,
    /// Size of the embedded descriptor in sectors.
    pub descriptor_size: u64,
    /// Entries per grain table (512).
    pub num_gtes_per_gt: u32,
    /// Sector of the redundant grain directory (ignored).
    pub rgd_offset: u64,
    /// Sector of the grain directory, or [`GD_AT_END`].
    pub gd_offset: u64,
    /// First sector of grain data ("overHead").
    pub overhead: u64,
    /// 1 when the extent was not closed cleanly.
    pub unclean_shutdown: u8,
    /// 0 none, 1 deflate.
    pub compress_algorithm: u16,
}

impl SparseHeader {
    /// Grains are deflate-compressed (streamOptimized).
    pub fn compressed(&self) -> bool {
        self.compress_algorithm == COMPRESSION_DEFLATE
    }
    /// Grains are preceded by markers.
    pub fn has_markers(&self) -> bool {
        self.flags & FLAG_MARKERS != 0
    }
    /// Grain table entry 1 means a zeroed grain.
    pub fn has_zero_grain(&self) -> bool {
        self.flags & FLAG_ZERO_GRAIN != 0
    }
}

fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("vmdk: {msg}"))
}

/// Parses a 512-byte sparse extent header (starting with `KDMV`). Checks the magic and version
/// (1..=3); the caller checks the geometry against the file.
pub fn parse_sparse_header(buf: &[u8]) -> Result<SparseHeader> {
    let f = Fields::new(buf, "vmdk", "sparse extent header");
    let magic = f.slice(0, 4)?;
    if magic == MAGIC_COWD {
        return Err(FormatError::Unsupported(
            "vmdk: VMFS sparse (COWD) extents are not supported".into(),
        ));
    }
    if magic != MAGIC {
        return Err(corrupt("bad sparse extent magic".into()));
    }
    let h = SparseHeader {
        version: f.u32_le(4)?,
        flags: f.u32_le(8)?,
        capacity: f.u64_le(12)?,
        grain_size: f.u64_le(20)?,
        descriptor_offset: f.u64_le(28)?,
        descriptor_size: f.u64_le(36)?,
        num_gtes_per_gt: f.u32_le(44)?,
        rgd_offset: f.u64_le(48)?,
        gd_offset: f.u64_le(56)?,
        overhead: f.u64_le(64)?,
        unclean_shutdown: f.u8(72)?,
        compress_algorithm: f.u16_le(77)?,
    };
    if !(1..=3).contains(&h.version) {
        return Err(FormatError::Unsupported(format!(
            "vmdk: sparse extent version {} is not supported",
            h.version
        )));
    }
    Ok(h)
}

/// A stream marker: `value` (a sector count or LBA), `size` (0 for metadata markers) and `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Sector count of the following metadata, or the LBA of a grain.
    pub value: u64,
    /// Compressed size of a grain; 0 for metadata markers.
    pub size: u32,
    /// MARKER_* type for metadata markers.
    pub kind: u32,
}

/// Parses a marker from the start of `buf` (metadata markers are 512 bytes: value, size=0, type).
pub fn parse_marker(buf: &[u8]) -> Result<Marker> {
    let f = Fields::new(buf, "vmdk", "stream marker");
    Ok(Marker {
        value: f.u64_le(0)?,
        size: f.u32_le(8)?,
        kind: f.u32_le(12)?,
    })
}

/// Parses the last 1536 bytes of a stream-optimized file: footer marker, footer header, end-of-stream
/// marker. Returns the footer header, which takes precedence over the one at the start.
pub fn parse_footer(tail: &[u8]) -> Result<SparseHeader> {
    let f = Fields::new(tail, "vmdk", "footer");
    f.slice(0, 1536)?;
    let footer_marker = parse_marker(f.slice(0, 512)?)?;
    let eos = parse_marker(f.slice(1024, 512)?)?;
    if footer_marker.size != 0 || footer_marker.kind != MARKER_FOOTER {
        return Err(corrupt("footer marker is invalid".into()));
    }
    if eos.value != 0 || eos.size != 0 || eos.kind != MARKER_EOS {
        return Err(corrupt("end-of-stream marker is invalid".into()));
    }
    let h = parse_sparse_header(f.slice(512, 512)?)?;
    if h.gd_offset == GD_AT_END {
        return Err(corrupt("footer points to another footer".into()));
    }
    Ok(h)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn header(capacity: u64, gd_offset: u64, flags: u32, compress: u16) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&(if compress != 0 { 3u32 } else { 1 }).to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[12..20].copy_from_slice(&capacity.to_le_bytes());
        b[20..28].copy_from_slice(&128u64.to_le_bytes());
        b[28..36].copy_from_slice(&1u64.to_le_bytes());
        b[36..44].copy_from_slice(&20u64.to_le_bytes());
        b[44..48].copy_from_slice(&512u32.to_le_bytes());
        b[56..64].copy_from_slice(&gd_offset.to_le_bytes());
        b[64..72].copy_from_slice(&128u64.to_le_bytes());
        b[73..77].copy_from_slice(b"\n \r\n");
        b[77..79].copy_from_slice(&compress.to_le_bytes());
        b
    }

    #[test]
    fn parse_header_and_footer() {
        let h = parse_sparse_header(&header(2048, 21, FLAG_NL_DETECT, 0)).unwrap();
        assert_eq!((h.capacity, h.grain_size, h.gd_offset), (2048, 128, 21));
        for n in 0..79 {
            assert!(parse_sparse_header(&header(1, 1, 0, 0)[..n]).is_err());
        }
        let mut cowd = header(1, 1, 0, 0);
        cowd[0..4].copy_from_slice(b"COWD");
        assert!(matches!(parse_sparse_header(&cowd), Err(FormatError::Unsupported(_))));

        let mut tail = vec![0u8; 1536];
        tail[0..8].copy_from_slice(&1u64.to_le_bytes());
        tail[12..16].copy_from_slice(&MARKER_FOOTER.to_le_bytes());
        tail[512..1024].copy_from_slice(&header(2048, 50, FLAG_MARKERS, 1));
        assert_eq!(parse_footer(&tail).map(|h| h.gd_offset).ok(), Some(50));
        tail[512..1024].copy_from_slice(&header(2048, GD_AT_END, FLAG_MARKERS, 1));
        assert!(parse_footer(&tail).is_err());
        tail[12] = 2;
        assert!(parse_footer(&tail).is_err());
    }
}
