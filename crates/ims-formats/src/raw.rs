//! RAW: the file is the guest disk, byte for byte.

use std::sync::Arc;

use crate::reader::mapped::{check_range, push_extent};
use crate::reader::{check_virtual_size, Source};
use crate::{BlockExtent, BlockStatus, DiskImage, Format, ImageDetails, Limits, ReadAt, Result};

/// Any bytes are a raw image, so there is no positive probe: raw is what detection falls back to.
pub fn probe(_header: &[u8]) -> bool {
    false
}

/// Opens `src` as a raw disk: virtual size = file size. Block status comes from the source's
/// allocation map where it has one (holes of a sparse file are `Unallocated`); otherwise every byte
/// is `Data` and writers find the zeros by reading.
///
/// Refuses (`Unsafe`) a file larger than `limits.max_virtual_size`.
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    open_as(src, limits, Format::Raw, "raw")
}

/// A raw-layout image reported as `format` (ISO images are raw on disk).
pub(crate) fn open_as(
    src: Arc<dyn ReadAt>,
    limits: &Limits,
    format: Format,
    name: &'static str,
) -> Result<Box<dyn DiskImage>> {
    open_with_details(src, limits, format, name, ImageDetails::default())
}

/// A raw-layout image with extra display facts.
pub(crate) fn open_with_details(
    src: Arc<dyn ReadAt>,
    limits: &Limits,
    format: Format,
    name: &'static str,
    details: ImageDetails,
) -> Result<Box<dyn DiskImage>> {
    let source = Source::new(src, name)?;
    check_virtual_size(name, source.size(), limits)?;
    Ok(Box::new(RawDisk {
        source,
        format,
        details,
    }))
}

/// A guest disk stored byte for byte in its file.
struct RawDisk {
    source: Source,
    format: Format,
    details: ImageDetails,
}

impl DiskImage for RawDisk {
    fn format(&self) -> Format {
        self.format
    }

    fn virtual_size(&self) -> u64 {
        self.source.size()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        check_range(self.format, self.source.size(), offset, buf.len() as u64)?;
        self.source.read_into("data", buf, offset)
    }

    fn block_status(&self, offset: u64, length: u64) -> Result<Vec<BlockExtent>> {
        check_range(self.format, self.source.size(), offset, length)?;
        let mut out = Vec::new();
        let Some(ranges) = self.source.data_ranges(offset, length)? else {
            push_extent(&mut out, offset, length, BlockStatus::Data);
            return Ok(out);
        };
        let mut pos = offset;
        for (at, len) in ranges {
            push_extent(&mut out, pos, at - pos, BlockStatus::Unallocated);
            push_extent(&mut out, at, len, BlockStatus::Data);
            pos = at + len;
        }
        push_extent(&mut out, pos, offset + length - pos, BlockStatus::Unallocated);
        Ok(out)
    }

    fn details(&self) -> ImageDetails {
        self.details.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlockStatus;

    #[test]
    fn raw_reads_the_file() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let img = open(Arc::new(data.clone()), &Limits::default()).ok();
        let img = img.as_deref().map(|i| i as &dyn DiskImage);
        let Some(img) = img else { panic!("open failed") };
        assert_eq!(img.virtual_size(), 10_000);
        let mut buf = vec![0u8; 300];
        assert!(img.read_at(&mut buf, 9_700).is_ok());
        assert_eq!(&buf[..], &data[9_700..]);
        assert!(img.read_at(&mut buf, 9_701).is_err());
        let st = img.block_status(0, 10_000).unwrap_or_default();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].status, BlockStatus::Data);
    }

    #[test]
    fn raw_reports_the_holes_of_a_sparse_file() {
        let mut file = tempfile::tempfile().unwrap();
        let mib = 1u64 << 20;
        file.set_len(8 * mib).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &[7u8; 4096], 3 * mib).unwrap();
        std::io::Write::flush(&mut file).unwrap();
        let img = open(Arc::new(file), &Limits::default()).unwrap();
        let st = img.block_status(0, 8 * mib).unwrap();
        let covered: u64 = st.iter().map(|e| e.length).sum();
        assert_eq!(covered, 8 * mib);
        let data: Vec<_> = st.iter().filter(|e| e.status == BlockStatus::Data).collect();
        // Every file system with holes keeps the written page as data and most of the rest as holes;
        // one without holes reports everything as data.
        assert!(data.iter().any(|e| e.offset <= 3 * mib && e.offset + e.length >= 3 * mib + 4096));
        let data_bytes: u64 = data.iter().map(|e| e.length).sum();
        assert!(data_bytes == 8 * mib || data_bytes <= 2 * mib, "{st:?}");
        // A sub-range starting inside a hole.
        let part = img.block_status(mib, 3 * mib).unwrap();
        assert_eq!(part.first().map(|e| e.offset), Some(mib));
        assert_eq!(part.iter().map(|e| e.length).sum::<u64>(), 3 * mib);
        let mut buf = vec![1u8; 8192];
        img.read_at(&mut buf, 3 * mib - 4096).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0));
        assert!(buf[4096..].iter().all(|&b| b == 7));
    }

    #[test]
    fn raw_respects_size_limit() {
        let limits = Limits {
            max_virtual_size: 10,
            max_table_bytes: 10,
        };
        assert!(open(Arc::new(vec![0u8; 11]), &limits).is_err());
    }
}
