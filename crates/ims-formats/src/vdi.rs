//! VDI (VirtualBox): static and dynamic images, a block map of 32-bit entries
//! (`0xffffffff` unallocated, `0xfffffffe` zero).
//!
//! Refused (`Unsafe`): images with a parent (differencing) or a link UUID.

use std::sync::Arc;

use crate::reader::fields::le32_at;
use crate::reader::{check_virtual_size, BlockMap, Fields, Mapped, Mapping, Run, Source};
use crate::{DiskImage, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

const NAME: &str = "vdi";
/// Signature at offset 0x40.
pub const SIGNATURE: u32 = 0xbeda_107f;
/// Header version 1.1, the only one read.
pub const VERSION_1_1: u32 = 0x0001_0001;
/// Bytes read as the header.
pub const HEADER_LEN: usize = 512;
/// Image types.
pub const TYPE_DYNAMIC: u32 = 1;
/// Image type of a preallocated (fixed) image.
pub const TYPE_STATIC: u32 = 2;
const UNALLOCATED: u32 = 0xffff_ffff;
const ZERO: u32 = 0xffff_fffe;
/// Largest block accepted (VirtualBox and qemu use 1 MiB).
const MAX_BLOCK_SIZE: u32 = 64 << 20;

fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("{NAME}: {msg}"))
}

/// The VDI 1.1 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header version, major in the high 16 bits.
    pub version: u32,
    /// Size of the header structure.
    pub header_size: u32,
    /// 1 dynamic, 2 static.
    pub image_type: u32,
    /// Image flags (unused).
    pub image_flags: u32,
    /// File offset of the block map (sector-aligned).
    pub offset_bmap: u32,
    /// File offset of the first data block (sector-aligned).
    pub offset_data: u32,
    /// Sector size, 512.
    pub sector_size: u32,
    /// Virtual disk size in bytes.
    pub disk_size: u64,
    /// Block size in bytes (1 MiB in practice).
    pub block_size: u32,
    /// Per-block extra data before the block (must be 0).
    pub block_extra: u32,
    /// Number of block map entries.
    pub blocks_in_image: u32,
    /// Number of allocated blocks.
    pub blocks_allocated: u32,
    /// This image's UUID.
    pub uuid_image: [u8; 16],
    /// UUID of a linked image (must be null).
    pub uuid_link: [u8; 16],
    /// UUID of the parent of a differencing image (must be null).
    pub uuid_parent: [u8; 16],
}

/// True when `header` carries the VDI signature at offset 0x40.
pub fn probe(header: &[u8]) -> bool {
    Fields::new(header, NAME, "header").u32_le(0x40).ok() == Some(SIGNATURE)
}

/// Parses and checks the header as qemu does: version 1.1, 512-byte sectors, aligned offsets, a
/// power-of-two block size, a block map large enough for the disk size.
pub fn parse_header(buf: &[u8]) -> Result<Header> {
    let f = Fields::new(buf, NAME, "header");
    f.slice(0, 0x1c8)?;
    if f.u32_le(0x40)? != SIGNATURE {
        return Err(corrupt("bad signature".into()));
    }
    let h = Header {
        version: f.u32_le(0x44)?,
        header_size: f.u32_le(0x48)?,
        image_type: f.u32_le(0x4c)?,
        image_flags: f.u32_le(0x50)?,
        offset_bmap: f.u32_le(0x154)?,
        offset_data: f.u32_le(0x158)?,
        sector_size: f.u32_le(0x168)?,
        disk_size: f.u64_le(0x170)?,
        block_size: f.u32_le(0x178)?,
        block_extra: f.u32_le(0x17c)?,
        blocks_in_image: f.u32_le(0x180)?,
        blocks_allocated: f.u32_le(0x184)?,
        uuid_image: f.guid(0x188)?,
        uuid_link: f.guid(0x1a8)?,
        uuid_parent: f.guid(0x1b8)?,
    };
    if h.version != VERSION_1_1 {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: version {}.{} is not supported",
            h.version >> 16,
            h.version & 0xffff
        )));
    }
    if h.image_type != TYPE_DYNAMIC && h.image_type != TYPE_STATIC {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: image type {} is not supported",
            h.image_type
        )));
    }
    if !h.offset_bmap.is_multiple_of(512) || !h.offset_data.is_multiple_of(512) {
        return Err(corrupt(format!(
            "block map offset {:#x} or data offset {:#x} is not sector-aligned",
            h.offset_bmap, h.offset_data
        )));
    }
    if h.sector_size != 512 {
        return Err(corrupt(format!("sector size {} is not 512", h.sector_size)));
    }
    if !h.block_size.is_power_of_two() || h.block_size < 512 || h.block_size > MAX_BLOCK_SIZE {
        return Err(corrupt(format!(
            "block size {} is not a power of two in 512..=64 MiB",
            h.block_size
        )));
    }
    if h.block_extra != 0 {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: block_extra {} is not supported",
            h.block_extra
        )));
    }
    let room = u64::from(h.blocks_in_image) * u64::from(h.block_size);
    if h.disk_size / 512 * 512 > room {
        return Err(corrupt(format!(
            "disk size {} exceeds what the block map holds ({room})",
            h.disk_size
        )));
    }
    Ok(h)
}

/// Opens a static or dynamic VDI (see the module docs for what is refused).
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    let source = Source::new(src, NAME)?;
    let buf = source.read_vec("header", 0, source.size().min(HEADER_LEN as u64))?;
    let h = parse_header(&buf)?;
    if h.uuid_parent != [0; 16] {
        return Err(FormatError::Unsafe(format!(
            "{NAME}: differencing image with a parent is not allowed"
        )));
    }
    if h.uuid_link != [0; 16] {
        return Err(FormatError::Unsafe(format!(
            "{NAME}: image linked to another image is not allowed"
        )));
    }
    // VBoxManage may write odd sizes; qemu (and we) expose whole sectors.
    let virtual_size = h.disk_size / 512 * 512;
    check_virtual_size(NAME, virtual_size, limits)?;
    let bmap = source.read_table(
        "block map",
        u64::from(h.offset_bmap),
        u64::from(h.blocks_in_image) * 4,
        limits,
    )?;
    let block = u64::from(h.block_size);
    let data = u64::from(h.offset_data);
    let needed = virtual_size.div_ceil(block);
    for i in 0..needed {
        let e = le32_at(&bmap, i).unwrap_or(UNALLOCATED);
        if e < ZERO {
            if e >= h.blocks_in_image {
                return Err(corrupt(format!(
                    "block {i} maps to block {e}, past the {} blocks",
                    h.blocks_in_image
                )));
            }
            source.check_span(&format!("block {i}"), data + u64::from(e) * block, block)?;
        }
    }
    let details = ImageDetails {
        cluster_size: Some(block),
        compression: None,
        features: vec![(
            "subformat".into(),
            if h.image_type == TYPE_STATIC {
                "static"
            } else {
                "dynamic"
            }
            .into(),
        )],
    };
    Ok(Box::new(Mapped(VdiMap {
        source,
        virtual_size,
        bmap,
        block,
        data,
        details,
    })))
}

struct VdiMap {
    source: Source,
    virtual_size: u64,
    bmap: Vec<u8>,
    block: u64,
    data: u64,
    details: ImageDetails,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Host(u64),
    Zero,
    Unallocated,
}

impl VdiMap {
    fn block_at(&self, index: u64) -> Result<Block> {
        let e = le32_at(&self.bmap, index).ok_or_else(|| corrupt(format!("block {index} is outside the block map")))?;
        Ok(match e {
            UNALLOCATED => Block::Unallocated,
            ZERO => Block::Zero,
            e => Block::Host(self.data + u64::from(e) * self.block),
        })
    }
}

impl BlockMap for VdiMap {
    fn format(&self) -> Format {
        Format::Vdi
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
        let first = self.block_at(index)?;
        let mut len = (self.block - in_block).min(max_len);
        let run = match first {
            Block::Host(h) => Run::Host(h + in_block),
            Block::Zero => Run::Zero,
            Block::Unallocated => Run::Unallocated,
        };
        let mut next = index + 1;
        while len < max_len {
            let b = self.block_at(next)?;
            let k = next - index;
            let continues = match (first, b) {
                (Block::Host(a), Block::Host(b)) => Some(b) == a.checked_add(k * self.block),
                (a, b) => a == b,
            };
            if !continues {
                break;
            }
            len = len.saturating_add(self.block).min(max_len);
            next += 1;
        }
        Ok(Mapping { run, len })
    }
    fn details(&self) -> ImageDetails {
        self.details.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(disk: u64, entries: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 0x200 + 0x200];
        b[0x40..0x44].copy_from_slice(&SIGNATURE.to_le_bytes());
        b[0x44..0x48].copy_from_slice(&VERSION_1_1.to_le_bytes());
        b[0x48..0x4c].copy_from_slice(&0x190u32.to_le_bytes());
        b[0x4c..0x50].copy_from_slice(&TYPE_DYNAMIC.to_le_bytes());
        b[0x154..0x158].copy_from_slice(&0x200u32.to_le_bytes());
        b[0x158..0x15c].copy_from_slice(&0x400u32.to_le_bytes());
        b[0x168..0x16c].copy_from_slice(&512u32.to_le_bytes());
        b[0x170..0x178].copy_from_slice(&disk.to_le_bytes());
        b[0x178..0x17c].copy_from_slice(&4096u32.to_le_bytes());
        b[0x180..0x184].copy_from_slice(&(entries.len() as u32).to_le_bytes());
        for (i, e) in entries.iter().enumerate() {
            b[0x200 + i * 4..0x204 + i * 4].copy_from_slice(&e.to_le_bytes());
        }
        b
    }

    #[test]
    fn reads_blocks() {
        let mut f = image(3 * 4096, &[1, UNALLOCATED, ZERO]);
        f.extend_from_slice(&[0u8; 4096]);
        f.extend_from_slice(&[9u8; 4096]);
        let img = open(Arc::new(f), &Limits::default()).unwrap();
        let mut buf = vec![0u8; 3 * 4096];
        img.read_at(&mut buf, 0).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 9));
        assert!(buf[4096..].iter().all(|&b| b == 0));
        let st = img.block_status(0, 3 * 4096).unwrap();
        assert_eq!(st.len(), 3);
    }

    #[test]
    fn refusals() {
        let mut f = image(4096, &[UNALLOCATED]);
        f[0x1b8] = 1;
        assert!(matches!(
            open(Arc::new(f), &Limits::default()),
            Err(FormatError::Unsafe(_))
        ));
        let f = image(4096, &[5]);
        assert!(matches!(
            open(Arc::new(f), &Limits::default()),
            Err(FormatError::Corrupt(_))
        ));
        let f = image(4096 * 2, &[UNALLOCATED]);
        assert!(parse_header(&f).is_err());
        for n in 0..0x1c8 {
            assert!(parse_header(&image(4096, &[0])[..n]).is_err());
        }
    }
}
