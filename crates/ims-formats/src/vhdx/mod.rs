//! VHDX (Hyper-V): file identifier, two checksummed headers (the valid one with the higher sequence
//! number wins), region table, metadata items, and the BAT of payload and sector-bitmap entries.
//! A non-empty log is replayed in memory before any metadata is read.
//!
//! Refused (`Unsafe`): differencing disks (has-parent flag or a parent locator).
//! `Unsupported`: unknown required regions or metadata items.

mod layout;
mod log;

pub use layout::{
    current_header, guid, guid_text, parse_header, parse_metadata, parse_metadata_table, parse_region_table,
    DiskParameters, Header, MetadataEntry, RegionEntry,
};
pub use layout::{
    FILE_SIGNATURE, HEADER1_OFFSET, HEADER2_OFFSET, META_FILE_PARAMETERS, META_LOGICAL_SECTOR_SIZE,
    META_PARENT_LOCATOR, META_PHYSICAL_SECTOR_SIZE, META_VIRTUAL_DISK_ID, META_VIRTUAL_DISK_SIZE, REGION_BAT,
    REGION_METADATA, REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET,
};
pub use log::{active_sequence, parse_entry, LogEntry, LogOp, Replayed};

/// CRC-32C, the checksum of VHDX headers, region tables and log entries (computed with the
/// checksum field zeroed).
pub fn checksum(data: &[u8]) -> u32 {
    crate::reader::crc32c::crc32c(data)
}

use std::sync::Arc;

use crate::check::Claim;
use crate::reader::fields::le64_at;
use crate::reader::{check_virtual_size, BlockMap, Mapped, Mapping, Run, Source};
use crate::{DiskImage, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

use layout::{corrupt, HEADER_LEN, MB, NAME, REGION_TABLE_LEN};

const STATE_NOT_PRESENT: u64 = 0;
const STATE_UNDEFINED: u64 = 1;
const STATE_ZERO: u64 = 2;
const STATE_UNMAPPED: u64 = 3;
const STATE_UNMAPPED_V095: u64 = 5;
const STATE_FULLY_PRESENT: u64 = 6;
const STATE_PARTIALLY_PRESENT: u64 = 7;
const BAT_OFFSET_MASK: u64 = 0xFFFF_FFFF_FFF0_0000;

/// True when `header` starts with the `vhdxfile` signature.
pub fn probe(header: &[u8]) -> bool {
    header.starts_with(&FILE_SIGNATURE)
}

fn read_header(source: &Source, offset: u64) -> Result<Header> {
    parse_header(&source.read_vec("header", offset, HEADER_LEN as u64)?)
}

/// Opens a VHDX image (see the module docs for what is refused).
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    Ok(Box::new(Mapped(open_map(src, limits)?)))
}

/// Parses and checks a VHDX image as [`open`] does, keeping its layout for the table check.
pub(crate) fn open_map(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<VhdxMap> {
    let file = Source::new(Arc::clone(&src), NAME)?;
    let ident = file.read_vec("file identifier", 0, file.size().min(8))?;
    if ident != FILE_SIGNATURE {
        return Err(corrupt("bad file identifier".into()));
    }
    let header = current_header(read_header(&file, HEADER1_OFFSET), read_header(&file, HEADER2_OFFSET))?;

    // Replay the log, if any, into an overlay; everything after this reads through it.
    let mut log_replayed = false;
    let source = if header.log_guid != [0; 16] && header.log_length != 0 {
        if header.log_version != 0 {
            return Err(FormatError::Unsupported(format!(
                "{NAME}: log version {} is not supported",
                header.log_version
            )));
        }
        let len = u64::from(header.log_length);
        if header.log_offset < MB || !header.log_offset.is_multiple_of(MB) || !len.is_multiple_of(MB) {
            return Err(corrupt(format!(
                "log at {:#x} ({len} bytes) is not aligned to 1 MiB",
                header.log_offset
            )));
        }
        let log = file.read_table("log", header.log_offset, len, limits)?;
        let entries = active_sequence(&log, &header.log_guid)?;
        if entries.is_empty() {
            file
        } else {
            log_replayed = true;
            Source::new(Arc::new(Replayed::new(src, &entries)?), NAME)?
        }
    } else {
        file
    };

    let regions = match source.read_vec("region table", REGION_TABLE1_OFFSET, REGION_TABLE_LEN as u64) {
        Ok(b) => parse_region_table(&b),
        Err(e) => Err(e),
    }
    .or_else(|e1| {
        source
            .read_vec("region table", REGION_TABLE2_OFFSET, REGION_TABLE_LEN as u64)
            .and_then(|b| parse_region_table(&b))
            .map_err(|_| e1)
    })?;
    let mut bat_region = None;
    let mut meta_region = None;
    for r in &regions {
        let slot = if r.guid == REGION_BAT {
            &mut bat_region
        } else if r.guid == REGION_METADATA {
            &mut meta_region
        } else if r.required {
            return Err(FormatError::Unsupported(format!(
                "{NAME}: unknown required region {}",
                guid_text(&r.guid)
            )));
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(corrupt(format!("region {} appears twice", guid_text(&r.guid))));
        }
        if r.file_offset < MB || !r.file_offset.is_multiple_of(MB) {
            return Err(corrupt(format!(
                "region {} at {:#x} is not aligned to 1 MiB",
                guid_text(&r.guid),
                r.file_offset
            )));
        }
        *slot = Some(r.clone());
    }
    let bat_region = bat_region.ok_or_else(|| corrupt("no BAT region".into()))?;
    let meta_region = meta_region.ok_or_else(|| corrupt("no metadata region".into()))?;

    let meta = source.read_table(
        "metadata region",
        meta_region.file_offset,
        u64::from(meta_region.length),
        limits,
    )?;
    let p = parse_metadata(&meta)?;
    if p.has_parent || p.has_parent_locator {
        return Err(FormatError::Unsafe(format!(
            "{NAME}: differencing disk with a parent locator is not allowed"
        )));
    }
    check_virtual_size(NAME, p.virtual_disk_size, limits)?;

    let block = u64::from(p.block_size);
    let chunk_ratio = (1u64 << 23) * u64::from(p.logical_sector_size) / block;
    let data_blocks = p.virtual_disk_size.div_ceil(block);
    let bat_entries = if data_blocks == 0 {
        0
    } else {
        data_blocks + (data_blocks - 1) / chunk_ratio
    };
    let bat_bytes = bat_entries * 8;
    if bat_bytes > u64::from(bat_region.length) {
        return Err(corrupt(format!(
            "BAT region of {} bytes is too small for {bat_entries} entries",
            bat_region.length
        )));
    }
    let bat = source.read_table("BAT", bat_region.file_offset, bat_bytes, limits)?;
    for i in 0..data_blocks {
        let e = le64_at(&bat, i + i / chunk_ratio).unwrap_or(0);
        let state = e & 7;
        match state {
            STATE_FULLY_PRESENT => {
                let off = e & BAT_OFFSET_MASK;
                if off < MB {
                    return Err(corrupt(format!(
                        "payload block {i} is at offset {off:#x}, inside the headers"
                    )));
                }
                source.check_span(&format!("payload block {i}"), off, block)?;
            }
            STATE_NOT_PRESENT | STATE_UNDEFINED | STATE_ZERO | STATE_UNMAPPED | STATE_UNMAPPED_V095 => {}
            STATE_PARTIALLY_PRESENT => {
                return Err(corrupt(format!(
                    "payload block {i} is partially present in a disk without a parent"
                )))
            }
            other => return Err(corrupt(format!("payload block {i} has an invalid state {other}"))),
        }
    }
    let details = ImageDetails {
        cluster_size: Some(block),
        compression: None,
        features: vec![
            ("logical_sector_size".into(), p.logical_sector_size.to_string()),
            ("physical_sector_size".into(), p.physical_sector_size.to_string()),
            ("leave_blocks_allocated".into(), p.leave_blocks_allocated.to_string()),
            ("log_replayed".into(), log_replayed.to_string()),
        ],
    };
    let mut structures = vec![
        Claim::new(0, MB, "file header area".into()),
        Claim::new(bat_region.file_offset, u64::from(bat_region.length), "BAT region".into()),
        Claim::new(meta_region.file_offset, u64::from(meta_region.length), "metadata region".into()),
    ];
    if header.log_length != 0 {
        structures.push(Claim::new(header.log_offset, u64::from(header.log_length), "log".into()));
    }
    Ok(VhdxMap {
        source,
        virtual_size: p.virtual_disk_size,
        bat,
        block,
        chunk_ratio,
        details,
        structures,
    })
}

pub(crate) struct VhdxMap {
    source: Source,
    virtual_size: u64,
    bat: Vec<u8>,
    block: u64,
    chunk_ratio: u64,
    details: ImageDetails,
    /// The header area, regions and log.
    structures: Vec<Claim>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Host(u64),
    Zero,
    Unallocated,
}

impl VhdxMap {
    /// Every host range the image uses: its structures and each fully present payload block.
    pub(crate) fn claims(&self) -> Vec<Claim> {
        let mut claims = self.structures.clone();
        let data_blocks = self.virtual_size.div_ceil(self.block);
        for i in 0..data_blocks {
            if let Ok(Block::Host(offset)) = self.block_at(i) {
                claims.push(Claim::new(offset, self.block, format!("payload block {i}")));
            }
        }
        claims
    }

    /// Length of the file (after log replay).
    pub(crate) fn file_len(&self) -> u64 {
        self.source.size()
    }

    fn block_at(&self, i: u64) -> Result<Block> {
        let e = le64_at(&self.bat, i + i / self.chunk_ratio)
            .ok_or_else(|| corrupt(format!("payload block {i} is outside the BAT")))?;
        match e & 7 {
            STATE_FULLY_PRESENT => Ok(Block::Host(e & BAT_OFFSET_MASK)),
            STATE_ZERO | STATE_UNMAPPED | STATE_UNMAPPED_V095 => Ok(Block::Zero),
            STATE_NOT_PRESENT | STATE_UNDEFINED => Ok(Block::Unallocated),
            other => Err(corrupt(format!("payload block {i} has state {other}"))),
        }
    }
}

impl BlockMap for VhdxMap {
    fn format(&self) -> Format {
        Format::Vhdx
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
