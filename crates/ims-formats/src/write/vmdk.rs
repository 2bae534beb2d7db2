//! VMDK writers (hosted sparse extent, version 1 and 3), after the VMware Virtual Disk Format 1.1
//! technote and qemu `block/vmdk.c`.
//!
//! Both layouts use 64 KiB grains, 512 entries per grain table and an embedded descriptor.
//! - streamOptimized: header (grain directory "at end"), descriptor, then for each grain table its
//!   compressed grains (each behind a grain marker, sector-aligned) followed by the table behind a
//!   table marker; then the directory behind its marker, the footer (a copy of the header with the
//!   directory offset) behind its marker, and the end-of-stream marker. Written front to back.
//! - monolithicSparse: header, descriptor, redundant and primary grain directories and their
//!   preallocated grain tables, then uncompressed grains appended as they come.

use std::io::Write;

use super::codec::{internal, Codec};
use super::pipeline::{self, Payload, UnitSpec};
use super::seq::Counted;
use crate::{DiskImage, FormatError, Result, WriteAt};

const SECTOR: u64 = 512;
const GRAIN_SECTORS: u64 = 128;
const GRAIN: u64 = GRAIN_SECTORS * SECTOR;
const GTES: u64 = 512;
const GT_SECTORS: u64 = GTES * 4 / SECTOR;
const DESC_OFFSET: u64 = 1;
const DESC_SECTORS: u64 = 20;
/// qemu refuses extents above 2^32 sectors (2 TiB).
const MAX_SECTORS: u64 = 1 << 32;
const GD_AT_END: u64 = u64::MAX;

const FLAG_NL_DETECT: u32 = 1;
const FLAG_RGD: u32 = 1 << 1;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;

const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;

/// Sizes derived from the virtual size.
struct Geometry {
    /// Guest disk in sectors.
    capacity: u64,
    /// Grain tables, and sectors of one grain directory.
    gt_count: u64,
    gd_sectors: u64,
}

fn geometry(vsize: u64) -> Result<Geometry> {
    let capacity = vsize.div_ceil(SECTOR);
    if capacity > MAX_SECTORS {
        return Err(FormatError::Unsupported(format!(
            "a {vsize}-byte disk is too large for VMDK (2 TiB at most)"
        )));
    }
    let grains = capacity.div_ceil(GRAIN_SECTORS);
    let gt_count = grains.div_ceil(GTES);
    let gd_sectors = (gt_count * 4).div_ceil(SECTOR);
    Ok(Geometry {
        capacity,
        gt_count,
        gd_sectors,
    })
}

struct HeaderFields {
    version: u32,
    flags: u32,
    capacity: u64,
    rgd: u64,
    gd: u64,
    overhead: u64,
    compressed: bool,
}

/// A sparse extent header sector.
fn header(h: &HeaderFields) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..4].copy_from_slice(b"KDMV");
    b[4..8].copy_from_slice(&h.version.to_le_bytes());
    b[8..12].copy_from_slice(&h.flags.to_le_bytes());
    b[12..20].copy_from_slice(&h.capacity.to_le_bytes());
    b[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
    b[28..36].copy_from_slice(&DESC_OFFSET.to_le_bytes());
    b[36..44].copy_from_slice(&DESC_SECTORS.to_le_bytes());
    b[44..48].copy_from_slice(&(GTES as u32).to_le_bytes());
    b[48..56].copy_from_slice(&h.rgd.to_le_bytes());
    b[56..64].copy_from_slice(&h.gd.to_le_bytes());
    b[64..72].copy_from_slice(&h.overhead.to_le_bytes());
    b[72] = 0; // uncleanShutdown
    b[73..77].copy_from_slice(b"\n \r\n");
    b[77..79].copy_from_slice(&u16::from(h.compressed).to_le_bytes());
    b
}

/// The embedded descriptor, padded to its 20 sectors.
fn descriptor(create_type: &str, capacity: u64) -> Result<Vec<u8>> {
    let cylinders = (capacity / (16 * 63)).min(16383);
    let cid = (super::ids::random_u64() as u32) | 1;
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\ncreateType=\"{create_type}\"\n\n\
         # Extent description\nRW {capacity} SPARSE \"disk.vmdk\"\n\n\
         # The Disk Data Base\n#DDB\n\n\
         ddb.virtualHWVersion = \"4\"\nddb.geometry.cylinders = \"{cylinders}\"\nddb.geometry.heads = \"16\"\n\
         ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n"
    );
    let mut b = text.into_bytes();
    let len = usize::try_from(DESC_SECTORS * SECTOR).map_err(|_| internal("descriptor size"))?;
    if b.len() > len {
        return Err(internal("descriptor too long"));
    }
    b.resize(len, 0);
    Ok(b)
}

/// A metadata marker sector: value, size 0, type.
fn marker(value: u64, kind: u32) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[0..8].copy_from_slice(&value.to_le_bytes());
    b[12..16].copy_from_slice(&kind.to_le_bytes());
    b
}

fn sector_u32(byte_offset: u64) -> Result<u32> {
    u32::try_from(byte_offset / SECTOR).map_err(|_| {
        FormatError::Unsupported("VMDK file grows past 2 TiB, the most its tables address".into())
    })
}

fn table_bytes(entries: &[u32]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// Writes `src` as a streamOptimized VMDK to a sequential sink. Returns the bytes written.
pub(crate) fn write_stream_optimized(
    src: &dyn DiskImage,
    out: &mut dyn Write,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let g = geometry(src.virtual_size())?;
    let fields = |gd| HeaderFields {
        version: 3,
        flags: FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
        capacity: g.capacity,
        rgd: 0,
        gd,
        overhead: GRAIN_SECTORS,
        compressed: true,
    };
    let mut w = Counted::new(out);
    w.put(&header(&fields(GD_AT_END)))?;
    w.put(&descriptor("streamOptimized", g.capacity)?)?;
    w.pad_to(GRAIN)?;

    let mut gd =
        vec![0u32; usize::try_from(g.gt_count).map_err(|_| internal("grain directory size"))?];
    let mut gt: Option<(u64, Vec<u32>)> = None;
    let spec = UnitSpec {
        unit_size: GRAIN,
        pad_last: true,
        codec: Some(Codec::Zlib { level: 6 }),
        raw_if_not_smaller: false,
        checksum: false,
    };
    pipeline::run(src, &spec, threads, progress, &mut |unit| {
        let Payload::Compressed(data) = unit.payload else {
            return Err(internal("uncompressed grain in a stream"));
        };
        let group = unit.index / GTES;
        if gt.as_ref().map(|t| t.0) != Some(group) {
            if let Some(done) = gt.take() {
                put_gt(&mut w, &mut gd, done)?;
            }
            gt = Some((group, vec![0u32; GTES as usize]));
        }
        let at = sector_u32(w.pos())?;
        let size = u32::try_from(data.len()).map_err(|_| internal("compressed grain size"))?;
        w.put(&(unit.index * GRAIN_SECTORS).to_le_bytes())?;
        w.put(&size.to_le_bytes())?;
        w.put(data)?;
        w.pad_to(SECTOR)?;
        let slot = usize::try_from(unit.index % GTES).map_err(|_| internal("grain table slot"))?;
        let table = &mut gt.as_mut().ok_or_else(|| internal("no grain table"))?.1;
        *table
            .get_mut(slot)
            .ok_or_else(|| internal("grain table slot"))? = at;
        Ok(())
    })?;
    if let Some(done) = gt.take() {
        put_gt(&mut w, &mut gd, done)?;
    }
    w.put(&marker(g.gd_sectors, MARKER_GD))?;
    let gd_at = w.pos() / SECTOR;
    w.put(&table_bytes(&gd))?;
    w.pad_to(SECTOR)?;
    w.put(&marker(1, MARKER_FOOTER))?;
    w.put(&header(&fields(gd_at)))?;
    w.zeros(SECTOR)?; // end-of-stream marker
    Ok(w.finish()?)
}

/// Writes a grain table behind its marker and records it in the directory.
fn put_gt(w: &mut Counted<'_>, gd: &mut [u32], (group, entries): (u64, Vec<u32>)) -> Result<()> {
    w.put(&marker(GT_SECTORS, MARKER_GT))?;
    let at = sector_u32(w.pos())?;
    w.put(&table_bytes(&entries))?;
    let i = usize::try_from(group).map_err(|_| internal("grain directory index"))?;
    *gd.get_mut(i)
        .ok_or_else(|| internal("grain directory slot"))? = at;
    Ok(())
}

/// Writes `src` as a monolithicSparse VMDK to `out` (truncated first). Returns the file length.
pub(crate) fn write_monolithic_sparse(
    src: &dyn DiskImage,
    out: &dyn WriteAt,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let g = geometry(src.virtual_size())?;
    let rgd_at = DESC_OFFSET + DESC_SECTORS;
    let rgt_at = rgd_at + g.gd_sectors;
    let gd_at = rgt_at + g.gt_count * GT_SECTORS;
    let gt_at = gd_at + g.gd_sectors;
    let overhead = (gt_at + g.gt_count * GT_SECTORS).next_multiple_of(GRAIN_SECTORS);
    out.set_len(0)?;
    out.write_all_at(
        &header(&HeaderFields {
            version: 1,
            flags: FLAG_NL_DETECT | FLAG_RGD,
            capacity: g.capacity,
            rgd: rgd_at,
            gd: gd_at,
            overhead,
            compressed: false,
        }),
        0,
    )?;
    out.write_all_at(
        &descriptor("monolithicSparse", g.capacity)?,
        DESC_OFFSET * SECTOR,
    )?;
    for (dir, tables) in [(gd_at, gt_at), (rgd_at, rgt_at)] {
        let entries = (0..g.gt_count)
            .map(|i| u32::try_from(tables + i * GT_SECTORS))
            .collect::<std::result::Result<Vec<u32>, _>>()
            .map_err(|_| internal("grain table offset"))?;
        out.write_all_at(&table_bytes(&entries), dir * SECTOR)?;
    }

    let mut next = overhead * SECTOR;
    let mut gt: Option<(u64, Vec<u32>)> = None;
    let write_gt = |(group, entries): (u64, Vec<u32>)| -> Result<()> {
        let bytes = table_bytes(&entries);
        for tables in [gt_at, rgt_at] {
            out.write_all_at(&bytes, (tables + group * GT_SECTORS) * SECTOR)?;
        }
        Ok(())
    };
    let spec = UnitSpec {
        unit_size: GRAIN,
        pad_last: true,
        codec: None,
        raw_if_not_smaller: false,
        checksum: false,
    };
    pipeline::run(src, &spec, threads, progress, &mut |unit| {
        let (Payload::Raw(data) | Payload::Compressed(data)) = unit.payload;
        let group = unit.index / GTES;
        if gt.as_ref().map(|t| t.0) != Some(group) {
            if let Some(done) = gt.take() {
                write_gt(done)?;
            }
            gt = Some((group, vec![0u32; GTES as usize]));
        }
        let at = sector_u32(next)?;
        out.write_all_at(data, next)?;
        next = next
            .checked_add(GRAIN)
            .ok_or_else(|| internal("file offset"))?;
        let slot = usize::try_from(unit.index % GTES).map_err(|_| internal("grain table slot"))?;
        let table = &mut gt.as_mut().ok_or_else(|| internal("no grain table"))?.1;
        *table
            .get_mut(slot)
            .ok_or_else(|| internal("grain table slot"))? = at;
        Ok(())
    })?;
    if let Some(done) = gt.take() {
        write_gt(done)?;
    }
    out.set_len(next)?;
    Ok(next)
}
