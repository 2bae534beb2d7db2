//! VMDK: monolithicSparse and streamOptimized (one hosted sparse extent with its descriptor
//! embedded). Grain directory and tables, zeroed grains, compressed grains with markers, the
//! footer of stream-optimized files. The redundant grain directory is ignored.
//!
//! Refused (`Unsafe`): descriptor files and any descriptor whose extents name a file other than the
//! image itself, other createTypes, parent files, descriptor lines outside the strict grammar.

mod descriptor;
mod header;

pub use descriptor::{is_plain_file_name, looks_like_descriptor, parse_descriptor, Access, Descriptor, Extent};
pub use header::{
    parse_footer, parse_marker, parse_sparse_header, Marker, SparseHeader, COMPRESSION_DEFLATE, FLAG_COMPRESSED,
    FLAG_MARKERS, FLAG_NL_DETECT, FLAG_RGD, FLAG_ZERO_GRAIN, GD_AT_END, MAGIC, MAGIC_COWD, MARKER_EOS, MARKER_FOOTER,
    MARKER_GRAIN_DIRECTORY, MARKER_GRAIN_TABLE,
};

use std::sync::Arc;

use crate::check::Claim;
use crate::reader::cache::{LastDecoded, DEFAULT_CACHE_BYTES};
use crate::reader::codec::inflate_zlib_bounded;
use crate::reader::fields::le32_at;
use crate::reader::{check_virtual_size, mul, quote, BlockMap, Fields, Mapped, Mapping, Run, Source, TableCache};
use crate::{DiskImage, Format, FormatError, ImageDetails, Limits, ReadAt, Result};

use descriptor::MAX_DESCRIPTOR_BYTES;

const NAME: &str = "vmdk";
/// Largest grain accepted (16 MiB); VMware uses 64 KiB.
const MAX_GRAIN_SECTORS: u64 = 32768;
/// Grain table entry meaning "zeroed grain" when the header enables it.
const GTE_ZEROED: u32 = 1;

fn corrupt(msg: String) -> FormatError {
    FormatError::Corrupt(format!("{NAME}: {msg}"))
}

/// True when `header` starts with a sparse extent magic (`KDMV`, `COWD`) or is a text descriptor.
pub fn probe(header: &[u8]) -> bool {
    header.starts_with(&MAGIC) || header.starts_with(&MAGIC_COWD) || looks_like_descriptor(header)
}

/// The createTypes this reader accepts.
pub const ALLOWED_CREATE_TYPES: [&str; 2] = ["monolithicSparse", "streamOptimized"];

/// Applies the safety policy to the descriptor embedded in a sparse extent: an allowed createType,
/// no parent, exactly one SPARSE extent whose name could only be the file itself.
pub fn check_embedded_descriptor(d: &Descriptor) -> Result<()> {
    if let Some(parent) = d.field("parentFileNameHint") {
        return Err(FormatError::Unsafe(format!(
            "{NAME}: parent file {} is not allowed",
            quote(parent.as_bytes())
        )));
    }
    for (i, e) in d.extents.iter().enumerate() {
        if i > 0 || e.kind != "SPARSE" || !is_plain_file_name(&e.file_name) {
            return Err(FormatError::Unsafe(format!(
                "{NAME}: extent {} refers to another file",
                quote(e.file_name.as_bytes())
            )));
        }
    }
    let ct = d
        .create_type()
        .ok_or_else(|| FormatError::Unsafe(format!("{NAME}: descriptor has no createType")))?;
    if !ALLOWED_CREATE_TYPES.iter().any(|a| a.eq_ignore_ascii_case(ct)) {
        return Err(FormatError::Unsafe(format!(
            "{NAME}: createType {} is not allowed (only monolithicSparse and streamOptimized)",
            quote(ct.as_bytes())
        )));
    }
    if d.extents.is_empty() {
        return Err(FormatError::Unsafe(format!("{NAME}: descriptor lists no extent")));
    }
    Ok(())
}

/// The refusal for a file that is only a descriptor: whatever it lists is another file.
pub fn refuse_descriptor_file(d: &Descriptor) -> FormatError {
    match d.extents.first() {
        Some(e) => FormatError::Unsafe(format!(
            "{NAME}: extent {} refers to another file",
            quote(e.file_name.as_bytes())
        )),
        None => FormatError::Unsafe(format!(
            "{NAME}: descriptor file without an embedded extent is not allowed (createType {})",
            quote(d.create_type().unwrap_or("").as_bytes())
        )),
    }
}

/// Opens a monolithicSparse or streamOptimized VMDK (see the module docs for what is refused).
pub fn open(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    Ok(Box::new(Mapped(open_map(src, limits)?)))
}

/// Parses and checks a sparse VMDK as [`open`] does, keeping its tables for the table check.
pub(crate) fn open_map(src: Arc<dyn ReadAt>, limits: &Limits) -> Result<VmdkMap> {
    let source = Source::new(src, NAME)?;
    let first = source.read_vec("header", 0, source.size().min(512))?;
    if !first.starts_with(&MAGIC) && !first.starts_with(&MAGIC_COWD) {
        // A descriptor file: parse it strictly (so a malformed one is named as such), then refuse.
        let text = source.read_vec("descriptor", 0, source.size().min(MAX_DESCRIPTOR_BYTES as u64))?;
        if !looks_like_descriptor(&text) {
            return Err(corrupt("neither a sparse extent nor a descriptor".into()));
        }
        let d = parse_descriptor(&text)?;
        return Err(refuse_descriptor_file(&d));
    }
    let start = parse_sparse_header(&first)?;

    // The descriptor, embedded after the header.
    if start.capacity == 0 && start.descriptor_offset != 0 {
        return Err(FormatError::Unsafe(format!(
            "{NAME}: sparse header of zero capacity defers to its descriptor's extents, which is not allowed"
        )));
    }
    if start.descriptor_offset != 1 || start.descriptor_size == 0 {
        return Err(corrupt(format!(
            "embedded descriptor at sector {} ({} sectors), expected at sector 1",
            start.descriptor_offset, start.descriptor_size
        )));
    }
    let desc_len = start
        .descriptor_size
        .saturating_mul(512)
        .min(MAX_DESCRIPTOR_BYTES as u64);
    let text = source.read_vec("embedded descriptor", 512, desc_len)?;
    let desc = parse_descriptor(&text)?;
    check_embedded_descriptor(&desc)?;

    let h = if start.gd_offset == GD_AT_END {
        if source.size() < 1536 {
            return Err(source.past_end("footer", 0, 1536));
        }
        let tail = source.read_vec("footer", source.size() - 1536, 1536)?;
        let footer = parse_footer(&tail)?;
        if footer.descriptor_offset != start.descriptor_offset || footer.descriptor_size != start.descriptor_size {
            return Err(corrupt("footer names a different descriptor than the header".into()));
        }
        footer
    } else {
        start
    };

    if h.grain_size == 0 || h.grain_size > MAX_GRAIN_SECTORS {
        return Err(corrupt(format!(
            "grain size of {} sectors is outside 1..={MAX_GRAIN_SECTORS}",
            h.grain_size
        )));
    }
    if h.num_gtes_per_gt == 0 || h.num_gtes_per_gt > 512 {
        return Err(corrupt(format!(
            "{} grain table entries per table is outside 1..=512",
            h.num_gtes_per_gt
        )));
    }
    if h.compress_algorithm > 1 {
        return Err(FormatError::Unsupported(format!(
            "{NAME}: compression algorithm {} is not supported",
            h.compress_algorithm
        )));
    }
    let virtual_size = mul(NAME, "capacity", h.capacity, 512)?;
    check_virtual_size(NAME, virtual_size, limits)?;
    if h.overhead > source.size() / 512 {
        return Err(corrupt(format!(
            "file is truncated: grain data starts at sector {} but the file has {} bytes",
            h.overhead,
            source.size()
        )));
    }
    let gt_coverage = u64::from(h.num_gtes_per_gt) * h.grain_size;
    let gd_entries = h.capacity.div_ceil(gt_coverage);
    let gd_offset = mul(NAME, "grain directory offset", h.gd_offset, 512)?;
    let gd = source.read_table("grain directory", gd_offset, gd_entries * 4, limits)?;
    let gt_bytes = u64::from(h.num_gtes_per_gt) * 4;
    for i in 0..gd_entries {
        let gt = u64::from(le32_at(&gd, i).unwrap_or(0));
        if gt != 0 {
            source.check_span(&format!("grain table (directory entry {i})"), gt * 512, gt_bytes)?;
        }
    }

    let subformat = desc.create_type().unwrap_or("monolithicSparse").to_string();
    let mut features = vec![
        ("subformat".to_string(), subformat),
        ("version".to_string(), h.version.to_string()),
    ];
    if h.has_zero_grain() {
        features.push(("zeroed_grain".into(), "true".into()));
    }
    let details = ImageDetails {
        cluster_size: Some(h.grain_size * 512),
        compression: h.compressed().then(|| "deflate".to_string()),
        features,
    };
    Ok(VmdkMap {
        source,
        virtual_size,
        gd,
        gt_bytes,
        cache: TableCache::new(DEFAULT_CACHE_BYTES),
        decoded: LastDecoded::new(),
        details,
        h,
    })
}

pub(crate) struct VmdkMap {
    source: Source,
    h: SparseHeader,
    virtual_size: u64,
    gd: Vec<u8>,
    gt_bytes: u64,
    cache: TableCache,
    decoded: LastDecoded,
    details: ImageDetails,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grain {
    /// File sector of the grain (of its marker when compressed).
    Sector(u64),
    Zero,
    Unallocated,
}

impl VmdkMap {
    /// Every host range the image uses: header, embedded descriptor, grain directory, grain tables
    /// and grains (for a compressed grain, its marker's first sector). A grain table that cannot be
    /// read is `Corrupt`.
    pub(crate) fn claims(&self) -> Result<Vec<Claim>> {
        let h = &self.h;
        let gd_len = (self.gd.len() as u64).next_multiple_of(512);
        let mut claims = vec![
            Claim::new(0, 512, "header".into()),
            Claim::new(512, h.descriptor_size.saturating_mul(512), "embedded descriptor".into()),
            Claim::new(h.gd_offset.saturating_mul(512), gd_len, "grain directory".into()),
        ];
        let per_gt = u64::from(h.num_gtes_per_gt);
        let grain_len = if h.compressed() { 512 } else { self.grain_bytes() };
        for i in 0..self.gd.len() as u64 / 4 {
            let gt = u64::from(le32_at(&self.gd, i).unwrap_or(0));
            if gt == 0 {
                continue;
            }
            let gt_off = gt * 512;
            claims.push(Claim::new(gt_off, self.gt_bytes.next_multiple_of(512), format!("grain table {i}")));
            let table = self.source.read_vec("grain table", gt_off, self.gt_bytes)?;
            for j in 0..per_gt {
                match le32_at(&table, j).unwrap_or(0) {
                    0 => {}
                    GTE_ZEROED if h.has_zero_grain() => {}
                    s => claims.push(Claim::new(u64::from(s) * 512, grain_len, format!("grain {}", i * per_gt + j))),
                }
            }
        }
        Ok(claims)
    }

    /// Length of the file.
    pub(crate) fn file_len(&self) -> u64 {
        self.source.size()
    }

    fn grain_bytes(&self) -> u64 {
        self.h.grain_size * 512
    }

    fn grain(&self, index: u64) -> Result<Grain> {
        let per_gt = u64::from(self.h.num_gtes_per_gt);
        let gt = le32_at(&self.gd, index / per_gt)
            .ok_or_else(|| corrupt(format!("grain {index} is outside the grain directory")))?;
        if gt == 0 {
            return Ok(Grain::Unallocated);
        }
        let gt_off = u64::from(gt) * 512;
        let table = self
            .cache
            .get_or_load(gt_off, || self.source.read_vec("grain table", gt_off, self.gt_bytes))?;
        let gte =
            le32_at(&table, index % per_gt).ok_or_else(|| corrupt(format!("grain table at {gt_off:#x} is short")))?;
        Ok(match gte {
            0 => Grain::Unallocated,
            GTE_ZEROED if self.h.has_zero_grain() => Grain::Zero,
            s => Grain::Sector(u64::from(s)),
        })
    }

    fn decode(&self, sector: u64) -> Result<Vec<u8>> {
        let at = sector * 512;
        let grain = self.grain_bytes();
        let what = format!("compressed grain at {at:#x}");
        let data = if self.h.has_markers() {
            let head = self.source.read_vec(&what, at, 12)?;
            let f = Fields::new(&head, NAME, "grain marker");
            let size = u64::from(f.u32_le(8)?);
            if size == 0 || size > 2 * grain {
                return Err(corrupt(format!("{what} has an invalid size {size}")));
            }
            self.source.read_vec(&what, at + 12, size)?
        } else {
            self.source.read_vec_clamped(&what, at, 2 * grain)?
        };
        inflate_zlib_bounded(NAME, &what, &data, grain)
    }
}

impl BlockMap for VmdkMap {
    fn format(&self) -> Format {
        Format::Vmdk
    }
    fn virtual_size(&self) -> u64 {
        self.virtual_size
    }
    fn source(&self) -> &Source {
        &self.source
    }

    fn map(&self, offset: u64, max_len: u64) -> Result<Mapping> {
        let gb = self.grain_bytes();
        let index = offset / gb;
        let in_grain = offset % gb;
        let first = self.grain(index)?;
        let mut len = (gb - in_grain).min(max_len);
        let run = match first {
            Grain::Sector(s) if self.h.compressed() => {
                return Ok(Mapping {
                    run: Run::Encoded {
                        unit: s,
                        offset: in_grain,
                    },
                    len,
                })
            }
            Grain::Sector(s) => Run::Host(s * 512 + in_grain),
            Grain::Zero => Run::Zero,
            Grain::Unallocated => Run::Unallocated,
        };
        let per_gt = u64::from(self.h.num_gtes_per_gt);
        let gt_end = (index / per_gt + 1) * per_gt;
        let mut next = index + 1;
        while len < max_len && next < gt_end {
            let g = self.grain(next)?;
            let k = next - index;
            let continues = match (first, g) {
                (Grain::Sector(a), Grain::Sector(b)) => b.checked_sub(a) == Some(k * self.h.grain_size),
                (a, b) => a == b,
            };
            if !continues {
                break;
            }
            len = len.saturating_add(gb).min(max_len);
            next += 1;
        }
        Ok(Mapping { run, len })
    }

    fn read_encoded(&self, unit: u64, offset: u64, buf: &mut [u8]) -> Result<()> {
        let grain = self.decoded.get_or_decode(unit, || self.decode(unit))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| grain.get(start..end))
            .ok_or_else(|| {
                corrupt(format!(
                    "compressed grain at sector {unit} holds {} bytes, fewer than read",
                    grain.len()
                ))
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn details(&self) -> ImageDetails {
        self.details.clone()
    }
}
