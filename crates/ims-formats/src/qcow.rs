//! QCOW version 1 (qemu's original format): L1/L2 tables and deflate-compressed clusters.
//!
//! Refused: backing files (`Unsafe`), AES encryption (`Unsupported`), tables outside the file or
//! above `Limits::max_table_bytes`.

use std::sync::Arc;

use crate::reader::cache::{LastDecoded, DEFAULT_CACHE_BYTES};
use crate::reader::codec::inflate_exact;
use crate::reader::fields::be64_at;
use crate::reader::{check_virtual_size, quote, BlockMap, Fields, Mapped, Mapping, Run, Source, TableCache};
use crate::{DiskImage, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

const NAME: &str = "qcow";
/// `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Size of the on-disk header.
pub const HEADER_LEN: usize = 48;
const COMPRESSED: u64 = 1 << 63;

fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("{NAME}: {msg}"))
}

/// The QCOW v1 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// File offset of the backing file name; 0 when there is none.
    pub backing_file_offset: u64,
    /// Length of the backing file name.
    pub backing_file_size: u32,
    /// Modification time of the backing file (unused).
    pub mtime: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// 9..=16 (512 B to 64 KiB clusters).
    pub cluster_bits: u8,
    /// 6..=13 (L2 tables of 512 B to 64 KiB).
    pub l2_bits: u8,
    /// 0 none, 1 AES (not supported).
    pub crypt_method: u32,
    /// File offset of the L1 table.
    pub l1_table_offset: u64,
}

impl Header {
    /// Cluster size in bytes (`cluster_bits` is validated by [`parse_header`]).
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }
    /// Number of L1 entries the virtual size needs.
    pub fn l1_size(&self) -> u64 {
        let shift = u32::from(self.cluster_bits) + u32::from(self.l2_bits);
        // size <= u64::MAX, shift <= 29: the division cannot overflow.
        self.size.div_ceil(1u64 << shift)
    }
}

/// True when `header` starts with the QCOW magic and version 1.
pub fn probe(header: &[u8]) -> bool {
    header.starts_with(&MAGIC) && Fields::new(header, NAME, "header").u32_be(4).ok() == Some(1)
}

/// Parses the 48-byte header, checking magic, version, cluster and L2 sizes (as qemu does).
pub fn parse_header(buf: &[u8]) -> Result<Header> {
    let f = Fields::new(buf, NAME, "header");
    f.slice(0, HEADER_LEN)?;
    if f.slice(0, 4)? != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let version = f.u32_be(4)?;
    if version != 1 {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: version {version} is not supported"
        )));
    }
    let h = Header {
        backing_file_offset: f.u64_be(8)?,
        backing_file_size: f.u32_be(16)?,
        mtime: f.u32_be(20)?,
        size: f.u64_be(24)?,
        cluster_bits: f.u8(32)?,
        l2_bits: f.u8(33)?,
        crypt_method: f.u32_be(36)?,
        l1_table_offset: f.u64_be(40)?,
    };
    if h.size <= 1 {
        return Err(corrupt(format!("virtual size {} is too small", h.size)));
    }
    if !(9..=16).contains(&h.cluster_bits) {
        return Err(corrupt(format!("cluster_bits {} is outside 9..=16", h.cluster_bits)));
    }
    if !(6..=13).contains(&h.l2_bits) {
        return Err(corrupt(format!("l2_bits {} is outside 6..=13", h.l2_bits)));
    }
    Ok(h)
}

/// Opens a QCOW v1 image (see the module docs for what is refused).
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    let source = Source::new(src, NAME)?;
    let buf = source.read_vec("header", 0, source.size().min(HEADER_LEN as u64))?;
    let h = parse_header(&buf)?;
    if h.backing_file_offset != 0 {
        let name = if h.backing_file_size <= 1023 {
            source
                .read_vec(
                    "backing file name",
                    h.backing_file_offset,
                    u64::from(h.backing_file_size),
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
    if h.crypt_method != 0 {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: encrypted images are not supported (crypt_method {})",
            h.crypt_method
        )));
    }
    // qemu exposes whole sectors only.
    let virtual_size = h.size / 512 * 512;
    check_virtual_size(NAME, virtual_size, limits)?;
    let l1_bytes = h.l1_size().saturating_mul(8);
    let l1 = source.read_table("L1 table", h.l1_table_offset, l1_bytes, limits)?;
    let l2_bytes = 8u64 << h.l2_bits;
    for i in 0..h.l1_size() {
        let l2 = be64_at(&l1, i).unwrap_or(0);
        if l2 != 0 {
            source.check_span(&format!("L2 table (L1 entry {i})"), l2, l2_bytes)?;
        }
    }
    let details = ImageDetails {
        cluster_size: Some(h.cluster_size()),
        compression: Some("zlib".into()),
        features: vec![("version".into(), "1".into())],
    };
    Ok(Box::new(Mapped(QcowMap {
        source,
        h,
        virtual_size,
        l1,
        cache: TableCache::new(DEFAULT_CACHE_BYTES),
        decoded: LastDecoded::new(),
        details,
    })))
}

struct QcowMap {
    source: Source,
    h: Header,
    virtual_size: u64,
    l1: Vec<u8>,
    cache: TableCache,
    decoded: LastDecoded,
    details: ImageDetails,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cluster {
    Host(u64),
    Unallocated,
    Compressed(u64),
}

impl QcowMap {
    fn cluster(&self, index: u64) -> Result<Cluster> {
        let l2_entries = 1u64 << self.h.l2_bits;
        let l2_off = be64_at(&self.l1, index / l2_entries)
            .ok_or_else(|| corrupt(format!("guest cluster {index} is outside the L1 table")))?;
        if l2_off == 0 {
            return Ok(Cluster::Unallocated);
        }
        let l2_bytes = 8u64 << self.h.l2_bits;
        let table = self
            .cache
            .get_or_load(l2_off, || self.source.read_vec("L2 table", l2_off, l2_bytes))?;
        let entry =
            be64_at(&table, index % l2_entries).ok_or_else(|| corrupt(format!("L2 table at {l2_off:#x} is short")))?;
        if entry == 0 {
            Ok(Cluster::Unallocated)
        } else if entry & COMPRESSED != 0 {
            Ok(Cluster::Compressed(entry))
        } else if !entry.is_multiple_of(512) {
            Err(corrupt(format!(
                "data cluster offset {entry:#x} (guest cluster {index}) is not sector-aligned"
            )))
        } else {
            Ok(Cluster::Host(entry))
        }
    }

    fn decode(&self, desc: u64) -> Result<Vec<u8>> {
        let shift = 63 - u32::from(self.h.cluster_bits);
        let coffset = desc & ((1u64 << shift) - 1);
        let csize = (desc >> shift) & (self.h.cluster_size() - 1);
        let what = format!("compressed cluster at {coffset:#x}");
        let data = self.source.read_vec(&what, coffset, csize)?;
        inflate_exact(NAME, &what, &data, self.h.cluster_size(), false)
    }
}

impl BlockMap for QcowMap {
    fn format(&self) -> Format {
        Format::Qcow
    }
    fn virtual_size(&self) -> u64 {
        self.virtual_size
    }
    fn source(&self) -> &Source {
        &self.source
    }

    fn map(&self, offset: u64, max_len: u64) -> Result<Mapping> {
        let cs = self.h.cluster_size();
        let index = offset / cs;
        let in_cluster = offset % cs;
        let first = self.cluster(index)?;
        let mut len = (cs - in_cluster).min(max_len);
        let run = match first {
            Cluster::Host(h) => Run::Host(h + in_cluster),
            Cluster::Unallocated => Run::Unallocated,
            Cluster::Compressed(d) => {
                return Ok(Mapping {
                    run: Run::Encoded {
                        unit: d,
                        offset: in_cluster,
                    },
                    len,
                })
            }
        };
        let l2_entries = 1u64 << self.h.l2_bits;
        let table_end = (index / l2_entries + 1) * l2_entries;
        let mut next = index + 1;
        while len < max_len && next < table_end {
            let c = self.cluster(next)?;
            let k = next - index;
            let continues = match (first, c) {
                (Cluster::Host(a), Cluster::Host(b)) => Some(b) == a.checked_add(k * cs),
                (Cluster::Unallocated, Cluster::Unallocated) => true,
                _ => false,
            };
            if !continues {
                break;
            }
            len = len.saturating_add(cs).min(max_len);
            next += 1;
        }
        Ok(Mapping { run, len })
    }

    fn read_encoded(&self, unit: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
        let cluster = self.decoded.get_or_decode(unit, || self.decode(unit))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| cluster.get(start..end))
            .ok_or_else(|| corrupt("read past the end of a compressed cluster".into()))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn details(&self) -> ImageDetails {
        self.details.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        let mut b = vec![0u8; 48];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&1u32.to_be_bytes());
        b[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        b[32] = 12;
        b[33] = 9;
        b[40..48].copy_from_slice(&48u64.to_be_bytes());
        b
    }

    #[test]
    fn parse_and_limits() {
        let h = parse_header(&header()).unwrap();
        assert_eq!(h.l1_size(), 1);
        let mut b = header();
        b[32] = 30;
        assert!(parse_header(&b).is_err());
        let mut b = header();
        b[24..32].copy_from_slice(&u64::MAX.to_be_bytes());
        let h = parse_header(&b).unwrap();
        assert_eq!(h.l1_size(), u64::MAX.div_ceil(1 << 21));
        // An absurd size is refused by the limits before any table is read.
        let mut file = b.clone();
        file.extend_from_slice(&[0u8; 64]);
        assert!(matches!(
            open(Arc::new(file), &Limits::default()),
            Err(FormatError::Unsafe(_))
        ));
        for n in 0..48 {
            assert!(parse_header(&header()[..n]).is_err());
        }
    }

    #[test]
    fn backing_file_refused() {
        let mut b = header();
        b[8..16].copy_from_slice(&56u64.to_be_bytes());
        b[16..20].copy_from_slice(&11u32.to_be_bytes());
        b.extend_from_slice(&[0u8; 8]);
        b.extend_from_slice(b"/etc/passwd");
        b.extend_from_slice(&[0u8; 64]);
        match open(Arc::new(b), &Limits::default()) {
            Err(FormatError::Unsafe(m)) => assert_eq!(m, "qcow: backing file \"/etc/passwd\" is not allowed"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened"),
        }
    }
}
