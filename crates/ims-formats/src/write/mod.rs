//! Writers: turn any [`DiskImage`] into an image file of another format.
//!
//! One entry point, [`write_image`], picks the writer for a [`Format`] and its [`WriteOptions`].
//! Every writer:
//! - asks [`DiskImage::block_status`] first and never reads what is zero or unallocated, and drops
//!   units that read as all zeros, so the output is as sparse as the format allows; on a seekable
//!   target, zero 64 KiB pieces inside stored blocks are left as file holes too;
//! - streams: memory stays bounded (a few MiB per worker thread plus per-format tables that grow
//!   with the virtual size, never with the data), never a whole image;
//! - reads and compresses on all cores (see [`WriteOptions::threads`]) and writes in order;
//! - reports progress as guest bytes dealt with, from 0 to the virtual size;
//! - returns the length of the file it wrote, or an error; it never panics on any input.
//!
//! Output goes to a [`Target`]: a seekable sink ([`WriteAt`], e.g. a file) or a sequential one
//! ([`std::io::Write`], e.g. a pipe or an upload body). [`needs_seekable`] tells which a format needs.

pub(crate) mod codec;
mod ids;
pub(crate) mod pipeline;
mod qcow2;
mod raw;
pub(crate) mod seq;
mod vhd;
mod vhdx;
mod vmdk;

use std::io::Write;

pub use crate::zvhd::ZvhdOptions;
use crate::{DiskImage, Format, FormatError, Result, WriteAt};

/// Where a writer puts the image file.
pub enum Target<'a> {
    /// A seekable sink, e.g. a file. Writers first truncate it to length 0, then leave holes where the
    /// image is empty (sparse files). Every format can be written to it.
    Seekable(&'a dyn WriteAt),
    /// A sequential sink, e.g. a pipe or an HTTP body. Only formats laid out front to back can be
    /// written to it (see [`needs_seekable`]); RAW and fixed VHD write their zeros out in full.
    Stream(&'a mut dyn Write),
}

/// Compression of QCOW2 clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qcow2Compression {
    /// Raw deflate (`compression_type=zlib`), readable by every qemu.
    Deflate,
    /// zstd (`compression_type=zstd`, incompatible feature bit 3), qemu 5.1 and later.
    Zstd,
}

/// VMDK layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmdkSubformat {
    /// Compressed grains with markers, grain tables and directory at the end, footer and
    /// end-of-stream marker: the OVA/OVF layout. Writable to a [`Target::Stream`].
    #[default]
    StreamOptimized,
    /// Hosted sparse extent with embedded descriptor and preallocated grain tables. Needs a
    /// [`Target::Seekable`].
    MonolithicSparse,
}

/// VHD layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VhdSubformat {
    /// Dynamic disk: blocks allocated as needed, with a block allocation table. Needs a
    /// [`Target::Seekable`].
    #[default]
    Dynamic,
    /// Fixed disk: the guest disk followed by a 512-byte footer (what Azure takes).
    Fixed,
}

/// Settings of the writers. `WriteOptions::default()` gives qemu-img's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Threads that read and compress; 0 means one per available core.
    pub threads: usize,
    /// QCOW2 cluster size: a power of two from 4 KiB to 2 MiB. Default 64 KiB.
    pub qcow2_cluster_size: u64,
    /// QCOW2 cluster compression; `None` (default) writes plain clusters.
    pub qcow2_compression: Option<Qcow2Compression>,
    /// VMDK layout; default streamOptimized.
    pub vmdk_subformat: VmdkSubformat,
    /// VHD layout; default dynamic.
    pub vhd_subformat: VhdSubformat,
    /// VHDX block size: a power of two from 1 MiB to 256 MiB. `None` picks by virtual size as qemu
    /// does (8 MiB up to 1 GiB, 16 MiB up to 100 GiB, 32 MiB up to 32 TiB, then 64 MiB).
    pub vhdx_block_size: Option<u64>,
    /// ZVHD and ZVHD2 settings. Their `threads` field is replaced by [`WriteOptions::threads`].
    pub zvhd: ZvhdOptions,
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions {
            threads: 0,
            qcow2_cluster_size: 64 << 10,
            qcow2_compression: None,
            vmdk_subformat: VmdkSubformat::default(),
            vhd_subformat: VhdSubformat::default(),
            vhdx_block_size: None,
            zvhd: ZvhdOptions::default(),
        }
    }
}

/// True when `format` (with the subformat chosen in `opts`) can only be written to a
/// [`Target::Seekable`]: QCOW2, VMDK monolithicSparse, dynamic VHD and VHDX.
pub fn needs_seekable(format: Format, opts: &WriteOptions) -> bool {
    match format {
        Format::Qcow2 | Format::Vhdx => true,
        Format::Vmdk => opts.vmdk_subformat == VmdkSubformat::MonolithicSparse,
        Format::Vhd => opts.vhd_subformat == VhdSubformat::Dynamic,
        _ => false,
    }
}

/// True when IMS can write `format`: RAW, QCOW2, VMDK, VHD, VHDX, ZVHD and ZVHD2.
pub fn can_write(format: Format) -> bool {
    matches!(
        format,
        Format::Raw
            | Format::Qcow2
            | Format::Vmdk
            | Format::Vhd
            | Format::Vhdx
            | Format::Zvhd
            | Format::Zvhd2
    )
}

/// Writes the guest disk of `src` as an image file of `format` to `target`.
///
/// Returns the length in bytes of the file written. `progress` is called on the calling thread
/// with the guest bytes dealt with so far (non-decreasing, ending at `src.virtual_size()`).
/// Errors: `Unsupported` for a format IMS does not write, a format that needs a seekable sink given a
/// stream, or a disk too large for the format; `Io` for failing reads or writes; whatever the
/// source's reader reports for damaged input. On error the target holds a partial, invalid file.
pub fn write_image(
    src: &dyn DiskImage,
    format: Format,
    target: Target<'_>,
    opts: &WriteOptions,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    if needs_seekable(format, opts) && matches!(target, Target::Stream(_)) {
        return Err(FormatError::Unsupported(format!(
            "{} output needs a seekable destination (a file), not a stream",
            describe(format, opts)
        )));
    }
    let threads = opts.threads;
    match (format, target) {
        (Format::Raw, Target::Seekable(out)) => raw::write_sparse(src, out, threads, progress),
        (Format::Raw, Target::Stream(out)) => raw::write_stream(src, out, threads, progress),
        (Format::Qcow2, Target::Seekable(out)) => {
            let q = qcow2::Qcow2Options {
                cluster_size: opts.qcow2_cluster_size,
                compression: opts.qcow2_compression,
            };
            qcow2::write(src, out, &q, threads, progress)
        }
        (Format::Vmdk, Target::Seekable(out))
            if opts.vmdk_subformat == VmdkSubformat::MonolithicSparse =>
        {
            vmdk::write_monolithic_sparse(src, out, threads, progress)
        }
        (Format::Vmdk, target) => with_stream(target, |w| {
            vmdk::write_stream_optimized(src, w, threads, progress)
        }),
        (Format::Vhd, Target::Seekable(out)) if opts.vhd_subformat == VhdSubformat::Dynamic => {
            vhd::write_dynamic(src, out, threads, progress)
        }
        (Format::Vhd, Target::Seekable(out)) => {
            vhd::write_fixed_sparse(src, out, threads, progress)
        }
        (Format::Vhd, Target::Stream(out)) => vhd::write_fixed_stream(src, out, threads, progress),
        (Format::Vhdx, Target::Seekable(out)) => {
            vhdx::write(src, out, opts.vhdx_block_size, threads, progress)
        }
        (Format::Zvhd, target) => {
            let z = ZvhdOptions {
                threads,
                ..opts.zvhd.clone()
            };
            with_stream(target, |w| {
                crate::zvhd::write_with_progress(src, w, &z, progress)
            })
        }
        (Format::Zvhd2, target) => {
            let z = ZvhdOptions {
                threads,
                ..opts.zvhd.clone()
            };
            with_stream(target, |w| {
                crate::zvhd2::write_with_progress(src, w, &z, progress)
            })
        }
        (other, _) => Err(FormatError::Unsupported(format!(
            "IMS does not write {other} images"
        ))),
    }
}

/// Runs a front-to-back writer on either kind of target (a seekable one is truncated first).
fn with_stream(target: Target<'_>, f: impl FnOnce(&mut dyn Write) -> Result<u64>) -> Result<u64> {
    match target {
        Target::Stream(w) => {
            let n = f(w)?;
            w.flush()?;
            Ok(n)
        }
        Target::Seekable(out) => {
            out.set_len(0)?;
            let mut w = seq::SeqWriter::new(out);
            let n = f(&mut w)?;
            w.flush()?;
            Ok(n)
        }
    }
}

fn describe(format: Format, opts: &WriteOptions) -> String {
    match format {
        Format::Vmdk => format!("VMDK {:?}", opts.vmdk_subformat),
        Format::Vhd => format!("VHD {:?}", opts.vhd_subformat),
        other => other.as_str().to_ascii_uppercase(),
    }
}
