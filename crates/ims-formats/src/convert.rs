//! Conversion: the guest disk of any readable image, written in any format IMS writes.
//!
//! Conversion never stages: it reads the source through its [`DiskImage`] (which may sit on a
//! chunk-store manifest), skips what block status says is empty, reads and compresses on all cores
//! and streams the output. See [`crate::write`] for the writers' guarantees.

use std::fs::OpenOptions;
use std::path::Path;

pub use crate::write::{
    can_write, needs_seekable, Qcow2Compression, Target, VhdSubformat, VmdkSubformat, WriteOptions,
    ZvhdOptions,
};
use crate::{DiskImage, Format, FormatError, Result};

/// Converts the guest disk of `src` to `dst_format`, written to `out`.
///
/// Returns the length in bytes of the file written. `progress` receives the guest bytes dealt with
/// so far. Errors: `Unsupported` when IMS does not write `dst_format` (QCOW, QED, VDI, ISO), when
/// the format needs a seekable destination and `out` is a stream (see [`needs_seekable`]), or when
/// the disk is too large for the format; otherwise the errors of the source and the sink.
pub fn convert(
    src: &dyn DiskImage,
    dst_format: Format,
    out: Target<'_>,
    opts: &WriteOptions,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    if !can_write(dst_format) {
        return Err(FormatError::Unsupported(format!(
            "IMS cannot write {dst_format} images"
        )));
    }
    crate::write::write_image(src, dst_format, out, opts, progress)
}

/// Converts `src` into a new file at `path` (created, or truncated if it exists), then syncs it to
/// disk. Returns the file's length. On error the partial file is removed.
pub fn convert_to_file(
    src: &dyn DiskImage,
    dst_format: Format,
    path: &Path,
    opts: &WriteOptions,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    if !can_write(dst_format) {
        return Err(FormatError::Unsupported(format!(
            "IMS cannot write {dst_format} images"
        )));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let result = convert(src, dst_format, Target::Seekable(&file), opts, progress).and_then(|n| {
        file.sync_all()?;
        Ok(n)
    });
    if result.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    result
}
