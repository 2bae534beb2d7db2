//! VHD (Virtual PC / Hyper-V, `vpc` in qemu): fixed disks (data then a footer) and dynamic disks
//! (footer copy, dynamic header, block allocation table, per-block sector bitmaps).
//!
//! The footer checksum is verified. The virtual size follows qemu: CHS geometry for images made by
//! Virtual PC and old qemu, the footer's current size for Hyper-V, newer qemu and others.
//! Refused (`Unsafe`): differencing disks and dynamic disks carrying parent locators.

use std::sync::Arc;

use crate::reader::fields::be32_at;
use crate::reader::{check_virtual_size, BlockMap, Fields, Mapped, Mapping, Run, Source};
use crate::{DiskImage, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

const NAME: &str = "vhd";
/// Footer cookie.
pub const COOKIE: [u8; 8] = *b"conectix";
/// Dynamic header cookie.
pub const DYNAMIC_COOKIE: [u8; 8] = *b"cxsparse";
/// Size of the footer.
pub const FOOTER_LEN: usize = 512;
/// Size of the dynamic disk header.
pub const DYNAMIC_HEADER_LEN: usize = 1024;
/// Disk types.
pub const TYPE_FIXED: u32 = 2;
/// Disk type of a dynamic (sparse) disk.
pub const TYPE_DYNAMIC: u32 = 3;
/// Disk type of a differencing disk (refused).
pub const TYPE_DIFFERENCING: u32 = 4;
const BAT_UNUSED: u32 = 0xffff_ffff;
const MAX_GEOMETRY_SECTORS: u64 = 65535 * 16 * 255;
/// Largest block accepted (VHD uses 2 MiB; the spec allows any power of two).
const MAX_BLOCK_SIZE: u32 = 256 << 20;

fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("{NAME}: {msg}"))
}

/// The hard disk footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Feature flags (2 = reserved, always set).
    pub features: u32,
    /// File format version (0x00010000).
    pub version: u32,
    /// File offset of the dynamic header; all ones for fixed disks.
    pub data_offset: u64,
    /// Creation time, seconds since 2000-01-01 UTC.
    pub timestamp: u32,
    /// Creator application (`vpc `, `win `, `qemu`, `qem2`, ...).
    pub creator_app: [u8; 4],
    /// Creator application version.
    pub creator_version: u32,
    /// Creator host OS.
    pub creator_os: [u8; 4],
    /// Size of the disk at creation.
    pub original_size: u64,
    /// Current size of the disk.
    pub current_size: u64,
    /// CHS geometry: cylinders.
    pub cylinders: u16,
    /// CHS geometry: heads.
    pub heads: u8,
    /// CHS geometry: sectors per track.
    pub sectors_per_track: u8,
    /// 2 fixed, 3 dynamic, 4 differencing.
    pub disk_type: u32,
    /// One's complement of the byte sum of the structure without this field.
    pub checksum: u32,
    /// Disk UUID.
    pub unique_id: [u8; 16],
    /// 1 when the disk is in a saved state.
    pub saved_state: u8,
}

impl Footer {
    /// The guest size as qemu computes it (see the module docs).
    pub fn virtual_size(&self) -> u64 {
        let chs = u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors_per_track);
        let app = &self.creator_app;
        let use_chs = !(app == b"win " || app == b"qem2" || app == b"d2v " || app == b"CTXS" || app == b"tap\0");
        if !use_chs || chs == MAX_GEOMETRY_SECTORS {
            self.current_size / 512 * 512
        } else {
            chs * 512
        }
    }
}

/// The sum-of-bytes checksum VHD uses, over `buf` with the 4 bytes at `field` taken as zeros.
pub fn checksum(buf: &[u8], field: usize) -> u32 {
    let sum = buf
        .iter()
        .enumerate()
        .filter(|(i, _)| !(field..field + 4).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

/// True when `header` starts with a footer copy (dynamic and differencing disks). Fixed disks have
/// their footer only at the end of the file: `detect` looks there.
pub fn probe(header: &[u8]) -> bool {
    header.starts_with(&COOKIE)
}

/// Parses a 512-byte footer, verifying the cookie and checksum.
pub fn parse_footer(buf: &[u8]) -> Result<Footer> {
    let f = Fields::new(buf, NAME, "footer");
    f.slice(0, FOOTER_LEN)?;
    if f.slice(0, 8)? != COOKIE {
        return Err(corrupt("bad footer cookie".into()));
    }
    let mut creator_app = [0u8; 4];
    creator_app.copy_from_slice(f.slice(28, 4)?);
    let mut creator_os = [0u8; 4];
    creator_os.copy_from_slice(f.slice(36, 4)?);
    let footer = Footer {
        features: f.u32_be(8)?,
        version: f.u32_be(12)?,
        data_offset: f.u64_be(16)?,
        timestamp: f.u32_be(24)?,
        creator_app,
        creator_version: f.u32_be(32)?,
        creator_os,
        original_size: f.u64_be(40)?,
        current_size: f.u64_be(48)?,
        cylinders: f.u16_be(56)?,
        heads: f.u8(58)?,
        sectors_per_track: f.u8(59)?,
        disk_type: f.u32_be(60)?,
        checksum: f.u32_be(64)?,
        unique_id: f.guid(68)?,
        saved_state: f.u8(84)?,
    };
    let expected = checksum(f.slice(0, FOOTER_LEN)?, 64);
    if expected != footer.checksum {
        return Err(corrupt(format!(
            "footer checksum {:#010x} does not match its contents ({expected:#010x})",
            footer.checksum
        )));
    }
    Ok(footer)
}

/// The dynamic disk header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicHeader {
    /// File offset of the dynamic header; all ones for fixed disks.
    pub data_offset: u64,
    /// File offset of the block allocation table.
    pub table_offset: u64,
    /// Dynamic header version.
    pub header_version: u32,
    /// Number of BAT entries.
    pub max_table_entries: u32,
    /// Block size in bytes (2 MiB by default), a power of two.
    pub block_size: u32,
    /// One's complement of the byte sum of the structure without this field.
    pub checksum: u32,
    /// UUID of the parent of a differencing disk.
    pub parent_unique_id: [u8; 16],
    /// Platform codes of the eight parent locator entries (0 = unused).
    pub parent_locator_platforms: [u32; 8],
}

/// Parses the 1024-byte dynamic disk header (cookie, geometry of the BAT; block size a power of two
/// of at least 512 bytes).
pub fn parse_dynamic_header(buf: &[u8]) -> Result<DynamicHeader> {
    let f = Fields::new(buf, NAME, "dynamic disk header");
    f.slice(0, DYNAMIC_HEADER_LEN)?;
    if f.slice(0, 8)? != DYNAMIC_COOKIE {
        return Err(corrupt("bad dynamic disk header cookie".into()));
    }
    let mut platforms = [0u32; 8];
    for (i, p) in platforms.iter_mut().enumerate() {
        *p = f.u32_be(576 + i * 24)?;
    }
    let h = DynamicHeader {
        data_offset: f.u64_be(8)?,
        table_offset: f.u64_be(16)?,
        header_version: f.u32_be(24)?,
        max_table_entries: f.u32_be(28)?,
        block_size: f.u32_be(32)?,
        checksum: f.u32_be(36)?,
        parent_unique_id: f.guid(40)?,
        parent_locator_platforms: platforms,
    };
    if !h.block_size.is_power_of_two() || h.block_size < 512 || h.block_size > MAX_BLOCK_SIZE {
        return Err(corrupt(format!(
            "block size {} is not a power of two in 512..=256 MiB",
            h.block_size
        )));
    }
    Ok(h)
}

/// Opens a fixed or dynamic VHD (see the module docs for what is refused).
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    let source = Source::new(src, NAME)?;
    if source.size() < FOOTER_LEN as u64 {
        return Err(source.past_end("footer", 0, FOOTER_LEN as u64));
    }
    let head = source.read_vec("footer copy", 0, FOOTER_LEN as u64)?;
    let (footer, copy_at_start) = if head.starts_with(&COOKIE) {
        (parse_footer(&head)?, true)
    } else {
        let tail = source.read_vec("footer", source.size() - FOOTER_LEN as u64, FOOTER_LEN as u64)?;
        (parse_footer(&tail)?, false)
    };
    let virtual_size = footer.virtual_size();
    match footer.disk_type {
        TYPE_DIFFERENCING => {
            return Err(FormatError::Unsafe(format!(
                "{NAME}: differencing disk with a parent locator is not allowed"
            )))
        }
        TYPE_FIXED if copy_at_start => {
            return Err(corrupt(
                "footer copy at the start of the file claims a fixed disk".into(),
            ))
        }
        TYPE_FIXED => {
            check_virtual_size(NAME, virtual_size, limits)?;
            let data_len = source.size() - FOOTER_LEN as u64;
            if virtual_size > data_len {
                return Err(corrupt(format!(
                    "fixed disk of {virtual_size} bytes needs a file of at least {} bytes, not {}",
                    virtual_size.saturating_add(FOOTER_LEN as u64),
                    source.size()
                )));
            }
            let details = details(&footer, None);
            return Ok(Box::new(Mapped(FixedMap {
                source,
                virtual_size,
                details,
            })));
        }
        TYPE_DYNAMIC if !copy_at_start => {
            return Err(corrupt(
                "dynamic disk without a footer copy at the start of the file".into(),
            ))
        }
        TYPE_DYNAMIC => {}
        other => return Err(corrupt(format!("unknown disk type {other}"))),
    }
    check_virtual_size(NAME, virtual_size, limits)?;
    let dyn_buf = source.read_vec("dynamic disk header", footer.data_offset, DYNAMIC_HEADER_LEN as u64)?;
    let dh = parse_dynamic_header(&dyn_buf)?;
    if dh.parent_locator_platforms.iter().any(|&p| p != 0) {
        return Err(FormatError::Unsafe(format!(
            "{NAME}: dynamic disk carries a parent locator, which is not allowed"
        )));
    }
    let block = u64::from(dh.block_size);
    let blocks_needed = virtual_size.div_ceil(block);
    if u64::from(dh.max_table_entries) < blocks_needed {
        return Err(corrupt(format!(
            "block allocation table of {} entries is too small for {virtual_size} bytes",
            dh.max_table_entries
        )));
    }
    let bat = source.read_table(
        "block allocation table",
        dh.table_offset,
        u64::from(dh.max_table_entries) * 4,
        limits,
    )?;
    let bitmap = (block / (8 * 512)).div_ceil(512) * 512;
    for i in 0..blocks_needed {
        let e = be32_at(&bat, i).unwrap_or(BAT_UNUSED);
        if e != BAT_UNUSED {
            let start = u64::from(e) * 512;
            source.check_span(&format!("block {i}"), start, bitmap + block)?;
        }
    }
    let details = details(&footer, Some(block));
    Ok(Box::new(Mapped(DynamicMap {
        source,
        virtual_size,
        bat,
        block,
        bitmap,
        details,
    })))
}

fn details(footer: &Footer, block: Option<u64>) -> ImageDetails {
    let app = String::from_utf8_lossy(&footer.creator_app)
        .trim_end_matches(['\0', ' '])
        .to_string();
    ImageDetails {
        cluster_size: block,
        compression: None,
        features: vec![
            (
                "subformat".into(),
                if block.is_some() { "dynamic" } else { "fixed" }.into(),
            ),
            ("creator_app".into(), app),
        ],
    }
}

struct FixedMap {
    source: Source,
    virtual_size: u64,
    details: ImageDetails,
}

impl BlockMap for FixedMap {
    fn format(&self) -> Format {
        Format::Vhd
    }
    fn virtual_size(&self) -> u64 {
        self.virtual_size
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

struct DynamicMap {
    source: Source,
    virtual_size: u64,
    bat: Vec<u8>,
    block: u64,
    bitmap: u64,
    details: ImageDetails,
}

impl DynamicMap {
    /// File offset of block `index`'s data, or `None` when unallocated.
    fn block_data(&self, index: u64) -> Result<Option<u64>> {
        let e = be32_at(&self.bat, index)
            .ok_or_else(|| corrupt(format!("block {index} is outside the block allocation table")))?;
        Ok((e != BAT_UNUSED).then(|| u64::from(e) * 512 + self.bitmap))
    }
}

impl BlockMap for DynamicMap {
    fn format(&self) -> Format {
        Format::Vhd
    }
    fn virtual_size(&self) -> u64 {
        self.virtual_size
    }
    fn source(&self) -> &Source {
        &self.source
    }
    fn map(&self, offset: u64, max_len: u64) -> Result<Mapping> {
        let index = offset / self.block;
        let in_block = offset % self.block;
        let mut len = (self.block - in_block).min(max_len);
        match self.block_data(index)? {
            // Blocks are separated by bitmaps, so allocated runs end at the block.
            Some(data) => Ok(Mapping {
                run: Run::Host(data + in_block),
                len,
            }),
            None => {
                let mut next = index + 1;
                while len < max_len && self.block_data(next)?.is_none() {
                    len = len.saturating_add(self.block).min(max_len);
                    next += 1;
                }
                Ok(Mapping {
                    run: Run::Unallocated,
                    len,
                })
            }
        }
    }
    fn details(&self) -> ImageDetails {
        self.details.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid footer for a disk of `size` bytes of `disk_type`, made by "qem2".
    pub(crate) fn footer(size: u64, disk_type: u32, data_offset: u64) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..8].copy_from_slice(&COOKIE);
        b[8..12].copy_from_slice(&2u32.to_be_bytes());
        b[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        b[16..24].copy_from_slice(&data_offset.to_be_bytes());
        b[28..32].copy_from_slice(b"qem2");
        b[40..48].copy_from_slice(&size.to_be_bytes());
        b[48..56].copy_from_slice(&size.to_be_bytes());
        b[56..58].copy_from_slice(&65535u16.to_be_bytes());
        b[58] = 16;
        b[59] = 255;
        b[60..64].copy_from_slice(&disk_type.to_be_bytes());
        let c = checksum(&b, 64);
        b[64..68].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn footer_checksum_and_size() {
        let f = parse_footer(&footer(1 << 20, TYPE_FIXED, u64::MAX)).unwrap();
        assert_eq!(f.virtual_size(), 1 << 20);
        let mut b = footer(1 << 20, TYPE_FIXED, u64::MAX);
        b[100] ^= 1;
        assert!(parse_footer(&b).is_err());
        for n in 0..512 {
            assert!(parse_footer(&footer(1, 2, 0)[..n]).is_err());
        }
    }

    #[test]
    fn fixed_disk_and_differencing() {
        let mut file = vec![7u8; 1 << 20];
        file.extend_from_slice(&footer(1 << 20, TYPE_FIXED, u64::MAX));
        let img = open(Arc::new(file), &Limits::default()).unwrap();
        assert_eq!(img.virtual_size(), 1 << 20);
        let mut b = [0u8; 4];
        img.read_at(&mut b, (1 << 20) - 4).unwrap();
        assert_eq!(b, [7; 4]);

        let mut file = footer(1 << 20, TYPE_DIFFERENCING, 512);
        file.extend_from_slice(&[0u8; 2048]);
        match open(Arc::new(file), &Limits::default()) {
            Err(FormatError::Unsafe(m)) => assert_eq!(m, "vhd: differencing disk with a parent locator is not allowed"),
            _ => panic!("differencing disk not refused"),
        }
        // Fixed disk larger than its file.
        let mut file = vec![0u8; 4096];
        file.extend_from_slice(&footer(1 << 20, TYPE_FIXED, u64::MAX));
        assert!(matches!(
            open(Arc::new(file), &Limits::default()),
            Err(FormatError::Corrupt(_))
        ));
    }
}
