//! The qcow2 header and its extensions, parsed as a pure function over bytes.

use crate::reader::{quote, Fields};
use crate::{FormatError, Result};

/// `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";
/// Size of the version 2 header.
pub const V2_HEADER_LEN: u32 = 72;
/// Minimum size of the version 3 header.
pub const V3_HEADER_MIN_LEN: u32 = 104;

/// Incompatible feature bit 0: refcounts may be inconsistent.
pub const INCOMPAT_DIRTY: u64 = 1 << 0;
/// Incompatible feature bit 1: the image is marked corrupt.
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature bit 2: guest data lives in an external data file.
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Incompatible feature bit 3: `compression_type` is not deflate.
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Incompatible feature bit 4: extended L2 entries (subclusters).
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
/// All incompatible features this reader knows.
pub const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
/// Compatible feature bit 0: lazy refcounts.
pub const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;
/// Autoclear feature bit 0: bitmaps extension is consistent.
pub const AUTOCLEAR_BITMAPS: u64 = 1 << 0;
/// Autoclear feature bit 1: the external data file is a consistent raw image.
pub const AUTOCLEAR_DATA_FILE_RAW: u64 = 1 << 1;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_BITMAPS: u32 = 0x2385_2875;
const EXT_ENCRYPTION: u32 = 0x0537_be77;
const EXT_DATA_FILE: u32 = 0x4441_5441;

/// One entry of the feature name table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureName {
    /// 0 incompatible, 1 compatible, 2 autoclear.
    pub kind: u8,
    /// Bit number within the feature bitmap (0..=63).
    pub bit: u8,
    /// Feature name.
    pub name: String,
}

/// A header extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// Backing file format name (0xe2792aca).
    BackingFormat(Vec<u8>),
    /// Feature name table (0x6803f857).
    FeatureNames(Vec<FeatureName>),
    /// Persistent dirty bitmaps (0x23852875), with their count.
    Bitmaps {
        /// Number of bitmaps.
        count: u32,
    },
    /// Full disk encryption header pointer (0x0537be77).
    Encryption {
        /// File offset of the encryption header.
        offset: u64,
        /// Length of the encryption header.
        length: u64,
    },
    /// External data file name (0x44415441).
    DataFile(Vec<u8>),
    /// An extension this reader does not know (safe to ignore per the spec).
    Unknown {
        /// Extension type.
        kind: u32,
        /// Length of its data.
        length: u32,
    },
}

/// The qcow2 header (all versions), with its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// File offset of the backing file name; 0 when there is none.
    pub backing_file_offset: u64,
    /// Length of the backing file name (at most 1023).
    pub backing_file_size: u32,
    /// log2 of the cluster size, 9..=21.
    pub cluster_bits: u32,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// 0 none, 1 AES, 2 LUKS.
    pub crypt_method: u32,
    /// Number of entries in the active L1 table.
    pub l1_size: u32,
    /// File offset of the active L1 table (cluster-aligned).
    pub l1_table_offset: u64,
    /// File offset of the refcount table (cluster-aligned).
    pub refcount_table_offset: u64,
    /// Size of the refcount table in clusters.
    pub refcount_table_clusters: u32,
    /// Number of internal snapshots.
    pub nb_snapshots: u32,
    /// File offset of the snapshot table.
    pub snapshots_offset: u64,
    /// Features a reader must understand (version 3; 0 for version 2).
    pub incompatible_features: u64,
    /// Features a reader may ignore.
    pub compatible_features: u64,
    /// Features a writer must clear when it does not know them.
    pub autoclear_features: u64,
    /// log2 of the refcount width in bits (4 for version 2).
    pub refcount_order: u32,
    /// Length of the header structure (72 for version 2).
    pub header_length: u32,
    /// 0 deflate, 1 zstd.
    pub compression_type: u8,
    /// Header extensions, in file order.
    pub extensions: Vec<Extension>,
}

impl Header {
    /// Cluster size in bytes (`cluster_bits` is validated to 9..=21 by [`parse_header`]).
    pub fn cluster_size(&self) -> u64 {
        1u64 << self.cluster_bits
    }

    /// True when L2 entries are 128-bit with subcluster bitmaps.
    pub fn extended_l2(&self) -> bool {
        self.incompatible_features & INCOMPAT_EXTL2 != 0
    }

    /// The external data file name from its header extension, if present.
    pub fn data_file_name(&self) -> Option<&[u8]> {
        self.extensions.iter().find_map(|e| match e {
            Extension::DataFile(n) => Some(n.as_slice()),
            _ => None,
        })
    }

    /// Names of the set incompatible bits in `bits`, from the feature name table.
    pub fn incompatible_names(&self, bits: u64) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.extensions {
            if let Extension::FeatureNames(names) = e {
                for n in names {
                    if n.kind == 0 && n.bit < 64 && bits & (1u64 << n.bit) != 0 {
                        out.push(n.name.clone());
                    }
                }
            }
        }
        out
    }
}

fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("qcow2: {msg}"))
}

/// True when `header` starts with the qcow2 magic and a version of 2 or more.
pub fn probe(header: &[u8]) -> bool {
    let f = Fields::new(header, "qcow2", "header");
    header.starts_with(&MAGIC) && f.u32_be(4).map(|v| v >= 2).unwrap_or(false)
}

/// Parses the header from the start of the file. `buf` should hold the whole first cluster (or
/// the whole file if shorter), where the header extensions live.
///
/// Checks the structure only (magic, version 2 or 3, cluster size 512 B..2 MiB, header length,
/// extension bounds, compression type consistency); what is *allowed* (backing files, data files,
/// features) is the caller's policy.
pub fn parse_header(buf: &[u8]) -> Result<Header> {
    let f = Fields::new(buf, "qcow2", "header");
    if f.slice(0, 4)? != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let version = f.u32_be(4)?;
    if version != 2 && version != 3 {
        return Err(FormatError::Unsupported(format!(
            "qcow2: version {version} is not supported"
        )));
    }
    let cluster_bits = f.u32_be(20)?;
    if !(9..=21).contains(&cluster_bits) {
        return Err(corrupt(format!("cluster_bits {cluster_bits} is outside 9..=21")));
    }
    let cluster_size = 1usize << cluster_bits;
    let mut h = Header {
        version,
        backing_file_offset: f.u64_be(8)?,
        backing_file_size: f.u32_be(16)?,
        cluster_bits,
        size: f.u64_be(24)?,
        crypt_method: f.u32_be(32)?,
        l1_size: f.u32_be(36)?,
        l1_table_offset: f.u64_be(40)?,
        refcount_table_offset: f.u64_be(48)?,
        refcount_table_clusters: f.u32_be(56)?,
        nb_snapshots: f.u32_be(60)?,
        snapshots_offset: f.u64_be(64)?,
        incompatible_features: 0,
        compatible_features: 0,
        autoclear_features: 0,
        refcount_order: 4,
        header_length: V2_HEADER_LEN,
        compression_type: 0,
        extensions: Vec::new(),
    };
    if version == 3 {
        h.incompatible_features = f.u64_be(72)?;
        h.compatible_features = f.u64_be(80)?;
        h.autoclear_features = f.u64_be(88)?;
        h.refcount_order = f.u32_be(96)?;
        h.header_length = f.u32_be(100)?;
        if h.header_length < V3_HEADER_MIN_LEN || !h.header_length.is_multiple_of(8) {
            return Err(corrupt(format!(
                "header_length {} must be at least {V3_HEADER_MIN_LEN} and a multiple of 8",
                h.header_length
            )));
        }
        if h.header_length as usize > cluster_size {
            return Err(corrupt(format!(
                "header_length {} is larger than the cluster size {cluster_size}",
                h.header_length
            )));
        }
        // Make sure the whole declared header is present.
        f.slice(0, h.header_length as usize)?;
        if h.header_length > V3_HEADER_MIN_LEN {
            h.compression_type = f.u8(104)?;
        }
    }
    if h.refcount_order > 6 {
        return Err(corrupt(format!("refcount_order {} is larger than 6", h.refcount_order)));
    }
    let compression_bit = h.incompatible_features & INCOMPAT_COMPRESSION != 0;
    match (compression_bit, h.compression_type) {
        (false, 0) => {}
        (true, 0) => {
            return Err(corrupt(
                "compression type bit set but compression_type is deflate".into(),
            ))
        }
        (false, t) => {
            return Err(corrupt(format!(
                "compression_type {t} set without the compression type bit"
            )))
        }
        (true, 1) => {}
        (true, t) => {
            return Err(FormatError::Unsupported(format!(
                "qcow2: compression type {t} is not supported"
            )))
        }
    }
    if h.extended_l2() && cluster_bits < 14 {
        return Err(corrupt(format!(
            "extended L2 entries need clusters of at least 16 KiB, not {cluster_size} bytes"
        )));
    }
    h.extensions = parse_extensions(buf, h.header_length as usize, cluster_size)?;
    Ok(h)
}

/// Parses the header extensions from `start` up to the end of the first cluster (or of `buf`).
fn parse_extensions(buf: &[u8], start: usize, cluster_size: usize) -> Result<Vec<Extension>> {
    let end = buf.len().min(cluster_size);
    let f = Fields::new(buf.get(..end).unwrap_or(&[]), "qcow2", "header extension area");
    let mut out = Vec::new();
    let mut off = start;
    while off.checked_add(8).is_some_and(|e| e <= end) {
        let kind = f.u32_be(off)?;
        let length = f.u32_be(off + 4)?;
        let len = usize::try_from(length).unwrap_or(usize::MAX);
        if kind == EXT_END {
            break;
        }
        let data_start = off + 8;
        let data = f.slice(data_start, len).map_err(|_| {
            corrupt(format!(
                "header extension {kind:#010x} of {len} bytes at offset {off} runs past the first cluster"
            ))
        })?;
        let ext = match kind {
            EXT_BACKING_FORMAT => Extension::BackingFormat(data.to_vec()),
            EXT_DATA_FILE => Extension::DataFile(data.to_vec()),
            EXT_FEATURE_NAMES => Extension::FeatureNames(
                data.chunks_exact(48)
                    .map(|e| FeatureName {
                        kind: e.first().copied().unwrap_or(0),
                        bit: e.get(1).copied().unwrap_or(0),
                        name: {
                            let raw = e.get(2..).unwrap_or(&[]);
                            let n = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                            String::from_utf8_lossy(raw.get(..n).unwrap_or(&[])).into_owned()
                        },
                    })
                    .collect(),
            ),
            EXT_BITMAPS => {
                let d = Fields::new(data, "qcow2", "bitmaps extension");
                Extension::Bitmaps { count: d.u32_be(0)? }
            }
            EXT_ENCRYPTION => {
                let d = Fields::new(data, "qcow2", "encryption header extension");
                Extension::Encryption {
                    offset: d.u64_be(0)?,
                    length: d.u64_be(8)?,
                }
            }
            other => Extension::Unknown { kind: other, length },
        };
        out.push(ext);
        // Advance past the data, padded to 8 bytes.
        let padded = len.checked_add(7).map(|l| l & !7);
        off = match padded.and_then(|p| data_start.checked_add(p)) {
            Some(o) => o,
            None => break,
        };
    }
    Ok(out)
}

/// The message for a refused backing file, given its name if readable.
pub(crate) fn backing_file_refusal(name: Option<&[u8]>, h: &Header) -> FormatError {
    match name {
        Some(n) => FormatError::Unsafe(format!("qcow2: backing file {} is not allowed", quote(n))),
        None => FormatError::Unsafe(format!(
            "qcow2: backing file (name of {} bytes at offset {:#x}) is not allowed",
            h.backing_file_size, h.backing_file_offset
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid v3 header in a 64 KiB cluster.
    pub(crate) fn v3_header(size: u64) -> Vec<u8> {
        let mut b = vec![0u8; 65536];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&size.to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        b
    }

    #[test]
    fn parses_minimal_v3() {
        let h = parse_header(&v3_header(1 << 20)).unwrap();
        assert_eq!(h.version, 3);
        assert_eq!(h.cluster_size(), 65536);
        assert_eq!(h.size, 1 << 20);
        assert!(h.extensions.is_empty());
    }

    #[test]
    fn rejects_bad_fields() {
        let mut b = v3_header(1);
        b[20..24].copy_from_slice(&30u32.to_be_bytes());
        assert!(parse_header(&b).is_err());
        let mut b = v3_header(1);
        b[100..104].copy_from_slice(&101u32.to_be_bytes());
        assert!(parse_header(&b).is_err());
        let mut b = v3_header(1);
        b[4..8].copy_from_slice(&4u32.to_be_bytes());
        assert!(matches!(parse_header(&b), Err(FormatError::Unsupported(_))));
        // compression_type without the bit
        let mut b = v3_header(1);
        b[104] = 1;
        assert!(parse_header(&b).is_err());
        // truncated at every length
        let b = v3_header(1);
        for n in 0..112 {
            assert!(parse_header(&b[..n]).is_err(), "length {n}");
        }
    }

    #[test]
    fn extension_bounds_are_checked() {
        let mut b = v3_header(1);
        // data file extension with a name, then one running past the cluster
        b[112..116].copy_from_slice(&EXT_DATA_FILE.to_be_bytes());
        b[116..120].copy_from_slice(&5u32.to_be_bytes());
        b[120..125].copy_from_slice(b"x.raw");
        let h = parse_header(&b).unwrap();
        assert_eq!(h.data_file_name(), Some(&b"x.raw"[..]));
        b[128..132].copy_from_slice(&0x1234u32.to_be_bytes());
        b[132..136].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_header(&b).is_err());
    }

    #[test]
    fn feature_names() {
        let mut b = v3_header(1);
        b[112..116].copy_from_slice(&EXT_FEATURE_NAMES.to_be_bytes());
        b[116..120].copy_from_slice(&48u32.to_be_bytes());
        b[120] = 0;
        b[121] = 40;
        b[122..126].copy_from_slice(b"warp");
        let h = parse_header(&b).unwrap();
        assert_eq!(h.incompatible_names(1 << 40), vec!["warp".to_string()]);
    }
}
