//! Consistency checks of an image's metadata, beyond what opening and reading it verify.
//!
//! [`check_tables`] looks for what a reader never notices because it only follows the tables:
//! QCOW2 refcounts that disagree with the clusters in use (corruptions and leaked clusters, counted as
//! `qemu-img check` counts them), and blocks of VHD, VHDX and VMDK images that overlap each other or
//! the metadata, or lie past the end of the file.

mod extents;
mod qcow2;
mod tables;

use std::sync::Arc;

use crate::{Format, Limits, ReadAt, Result};

pub(crate) use extents::Claim;

/// Findings listed in full; the rest are only counted.
pub const MAX_LISTED: usize = 100;

/// What a table check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCheck {
    /// Inconsistencies that can make reads, or later writes by another tool, return wrong data
    /// (`qemu-img check`'s "errors").
    pub corruptions: u64,
    /// Clusters or blocks the metadata holds but nothing uses: wasted space, no harm to data.
    pub leaks: u64,
    /// One line per finding, worded like `qemu-img check` where it has the same finding
    /// (`ERROR cluster 5 refcount=0 reference=1`, `Leaked cluster 9 refcount=1 reference=0`);
    /// at most [`MAX_LISTED`] lines.
    pub messages: Vec<String>,
    /// Checks that were not done for this image, and why (e.g. QCOW2 refcounts of an image with
    /// persistent bitmaps).
    pub skipped: Vec<String>,
}

impl TableCheck {
    pub(crate) fn corruption(&mut self, msg: String) {
        self.corruptions += 1;
        self.note(msg);
    }

    pub(crate) fn leak(&mut self, msg: String) {
        self.leaks += 1;
        self.note(msg);
    }

    fn note(&mut self, msg: String) {
        if self.messages.len() < MAX_LISTED {
            self.messages.push(msg);
        }
    }
}

/// Checks the metadata tables of `src`, an image of `format` that opens cleanly.
///
/// Read-only; memory is bounded by `limits.max_table_bytes` per table and by a few bytes per
/// cluster of the file (QCOW2). Formats without allocation tables (RAW, ISO, ZVHD, ...) and
/// layouts without any (fixed VHD, streamOptimized VMDK, whose grains are checked by reading them)
/// get an empty report. Errors: `Corrupt` when the header or a table cannot be read at all (then
/// opening the image fails the same way), `Unsafe` when a table exceeds the limits, `Io` for I/O.
pub fn check_tables(src: Arc<dyn ReadAt>, format: Format, limits: &Limits) -> Result<TableCheck> {
    match format {
        Format::Qcow2 => qcow2::check(src, limits),
        Format::Vhd => tables::check_vhd(src, limits),
        Format::Vhdx => tables::check_vhdx(src, limits),
        Format::Vmdk => tables::check_vmdk(src, limits),
        _ => Ok(TableCheck::default()),
    }
}
