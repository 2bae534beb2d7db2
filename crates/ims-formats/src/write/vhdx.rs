//! VHDX writer (dynamic, version 1), after [MS-VHDX] and qemu `block/vhdx.c`.
//!
//! Layout: file type identifier (0), headers 1 and 2 (64 KiB, 128 KiB), region tables 1 and 2
//! (192 KiB, 256 KiB), an empty log (1 MiB at 1 MiB; the log GUID is zero, so nothing to replay),
//! the metadata region (1 MiB at 2 MiB), the BAT region (at 3 MiB), then payload blocks appended at
//! 1 MiB-aligned offsets as they come. Logical sectors are 512 bytes, physical 4096. Blocks that hold
//! only zeros stay NOT_PRESENT. In memory: one block of data per worker, nothing per block.

use super::codec::internal;
use super::pipeline::{self, Payload, UnitSpec};
use super::seq::write_skipping_zeros;
use crate::{DiskImage, FormatError, Result, WriteAt};

const MIB: u64 = 1 << 20;
const LOGICAL_SECTOR: u64 = 512;
const PHYSICAL_SECTOR: u32 = 4096;
const HEADER1_AT: u64 = 64 << 10;
const HEADER2_AT: u64 = 128 << 10;
const REGION1_AT: u64 = 192 << 10;
const REGION2_AT: u64 = 256 << 10;
const LOG_AT: u64 = MIB;
const LOG_LEN: u64 = MIB;
const METADATA_AT: u64 = 2 * MIB;
const METADATA_LEN: u64 = MIB;
const BAT_AT: u64 = 3 * MIB;
/// Largest virtual disk VHDX allows.
const MAX_SIZE: u64 = 64 << 40;
const PAYLOAD_FULLY_PRESENT: u64 = 6;

/// A GUID in its on-disk byte order (first three fields little-endian).
const fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let a = d1.to_le_bytes();
    let b = d2.to_le_bytes();
    let c = d3.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4], d4[5],
        d4[6], d4[7],
    ]
}

const BAT_GUID: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
const METADATA_GUID: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
const FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const PAGE83_DATA: [u8; 16] = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const LOGICAL_SECTOR_SIZE: [u8; 16] = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);

/// Block size qemu would choose for a disk of `size` bytes.
fn default_block_size(size: u64) -> u64 {
    if size > 32 << 40 {
        64 * MIB
    } else if size > 100 << 30 {
        32 * MIB
    } else if size > 1 << 30 {
        16 * MIB
    } else {
        8 * MIB
    }
}

/// Writes `src` as a dynamic VHDX to `out` (truncated first). Returns the file length.
pub(crate) fn write(
    src: &dyn DiskImage,
    out: &dyn WriteAt,
    block_size: Option<u64>,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let size = src
        .virtual_size()
        .checked_next_multiple_of(LOGICAL_SECTOR)
        .ok_or_else(|| internal("size"))?;
    if size > MAX_SIZE {
        return Err(FormatError::Unsupported(format!(
            "a {size}-byte disk is too large for VHDX (64 TiB at most)"
        )));
    }
    let bs = block_size.unwrap_or_else(|| default_block_size(size));
    if !bs.is_power_of_two() || !(MIB..=256 * MIB).contains(&bs) {
        return Err(FormatError::Unsupported(format!(
            "VHDX block size {bs} is not a power of two from 1 MiB to 256 MiB"
        )));
    }
    let chunk_ratio = (1u64 << 23) * LOGICAL_SECTOR / bs;
    let data_blocks = size.div_ceil(bs);
    let bat_entries = if data_blocks == 0 {
        0
    } else {
        data_blocks + (data_blocks - 1) / chunk_ratio
    };
    let bat_len = (bat_entries * 8).next_multiple_of(MIB).max(MIB);
    let first_block = BAT_AT + bat_len;

    out.set_len(0)?;
    out.write_all_at(&file_identifier(), 0)?;
    let file_write = super::ids::random_guid();
    let data_write = super::ids::random_guid();
    out.write_all_at(&header(0, &file_write, &data_write), HEADER1_AT)?;
    out.write_all_at(&header(1, &file_write, &data_write), HEADER2_AT)?;
    let regions = region_table(bat_len)?;
    out.write_all_at(&regions, REGION1_AT)?;
    out.write_all_at(&regions, REGION2_AT)?;
    out.write_all_at(&metadata(bs, size)?, METADATA_AT)?;

    let mut next = first_block;
    let spec = UnitSpec {
        unit_size: bs,
        pad_last: true,
        codec: None,
        raw_if_not_smaller: false,
        checksum: false,
    };
    pipeline::run(src, &spec, threads, progress, &mut |unit| {
        let (Payload::Raw(data) | Payload::Compressed(data)) = unit.payload;
        write_skipping_zeros(out, data, next)?;
        let slot = unit.index + unit.index / chunk_ratio;
        out.write_all_at(
            &(next | PAYLOAD_FULLY_PRESENT).to_le_bytes(),
            BAT_AT + slot * 8,
        )?;
        next = next
            .checked_add(bs)
            .ok_or_else(|| internal("file offset"))?;
        Ok(())
    })?;
    out.set_len(next)?;
    Ok(next)
}

fn file_identifier() -> Vec<u8> {
    let mut b = b"vhdxfile".to_vec();
    b.extend("IMS".encode_utf16().flat_map(u16::to_le_bytes));
    b
}

/// One 4 KiB header with its CRC-32C.
fn header(sequence: u64, file_write: &[u8; 16], data_write: &[u8; 16]) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[0..4].copy_from_slice(b"head");
    b[8..16].copy_from_slice(&sequence.to_le_bytes());
    b[16..32].copy_from_slice(file_write);
    b[32..48].copy_from_slice(data_write);
    // 48..64 log GUID: zero, no log to replay.
    b[64..66].copy_from_slice(&0u16.to_le_bytes()); // log version
    b[66..68].copy_from_slice(&1u16.to_le_bytes()); // version
    b[68..72].copy_from_slice(&(LOG_LEN as u32).to_le_bytes());
    b[72..80].copy_from_slice(&LOG_AT.to_le_bytes());
    let crc = crc32c(&b);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The 64 KiB region table naming the BAT and metadata regions.
fn region_table(bat_len: u64) -> Result<Vec<u8>> {
    let mut b = vec![0u8; 64 << 10];
    b[0..4].copy_from_slice(b"regi");
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    let entries = [
        (BAT_GUID, BAT_AT, bat_len),
        (METADATA_GUID, METADATA_AT, METADATA_LEN),
    ];
    for (i, (id, at, len)) in entries.into_iter().enumerate() {
        let e = 16 + i * 32;
        b[e..e + 16].copy_from_slice(&id);
        b[e + 16..e + 24].copy_from_slice(&at.to_le_bytes());
        let len = u32::try_from(len).map_err(|_| internal("region length"))?;
        b[e + 24..e + 28].copy_from_slice(&len.to_le_bytes());
        b[e + 28..e + 32].copy_from_slice(&1u32.to_le_bytes()); // required
    }
    let crc = crc32c(&b);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(b)
}

/// The metadata table and its five required items (items start 64 KiB into the region).
fn metadata(block_size: u64, size: u64) -> Result<Vec<u8>> {
    const IS_VIRTUAL_DISK: u32 = 1 << 1;
    const IS_REQUIRED: u32 = 1 << 2;
    let block = u32::try_from(block_size).map_err(|_| internal("block size"))?;
    let mut file_parameters = block.to_le_bytes().to_vec();
    file_parameters.extend_from_slice(&0u32.to_le_bytes()); // not LeaveBlocksAllocated, no parent
    let items: [([u8; 16], Vec<u8>, u32); 5] = [
        (FILE_PARAMETERS, file_parameters, IS_REQUIRED),
        (
            VIRTUAL_DISK_SIZE,
            size.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            PAGE83_DATA,
            super::ids::random_guid().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            LOGICAL_SECTOR_SIZE,
            (LOGICAL_SECTOR as u32).to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
        (
            PHYSICAL_SECTOR_SIZE,
            PHYSICAL_SECTOR.to_le_bytes().to_vec(),
            IS_VIRTUAL_DISK | IS_REQUIRED,
        ),
    ];
    let mut b = vec![0u8; (64 << 10) + 64];
    b[0..8].copy_from_slice(b"metadata");
    b[10..12].copy_from_slice(&(items.len() as u16).to_le_bytes());
    let mut at = 64usize << 10;
    for (i, (id, value, flags)) in items.iter().enumerate() {
        let e = 32 + i * 32;
        b[e..e + 16].copy_from_slice(id);
        b[e + 16..e + 20].copy_from_slice(&(at as u32).to_le_bytes());
        b[e + 20..e + 24].copy_from_slice(&(value.len() as u32).to_le_bytes());
        b[e + 24..e + 28].copy_from_slice(&flags.to_le_bytes());
        b.get_mut(at..at + value.len())
            .ok_or_else(|| internal("metadata item"))?
            .copy_from_slice(value);
        at += value.len();
    }
    Ok(b)
}

/// CRC-32C (Castagnoli, reflected, polynomial 0x82F63B78), as VHDX checksums use.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, &b| {
        TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn guid_byte_order() {
        assert_eq!(&BAT_GUID[..4], &[0x66, 0x77, 0xC2, 0x2D]);
        assert_eq!(&BAT_GUID[4..8], &[0x23, 0xF6, 0x00, 0x42]);
    }
}
