//! QCOW2 (version 3) writer, after qemu `docs/interop/qcow2.rst`.
//!
//! Layout, front to back: the header cluster, the L1 table, then data clusters, compressed
//! clusters, L2 tables and refcount blocks in the order they are needed, then the refcount table and
//! the last refcount block(s). Host clusters are allocated strictly in increasing order, which is what
//! lets refcounts be counted exactly while streaming: a refcount block is written as soon as
//! allocation moves past the clusters it covers. In memory: the L1 table (8 bytes per GiB of guest
//! disk at 64 KiB clusters), one L2 table, one refcount block and the list of refcount block offsets.
//!
//! Compressed clusters are packed byte after byte; every host cluster they touch counts one
//! reference per compressed cluster touching it, exactly as `qemu-img check` counts them.

use super::codec::{internal, Codec};
use super::pipeline::{self, Payload, UnitSpec};
use super::seq::write_skipping_zeros;
use super::Qcow2Compression;
use crate::{DiskImage, FormatError, Result, WriteAt};

/// Cluster size and compression.
pub(crate) struct Qcow2Options {
    pub cluster_size: u64,
    pub compression: Option<Qcow2Compression>,
}

const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
/// qemu refuses L1 tables above 32 MiB.
const MAX_L1_BYTES: u64 = 32 << 20;
/// Refcount order 4: 16-bit refcounts.
const REFCOUNT_BYTES: u64 = 2;
const HEADER_LEN: usize = 112;

/// Writes `src` as QCOW2 v3 to `out` (truncated first). Returns the file length.
pub(crate) fn write(
    src: &dyn DiskImage,
    out: &dyn WriteAt,
    opts: &Qcow2Options,
    threads: usize,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let cs = opts.cluster_size;
    if !cs.is_power_of_two() || !(512..=(2 << 20)).contains(&cs) {
        return Err(FormatError::Unsupported(format!(
            "QCOW2 cluster size {cs} is not a power of two from 512 bytes to 2 MiB"
        )));
    }
    let cluster_bits = cs.trailing_zeros();
    // qemu counts qcow2 disks in whole sectors and would drop a partial last one: round up.
    let vsize = src
        .virtual_size()
        .checked_next_multiple_of(512)
        .ok_or_else(|| internal("size"))?;
    let l2_entries = cs / 8;
    let clusters = vsize.div_ceil(cs);
    let l1_size = clusters.div_ceil(l2_entries);
    if l1_size.saturating_mul(8) > MAX_L1_BYTES {
        return Err(FormatError::Unsupported(format!(
            "a {vsize}-byte disk is too large for QCOW2 with {cs}-byte clusters"
        )));
    }
    let l1_clusters = (l1_size * 8).div_ceil(cs).max(1);
    let l1_len = usize::try_from(l1_size).map_err(|_| internal("L1 size"))?;
    let l2_len = usize::try_from(l2_entries).map_err(|_| internal("L2 size"))?;

    out.set_len(0)?;
    let mut alloc = Alloc::new(cs, out)?;
    let header_at = alloc.cluster()?;
    let l1_at = alloc.cluster()?;
    for _ in 1..l1_clusters {
        alloc.cluster()?;
    }
    let mut l1 = vec![0u64; l1_len];
    let mut l2: Option<(u64, u64, Vec<u64>)> = None; // (L1 index, offset, entries)

    let codec = opts.compression.map(|c| match c {
        Qcow2Compression::Deflate => Codec::Deflate4k { level: 6 },
        Qcow2Compression::Zstd => Codec::Zstd { level: 3 },
    });
    let spec = UnitSpec {
        unit_size: cs,
        pad_last: true,
        codec,
        raw_if_not_smaller: true,
        checksum: false,
    };
    pipeline::run(src, &spec, threads, progress, &mut |unit| {
        let l1_index = unit.index / l2_entries;
        let slot = usize::try_from(unit.index % l2_entries).map_err(|_| internal("L2 index"))?;
        if l2.as_ref().map(|t| t.0) != Some(l1_index) {
            if let Some(done) = l2.take() {
                flush_l2(out, &mut l1, done)?;
            }
            l2 = Some((l1_index, alloc.cluster()?, vec![0u64; l2_len]));
        }
        let entries = &mut l2.as_mut().ok_or_else(|| internal("no L2 table"))?.2;
        let entry = match unit.payload {
            Payload::Raw(data) => {
                let at = alloc.cluster()?;
                write_skipping_zeros(out, data, at)?;
                at | COPIED
            }
            Payload::Compressed(data) => {
                let at = alloc.bytes(data.len() as u64)?;
                out.write_all_at(data, at)?;
                compressed_entry(at, data.len() as u64, cluster_bits)?
            }
        };
        *entries.get_mut(slot).ok_or_else(|| internal("L2 slot"))? = entry;
        Ok(())
    })?;
    if let Some(done) = l2.take() {
        flush_l2(out, &mut l1, done)?;
    }
    let l1_bytes: Vec<u8> = l1.iter().flat_map(|e| e.to_be_bytes()).collect();
    write_trimmed(out, &l1_bytes, l1_at)?;

    let (table_at, table_clusters, end) = alloc.finish()?;
    let header = header(&HeaderFields {
        cluster_bits,
        vsize,
        l1_size: u32::try_from(l1_size).map_err(|_| internal("L1 size"))?,
        l1_at,
        table_at,
        table_clusters: u32::try_from(table_clusters)
            .map_err(|_| internal("refcount table size"))?,
        zstd: opts.compression == Some(Qcow2Compression::Zstd),
    });
    out.write_all_at(&header, header_at)?;
    out.set_len(end)?;
    Ok(end)
}

fn flush_l2(
    out: &dyn WriteAt,
    l1: &mut [u64],
    (l1_index, at, entries): (u64, u64, Vec<u64>),
) -> Result<()> {
    let bytes: Vec<u8> = entries.iter().flat_map(|e| e.to_be_bytes()).collect();
    write_trimmed(out, &bytes, at)?;
    let i = usize::try_from(l1_index).map_err(|_| internal("L1 index"))?;
    *l1.get_mut(i).ok_or_else(|| internal("L1 slot"))? = at | COPIED;
    Ok(())
}

/// Writes a table into a freshly allocated area, leaving its all-zero tail as a hole (the file was
/// truncated at the start, so unwritten bytes read as zeros).
fn write_trimmed(out: &dyn WriteAt, bytes: &[u8], at: u64) -> Result<()> {
    let used = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| (i + 1).next_multiple_of(512).min(bytes.len()));
    if let Some(head) = bytes.get(..used).filter(|h| !h.is_empty()) {
        out.write_all_at(head, at)?;
    }
    Ok(())
}

/// The L2 entry of a compressed cluster of `len` bytes at host offset `at`.
fn compressed_entry(at: u64, len: u64, cluster_bits: u32) -> Result<u64> {
    let x = 62 - (cluster_bits - 8);
    if len == 0 || at >= 1u64 << x {
        return Err(FormatError::Unsupported(
            "QCOW2 file grows past the compressed-offset range".into(),
        ));
    }
    let last = at
        .checked_add(len - 1)
        .ok_or_else(|| internal("compressed end"))?;
    let extra_sectors = (last >> 9) - (at >> 9);
    if extra_sectors >= 1u64 << (cluster_bits - 8) {
        return Err(internal("compressed cluster too long"));
    }
    Ok(COMPRESSED | (extra_sectors << x) | at)
}

struct HeaderFields {
    cluster_bits: u32,
    vsize: u64,
    l1_size: u32,
    l1_at: u64,
    table_at: u64,
    table_clusters: u32,
    zstd: bool,
}

/// The header followed by an empty header-extension list.
fn header(h: &HeaderFields) -> [u8; HEADER_LEN + 8] {
    let mut b = [0u8; HEADER_LEN + 8];
    b[0..4].copy_from_slice(b"QFI\xfb");
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    b[20..24].copy_from_slice(&h.cluster_bits.to_be_bytes());
    b[24..32].copy_from_slice(&h.vsize.to_be_bytes());
    b[36..40].copy_from_slice(&h.l1_size.to_be_bytes());
    b[40..48].copy_from_slice(&h.l1_at.to_be_bytes());
    b[48..56].copy_from_slice(&h.table_at.to_be_bytes());
    b[56..60].copy_from_slice(&h.table_clusters.to_be_bytes());
    let incompatible: u64 = if h.zstd { 1 << 3 } else { 0 };
    b[72..80].copy_from_slice(&incompatible.to_be_bytes());
    b[96..100].copy_from_slice(&4u32.to_be_bytes()); // refcount_order
    b[100..104].copy_from_slice(&(HEADER_LEN as u32).to_be_bytes());
    b[104] = u8::from(h.zstd); // compression_type
    b
}

/// Monotonic host-cluster allocator that keeps exact refcounts as it goes.
struct Alloc<'a> {
    out: &'a dyn WriteAt,
    cs: u64,
    /// Refcount entries per refcount block.
    per_block: u64,
    /// First free byte of the file.
    end: u64,
    /// Refcount block being counted, and its counts.
    cur: u64,
    counts: Vec<u16>,
    /// Offset of every refcount block written so far (0 where a block had nothing to count).
    blocks: Vec<u64>,
}

impl<'a> Alloc<'a> {
    fn new(cs: u64, out: &'a dyn WriteAt) -> Result<Alloc<'a>> {
        let per_block = cs / REFCOUNT_BYTES;
        let n = usize::try_from(per_block).map_err(|_| internal("refcount block"))?;
        Ok(Alloc {
            out,
            cs,
            per_block,
            end: 0,
            cur: 0,
            counts: vec![0; n],
            blocks: Vec::new(),
        })
    }

    fn align_end(&self) -> Result<u64> {
        self.end
            .checked_next_multiple_of(self.cs)
            .ok_or_else(|| internal("file offset"))
    }

    /// A whole new cluster at the end of the file.
    fn cluster(&mut self) -> Result<u64> {
        let at = self.align_end()?;
        self.end = at
            .checked_add(self.cs)
            .ok_or_else(|| internal("file offset"))?;
        self.inc(at / self.cs)?;
        Ok(at)
    }

    /// `len` bytes at the end of the file, sharing the last cluster when it has room.
    fn bytes(&mut self, len: u64) -> Result<u64> {
        let mut at = self.end;
        // A refcount is 16 bits: start a fresh cluster before one could overflow.
        if !at.is_multiple_of(self.cs) && self.count_of(at / self.cs) >= 0xff00 {
            at = self.align_end()?;
        }
        self.end = at.checked_add(len).ok_or_else(|| internal("file offset"))?;
        let first = at / self.cs;
        let last = (self.end - 1) / self.cs;
        for c in first..=last {
            self.inc(c)?;
        }
        Ok(at)
    }

    fn count_of(&self, cluster: u64) -> u16 {
        if cluster / self.per_block != self.cur {
            return 0;
        }
        usize::try_from(cluster % self.per_block)
            .ok()
            .and_then(|i| self.counts.get(i).copied())
            .unwrap_or(0)
    }

    /// Adds one reference to `cluster`, writing out refcount blocks that are complete.
    fn inc(&mut self, cluster: u64) -> Result<()> {
        let mut queue = std::collections::VecDeque::from([cluster]);
        while let Some(c) = queue.pop_front() {
            let block = c / self.per_block;
            if block < self.cur {
                return Err(internal("refcount went backwards"));
            }
            while block > self.cur {
                if let Some(at) = self.flush_block()? {
                    queue.push_back(at / self.cs);
                }
            }
            let i = usize::try_from(c % self.per_block).map_err(|_| internal("refcount index"))?;
            let slot = self
                .counts
                .get_mut(i)
                .ok_or_else(|| internal("refcount slot"))?;
            *slot = slot
                .checked_add(1)
                .ok_or_else(|| internal("refcount overflow"))?;
        }
        Ok(())
    }

    /// Writes the current refcount block (if it counts anything) into a new cluster at the end and
    /// moves to the next block. Returns the cluster used; its reference is the caller's to count.
    fn flush_block(&mut self) -> Result<Option<u64>> {
        let used = self.counts.iter().any(|&c| c != 0);
        let at = if used {
            let at = self.align_end()?;
            self.end = at
                .checked_add(self.cs)
                .ok_or_else(|| internal("file offset"))?;
            self.write_block(at)?;
            Some(at)
        } else {
            None
        };
        self.cur += 1;
        self.counts.fill(0);
        Ok(at)
    }

    fn write_block(&mut self, at: u64) -> Result<()> {
        let bytes: Vec<u8> = self.counts.iter().flat_map(|c| c.to_be_bytes()).collect();
        write_trimmed(self.out, &bytes, at)?;
        let i = usize::try_from(self.cur).map_err(|_| internal("refcount table index"))?;
        if self.blocks.len() <= i {
            self.blocks.resize(i + 1, 0);
        }
        self.blocks[i] = at;
        Ok(())
    }

    /// Places the refcount table and the last refcount blocks, counting themselves.
    /// Returns (table offset, table clusters, file end).
    fn finish(mut self) -> Result<(u64, u64, u64)> {
        let used = self.align_end()? / self.cs;
        // Size the table for every cluster the file can end with: those used so far, the table, and
        // the refcount blocks still to write (a few, plus one per `per_block` clusters of table).
        let mut table = 1u64;
        loop {
            let total = used + table + 4 + table / 128;
            let blocks = total.div_ceil(self.per_block) + 1;
            let need = (blocks * 8).div_ceil(self.cs);
            if need <= table {
                break;
            }
            table = need;
        }
        let table_at = self.align_end()?;
        self.end = table
            .checked_mul(self.cs)
            .and_then(|len| table_at.checked_add(len))
            .ok_or_else(|| internal("file offset"))?;
        for c in 0..table {
            self.inc(table_at / self.cs + c)?;
        }
        loop {
            let at = self.align_end()?;
            self.end = at
                .checked_add(self.cs)
                .ok_or_else(|| internal("file offset"))?;
            let block = at / self.cs / self.per_block;
            if block == self.cur {
                self.inc(at / self.cs)?;
                self.write_block(at)?;
                break;
            }
            self.write_block(at)?;
            self.cur = block;
            self.counts.fill(0);
            self.inc(at / self.cs)?;
        }
        if self.blocks.len() as u64 * 8 > table * self.cs {
            return Err(internal("refcount table too small"));
        }
        let bytes: Vec<u8> = self.blocks.iter().flat_map(|b| b.to_be_bytes()).collect();
        write_trimmed(self.out, &bytes, table_at)?;
        Ok((table_at, table, self.end))
    }
}
