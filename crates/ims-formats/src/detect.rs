//! Recognising an image's format from its content.

use crate::{Format, ReadAt, Result};

/// Bytes of the file start handed to the probes.
pub const PROBE_LEN: usize = 64 * 1024;

/// The format `src`'s content is in, by magic numbers; [`Format::Raw`] when nothing matches.
///
/// Order: magics at offset 0 (qcow2 and qcow, QED, VMDK sparse extents, VHD footer copy, VHDX,
/// VDI at 0x40, ZVHD, ZVHD2), then a VMDK text descriptor, then a VHD footer at the end of the
/// file (fixed VHD), then ISO 9660/UDF descriptors at 32 KiB. Reads at most the first 64 KiB and
/// the last 512 bytes.
pub fn detect(src: &dyn ReadAt) -> Result<Format> {
    let size = src.size()?;
    let head_len = usize::try_from(size.min(PROBE_LEN as u64)).unwrap_or(PROBE_LEN);
    let mut head = vec![0u8; head_len];
    src.read_exact_at(&mut head, 0)?;
    if let Some(f) = detect_header(&head) {
        return Ok(f);
    }
    if size >= 512 {
        let mut tail = [0u8; 512];
        src.read_exact_at(&mut tail, size - 512)?;
        if crate::vhd::probe(&tail) {
            return Ok(Format::Vhd);
        }
    }
    if crate::iso::probe(&head) {
        return Ok(Format::Iso);
    }
    Ok(Format::Raw)
}

/// The format recognised from the start of a file alone (`header`: the first 64 KiB or less);
/// `None` when nothing matches there. Does not look for ISO descriptors or a fixed VHD footer.
pub fn detect_header(header: &[u8]) -> Option<Format> {
    if crate::qcow::probe(header) {
        Some(Format::Qcow)
    } else if crate::qcow2::probe(header) {
        Some(Format::Qcow2)
    } else if crate::qed::probe(header) {
        Some(Format::Qed)
    } else if header.starts_with(b"KDMV") || header.starts_with(b"COWD") {
        Some(Format::Vmdk)
    } else if crate::vhd::probe(header) {
        Some(Format::Vhd)
    } else if crate::vhdx::probe(header) {
        Some(Format::Vhdx)
    } else if crate::vdi::probe(header) {
        Some(Format::Vdi)
    } else if crate::zvhd2::probe(header) {
        Some(Format::Zvhd2)
    } else if crate::zvhd::probe(header) {
        Some(Format::Zvhd)
    } else if crate::vmdk::probe(header) {
        Some(Format::Vmdk)
    } else {
        None
    }
}
