//! ISO 9660 (and UDF) images: raw on disk, recognised by the volume descriptors at 32 KiB.
//!
//! Beyond detection, the submodules write an ISO 9660 file system with Joliet names from a directory
//! tree as a stream ([`IsoTree`], [`IsoLayout`], [`IsoStream`]) and read one back without mounting
//! it ([`IsoFilesystem`]); docs/formats/iso.md describes both.

mod filesystem;
mod names;
mod record;
mod tree;
mod writer;

pub use filesystem::{IsoEntry, IsoFileReader, IsoFilesystem, IsoReadLimits};
pub use names::MAX_JOLIET_UNITS;
pub use record::IsoTime;
pub use tree::{FileSource, IsoTree};
pub use writer::{IsoLayout, IsoOptions, IsoStream};

use std::sync::Arc;

use crate::reader::Fields;
use crate::{DiskImage, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

/// Offset of the first volume descriptor (sector 16 of 2048 bytes).
pub const VOLUME_DESCRIPTORS_OFFSET: usize = 32 * 1024;
const SECTOR: usize = 2048;

/// True when `header` (the first 64 KiB or less) holds an ISO 9660 primary or other volume
/// descriptor (`CD001`) at 32 KiB, or a UDF volume recognition sequence (`BEA01`, `NSR02`, `NSR03`).
pub fn probe(header: &[u8]) -> bool {
    let id = |sector: usize| {
        let at = VOLUME_DESCRIPTORS_OFFSET + sector * SECTOR + 1;
        header.get(at..at + 5)
    };
    match id(0) {
        Some(b"CD001") | Some(b"NSR02") | Some(b"NSR03") => true,
        // UDF: BEA01 then NSR0x within the next sectors.
        Some(b"BEA01") => (1..8).any(|s| matches!(id(s), Some(b"NSR02") | Some(b"NSR03"))),
        _ => false,
    }
}

/// Facts from the primary volume descriptor (type 1, `CD001`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryVolume {
    /// Volume identifier, trailing spaces removed.
    pub volume_id: String,
    /// Logical block size in bytes (normally 2048).
    pub logical_block_size: u16,
    /// Volume size in logical blocks.
    pub volume_space_blocks: u32,
}

/// Parses the primary volume descriptor from a 2048-byte sector; `None` when the sector is not one.
pub fn parse_primary_volume(sector: &[u8]) -> Option<PrimaryVolume> {
    let f = Fields::new(sector, "iso", "primary volume descriptor");
    if f.u8(0).ok()? != 1 || f.slice(1, 5).ok()? != b"CD001" {
        return None;
    }
    let volume_id = String::from_utf8_lossy(f.slice(40, 32).ok()?).trim_end().to_string();
    Some(PrimaryVolume {
        volume_id,
        volume_space_blocks: f.u32_le(80).ok()?,
        logical_block_size: f.u16_le(128).ok()?,
    })
}

/// Opens an ISO image: the guest disk is the file itself (as qemu reads it, raw). `Corrupt` when the
/// file has no ISO 9660 / UDF volume descriptors; `Unsafe` above `limits.max_virtual_size`.
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    let size = src.size()?;
    let want = (VOLUME_DESCRIPTORS_OFFSET + 8 * SECTOR) as u64;
    let mut head = vec![0u8; usize::try_from(size.min(want)).unwrap_or(0)];
    src.read_exact_at(&mut head, 0)?;
    if !probe(&head) {
        return Err(FormatError::Corrupt(
            "iso: no ISO 9660 or UDF volume descriptor at offset 32768".into(),
        ));
    }
    let mut details = ImageDetails::default();
    let pvd = head.get(VOLUME_DESCRIPTORS_OFFSET..VOLUME_DESCRIPTORS_OFFSET + SECTOR);
    if let Some(p) = pvd.and_then(parse_primary_volume) {
        details.cluster_size = Some(u64::from(p.logical_block_size));
        details.features.push(("volume_id".into(), p.volume_id));
        details.features.push((
            "volume_size".into(),
            (u64::from(p.volume_space_blocks) * u64::from(p.logical_block_size)).to_string(),
        ));
    } else {
        details.features.push(("filesystem".into(), "udf".into()));
    }
    crate::raw::open_with_details(src, limits, Format::Iso, "iso", details)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny_iso() -> Vec<u8> {
        let mut v = vec![0u8; 40 * 1024];
        let p = VOLUME_DESCRIPTORS_OFFSET;
        v[p] = 1;
        v[p + 1..p + 6].copy_from_slice(b"CD001");
        v[p + 6] = 1;
        v[p + 40..p + 72].copy_from_slice(&[b' '; 32]);
        v[p + 40..p + 44].copy_from_slice(b"TEST");
        v[p + 80..p + 84].copy_from_slice(&20u32.to_le_bytes());
        v[p + 128..p + 130].copy_from_slice(&2048u16.to_le_bytes());
        v
    }

    #[test]
    fn probe_and_parse() {
        let v = tiny_iso();
        assert!(probe(&v));
        assert!(!probe(&v[..32 * 1024 + 3]));
        assert!(!probe(&[0u8; 65536]));
        let p = parse_primary_volume(&v[32 * 1024..34 * 1024]);
        assert_eq!(
            p.map(|p| (p.volume_id, p.volume_space_blocks)),
            Some(("TEST".into(), 20))
        );
        let img = open(Arc::new(v), &Limits::default());
        assert_eq!(
            img.map(|i| (i.format(), i.virtual_size())).ok(),
            Some((Format::Iso, 40 * 1024))
        );
        assert!(open(Arc::new(vec![0u8; 100]), &Limits::default()).is_err());
    }
}
