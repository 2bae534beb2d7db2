//! VHD writers (fixed and dynamic), after the Microsoft Virtual Hard Disk Image Format
//! Specification and qemu `block/vpc.c`.
//!
//! The footer names creator application `qem2`, which tells qemu to take the virtual size from the
//! footer's current size rather than from the CHS geometry (so sizes survive exactly). Sizes are
//! rounded up to whole 512-byte sectors.
//! - fixed: the guest disk, then the footer.
//! - dynamic: footer copy, dynamic disk header, block allocation table, then 2 MiB blocks (each a
//!   512-byte sector bitmap, all present, and the data) appended as they come, then the footer.

use std::io::Write;

use super::codec::internal;
use super::pipeline::{self, Payload, UnitSpec};
use super::seq::write_skipping_zeros;
use super::seq::Counted;
use crate::{DiskImage, FormatError, Result, WriteAt};

const SECTOR: u64 = 512;
const BLOCK: u64 = 2 << 20;
const BITMAP: u64 = (BLOCK / SECTOR / 8).next_multiple_of(SECTOR);
/// qemu's limit for VHD (65535 cylinders × 16 heads × 255 sectors).
const MAX_SECTORS: u64 = 0xff00_0000;
const DISK_FIXED: u32 = 2;
const DISK_DYNAMIC: u32 = 3;
const HEADER_AT: u64 = 512;
const BAT_AT: u64 = 1536;
/// Seconds from the Unix epoch to 2000-01-01, the VHD epoch.
const VHD_EPOCH: u64 = 946_684_800;

fn sized(vsize: u64) -> Result<u64> {
    let size = vsize
        .checked_next_multiple_of(SECTOR)
        .ok_or_else(|| internal("size"))?;
    if size / SECTOR > MAX_SECTORS {
        return Err(FormatError::Unsupported(format!(
            "a {vsize}-byte disk is too large for VHD (about 2040 GiB at most)"
        )));
    }
    Ok(size)
}

/// CHS geometry per the VHD specification's algorithm.
fn geometry(size: u64) -> (u16, u8, u8) {
    let total = (size / SECTOR).min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        spt = 255u64;
        heads = 16u64;
        cth = total / spt;
    } else {
        let mut s = 17u64;
        let mut c = total / s;
        let mut h = c.div_ceil(1024).max(4);
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    let cylinders = (cth / heads).min(65535);
    (cylinders as u16, heads as u8, spt as u8)
}

fn checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)))
}

/// The 512-byte footer.
fn footer(disk_type: u32, data_offset: u64, size: u64) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..8].copy_from_slice(b"conectix");
    b[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit
    b[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    b[16..24].copy_from_slice(&data_offset.to_be_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    b[24..28].copy_from_slice(&(now.saturating_sub(VHD_EPOCH) as u32).to_be_bytes());
    b[28..32].copy_from_slice(b"qem2");
    b[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    b[36..40].copy_from_slice(b"Wi2k");
    b[40..48].copy_from_slice(&size.to_be_bytes());
    b[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, s) = geometry(size);
    b[56..58].copy_from_slice(&c.to_be_bytes());
    b[58] = h;
    b[59] = s;
    b[60..64].copy_from_slice(&disk_type.to_be_bytes());
    b[68..84].copy_from_slice(&super::ids::random_guid());
    let sum = checksum(&b);
    b[64..68].copy_from_slice(&sum.to_be_bytes());
    b
}

/// The 1024-byte dynamic disk header.
fn dynamic_header(entries: u32) -> [u8; 1024] {
    let mut b = [0u8; 1024];
    b[0..8].copy_from_slice(b"cxsparse");
    b[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    b[16..24].copy_from_slice(&BAT_AT.to_be_bytes());
    b[24..28].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    b[28..32].copy_from_slice(&entries.to_be_bytes());
    b[32..36].copy_from_slice(&(BLOCK as u32).to_be_bytes());
    let sum = checksum(&b);
    b[36..40].copy_from_slice(&sum.to_be_bytes());
    b
}

/// Writes `src` as a dynamic VHD to `out` (truncated first). Returns the file length.
pub(crate) fn write_dynamic(
    src: &dyn DiskImage,
    out: &dyn WriteAt,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let size = sized(src.virtual_size())?;
    let entries = size.div_ceil(BLOCK);
    let entries32 = u32::try_from(entries).map_err(|_| internal("BAT size"))?;
    let mut bat = vec![u32::MAX; usize::try_from(entries).map_err(|_| internal("BAT size"))?];
    let first_block = BAT_AT + (entries * 4).next_multiple_of(SECTOR);
    let foot = footer(DISK_DYNAMIC, HEADER_AT, size);
    out.set_len(0)?;
    out.write_all_at(&foot, 0)?;
    out.write_all_at(&dynamic_header(entries32), HEADER_AT)?;
    let bitmap = [0xffu8; BITMAP as usize];
    let mut next = first_block;
    let spec = UnitSpec {
        unit_size: BLOCK,
        pad_last: true,
        codec: None,
        raw_if_not_smaller: false,
        checksum: false,
    };
    pipeline::run(src, &spec, threads, progress, &mut |unit| {
        let (Payload::Raw(data) | Payload::Compressed(data)) = unit.payload;
        let sector = u32::try_from(next / SECTOR)
            .ok()
            .filter(|&s| s != u32::MAX)
            .ok_or_else(|| {
                FormatError::Unsupported("VHD file grows past what its table addresses".into())
            })?;
        out.write_all_at(&bitmap, next)?;
        write_skipping_zeros(out, data, next + BITMAP)?;
        next = next
            .checked_add(BITMAP + BLOCK)
            .ok_or_else(|| internal("file offset"))?;
        let slot = usize::try_from(unit.index).map_err(|_| internal("BAT index"))?;
        *bat.get_mut(slot).ok_or_else(|| internal("BAT slot"))? = sector;
        Ok(())
    })?;
    let table: Vec<u8> = bat.iter().flat_map(|e| e.to_be_bytes()).collect();
    let mut padded = table;
    padded.resize(
        usize::try_from((entries * 4).next_multiple_of(SECTOR))
            .map_err(|_| internal("BAT size"))?,
        0xff,
    );
    out.write_all_at(&padded, BAT_AT)?;
    out.write_all_at(&foot, next)?;
    let end = next + SECTOR;
    out.set_len(end)?;
    Ok(end)
}

const UNIT: u64 = 64 << 10;
const FIXED_SPEC: UnitSpec = UnitSpec {
    unit_size: UNIT,
    pad_last: false,
    codec: None,
    raw_if_not_smaller: false,
    checksum: false,
};

/// Writes `src` as a fixed VHD to `out` (truncated first), leaving holes for zeros. Returns the
/// file length.
pub(crate) fn write_fixed_sparse(
    src: &dyn DiskImage,
    out: &dyn WriteAt,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let size = sized(src.virtual_size())?;
    out.set_len(0)?;
    out.set_len(size)?;
    pipeline::run(src, &FIXED_SPEC, threads, progress, &mut |unit| {
        let (Payload::Raw(data) | Payload::Compressed(data)) = unit.payload;
        out.write_all_at(data, unit.index * UNIT)?;
        Ok(())
    })?;
    out.write_all_at(&footer(DISK_FIXED, u64::MAX, size), size)?;
    Ok(size + SECTOR)
}

/// Writes `src` as a fixed VHD to a sequential sink. Returns the bytes written.
pub(crate) fn write_fixed_stream(
    src: &dyn DiskImage,
    out: &mut dyn Write,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let size = sized(src.virtual_size())?;
    let mut w = Counted::new(out);
    pipeline::run(src, &FIXED_SPEC, threads, progress, &mut |unit| {
        let (Payload::Raw(data) | Payload::Compressed(data)) = unit.payload;
        w.zeros(
            (unit.index * UNIT)
                .checked_sub(w.pos())
                .ok_or_else(|| internal("units out of order"))?,
        )?;
        w.put(data)?;
        Ok(())
    })?;
    w.zeros(
        size.checked_sub(w.pos())
            .ok_or_else(|| internal("output past the end"))?,
    )?;
    w.put(&footer(DISK_FIXED, u64::MAX, size))?;
    Ok(w.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_spec_algorithm() {
        assert_eq!(geometry(64 << 20), (963, 8, 17));
        assert_eq!(geometry(MAX_SECTORS * SECTOR), (65535, 16, 255));
    }

    #[test]
    fn footer_checksum_verifies() {
        let f = footer(DISK_FIXED, u64::MAX, 1 << 20);
        let mut zeroed = f;
        zeroed[64..68].fill(0);
        assert_eq!(
            u32::from_be_bytes([f[64], f[65], f[66], f[67]]),
            checksum(&zeroed)
        );
    }
}
