//! Reading the file system of an ISO 9660 image without mounting it: the directory tree (Joliet
//! names when the image has a Joliet volume, ISO 9660 names otherwise) and file contents, from any
//! [`ReadAt`].
//!
//! The image is untrusted: every extent is checked against the source's size, directories are
//! read one sector at a time, and the walk is bounded in entries, depth and directory size
//! ([`IsoReadLimits`]), and refuses loops; a hostile image gets `Corrupt` or `Unsupported`, never a
//! panic or an allocation beyond the limits.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::Arc;

use super::record::{
    parse_record, DirRecord, FIRST_DESCRIPTOR_SECTOR, FLAG_ASSOCIATED, FLAG_DIRECTORY, FLAG_MULTI_EXTENT,
    JOLIET_ESCAPES, SECTOR,
};
use crate::{FormatError, ReadAt, Result};

/// Bounds on what reading one image may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsoReadLimits {
    /// Entries (files and directories) in the whole tree.
    pub max_entries: usize,
    /// Directory nesting below the root.
    pub max_depth: usize,
    /// Size of one directory's records.
    pub max_directory_bytes: u64,
    /// Volume descriptors looked at before the terminator.
    pub max_descriptors: u64,
    /// Directory records read by one [`IsoFilesystem::walk`], all directories together.
    pub max_walk_bytes: u64,
}

impl Default for IsoReadLimits {
    fn default() -> IsoReadLimits {
        IsoReadLimits {
            max_entries: 1 << 20,
            max_depth: 64,
            max_directory_bytes: 64 << 20,
            max_descriptors: 64,
            max_walk_bytes: 256 << 20,
        }
    }
}

/// One file or directory of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoEntry {
    /// Path from the root, names joined by `/` (no leading slash).
    pub path: String,
    pub is_dir: bool,
    /// Content length of a file; length of the records of a directory.
    pub size: u64,
    /// First sector of the content.
    pub extent: u32,
}

/// The file system of an ISO 9660 image, opened for reading.
pub struct IsoFilesystem {
    src: Arc<dyn ReadAt>,
    src_size: u64,
    volume_id: String,
    joliet: bool,
    root: IsoEntry,
    limits: IsoReadLimits,
}

impl std::fmt::Debug for IsoFilesystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsoFilesystem").field("volume_id", &self.volume_id).field("joliet", &self.joliet).finish()
    }
}

impl IsoFilesystem {
    /// Opens the image in `src` with the default limits. `Corrupt` when there is no primary volume
    /// descriptor or it is damaged; `Unsupported` for a logical block size other than 2048.
    pub fn open(src: Arc<dyn ReadAt>) -> Result<IsoFilesystem> {
        IsoFilesystem::open_with_limits(src, IsoReadLimits::default())
    }

    /// Opens the image in `src`, bounded by `limits`.
    pub fn open_with_limits(src: Arc<dyn ReadAt>, limits: IsoReadLimits) -> Result<IsoFilesystem> {
        let src_size = src.size()?;
        let mut primary = None;
        let mut joliet = None;
        let mut sector = vec![0u8; SECTOR as usize];
        for n in 0..limits.max_descriptors {
            let at = (FIRST_DESCRIPTOR_SECTOR + n) * SECTOR;
            if at + SECTOR > src_size {
                break;
            }
            src.read_exact_at(&mut sector, at)?;
            if &sector[1..6] != b"CD001" {
                break;
            }
            match sector[0] {
                1 if primary.is_none() => primary = Some(sector.clone()),
                2 if joliet.is_none() && JOLIET_ESCAPES.iter().any(|e| sector[88..91] == e[..]) => {
                    joliet = Some(sector.clone())
                }
                255 => break,
                _ => {}
            }
        }
        let Some(pvd) = primary else {
            return Err(FormatError::Corrupt("iso: no primary volume descriptor at sector 16".into()));
        };
        let block = u16::from_le_bytes([pvd[128], pvd[129]]);
        if u64::from(block) != SECTOR {
            return Err(FormatError::Unsupported(format!("iso: logical block size {block} (only 2048 is read)")));
        }
        let volume_id = String::from_utf8_lossy(&pvd[40..72]).trim_end().to_string();
        let use_joliet = joliet.is_some();
        let chosen = joliet.unwrap_or(pvd);
        let (root, _) = parse_record(&chosen[156..190])?
            .ok_or_else(|| FormatError::Corrupt("iso: the root directory record is empty".into()))?;
        if root.flags & FLAG_DIRECTORY == 0 {
            return Err(FormatError::Corrupt("iso: the root directory record is not a directory".into()));
        }
        let fs = IsoFilesystem {
            src,
            src_size,
            volume_id,
            joliet: use_joliet,
            root: IsoEntry { path: String::new(), is_dir: true, size: u64::from(root.size), extent: root.extent },
            limits,
        };
        fs.check_extent(&fs.root)?;
        Ok(fs)
    }

    /// The volume label of the primary volume descriptor, trailing spaces removed.
    pub fn volume_id(&self) -> &str {
        &self.volume_id
    }

    /// True when names come from a Joliet volume (case kept, long names), false for ISO 9660
    /// names (version suffix `;1` and a lone trailing dot removed).
    pub fn uses_joliet(&self) -> bool {
        self.joliet
    }

    /// The root directory.
    pub fn root(&self) -> &IsoEntry {
        &self.root
    }

    /// The entries of directory `dir`, in record order. `Corrupt` for records that are damaged,
    /// point outside the image, or have names that could escape a directory (`.`, `..`, `/`, NUL).
    pub fn read_dir(&self, dir: &IsoEntry) -> Result<Vec<IsoEntry>> {
        if !dir.is_dir {
            return Err(FormatError::Unsupported(format!("iso: {} is not a directory", dir.path)));
        }
        if dir.size > self.limits.max_directory_bytes {
            return Err(FormatError::Unsupported(format!(
                "iso: directory /{} has {} bytes of records, above the limit of {}",
                dir.path, dir.size, self.limits.max_directory_bytes
            )));
        }
        self.check_extent(dir)?;
        let mut out = Vec::new();
        let mut sector = vec![0u8; SECTOR as usize];
        let sectors = dir.size.div_ceil(SECTOR);
        for s in 0..sectors {
            let len = (dir.size - s * SECTOR).min(SECTOR) as usize;
            let bytes = &mut sector[..len];
            self.src.read_exact_at(bytes, u64::from(dir.extent) * SECTOR + s * SECTOR)?;
            let mut at = 0;
            while let Some((record, n)) = parse_record(&bytes[at..])? {
                at += n;
                if let Some(entry) = self.entry(dir, record)? {
                    if out.len() >= self.limits.max_entries {
                        return Err(too_many(self.limits.max_entries));
                    }
                    out.push(entry);
                }
            }
        }
        Ok(out)
    }

    /// Every entry below the root, depth first (a directory before its contents). `Unsupported`
    /// beyond the limits in entries, depth or directory bytes read; `Corrupt` for a directory
    /// that is reached twice (it contains itself or an ancestor, or two records share it).
    pub fn walk(&self) -> Result<Vec<IsoEntry>> {
        let mut out = Vec::new();
        let mut seen = HashSet::from([self.root.extent]);
        let mut budget = self.limits.max_walk_bytes;
        self.walk_into(&self.root, 0, &mut seen, &mut budget, &mut out)?;
        Ok(out)
    }

    fn walk_into(
        &self,
        dir: &IsoEntry,
        depth: usize,
        seen: &mut HashSet<u32>,
        budget: &mut u64,
        out: &mut Vec<IsoEntry>,
    ) -> Result<()> {
        *budget = budget.checked_sub(dir.size).ok_or_else(|| {
            FormatError::Unsupported(format!(
                "iso: the directories hold more than {} bytes of records",
                self.limits.max_walk_bytes
            ))
        })?;
        if depth >= self.limits.max_depth {
            return Err(FormatError::Unsupported(format!(
                "iso: directories nest deeper than {} levels",
                self.limits.max_depth
            )));
        }
        for entry in self.read_dir(dir)? {
            if out.len() >= self.limits.max_entries {
                return Err(too_many(self.limits.max_entries));
            }
            out.push(entry.clone());
            if entry.is_dir {
                if !seen.insert(entry.extent) {
                    return Err(FormatError::Corrupt(format!(
                        "iso: directory /{} loops back to a directory already visited",
                        entry.path
                    )));
                }
                self.walk_into(&entry, depth + 1, seen, budget, out)?;
            }
        }
        Ok(())
    }

    /// The entry at `path` (`/`-separated; empty or `/` is the root). Names compare exactly.
    /// `FormatError::Unsupported` naming the path when it does not exist.
    pub fn find(&self, path: &str) -> Result<IsoEntry> {
        let mut current = self.root.clone();
        for name in path.split('/').filter(|p| !p.is_empty()) {
            let want = if current.path.is_empty() { name.to_string() } else { format!("{}/{name}", current.path) };
            current = self
                .read_dir(&current)?
                .into_iter()
                .find(|e| e.path == want)
                .ok_or_else(|| FormatError::Unsupported(format!("iso: no such file: /{path}")))?;
        }
        Ok(current)
    }

    /// Reads up to `buf.len()` bytes of file `entry` at `offset`; 0 at or past its end.
    pub fn read_file_at(&self, entry: &IsoEntry, buf: &mut [u8], offset: u64) -> Result<usize> {
        if entry.is_dir {
            return Err(FormatError::Unsupported(format!("iso: /{} is a directory", entry.path)));
        }
        self.check_extent(entry)?;
        if offset >= entry.size {
            return Ok(0);
        }
        let n = buf.len().min(usize::try_from(entry.size - offset).unwrap_or(usize::MAX));
        self.src.read_exact_at(&mut buf[..n], u64::from(entry.extent) * SECTOR + offset)?;
        Ok(n)
    }

    /// The content of file `entry` as a reader, from its first byte.
    pub fn open_file(&self, entry: &IsoEntry) -> Result<IsoFileReader<'_>> {
        if entry.is_dir {
            return Err(FormatError::Unsupported(format!("iso: /{} is a directory", entry.path)));
        }
        self.check_extent(entry)?;
        Ok(IsoFileReader { fs: self, entry: entry.clone(), offset: 0 })
    }

    /// `Corrupt` unless the entry's content lies inside the source.
    fn check_extent(&self, entry: &IsoEntry) -> Result<()> {
        if entry.size == 0 {
            return Ok(());
        }
        let end = u64::from(entry.extent) * SECTOR + entry.size;
        if end > self.src_size {
            return Err(FormatError::Corrupt(format!(
                "iso: /{} ends at byte {end}, past the end of the image ({} bytes)",
                entry.path, self.src_size
            )));
        }
        Ok(())
    }

    /// The entry a record of `dir` describes; `None` for `.`, `..` and associated files.
    fn entry(&self, dir: &IsoEntry, record: DirRecord) -> Result<Option<IsoEntry>> {
        if record.id == [0] || record.id == [1] || record.flags & FLAG_ASSOCIATED != 0 {
            return Ok(None);
        }
        let name = self.name(&record.id)?;
        let path = if dir.path.is_empty() { name.clone() } else { format!("{}/{name}", dir.path) };
        if record.flags & FLAG_MULTI_EXTENT != 0 {
            return Err(FormatError::Unsupported(format!("iso: /{path} is a multi-extent file (not read)")));
        }
        let entry = IsoEntry {
            path,
            is_dir: record.flags & FLAG_DIRECTORY != 0,
            size: u64::from(record.size),
            extent: record.extent,
        };
        self.check_extent(&entry)?;
        Ok(Some(entry))
    }

    fn name(&self, id: &[u8]) -> Result<String> {
        let name = if self.joliet {
            if id.len() % 2 != 0 {
                return Err(FormatError::Corrupt("iso: a Joliet name has an odd number of bytes".into()));
            }
            let units = id.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<std::result::Result<String, _>>()
                .map_err(|_| FormatError::Corrupt("iso: a Joliet name is not valid UTF-16".into()))?
        } else {
            let text = String::from_utf8_lossy(id);
            let base = text.split(';').next().unwrap_or_default();
            let base = if base.ends_with('.') && base.matches('.').count() == 1 { &base[..base.len() - 1] } else { base };
            base.to_string()
        };
        let name = if self.joliet { name.split(';').next().unwrap_or_default().to_string() } else { name };
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(FormatError::Corrupt(format!("iso: refusing the file name {name:?}")));
        }
        Ok(name)
    }
}

fn too_many(max: usize) -> FormatError {
    FormatError::Unsupported(format!("iso: more than {max} entries"))
}

/// Sequential reads of one file of an [`IsoFilesystem`].
pub struct IsoFileReader<'a> {
    fs: &'a IsoFilesystem,
    entry: IsoEntry,
    offset: u64,
}

impl Read for IsoFileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fs.read_file_at(&self.entry, buf, self.offset).map_err(|e| match e {
            FormatError::Io(io) => io,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        })?;
        self.offset += n as u64;
        Ok(n)
    }
}
