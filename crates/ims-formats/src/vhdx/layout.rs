//! VHDX on-disk structures (MS-VHDX), parsed as pure functions over bytes: file identifier,
//! headers, region table, metadata table and items.

use crate::reader::crc32c::crc32c_with_zeroed_field;
use crate::reader::Fields;
use crate::{FormatError, Result};

pub(crate) const NAME: &str = "vhdx";
/// File identifier signature at offset 0.
pub const FILE_SIGNATURE: [u8; 8] = *b"vhdxfile";
/// Offsets of the two headers and the two region tables.
pub const HEADER1_OFFSET: u64 = 64 * 1024;
/// Offset of the second header.
pub const HEADER2_OFFSET: u64 = 128 * 1024;
/// Offset of the region table.
pub const REGION_TABLE1_OFFSET: u64 = 192 * 1024;
/// Offset of the backup region table.
pub const REGION_TABLE2_OFFSET: u64 = 256 * 1024;
/// Bytes covered by a header checksum.
pub const HEADER_LEN: usize = 4096;
/// Bytes covered by a region table checksum.
pub const REGION_TABLE_LEN: usize = 64 * 1024;
/// Largest metadata table (header plus 2047 entries).
pub const METADATA_TABLE_LEN: usize = 64 * 1024;
pub const MB: u64 = 1 << 20;

/// Builds a GUID in its on-disk (mixed-endian) byte order from its textual fields.
pub const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5], d4[6], d4[7],
    ]
}

/// Formats an on-disk GUID as text.
pub fn guid_text(g: &[u8; 16]) -> String {
    let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
    let d2 = u16::from_le_bytes([g[4], g[5]]);
    let d3 = u16::from_le_bytes([g[6], g[7]]);
    format!(
        "{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]
    )
}

/// Region GUID of the block allocation table.
pub const REGION_BAT: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
/// Region GUID of the metadata region.
pub const REGION_METADATA: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
/// Metadata item: block size and flags.
pub const META_FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
/// Metadata item: virtual disk size.
pub const META_VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
/// Metadata item: page 83 data (disk id).
pub const META_VIRTUAL_DISK_ID: [u8; 16] = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
/// Metadata item: logical sector size.
pub const META_LOGICAL_SECTOR_SIZE: [u8; 16] = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
/// Metadata item: physical sector size.
pub const META_PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);
/// Metadata item: parent locator of a differencing disk.
pub const META_PARENT_LOCATOR: [u8; 16] = guid(
    0xA8D3_5F2D,
    0xB30B,
    0x454D,
    [0xAB, 0xF7, 0xD3, 0xD8, 0x48, 0x34, 0xAB, 0x0C],
);

pub(crate) fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("{NAME}: {msg}"))
}

/// One of the two VHDX headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The valid header with the higher sequence number is current.
    pub sequence_number: u64,
    /// Changed before the first write to the file.
    pub file_write_guid: [u8; 16],
    /// Changed before the first write to user-visible data.
    pub data_write_guid: [u8; 16],
    /// Identifies the valid log entries; all zeros when the log is empty.
    pub log_guid: [u8; 16],
    /// Log format version (0).
    pub log_version: u16,
    /// File format version (1).
    pub version: u16,
    /// Log size in bytes, a multiple of 1 MiB.
    pub log_length: u32,
    /// File offset of the log, a multiple of 1 MiB.
    pub log_offset: u64,
}

/// Parses a header (4 KiB): signature `head`, CRC-32C, version 1.
pub fn parse_header(buf: &[u8]) -> Result<Header> {
    let f = Fields::new(buf, NAME, "header");
    let all = f.slice(0, HEADER_LEN)?;
    if f.slice(0, 4)? != b"head" {
        return Err(corrupt("bad header signature".into()));
    }
    let checksum = f.u32_le(4)?;
    let actual = crc32c_with_zeroed_field(all, 4);
    if checksum != actual {
        return Err(corrupt(format!(
            "header checksum {checksum:#010x} does not match ({actual:#010x})"
        )));
    }
    let h = Header {
        sequence_number: f.u64_le(8)?,
        file_write_guid: f.guid(16)?,
        data_write_guid: f.guid(32)?,
        log_guid: f.guid(48)?,
        log_version: f.u16_le(64)?,
        version: f.u16_le(66)?,
        log_length: f.u32_le(68)?,
        log_offset: f.u64_le(72)?,
    };
    if h.version != 1 {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: version {} is not supported",
            h.version
        )));
    }
    Ok(h)
}

/// Chooses the current header from the two candidates: the valid one with the higher sequence number.
pub fn current_header(h1: Result<Header>, h2: Result<Header>) -> Result<Header> {
    match (h1, h2) {
        (Ok(a), Ok(b)) => Ok(if b.sequence_number > a.sequence_number { b } else { a }),
        (Ok(a), Err(_)) => Ok(a),
        (Err(_), Ok(b)) => Ok(b),
        (Err(e), Err(_)) => Err(corrupt(format!("neither header is valid ({e})"))),
    }
}

/// A region table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionEntry {
    /// Region type.
    pub guid: [u8; 16],
    /// File offset of the region, a multiple of 1 MiB.
    pub file_offset: u64,
    /// Length in bytes.
    pub length: u32,
    /// A reader that does not know this region must refuse the file.
    pub required: bool,
}

/// Parses a region table (64 KiB): signature `regi`, CRC-32C, at most 2047 entries.
pub fn parse_region_table(buf: &[u8]) -> Result<Vec<RegionEntry>> {
    let f = Fields::new(buf, NAME, "region table");
    let all = f.slice(0, REGION_TABLE_LEN)?;
    if f.slice(0, 4)? != b"regi" {
        return Err(corrupt("bad region table signature".into()));
    }
    let checksum = f.u32_le(4)?;
    let actual = crc32c_with_zeroed_field(all, 4);
    if checksum != actual {
        return Err(corrupt(format!(
            "region table checksum {checksum:#010x} does not match ({actual:#010x})"
        )));
    }
    let count = f.u32_le(8)?;
    if count > 2047 {
        return Err(corrupt(format!("region table has {count} entries (at most 2047)")));
    }
    let mut out = Vec::new();
    for i in 0..count as usize {
        let at = 16 + i * 32;
        out.push(RegionEntry {
            guid: f.guid(at)?,
            file_offset: f.u64_le(at + 16)?,
            length: f.u32_le(at + 24)?,
            required: f.u32_le(at + 28)? & 1 != 0,
        });
    }
    Ok(out)
}

/// A metadata table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataEntry {
    /// Item type.
    pub item_id: [u8; 16],
    /// Offset of the item from the start of the metadata region.
    pub offset: u32,
    /// Length in bytes.
    pub length: u32,
    /// User metadata.
    pub is_user: bool,
    /// Virtual disk metadata (as opposed to file metadata).
    pub is_virtual_disk: bool,
    /// A reader that does not know this item must refuse the file.
    pub is_required: bool,
}

/// Parses the metadata table at the start of the metadata region: signature `metadata`, at most
/// 2047 entries.
pub fn parse_metadata_table(buf: &[u8]) -> Result<Vec<MetadataEntry>> {
    let f = Fields::new(buf, NAME, "metadata table");
    if f.slice(0, 8)? != b"metadata" {
        return Err(corrupt("bad metadata table signature".into()));
    }
    let count = f.u16_le(10)?;
    if count > 2047 {
        return Err(corrupt(format!("metadata table has {count} entries (at most 2047)")));
    }
    let mut out = Vec::new();
    for i in 0..usize::from(count) {
        let at = 32 + i * 32;
        let flags = f.u32_le(at + 24)?;
        out.push(MetadataEntry {
            item_id: f.guid(at)?,
            offset: f.u32_le(at + 16)?,
            length: f.u32_le(at + 20)?,
            is_user: flags & 1 != 0,
            is_virtual_disk: flags & 2 != 0,
            is_required: flags & 4 != 0,
        });
    }
    Ok(out)
}

/// The metadata items the reader uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskParameters {
    /// Payload block size, a power of two in 1..=256 MiB.
    pub block_size: u32,
    /// Blocks stay allocated (a "fixed" VHDX).
    pub leave_blocks_allocated: bool,
    /// The disk is differencing (refused).
    pub has_parent: bool,
    /// Virtual disk size in bytes.
    pub virtual_disk_size: u64,
    /// 512 or 4096.
    pub logical_sector_size: u32,
    /// 512 or 4096.
    pub physical_sector_size: u32,
    /// A parent locator item is present (refused).
    pub has_parent_locator: bool,
}

/// Reads the known metadata items out of the metadata region `region` (the table's entries give
/// offsets relative to its start). `Unsupported` for an unknown required item.
pub fn parse_metadata(region: &[u8]) -> Result<DiskParameters> {
    let table = parse_metadata_table(region)?;
    let mut seen: Vec<[u8; 16]> = Vec::new();
    let item = |id: &[u8; 16]| -> Result<Option<&[u8]>> {
        let Some(e) = table.iter().find(|e| &e.item_id == id) else {
            return Ok(None);
        };
        if e.length == 0 {
            return Ok(Some(&[]));
        }
        if (e.offset as usize) < METADATA_TABLE_LEN {
            return Err(corrupt(format!(
                "metadata item {} overlaps the metadata table",
                guid_text(id)
            )));
        }
        let f = Fields::new(region, NAME, "metadata region");
        f.slice(e.offset as usize, e.length as usize).map(Some).map_err(|_| {
            corrupt(format!(
                "metadata item {} lies outside the metadata region",
                guid_text(id)
            ))
        })
    };
    let known = [
        META_FILE_PARAMETERS,
        META_VIRTUAL_DISK_SIZE,
        META_VIRTUAL_DISK_ID,
        META_LOGICAL_SECTOR_SIZE,
        META_PHYSICAL_SECTOR_SIZE,
        META_PARENT_LOCATOR,
    ];
    for e in &table {
        if seen.contains(&e.item_id) {
            return Err(corrupt(format!(
                "metadata item {} appears twice",
                guid_text(&e.item_id)
            )));
        }
        seen.push(e.item_id);
        if e.is_required && !known.contains(&e.item_id) {
            return Err(FormatError::Unsupported(format!(
                "{NAME}: unknown required metadata item {}",
                guid_text(&e.item_id)
            )));
        }
    }
    let required = |id: &[u8; 16], what: &str| -> Result<&[u8]> {
        item(id)?.ok_or_else(|| corrupt(format!("metadata has no {what} item")))
    };
    let fp = Fields::new(
        required(&META_FILE_PARAMETERS, "file parameters")?,
        NAME,
        "file parameters",
    );
    let flags = fp.u32_le(4)?;
    let vds = Fields::new(
        required(&META_VIRTUAL_DISK_SIZE, "virtual disk size")?,
        NAME,
        "virtual disk size",
    );
    let lss = Fields::new(
        required(&META_LOGICAL_SECTOR_SIZE, "logical sector size")?,
        NAME,
        "logical sector size",
    );
    let pss = Fields::new(
        required(&META_PHYSICAL_SECTOR_SIZE, "physical sector size")?,
        NAME,
        "physical sector size",
    );
    let p = DiskParameters {
        block_size: fp.u32_le(0)?,
        leave_blocks_allocated: flags & 1 != 0,
        has_parent: flags & 2 != 0,
        virtual_disk_size: vds.u64_le(0)?,
        logical_sector_size: lss.u32_le(0)?,
        physical_sector_size: pss.u32_le(0)?,
        has_parent_locator: item(&META_PARENT_LOCATOR)?.is_some(),
    };
    if !p.block_size.is_power_of_two() || !(1 << 20..=256 << 20).contains(&p.block_size) {
        return Err(corrupt(format!(
            "block size {} is not a power of two in 1..=256 MiB",
            p.block_size
        )));
    }
    if p.logical_sector_size != 512 && p.logical_sector_size != 4096 {
        return Err(corrupt(format!(
            "logical sector size {} is neither 512 nor 4096",
            p.logical_sector_size
        )));
    }
    if p.physical_sector_size != 512 && p.physical_sector_size != 4096 {
        return Err(corrupt(format!(
            "physical sector size {} is neither 512 nor 4096",
            p.physical_sector_size
        )));
    }
    if !p.virtual_disk_size.is_multiple_of(u64::from(p.logical_sector_size)) {
        return Err(corrupt(format!(
            "virtual disk size {} is not a multiple of the sector size",
            p.virtual_disk_size
        )));
    }
    if p.virtual_disk_size > 64 << 40 {
        return Err(corrupt(format!(
            "virtual disk size {} exceeds 64 TiB",
            p.virtual_disk_size
        )));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_round_trip() {
        assert_eq!(guid_text(&REGION_BAT), "2DC27766-F623-4200-9D64-115E9BFD4A08");
        assert_eq!(REGION_BAT[..4], [0x66, 0x77, 0xC2, 0x2D]);
    }

    #[test]
    fn header_checksum() {
        let mut h = vec![0u8; 4096];
        h[0..4].copy_from_slice(b"head");
        h[8..16].copy_from_slice(&5u64.to_le_bytes());
        h[66..68].copy_from_slice(&1u16.to_le_bytes());
        let c = crate::reader::crc32c::crc32c(&h);
        h[4..8].copy_from_slice(&c.to_le_bytes());
        assert_eq!(parse_header(&h).map(|h| h.sequence_number).ok(), Some(5));
        h[100] = 1;
        assert!(parse_header(&h).is_err());
        assert!(parse_header(&h[..100]).is_err());
    }
}
