//! Disk image formats, parsed and written natively.
//!
//! Every reader turns an image file (anything implementing [`ReadAt`]) into a [`DiskImage`]: the guest
//! disk it describes, readable at any offset, with block status so that conversion skips what is empty.
//! [`inspect`] runs the safety checks before anything else trusts a file.

mod error;
mod io;
// Shared machinery of the readers: checked fields, bounded reads, table cache, codecs.
pub(crate) mod reader;

// Readers (one module per format) and the dispatch over them.
pub mod detect;
pub mod inspect;
pub mod iso;
pub mod open;
pub mod qcow;
pub mod qcow2;
pub mod qed;
pub mod raw;
pub mod vdi;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;
// Our own formats (reader and writer each), specified in docs/formats/zvhd.md.
pub mod zvhd;
pub mod zvhd2;
// Metadata consistency checks.
pub mod check;
// Writers and conversion.
pub mod convert;
pub mod write;

pub use detect::detect;
pub use error::{FormatError, Result};
pub use inspect::{inspect, Inspection};
pub use io::{ReadAt, WriteAt};
pub use open::open;
pub use convert::convert;
pub use write::{write_image, Target, WriteOptions};

use std::fmt;
use std::str::FromStr;

/// A disk image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Raw,
    Qcow2,
    Qcow,
    Qed,
    Vmdk,
    /// VHD (`vpc` in qemu-img, `vhd` in Glance).
    Vhd,
    Vhdx,
    Vdi,
    Iso,
    Zvhd,
    Zvhd2,
}

impl Format {
    pub const ALL: [Format; 11] = [
        Format::Raw,
        Format::Qcow2,
        Format::Qcow,
        Format::Qed,
        Format::Vmdk,
        Format::Vhd,
        Format::Vhdx,
        Format::Vdi,
        Format::Iso,
        Format::Zvhd,
        Format::Zvhd2,
    ];

    /// The Glance `disk_format` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Qcow => "qcow",
            Format::Qed => "qed",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vdi => "vdi",
            Format::Iso => "iso",
            Format::Zvhd => "zvhd",
            Format::Zvhd2 => "zvhd2",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = FormatError;
    /// Accepts Glance names, qemu-img names (`vpc`) and IMS names, case-insensitively.
    fn from_str(s: &str) -> Result<Format> {
        let lower = s.to_ascii_lowercase();
        if lower == "vpc" {
            return Ok(Format::Vhd);
        }
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == lower)
            .ok_or_else(|| FormatError::Unsupported(format!("unknown disk format {s:?}")))
    }
}

/// What a range of the guest disk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockStatus {
    /// Stored data (may still happen to be zeros).
    Data,
    /// Known to read as zeros (a zero cluster, a zero grain), with space possibly allocated.
    Zero,
    /// Not allocated in this image: reads as zeros.
    Unallocated,
}

/// A run of the guest disk with one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockExtent {
    pub offset: u64,
    pub length: u64,
    pub status: BlockStatus,
}

/// Bounds that keep a hostile image from making a reader allocate or loop without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest virtual disk accepted.
    pub max_virtual_size: u64,
    /// Largest metadata table (L1/L2 tables, BAT, grain directory, ...) held in memory at once.
    pub max_table_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_virtual_size: 16 << 40, max_table_bytes: 256 << 20 }
    }
}

/// Facts about an opened image, for `ims img info` and the inspector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDetails {
    /// Cluster, block or grain size, where the format has one.
    pub cluster_size: Option<u64>,
    /// e.g. `zlib`, `zstd`, `deflate` where clusters are compressed.
    pub compression: Option<String>,
    /// Format-specific facts: version, subformat, feature names, `lazy_refcounts`, `extended_l2`, ...
    pub features: Vec<(String, String)>,
}

/// A guest disk described by an image file: the common face of every reader.
///
/// Implementations are immutable after `open` and safe to read from several threads at once.
pub trait DiskImage: Send + Sync {
    /// The format this image was parsed as.
    fn format(&self) -> Format;

    /// Size of the guest disk in bytes.
    fn virtual_size(&self) -> u64;

    /// Fills `buf` with the guest disk's bytes at `offset`. Unallocated and zero ranges read as zeros.
    /// `offset + buf.len()` past `virtual_size` is an error; a damaged table or cluster is `Corrupt`
    /// naming the offset; never returns wrong bytes silently.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;

    /// The status of `[offset, offset + length)` as consecutive extents covering exactly that range
    /// (adjacent extents of one status may be merged). Cheap: reads metadata only.
    fn block_status(&self, offset: u64, length: u64) -> Result<Vec<BlockExtent>>;

    /// Format facts for display.
    fn details(&self) -> ImageDetails;
}
