//! QCOW2 (versions 2 and 3): L1/L2 tables, standard, zero and compressed (deflate, zstd) clusters,
//! extended L2 entries with subclusters. Internal snapshots are ignored (the active L1 is read).
//!
//! Refused: backing files, external data files, unknown incompatible features (`Unsafe`);
//! encryption (`Unsupported`); tables outside the file or above `Limits::max_table_bytes`.

mod header;

pub use header::{
    parse_header, probe, Extension, FeatureName, Header, AUTOCLEAR_BITMAPS, AUTOCLEAR_DATA_FILE_RAW,
    COMPAT_LAZY_REFCOUNTS, INCOMPAT_COMPRESSION, INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, INCOMPAT_DIRTY, INCOMPAT_EXTL2,
    INCOMPAT_KNOWN, MAGIC,
};

use std::sync::Arc;

use crate::reader::cache::{LastDecoded, DEFAULT_CACHE_BYTES};
use crate::reader::codec::{inflate_exact, zstd_exact};
use crate::reader::fields::be64_at;
use crate::reader::{check_virtual_size, mul, BlockMap, Mapped, Mapping, Run, Source, TableCache};
use crate::{DiskImage, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

use header::backing_file_refusal;

const NAME: &str = "qcow2";
/// Bits 9..=55 of L1 and standard L2 entries: the host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED: u64 = 1 << 62;
const ZERO_FLAG: u64 = 1;
/// Size of one snapshot table entry without its variable parts.
const SNAPSHOT_ENTRY_MIN: u64 = 40;

fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("{NAME}: {msg}"))
}

/// Reads and parses the header of `source` (the whole first cluster).
pub(crate) fn read_header(source: &Source) -> Result<Header> {
    let first = source.read_vec("header", 0, source.size().min(512))?;
    let bits = crate::reader::Fields::new(&first, NAME, "header").u32_be(20)?;
    let want = if (9..=21).contains(&bits) { 1u64 << bits } else { 512 };
    let buf = if want > first.len() as u64 && source.size() > first.len() as u64 {
        source.read_vec("header", 0, source.size().min(want))?
    } else {
        first
    };
    parse_header(&buf)
}

/// Applies the safety policy to a parsed header: no backing file, no external data file, no unknown
/// incompatible feature, no encryption.
pub(crate) fn check_policy(source: &Source, h: &Header) -> Result<()> {
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
        return Err(backing_file_refusal(name.as_deref(), h));
    }
    if h.incompatible_features & INCOMPAT_DATA_FILE != 0 || h.data_file_name().is_some() {
        return Err(match h.data_file_name() {
            Some(n) => FormatError::Unsafe(format!(
                "{NAME}: external data file {} is not allowed",
                crate::reader::quote(n)
            )),
            None => FormatError::Unsafe(format!("{NAME}: external data file is not allowed")),
        });
    }
    let unknown = h.incompatible_features & !INCOMPAT_KNOWN;
    if unknown != 0 {
        let names = h.incompatible_names(unknown);
        let named = if names.is_empty() {
            String::new()
        } else {
            format!(" ({})", names.join(", "))
        };
        return Err(FormatError::Unsafe(format!(
            "{NAME}: unknown incompatible feature bits {unknown:#x}{named}"
        )));
    }
    let encryption_ext = h.extensions.iter().any(|e| matches!(e, Extension::Encryption { .. }));
    if h.crypt_method != 0 || encryption_ext {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: encrypted images are not supported (crypt_method {})",
            h.crypt_method
        )));
    }
    Ok(())
}

/// Opens a qcow2 image after checking its header, policy and tables (see the module docs).
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    let source = Source::new(src, NAME)?;
    let h = read_header(&source)?;
    check_policy(&source, &h)?;
    check_virtual_size(NAME, h.size, limits)?;

    let cluster_size = h.cluster_size();
    let entry_size: u64 = if h.extended_l2() { 16 } else { 8 };
    let l2_entries = cluster_size / entry_size;
    let l1_span = mul(NAME, "L1 entry coverage", cluster_size, l2_entries)?;
    let l1_needed = h.size.div_ceil(l1_span);
    if u64::from(h.l1_size) < l1_needed {
        return Err(corrupt(format!(
            "L1 table of {} entries is too small for a virtual size of {} bytes ({l1_needed} needed)",
            h.l1_size, h.size
        )));
    }
    if !h.l1_table_offset.is_multiple_of(cluster_size) {
        return Err(corrupt(format!(
            "L1 table offset {:#x} is not cluster-aligned",
            h.l1_table_offset
        )));
    }
    // The L1 entries past the virtual size are never used; read only what is needed, but the whole
    // declared table must still fit within the limit and the file.
    let l1_bytes = u64::from(h.l1_size) * 8;
    crate::reader::source::check_table_size(NAME, "L1 table", l1_bytes, limits)?;
    source.check_span("L1 table", h.l1_table_offset, l1_bytes)?;
    let l1 = source.read_table("L1 table", h.l1_table_offset, l1_needed * 8, limits)?;

    if h.refcount_table_clusters > 0 {
        if !h.refcount_table_offset.is_multiple_of(cluster_size) {
            return Err(corrupt(format!(
                "refcount table offset {:#x} is not cluster-aligned",
                h.refcount_table_offset
            )));
        }
        let len = mul(
            NAME,
            "refcount table size",
            u64::from(h.refcount_table_clusters),
            cluster_size,
        )?;
        source.check_span("refcount table", h.refcount_table_offset, len)?;
    }
    if h.nb_snapshots > 0 {
        let len = u64::from(h.nb_snapshots) * SNAPSHOT_ENTRY_MIN;
        source.check_span("snapshot table", h.snapshots_offset, len)?;
    }
    for i in 0..l1_needed {
        let entry = be64_at(&l1, i).unwrap_or(0);
        let l2 = entry & OFFSET_MASK;
        if l2 == 0 {
            continue;
        }
        if !l2.is_multiple_of(cluster_size) {
            return Err(corrupt(format!(
                "L2 table offset {l2:#x} (L1 entry {i}) is not cluster-aligned"
            )));
        }
        source.check_span(&format!("L2 table (L1 entry {i})"), l2, cluster_size)?;
    }

    let map = Qcow2Map {
        source,
        l1,
        cache: TableCache::new(DEFAULT_CACHE_BYTES),
        decoded: LastDecoded::new(),
        details: details(&h),
        h,
        l2_entries,
    };
    Ok(Box::new(Mapped(map)))
}

fn details(h: &Header) -> ImageDetails {
    let mut f: Vec<(String, String)> = Vec::new();
    f.push(("version".into(), h.version.to_string()));
    f.push(("compat".into(), if h.version == 2 { "0.10" } else { "1.1" }.into()));
    f.push(("refcount_bits".into(), (1u32 << h.refcount_order.min(6)).to_string()));
    f.push((
        "lazy_refcounts".into(),
        (h.compatible_features & COMPAT_LAZY_REFCOUNTS != 0).to_string(),
    ));
    f.push(("extended_l2".into(), h.extended_l2().to_string()));
    if h.incompatible_features & INCOMPAT_DIRTY != 0 {
        f.push(("dirty".into(), "true".into()));
    }
    if h.incompatible_features & INCOMPAT_CORRUPT != 0 {
        f.push(("corrupt".into(), "true".into()));
    }
    if h.autoclear_features & AUTOCLEAR_BITMAPS != 0 {
        f.push(("bitmaps".into(), "true".into()));
    }
    if h.nb_snapshots > 0 {
        f.push(("snapshots".into(), h.nb_snapshots.to_string()));
    }
    ImageDetails {
        cluster_size: Some(h.cluster_size()),
        compression: Some(if h.compression_type == 1 { "zstd" } else { "zlib" }.into()),
        features: f,
    }
}

/// What one allocation unit (a cluster, or a subcluster with extended L2) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Host offset of the unit's first byte.
    Host(u64),
    Zero,
    Unallocated,
    /// A compressed cluster (its L2 descriptor), starting this many bytes into the cluster.
    Compressed {
        desc: u64,
        offset: u64,
    },
}

struct Qcow2Map {
    source: Source,
    h: Header,
    l1: Vec<u8>,
    l2_entries: u64,
    cache: TableCache,
    decoded: LastDecoded,
    details: ImageDetails,
}

impl Qcow2Map {
    fn cluster_size(&self) -> u64 {
        self.h.cluster_size()
    }

    fn unit_size(&self) -> u64 {
        if self.h.extended_l2() {
            self.cluster_size() / 32
        } else {
            self.cluster_size()
        }
    }

    fn l2_table(&self, l2_offset: u64) -> Result<Arc<Vec<u8>>> {
        let cs = self.cluster_size();
        self.cache
            .get_or_load(l2_offset, || self.source.read_vec("L2 table", l2_offset, cs))
    }

    /// The L2 table that maps guest unit number `unit` (global index), with its file offset, or
    /// `None` when the unit's L1 entry has no table (the whole span is unallocated).
    fn l2_for(&self, unit: u64) -> Result<Option<(u64, Arc<Vec<u8>>)>> {
        let per_cluster = if self.h.extended_l2() { 32 } else { 1 };
        let cluster = unit / per_cluster;
        let l1e = be64_at(&self.l1, cluster / self.l2_entries)
            .ok_or_else(|| corrupt(format!("guest cluster {cluster} is outside the L1 table")))?;
        let l2_offset = l1e & OFFSET_MASK;
        if l2_offset == 0 {
            return Ok(None);
        }
        Ok(Some((l2_offset, self.l2_table(l2_offset)?)))
    }

    /// The unit holding guest unit number `unit` (global index), given the L2 table that maps it
    /// ([`Qcow2Map::l2_for`]): looking the table up once serves every unit of its span.
    fn unit(&self, l2: Option<&(u64, Arc<Vec<u8>>)>, unit: u64) -> Result<Unit> {
        let ext = self.h.extended_l2();
        let per_cluster = if ext { 32 } else { 1 };
        let cluster = unit / per_cluster;
        let sub = unit % per_cluster;
        let l2_index = cluster % self.l2_entries;
        let Some((l2_offset, table)) = l2 else {
            return Ok(Unit::Unallocated);
        };
        let l2_offset = *l2_offset;
        let (entry, bitmap) = if ext {
            (be64_at(&table, l2_index * 2), be64_at(&table, l2_index * 2 + 1))
        } else {
            (be64_at(&table, l2_index), Some(0))
        };
        let (Some(entry), Some(bitmap)) = (entry, bitmap) else {
            return Err(corrupt(format!("L2 table at {l2_offset:#x} is short")));
        };
        if entry & COMPRESSED != 0 {
            return Ok(Unit::Compressed {
                desc: entry,
                offset: sub * self.unit_size(),
            });
        }
        let host = entry & OFFSET_MASK;
        if host != 0 && !host.is_multiple_of(self.cluster_size()) {
            return Err(corrupt(format!(
                "data cluster offset {host:#x} (guest cluster {cluster}) is not cluster-aligned"
            )));
        }
        if ext {
            let alloc = bitmap & (1 << sub) != 0;
            let zero = bitmap & (1 << (32 + sub)) != 0;
            match (alloc, zero) {
                (true, true) => Err(corrupt(format!(
                    "subcluster {sub} of guest cluster {cluster} is both allocated and zero"
                ))),
                (true, false) if host == 0 => Err(corrupt(format!(
                    "subcluster {sub} of guest cluster {cluster} is allocated at host offset 0"
                ))),
                (true, false) => Ok(Unit::Host(host + sub * self.unit_size())),
                (false, true) => Ok(Unit::Zero),
                (false, false) => Ok(Unit::Unallocated),
            }
        } else if entry & ZERO_FLAG != 0 {
            // As qemu does, whatever the version (version 2 writers never set it).
            Ok(Unit::Zero)
        } else if host == 0 {
            Ok(Unit::Unallocated)
        } else {
            Ok(Unit::Host(host))
        }
    }

    fn decode_cluster(&self, desc: u64) -> Result<Vec<u8>> {
        let cb = self.h.cluster_bits;
        let shift = 62 - (cb - 8);
        let coffset = desc & ((1u64 << shift) - 1);
        let sectors = ((desc >> shift) & ((1u64 << (cb - 8)) - 1)) + 1;
        let csize = (sectors * 512).saturating_sub(coffset & 511);
        let what = format!("compressed cluster at {coffset:#x}");
        let data = self.source.read_vec_clamped(&what, coffset, csize)?;
        if self.h.compression_type == 1 {
            zstd_exact(NAME, &what, &data, self.cluster_size())
        } else {
            inflate_exact(NAME, &what, &data, self.cluster_size(), false)
        }
    }
}

impl BlockMap for Qcow2Map {
    fn format(&self) -> Format {
        Format::Qcow2
    }
    fn virtual_size(&self) -> u64 {
        self.h.size
    }
    fn source(&self) -> &Source {
        &self.source
    }

    fn map(&self, offset: u64, max_len: u64) -> Result<Mapping> {
        let us = self.unit_size();
        // Whole L2 table missing: unallocated to the end of the L1 entry's span at once.
        let l1_span = self.l2_entries.saturating_mul(self.cluster_size());
        let l1_index = offset / l1_span;
        if be64_at(&self.l1, l1_index).is_some_and(|e| e & OFFSET_MASK == 0) {
            let span_end = (l1_index + 1).saturating_mul(l1_span);
            return Ok(Mapping {
                run: Run::Unallocated,
                len: (span_end - offset).min(max_len),
            });
        }
        let first_unit = offset / us;
        let in_unit = offset % us;
        // Every unit up to `l1_end_unit` below is mapped by this one table.
        let l2 = self.l2_for(first_unit)?;
        let first = self.unit(l2.as_ref(), first_unit)?;
        let mut len = (us - in_unit).min(max_len);
        let run = match first {
            Unit::Host(h) => Run::Host(h + in_unit),
            Unit::Zero => Run::Zero,
            Unit::Unallocated => Run::Unallocated,
            Unit::Compressed { desc, offset } => {
                return Ok(Mapping {
                    run: Run::Encoded {
                        unit: desc,
                        offset: offset + in_unit,
                    },
                    len,
                })
            }
        };
        let per_l1 = self.l2_entries * (self.cluster_size() / us);
        let l1_end_unit = (first_unit / per_l1 + 1).saturating_mul(per_l1);
        let mut next = first_unit + 1;
        while len < max_len && next < l1_end_unit {
            let u = self.unit(l2.as_ref(), next)?;
            let k = next - first_unit;
            let continues = match (first, u) {
                (Unit::Host(a), Unit::Host(b)) => Some(b) == a.checked_add(k * us),
                (Unit::Zero, Unit::Zero) | (Unit::Unallocated, Unit::Unallocated) => true,
                _ => false,
            };
            if !continues {
                break;
            }
            len = len.saturating_add(us).min(max_len);
            next += 1;
        }
        Ok(Mapping { run, len })
    }

    fn read_encoded(&self, unit: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
        let cluster = self.decoded.get_or_decode(unit, || self.decode_cluster(unit))?;
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

/// Tiny handcrafted qcow2 images for unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use std::io::Write;

    pub(crate) const CS: usize = 65536;

    /// A v3 image of 1 MiB with 64 KiB clusters: header, L1 at cluster 1, L2 at cluster 2.
    /// Guest cluster 0 holds 0x11, cluster 1 is a zero cluster, cluster 2 is compressed 0x33,
    /// cluster 3 holds 0x44; the rest is unallocated.
    pub(crate) fn minimal_qcow2() -> Vec<u8> {
        let mut f = vec![0u8; 6 * CS];
        let h = &mut f[..CS];
        h[0..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        h[36..40].copy_from_slice(&1u32.to_be_bytes());
        h[40..48].copy_from_slice(&(CS as u64).to_be_bytes());
        h[96..100].copy_from_slice(&4u32.to_be_bytes());
        h[100..104].copy_from_slice(&104u32.to_be_bytes());
        // L1[0] -> L2 at cluster 2
        f[CS..CS + 8].copy_from_slice(&((2 * CS) as u64 | 1 << 63).to_be_bytes());
        let l2 = 2 * CS;
        f[l2..l2 + 8].copy_from_slice(&((3 * CS) as u64 | 1 << 63).to_be_bytes());
        f[l2 + 8..l2 + 16].copy_from_slice(&1u64.to_be_bytes());
        // compressed cluster at cluster 5
        let mut c = Vec::new();
        let mut e = flate2::write::DeflateEncoder::new(&mut c, flate2::Compression::default());
        e.write_all(&[0x33u8; CS]).ok();
        e.finish().ok();
        let coff = 5 * CS as u64;
        let sectors = (c.len() as u64).div_ceil(512) - 1;
        let shift = 62 - (16 - 8);
        let desc = 1u64 << 62 | sectors << shift | coff;
        f[l2 + 16..l2 + 24].copy_from_slice(&desc.to_be_bytes());
        f[l2 + 24..l2 + 32].copy_from_slice(&((4 * CS) as u64).to_be_bytes());
        f[3 * CS..4 * CS].fill(0x11);
        f[4 * CS..5 * CS].fill(0x44);
        f.truncate(5 * CS);
        f.extend_from_slice(&c);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlockStatus;

    #[test]
    fn reads_handcrafted_image() {
        let f = tests_support::minimal_qcow2();
        let img = open(Arc::new(f), &Limits::default()).unwrap();
        assert_eq!(img.virtual_size(), 1 << 20);
        let cs = tests_support::CS;
        let mut buf = vec![0u8; 5 * cs];
        img.read_at(&mut buf, 0).unwrap();
        assert!(buf[..cs].iter().all(|&b| b == 0x11));
        assert!(buf[cs..2 * cs].iter().all(|&b| b == 0));
        assert!(buf[2 * cs..3 * cs].iter().all(|&b| b == 0x33));
        assert!(buf[3 * cs..4 * cs].iter().all(|&b| b == 0x44));
        assert!(buf[4 * cs..].iter().all(|&b| b == 0));
        let st = img.block_status(0, 1 << 20).unwrap();
        let kinds: Vec<_> = st.iter().map(|e| (e.offset / cs as u64, e.status)).collect();
        assert_eq!(
            kinds,
            vec![
                (0, BlockStatus::Data),
                (1, BlockStatus::Zero),
                (2, BlockStatus::Data),
                (4, BlockStatus::Unallocated)
            ]
        );
        // Unaligned read across the compressed/data boundary.
        let mut b = vec![0u8; 10];
        img.read_at(&mut b, 3 * cs as u64 - 5).unwrap();
        assert_eq!(b, [0x33, 0x33, 0x33, 0x33, 0x33, 0x44, 0x44, 0x44, 0x44, 0x44]);
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let f = tests_support::minimal_qcow2();
        for cut in (0..f.len()).step_by(997) {
            let short = f[..cut].to_vec();
            if let Ok(img) = open(Arc::new(short), &Limits::default()) {
                let mut buf = vec![0u8; 1 << 20];
                assert!(img.read_at(&mut buf, 0).is_err(), "cut at {cut} read fully");
            }
        }
    }

    #[test]
    fn refusals() {
        let base = tests_support::minimal_qcow2();
        let mut f = base.clone();
        f[72..80].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(
            matches!(open(Arc::new(f), &Limits::default()), Err(FormatError::Unsafe(m)) if m == "qcow2: unknown incompatible feature bits 0x10000000000")
        );
        let mut f = base.clone();
        f[79] = 4;
        assert!(
            matches!(open(Arc::new(f), &Limits::default()), Err(FormatError::Unsafe(m)) if m == "qcow2: external data file is not allowed")
        );
        let mut f = base.clone();
        f[8..16].copy_from_slice(&512u64.to_be_bytes());
        f[16..20].copy_from_slice(&11u32.to_be_bytes());
        f[512..523].copy_from_slice(b"/etc/passwd");
        assert!(
            matches!(open(Arc::new(f), &Limits::default()), Err(FormatError::Unsafe(m)) if m == "qcow2: backing file \"/etc/passwd\" is not allowed")
        );
        let mut f = base.clone();
        f[40..48].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert!(
            matches!(open(Arc::new(f), &Limits::default()), Err(FormatError::Corrupt(m)) if m.contains("L1 table at offset 0x10000000000 (8 bytes) lies past the end of the file"))
        );
        let mut f = base.clone();
        f[36..40].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(
            matches!(open(Arc::new(f), &Limits::default()), Err(FormatError::Unsafe(m)) if m.contains("L1 table of 34359738360 bytes exceeds the limit"))
        );
        let mut f = base;
        f[32..36].copy_from_slice(&2u32.to_be_bytes());
        assert!(matches!(
            open(Arc::new(f), &Limits::default()),
            Err(FormatError::Unsupported(_))
        ));
    }
}
