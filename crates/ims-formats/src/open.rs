//! Opening an image file as a given format.

use std::sync::Arc;

use crate::{DiskImage, Format, Limits, ReadAt, Result};

/// Opens `src` as `format` and returns its guest disk.
///
/// Runs that format's reader, which checks the structure and applies the safety policy (no backing
/// or parent files, no external data files, no unknown incompatible features, tables inside the
/// file and within `limits`). It does not check that the content *is* of `format` beyond what the
/// reader needs: use [`crate::inspect`] for untrusted files. Reads only `src`; never opens another
/// file.
pub fn open(src: Arc<dyn ReadAt>, format: Format, limits: &Limits) -> Result<Box<dyn DiskImage>> {
    match format {
        Format::Raw => crate::raw::open(src, limits),
        Format::Iso => crate::iso::open(src, limits),
        Format::Qcow2 => crate::qcow2::open(src, limits),
        Format::Qcow => crate::qcow::open(src, limits),
        Format::Qed => crate::qed::open(src, limits),
        Format::Vmdk => crate::vmdk::open(src, limits),
        Format::Vhd => crate::vhd::open(src, limits),
        Format::Vhdx => crate::vhdx::open(src, limits),
        Format::Vdi => crate::vdi::open(src, limits),
        Format::Zvhd => crate::zvhd::open(src, limits),
        Format::Zvhd2 => crate::zvhd2::open(src, limits),
    }
}
