//! QED: qemu's enhanced disk format. L1/L2 tables of `table_size` clusters, zero clusters.
//!
//! Refused: backing files and unknown feature bits (`Unsafe`), tables or data outside the file,
//! tables above `Limits::max_table_bytes`.

use std::sync::Arc;

use crate::reader::cache::DEFAULT_CACHE_BYTES;
use crate::reader::fields::le64_at;
use crate::reader::{check_virtual_size, mul, quote, BlockMap, Fields, Mapped, Mapping, Run, Source, TableCache};
use crate::{DiskImage, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

const NAME: &str = "qed";
/// `QED\0`.
pub const MAGIC: [u8; 4] = *b"QED\0";
/// Size of the fixed header fields.
pub const HEADER_LEN: usize = 64;
/// Feature bit: the image has a backing file.
pub const F_BACKING_FILE: u64 = 0x01;
/// Feature bit: the image needs a consistency check.
pub const F_NEED_CHECK: u64 = 0x02;
/// Feature bit: the backing file is raw and must not be probed.
pub const F_BACKING_FORMAT_NO_PROBE: u64 = 0x04;
const F_KNOWN: u64 = F_BACKING_FILE | F_NEED_CHECK | F_BACKING_FORMAT_NO_PROBE;
/// Data cluster offset meaning "reads as zeros".
const ZERO_CLUSTER: u64 = 1;

fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("{NAME}: {msg}"))
}

/// The QED header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Cluster size in bytes, a power of two in 4 KiB..=64 MiB.
    pub cluster_size: u32,
    /// L1 and L2 table size in clusters, a power of two in 1..=16.
    pub table_size: u32,
    /// Clusters used by the header before regular clusters.
    pub header_size: u32,
    /// Features a reader must understand.
    pub features: u64,
    /// Features a reader may ignore.
    pub compat_features: u64,
    /// Features cleared by writers that do not know them.
    pub autoclear_features: u64,
    /// File offset of the L1 table (cluster-aligned).
    pub l1_table_offset: u64,
    /// Virtual disk size in bytes (a multiple of 512).
    pub image_size: u64,
    /// Offset of the backing file name in the header area.
    pub backing_filename_offset: u32,
    /// Length of the backing file name.
    pub backing_filename_size: u32,
}

impl Header {
    /// Bytes of one L1 or L2 table.
    pub fn table_bytes(&self) -> u64 {
        u64::from(self.table_size) * u64::from(self.cluster_size)
    }
    /// Entries of one table.
    pub fn table_entries(&self) -> u64 {
        self.table_bytes() / 8
    }
}

/// True when `header` starts with `QED\0`.
pub fn probe(header: &[u8]) -> bool {
    header.starts_with(&MAGIC)
}

/// Parses the header and checks its geometry as the spec requires: cluster size a power of two in
/// 4 KiB..=64 MiB, table size a power of two in 1..=16, image size a multiple of 512 that the tables
/// can address.
pub fn parse_header(buf: &[u8]) -> Result<Header> {
    let f = Fields::new(buf, NAME, "header");
    f.slice(0, HEADER_LEN)?;
    if f.slice(0, 4)? != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let h = Header {
        cluster_size: f.u32_le(4)?,
        table_size: f.u32_le(8)?,
        header_size: f.u32_le(12)?,
        features: f.u64_le(16)?,
        compat_features: f.u64_le(24)?,
        autoclear_features: f.u64_le(32)?,
        l1_table_offset: f.u64_le(40)?,
        image_size: f.u64_le(48)?,
        backing_filename_offset: f.u32_le(56)?,
        backing_filename_size: f.u32_le(60)?,
    };
    if !h.cluster_size.is_power_of_two() || !(1 << 12..=1 << 26).contains(&h.cluster_size) {
        return Err(corrupt(format!(
            "cluster size {} is not a power of two in 4 KiB..=64 MiB",
            h.cluster_size
        )));
    }
    if !h.table_size.is_power_of_two() || !(1..=16).contains(&h.table_size) {
        return Err(corrupt(format!(
            "table size {} is not a power of two in 1..=16",
            h.table_size
        )));
    }
    if h.header_size == 0 {
        return Err(corrupt("header size is 0 clusters".into()));
    }
    if !h.image_size.is_multiple_of(512) {
        return Err(corrupt(format!("image size {} is not a multiple of 512", h.image_size)));
    }
    let entries = h.table_entries();
    let max = entries
        .checked_mul(entries)
        .and_then(|n| n.checked_mul(u64::from(h.cluster_size)))
        .unwrap_or(u64::MAX);
    if h.image_size > max {
        return Err(corrupt(format!(
            "image size {} exceeds what the tables address ({max})",
            h.image_size
        )));
    }
    if !h.l1_table_offset.is_multiple_of(u64::from(h.cluster_size)) {
        return Err(corrupt(format!(
            "L1 table offset {:#x} is not cluster-aligned",
            h.l1_table_offset
        )));
    }
    Ok(h)
}

/// Opens a QED image (see the module docs for what is refused).
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    let source = Source::new(src, NAME)?;
    let buf = source.read_vec("header", 0, source.size().min(HEADER_LEN as u64))?;
    let h = parse_header(&buf)?;
    if h.features & F_BACKING_FILE != 0 {
        let name = if h.backing_filename_size <= 1023 {
            source
                .read_vec(
                    "backing file name",
                    u64::from(h.backing_filename_offset),
                    u64::from(h.backing_filename_size),
                )
                .ok()
        } else {
            None
        };
        return Err(FormatError::Unsafe(match name {
            Some(n) => format!("{NAME}: backing file {} is not allowed", quote(&n)),
            None => format!("{NAME}: backing file is not allowed"),
        }));
    }
    let unknown = h.features & !F_KNOWN;
    if unknown != 0 {
        return Err(FormatError::Unsafe(format!(
            "{NAME}: unknown feature bits {unknown:#x}"
        )));
    }
    check_virtual_size(NAME, h.image_size, limits)?;
    let cs = u64::from(h.cluster_size);
    let first_regular = mul(NAME, "header area", u64::from(h.header_size), cs)?;
    let l1 = source.read_table("L1 table", h.l1_table_offset, h.table_bytes(), limits)?;
    if h.l1_table_offset < first_regular {
        return Err(corrupt(format!(
            "L1 table at {:#x} overlaps the header",
            h.l1_table_offset
        )));
    }
    let span = mul(NAME, "L1 entry coverage", h.table_entries(), cs)?;
    let needed = h.image_size.div_ceil(span);
    for i in 0..needed {
        let l2 = le64_at(&l1, i).unwrap_or(0);
        if l2 == 0 {
            continue;
        }
        if !l2.is_multiple_of(cs) || l2 < first_regular {
            return Err(corrupt(format!("L2 table offset {l2:#x} (L1 entry {i}) is invalid")));
        }
        crate::reader::source::check_table_size(NAME, "L2 table", h.table_bytes(), limits)?;
        source.check_span(&format!("L2 table (L1 entry {i})"), l2, h.table_bytes())?;
    }
    let mut features = vec![];
    if h.features & F_NEED_CHECK != 0 {
        features.push(("need_check".to_string(), "true".to_string()));
    }
    let details = ImageDetails {
        cluster_size: Some(cs),
        compression: None,
        features,
    };
    Ok(Box::new(Mapped(QedMap {
        source,
        first_regular,
        l1,
        cache: TableCache::new(DEFAULT_CACHE_BYTES),
        details,
        h,
    })))
}

struct QedMap {
    source: Source,
    h: Header,
    first_regular: u64,
    l1: Vec<u8>,
    cache: TableCache,
    details: ImageDetails,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cluster {
    Host(u64),
    Zero,
    Unallocated,
}

impl QedMap {
    fn cluster(&self, index: u64) -> Result<Cluster> {
        let entries = self.h.table_entries();
        let l2 = le64_at(&self.l1, index / entries)
            .ok_or_else(|| corrupt(format!("guest cluster {index} is outside the L1 table")))?;
        if l2 == 0 {
            return Ok(Cluster::Unallocated);
        }
        let bytes = self.h.table_bytes();
        let table = self
            .cache
            .get_or_load(l2, || self.source.read_vec("L2 table", l2, bytes))?;
        let entry = le64_at(&table, index % entries).ok_or_else(|| corrupt(format!("L2 table at {l2:#x} is short")))?;
        let cs = u64::from(self.h.cluster_size);
        match entry {
            0 => Ok(Cluster::Unallocated),
            ZERO_CLUSTER => Ok(Cluster::Zero),
            off if !off.is_multiple_of(cs) || off < self.first_regular || off >= self.source.size() => Err(corrupt(
                format!("data cluster offset {off:#x} (guest cluster {index}) is invalid"),
            )),
            off => Ok(Cluster::Host(off)),
        }
    }
}

impl BlockMap for QedMap {
    fn format(&self) -> Format {
        Format::Qed
    }
    fn virtual_size(&self) -> u64 {
        self.h.image_size
    }
    fn source(&self) -> &Source {
        &self.source
    }

    fn map(&self, offset: u64, max_len: u64) -> Result<Mapping> {
        let cs = u64::from(self.h.cluster_size);
        let entries = self.h.table_entries();
        let index = offset / cs;
        let in_cluster = offset % cs;
        let first = self.cluster(index)?;
        let mut len = (cs - in_cluster).min(max_len);
        let run = match first {
            Cluster::Host(h) => Run::Host(h + in_cluster),
            Cluster::Zero => Run::Zero,
            Cluster::Unallocated => Run::Unallocated,
        };
        let table_end = (index / entries).saturating_add(1).saturating_mul(entries);
        let mut next = index + 1;
        while len < max_len && next < table_end {
            let c = self.cluster(next)?;
            let k = next - index;
            let continues = match (first, c) {
                (Cluster::Host(a), Cluster::Host(b)) => Some(b) == a.checked_add(k * cs),
                (a, b) => a == b && a != Cluster::Host(0),
            };
            if !continues {
                break;
            }
            len = len.saturating_add(cs).min(max_len);
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

    fn header() -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&65536u32.to_le_bytes());
        b[8..12].copy_from_slice(&4u32.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b[40..48].copy_from_slice(&65536u64.to_le_bytes());
        b[48..56].copy_from_slice(&(1u64 << 30).to_le_bytes());
        b
    }

    #[test]
    fn parse_edges() {
        assert!(parse_header(&header()).is_ok());
        let mut b = header();
        b[4..8].copy_from_slice(&65537u32.to_le_bytes());
        assert!(parse_header(&b).is_err());
        let mut b = header();
        b[8..12].copy_from_slice(&32u32.to_le_bytes());
        assert!(parse_header(&b).is_err());
        let mut b = header();
        b[48..56].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_header(&b).is_err());
        for n in 0..64 {
            assert!(parse_header(&header()[..n]).is_err());
        }
    }

    #[test]
    fn refusals() {
        let mut b = header();
        b[16] = 0x10;
        b.resize(65536 * 5, 0);
        assert!(
            matches!(open(Arc::new(b), &Limits::default()), Err(FormatError::Unsafe(m)) if m.contains("unknown feature"))
        );
        let mut b = header();
        b[16] = 1;
        b[56..60].copy_from_slice(&64u32.to_le_bytes());
        b[60..64].copy_from_slice(&11u32.to_le_bytes());
        b.extend_from_slice(b"/etc/passwd");
        match open(Arc::new(b), &Limits::default()) {
            Err(FormatError::Unsafe(m)) => assert_eq!(m, "qed: backing file \"/etc/passwd\" is not allowed"),
            _ => panic!("not refused"),
        }
        // L1 table past the end of the file.
        let b = header();
        assert!(
            matches!(open(Arc::new(b), &Limits::default()), Err(FormatError::Corrupt(m)) if m.contains("past the end"))
        );
    }
}
