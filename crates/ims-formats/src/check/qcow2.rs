//! QCOW2 refcount check: counts every reference to every host cluster (header, refcount table and
//! blocks, snapshot table, active and snapshot L1/L2 tables, data and compressed clusters,
//! persistent bitmaps) and compares the counts with the refcount blocks, as `qemu-img check` does.
//! Also checks the COPIED flag of the active tables against the refcounts.

use std::sync::Arc;

use crate::qcow2::{Header, AUTOCLEAR_BITMAPS};
use crate::reader::fields::be64_at;
use crate::reader::source::check_table_size;
use crate::reader::{to_usize, Fields, Source};
use crate::{FormatError, Limits, ReadAt, Result};

use super::TableCheck;

const NAME: &str = "qcow2";
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const REFT_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
const REFT_RESERVED_MASK: u64 = 0x1ff;
const COMPRESSED: u64 = 1 << 62;
const COPIED: u64 = 1 << 63;
const ZERO_FLAG: u64 = 1;

pub(super) fn check(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<TableCheck> {
    let source = Source::new(src, NAME)?;
    let h = crate::qcow2::read_header(&source)?;
    crate::qcow2::check_policy(&source, &h)?;
    let mut report = TableCheck::default();
    let mut c = Counter::new(&source, &h, limits)?;
    c.count(&mut report, 0, c.cs);
    let reft_len = u64::from(h.refcount_table_clusters) * c.cs;
    c.count(&mut report, h.refcount_table_offset, reft_len);
    let snapshots = read_snapshot_table(&source, &h, limits)?;
    c.count(&mut report, h.snapshots_offset, snapshots.table_len);
    c.count_l1(&mut report, h.l1_table_offset, h.l1_size, limits)?;
    for (l1_offset, l1_size) in &snapshots.l1_tables {
        c.count_l1(&mut report, *l1_offset, *l1_size, limits)?;
    }
    if h.autoclear_features & AUTOCLEAR_BITMAPS != 0 {
        c.count_bitmaps(&mut report, limits)?;
    }
    let refcounts = c.load_refcounts(&mut report, reft_len, limits)?;
    compare(&mut report, &c.references, &refcounts);
    check_copied(&mut report, &c, &refcounts, limits)?;
    Ok(report)
}

/// References counted per host cluster.
struct Counter<'a> {
    source: &'a Source,
    h: &'a Header,
    cs: u64,
    file_len: u64,
    references: Vec<u32>,
}

impl<'a> Counter<'a> {
    fn new(source: &'a Source, h: &'a Header, limits: &Limits) -> Result<Counter<'a>> {
        let cs = h.cluster_size();
        let file_len = source.size();
        // References may reach at most one cluster past the end of the file (see `count`).
        let clusters = file_len.div_ceil(cs) + 1;
        check_table_size(NAME, "reference count table of the check", clusters * 4, limits)?;
        Ok(Counter {
            source,
            h,
            cs,
            file_len,
            references: vec![0; to_usize(NAME, clusters)?],
        })
    }

    /// Adds one reference to every cluster of `[offset, offset + len)`. Like qemu, a range ending a
    /// cluster or more past the end of the file is a corruption and is not counted.
    fn count(&mut self, report: &mut TableCheck, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let end = offset.saturating_add(len);
        if end.saturating_sub(self.file_len) >= self.cs {
            report.corruption(format!(
                "ERROR: counting reference for region exceeding the end of the file by one \
                 cluster or more: offset {offset:#x} size {len:#x}"
            ));
            return;
        }
        let first = offset / self.cs;
        let last = (end - 1) / self.cs;
        for k in first..=last {
            if let Some(r) = self.references.get_mut(k as usize) {
                *r = r.saturating_add(1);
            }
        }
    }

    /// Counts an L1 table of `l1_size` entries, its L2 tables and every cluster they map.
    fn count_l1(
        &mut self,
        report: &mut TableCheck,
        l1_offset: u64,
        l1_size: u32,
        limits: &Limits,
    ) -> Result<()> {
        let l1_len = u64::from(l1_size) * 8;
        self.count(report, l1_offset, l1_len);
        if l1_len == 0 {
            return Ok(());
        }
        let l1 = self.source.read_table("L1 table", l1_offset, l1_len, limits)?;
        for i in 0..u64::from(l1_size) {
            let l2_offset = be64_at(&l1, i).unwrap_or(0) & OFFSET_MASK;
            if l2_offset == 0 {
                continue;
            }
            self.count(report, l2_offset, self.cs);
            if !l2_offset.is_multiple_of(self.cs) {
                report.corruption(format!(
                    "ERROR l2_offset={l2_offset:x}: Table is not cluster aligned; L1 entry corrupted"
                ));
                continue;
            }
            let Ok(l2) = self.source.read_vec("L2 table", l2_offset, self.cs) else {
                report.corruption(format!(
                    "ERROR l2_offset={l2_offset:x}: L2 table lies past the end of the file"
                ));
                continue;
            };
            self.count_l2(report, &l2);
        }
        Ok(())
    }

    fn count_l2(&mut self, report: &mut TableCheck, l2: &[u8]) {
        let ext = self.h.extended_l2();
        let step = if ext { 2 } else { 1 };
        let entries = self.cs / 8 / step;
        for i in 0..entries {
            let entry = be64_at(l2, i * step).unwrap_or(0);
            if entry & COMPRESSED != 0 {
                let (coffset, csize) = compressed_extent(entry, self.h.cluster_bits);
                if entry & COPIED != 0 {
                    report.corruption(format!(
                        "ERROR: coffset={coffset:#x}: copied flag must never be set for \
                         compressed clusters"
                    ));
                }
                if ext && be64_at(l2, i * step + 1).unwrap_or(0) != 0 {
                    report.corruption(format!(
                        "ERROR compressed cluster {i} with non-zero subcluster allocation bitmap, \
                         entry={entry:#x}"
                    ));
                }
                self.count(report, coffset, csize);
                continue;
            }
            let offset = entry & OFFSET_MASK;
            if offset == 0 {
                continue;
            }
            if !offset.is_multiple_of(self.cs) {
                report.corruption(format!(
                    "ERROR offset={offset:x}: Cluster is not properly aligned; L2 entry corrupted."
                ));
            }
            self.count(report, offset, self.cs);
        }
    }

    /// Counts the persistent bitmaps: their directory, each bitmap table and the clusters it maps.
    fn count_bitmaps(&mut self, report: &mut TableCheck, limits: &Limits) -> Result<()> {
        let Some((dir_offset, dir_len)) = bitmaps_extension(self.source, self.h)? else {
            return Ok(());
        };
        self.count(report, dir_offset, dir_len);
        let dir = self.source.read_table("bitmap directory", dir_offset, dir_len, limits)?;
        let mut at = 0usize;
        while at < dir.len() {
            let f = Fields::new(&dir[at..], NAME, "bitmap directory entry");
            let table_offset = f.u64_be(0)?;
            let table_len = u64::from(f.u32_be(8)?) * 8;
            let name_len = usize::from(f.u16_be(18)?);
            let extra_len = to_usize(NAME, u64::from(f.u32_be(20)?))?;
            self.count(report, table_offset, table_len);
            let table = self.source.read_table("bitmap table", table_offset, table_len, limits)?;
            for i in 0..table_len / 8 {
                let offset = be64_at(&table, i).unwrap_or(0) & OFFSET_MASK;
                if offset != 0 {
                    self.count(report, offset, self.cs);
                }
            }
            at = at
                .saturating_add(24)
                .saturating_add(extra_len)
                .saturating_add(name_len)
                .next_multiple_of(8);
        }
        Ok(())
    }

    /// The refcounts stored in the refcount blocks, for every cluster that `references` covers.
    /// Checks the refcount table entries on the way (and counts the blocks as references).
    fn load_refcounts(
        &mut self,
        report: &mut TableCheck,
        reft_len: u64,
        limits: &Limits,
    ) -> Result<Vec<u64>> {
        let clusters = self.references.len() as u64;
        let mut refcounts = vec![0u64; self.references.len()];
        if reft_len == 0 {
            return Ok(refcounts);
        }
        let reft = self
            .source
            .read_table("refcount table", self.h.refcount_table_offset, reft_len, limits)?;
        let bits = 1u64 << self.h.refcount_order;
        let per_block = self.cs * 8 / bits;
        let file_clusters = self.file_len.div_ceil(self.cs);
        for i in 0..reft_len / 8 {
            let entry = be64_at(&reft, i).unwrap_or(0);
            let offset = entry & REFT_OFFSET_MASK;
            if entry & REFT_RESERVED_MASK != 0 {
                report.corruption(format!("ERROR refcount table entry {i} has reserved bits set"));
                continue;
            }
            if offset == 0 {
                continue;
            }
            let cluster = offset / self.cs;
            if !offset.is_multiple_of(self.cs) {
                report.corruption(format!(
                    "ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted"
                ));
                continue;
            }
            if cluster >= file_clusters {
                report.corruption(format!("ERROR refcount block {i} is outside image"));
                continue;
            }
            self.count(report, offset, self.cs);
            let counted = self.references.get(cluster as usize).copied().unwrap_or(0);
            if counted != 1 {
                report.corruption(format!("ERROR refcount block {i} refcount={counted}"));
            }
            let first = i.saturating_mul(per_block);
            if first >= clusters {
                continue;
            }
            let block = self.source.read_vec("refcount block", offset, self.cs)?;
            for j in 0..per_block.min(clusters - first) {
                refcounts[(first + j) as usize] = refcount_at(&block, j, self.h.refcount_order);
            }
        }
        Ok(refcounts)
    }
}

/// Entry `j` of a refcount block with `2^order`-bit entries (sub-byte entries from the low bits).
fn refcount_at(block: &[u8], j: u64, order: u32) -> u64 {
    let byte = |at: u64| u64::from(block.get(at as usize).copied().unwrap_or(0));
    match order {
        0..=2 => {
            let bits = 1u64 << order;
            let per_byte = 8 / bits;
            (byte(j / per_byte) >> ((j % per_byte) * bits)) & ((1 << bits) - 1)
        }
        3 => byte(j),
        _ => {
            let width = 1u64 << (order - 3);
            (0..width).fold(0u64, |acc, k| (acc << 8) | byte(j * width + k))
        }
    }
}

/// File range `(offset, length)` of a compressed cluster's data, as qemu counts it.
fn compressed_extent(entry: u64, cluster_bits: u32) -> (u64, u64) {
    let shift = 62 - (cluster_bits - 8);
    let coffset = entry & ((1u64 << shift) - 1);
    let sectors = ((entry >> shift) & ((1u64 << (cluster_bits - 8)) - 1)) + 1;
    (coffset, (sectors * 512).saturating_sub(coffset & 511))
}

/// Every cluster whose stored refcount differs from its references: fewer is a corruption, more is
/// a leak. Only clusters inside the file (or referenced) are compared, as qemu does.
fn compare(report: &mut TableCheck, references: &[u32], refcounts: &[u64]) {
    let last_referenced = references.iter().rposition(|&r| r > 0).map_or(0, |i| i + 1);
    let compared = references.len().saturating_sub(1).max(last_referenced);
    for (i, (&reference, &refcount)) in references.iter().zip(refcounts).enumerate().take(compared) {
        let reference = u64::from(reference);
        if refcount < reference {
            report.corruption(format!(
                "ERROR cluster {i} refcount={refcount} reference={reference}"
            ));
        } else if refcount > reference {
            report.leak(format!("Leaked cluster {i} refcount={refcount} reference={reference}"));
        }
    }
}

/// The COPIED flag of active L1 and L2 entries must be set exactly when the refcount is 1.
fn check_copied(
    report: &mut TableCheck,
    c: &Counter<'_>,
    refcounts: &[u64],
    limits: &Limits,
) -> Result<()> {
    let h = c.h;
    let l1_len = u64::from(h.l1_size) * 8;
    if l1_len == 0 {
        return Ok(());
    }
    let refcount = |offset: u64| refcounts.get((offset / c.cs) as usize).copied().unwrap_or(0);
    let l1 = c.source.read_table("L1 table", h.l1_table_offset, l1_len, limits)?;
    let step = if h.extended_l2() { 2 } else { 1 };
    for i in 0..u64::from(h.l1_size) {
        let l1_entry = be64_at(&l1, i).unwrap_or(0);
        let l2_offset = l1_entry & OFFSET_MASK;
        if l2_offset == 0 {
            continue;
        }
        let rc = refcount(l2_offset);
        if (rc == 1) != (l1_entry & COPIED != 0) {
            report.corruption(format!(
                "ERROR OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={l1_entry:x} refcount={rc}"
            ));
        }
        if !l2_offset.is_multiple_of(c.cs) {
            continue;
        }
        let Ok(l2) = c.source.read_vec("L2 table", l2_offset, c.cs) else {
            continue;
        };
        for j in 0..c.cs / 8 / step {
            let entry = be64_at(&l2, j * step).unwrap_or(0);
            let offset = entry & OFFSET_MASK;
            let zero_plain = step == 1 && entry & ZERO_FLAG != 0 && offset == 0;
            if entry & COMPRESSED != 0 || offset == 0 || zero_plain {
                continue;
            }
            let rc = refcount(offset);
            if (rc == 1) != (entry & COPIED != 0) {
                report.corruption(format!(
                    "ERROR OFLAG_COPIED data cluster: l2_entry={entry:x} refcount={rc}"
                ));
            }
        }
    }
    Ok(())
}

/// The bitmap directory `(offset, length)` named by the bitmaps header extension, if there is one.
fn bitmaps_extension(source: &Source, h: &Header) -> Result<Option<(u64, u64)>> {
    const BITMAPS: u32 = 0x2385_2875;
    let cluster = source.read_vec("header", 0, h.cluster_size().min(source.size()))?;
    let mut at = if h.version == 2 { 72 } else { h.header_length as usize };
    while at + 8 <= cluster.len() {
        let f = Fields::new(&cluster[at..], NAME, "header extension");
        let (kind, len) = (f.u32_be(0)?, f.u32_be(4)? as usize);
        if kind == 0 {
            break;
        }
        if kind == BITMAPS {
            // After the type and length: nb_bitmaps, reserved, directory size, directory offset.
            return Ok(Some((f.u64_be(24)?, f.u64_be(16)?)));
        }
        at = at.saturating_add(8).saturating_add(len.next_multiple_of(8));
    }
    Ok(None)
}

/// The snapshot table: its length in bytes and each snapshot's L1 table `(offset, entries)`.
struct Snapshots {
    table_len: u64,
    l1_tables: Vec<(u64, u32)>,
}

fn read_snapshot_table(source: &Source, h: &Header, limits: &Limits) -> Result<Snapshots> {
    let mut out = Snapshots {
        table_len: 0,
        l1_tables: Vec::new(),
    };
    let mut at = h.snapshots_offset;
    for n in 0..h.nb_snapshots {
        let fixed = source.read_vec("snapshot table entry", at, 40)?;
        let f = Fields::new(&fixed, NAME, "snapshot table entry");
        let l1_offset = f.u64_be(0)?;
        let l1_size = f.u32_be(8)?;
        let id_len = u64::from(f.u16_be(12)?);
        let name_len = u64::from(f.u16_be(14)?);
        let extra_len = u64::from(f.u32_be(36)?);
        let len = (40 + extra_len + id_len + name_len).next_multiple_of(8);
        out.l1_tables.push((l1_offset, l1_size));
        at = at.checked_add(len).ok_or_else(|| {
            FormatError::Corrupt(format!("{NAME}: snapshot table entry {n} overflows"))
        })?;
        out.table_len += len;
        check_table_size(NAME, "snapshot table", out.table_len, limits)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcount_entries_of_every_width() {
        assert_eq!(refcount_at(&[0b1000_0010], 1, 0), 1);
        assert_eq!(refcount_at(&[0b1000_0010], 7, 0), 1);
        assert_eq!(refcount_at(&[0b1000_0010], 0, 0), 0);
        assert_eq!(refcount_at(&[0b1110_0100], 1, 1), 1);
        assert_eq!(refcount_at(&[0b1110_0100], 3, 1), 3);
        assert_eq!(refcount_at(&[0x5a], 1, 2), 5);
        assert_eq!(refcount_at(&[0, 0, 0x12, 0x34], 1, 4), 0x1234);
        assert_eq!(refcount_at(&[0, 0, 0, 0, 0, 0, 1, 2], 1, 5), 0x102);
        assert_eq!(refcount_at(&[0; 4], 9, 4), 0);
    }

    #[test]
    fn compressed_extent_matches_qemu() {
        // 64 KiB clusters: 8 sector bits at 54..62.
        let entry = COMPRESSED | (2u64 << 54) | 0x10_0200;
        assert_eq!(compressed_extent(entry, 16), (0x10_0200, 3 * 512));
    }
}
