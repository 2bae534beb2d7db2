//! RAW: the file is the guest disk, byte for byte.

use std::sync::Arc;

use crate::reader::{check_virtual_size, BlockMap, Mapped, Mapping, Run, Source};
use crate::{DiskImage, Format, ImageDetails, Limits, ReadAt, Result};

/// Any bytes are a raw image, so there is no positive probe: raw is what detection falls back to.
pub fn probe(_header: &[u8]) -> bool {
    false
}

/// Opens `src` as a raw disk: virtual size = file size, every byte is `Data`.
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
    let source = Source::new(src, name)?;
    check_virtual_size(name, source.size(), limits)?;
    Ok(Box::new(Mapped(RawMap {
        source,
        format,
        details: ImageDetails::default(),
    })))
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
    Ok(Box::new(Mapped(RawMap {
        source,
        format,
        details,
    })))
}

struct RawMap {
    source: Source,
    format: Format,
    details: ImageDetails,
}

impl BlockMap for RawMap {
    fn format(&self) -> Format {
        self.format
    }
    fn virtual_size(&self) -> u64 {
        self.source.size()
    }
    fn source(&self) -> &Source {
        &self.source
    }
    fn map(&self, offset: u64, max_len: u64) -> Result<Mapping> {
        Ok(Mapping {
            run: Run::Host(offset),
            len: max_len,
        })
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
    fn raw_respects_size_limit() {
        let limits = Limits {
            max_virtual_size: 10,
            max_table_bytes: 10,
        };
        assert!(open(Arc::new(vec![0u8; 11]), &limits).is_err());
    }
}
